"""A cache of summarised run records for repeated leaderboard builds, kept outside the site.

Reading 50,000 records means parsing 550 MB of JSON, checking every record and summarising it
(row, primary-metric trace, official outcome): about 12 s on one core. A rebuild after a few
new records should not pay that again. The cache maps the sha256 of a record file's bytes to
what :func:`~bilevel_bench.leaderboard.collect.collect` made of it: an edited file is read
again (its digest changed), a moved or copied one keeps its entry. Reading and hashing every
file costs about 1 s for those 550 MB, a twelfth of parsing them.

An entry also depends on the official metadata it was checked against and on the code that
made it; both go into the cache's :func:`fingerprint`, and a cache file made under another
fingerprint is never read (and is removed by the next build that writes).

The cache is a folder of the builder's choice (``bilevel-bench leaderboard --cache DIR``,
apart from every input folder and the site: :func:`bilevel_bench.paths.cache_folder`) holding
pickle segments (:class:`RecordCache`). A pickle runs code when it is loaded, so a segment is
unpickled only if this builder wrote it: each one carries an HMAC-SHA256 of its bytes under a
secret key of this user (:func:`secret`, outside the cache folder, mode 0600), is opened
without following symbolic links, and must be a regular file that the current user owns and
nobody else may write, in a folder alike. Ownership alone does not say who wrote the bytes (a
copied or planted file); the key does. An unreadable, foreign, unsigned or corrupt segment is
ignored and removed, never an error.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import inspect
import json
import os
import pickle
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

#: bumped when the layout of the pickle changes
LAYOUT = 2
#: the first bytes of a segment, followed by its HMAC-SHA256 (32 bytes) and the pickle
MAGIC = b"bilevel-bench cache 2\n"


def secret() -> bytes | None:
    """This user's key for signing cache segments: 32 random bytes in
    ``$XDG_CACHE_HOME/bilevel_bench/leaderboard-cache.key`` (or ``~/.cache/...``), created
    with mode 0600 on first use; None if it cannot be created or is not private (the build
    then goes uncached)."""
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bilevel_bench"
    path = folder / "leaderboard-cache.key"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(os.urandom(32))
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            key = handle.read(64)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or len(key) != 32 or (
            hasattr(os, "getuid") and (info.st_uid != os.getuid()
                                       or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO))):
        return None
    return key


def fingerprint(official: Any, modules: list[ModuleType]) -> str:
    """sha256 over the cache layout, the official metadata (as sorted JSON; objects by their
    ``as_dict()`` or ``repr``) and the source files of ``modules``."""
    digest = hashlib.sha256(f"layout {LAYOUT}\n".encode())
    digest.update(json.dumps(official, sort_keys=True, default=_plain).encode())
    for module in modules:
        digest.update(Path(inspect.getfile(module)).read_bytes())
    return digest.hexdigest()


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: building millions of small acyclic objects
    (unpickling, JSON) otherwise triggers it again and again (5x the time of the load)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _plain(value: Any) -> Any:
    return value.as_dict() if hasattr(value, "as_dict") else repr(value)


def _private(path: Path) -> bool:
    """Owned by this user and writable by nobody else (always, where there are no uids)."""
    return _private_stat(path.stat())


def _private_stat(info: os.stat_result) -> bool:
    if not hasattr(os, "getuid"):
        return True
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _check_folder(folder: Path) -> None:
    """A cache folder must be a private folder (or not exist yet): ValueError otherwise."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ValueError(f"the cache folder {str(folder)!r} is not a folder: name a folder "
                         "(it is created when missing)")
    if not _private(folder):
        raise ValueError(f"the cache folder {str(folder)!r} is not yours alone (others "
                         "may write to it, and a cache is code when it is loaded): "
                         "name a folder only you can write, e.g. ./.leaderboard-cache")


class RecordCache:
    """sha256 of a record file -> its summary, loaded from and saved to ``folder``.

    The folder holds segments (``records-*.pickle``): a build that read new files adds one
    segment with their entries only, so adding 500 records to 50,000 writes 500 entries, not
    50,000. When the segments hold too many entries no build used (files removed or edited)
    or too many segments pile up, ``save`` compacts them into one segment of the entries this
    build used. ``get`` marks an entry as used."""

    #: compact when more than this share of the loaded entries went unused ...
    STALE = 0.25
    #: ... or when there are more segments than this
    SEGMENTS = 8

    def __init__(self, folder: str | Path, key: str) -> None:
        self.folder, self.key = Path(folder), key
        _check_folder(self.folder)
        self.secret = secret()
        self.loaded: dict[str, Any] = {}
        self.used: dict[str, Any] = {}
        self.new: dict[str, Any] = {}
        self.segments: list[Path] = []  # those of this key, oldest first
        self.foreign: list[Path] = []  # those of another key or unreadable
        for path in sorted(self.folder.glob("records-*.pickle")):
            entries = self._read(path)
            if entries is None:
                self.foreign.append(path)
            else:
                self.segments.append(path)
                self.loaded.update(entries)

    def _read(self, path: Path) -> dict[str, Any] | None:
        """The entries of a segment this builder wrote (signed with :func:`secret`), else
        None: never unpickles bytes it cannot authenticate."""
        if self.secret is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # a symlink is refused here
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode) or not _private_stat(info) \
                        or not _private(path.parent):
                    return None
                blob = handle.read()
            head, mac, payload = blob[:len(MAGIC)], blob[len(MAGIC):len(MAGIC) + 32], \
                blob[len(MAGIC) + 32:]
            if head != MAGIC or not hmac.compare_digest(
                    mac, hmac.new(self.secret, payload, hashlib.sha256).digest()):
                return None
            with gc_paused():
                stored = pickle.loads(payload)
        except Exception:  # noqa: BLE001 - a broken segment is ignored (and replaced)
            return None
        if isinstance(stored, dict) and stored.get("key") == self.key \
                and isinstance(stored.get("entries"), dict):
            return stored["entries"]
        return None

    def get(self, digest: str) -> Any | None:
        entry = self.loaded.get(digest)
        if entry is not None:
            self.used[digest] = entry
        return entry

    def put(self, digest: str, entry: Any) -> None:
        self.used[digest] = entry
        self.new[digest] = entry

    def save(self) -> None:
        """Add a segment of the new entries, or compact (module docstring); written
        atomically with mode 0600. A folder that cannot be written (or no key) leaves the build
        uncached, never failed."""
        if self.secret is None:
            return
        stale = len(self.loaded.keys() - self.used.keys())
        compact = stale > self.STALE * max(len(self.loaded), 1) \
            or len(self.segments) + bool(self.new) > self.SEGMENTS
        try:
            if compact:
                self._write(self.used)
                for path in self.segments + self.foreign:
                    path.unlink(missing_ok=True)
            elif self.new:
                self._write(self.new)
                for path in self.foreign:
                    path.unlink(missing_ok=True)
        except OSError:
            return

    def _write(self, entries: dict[str, Any]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-records-")
        path = self.folder / f"records-{time.time_ns():020d}-{os.getpid()}.pickle"
        try:
            payload = pickle.dumps({"key": self.key, "entries": entries},
                                 protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(handle, "wb") as out:
                out.write(MAGIC)
                out.write(hmac.new(self.secret, payload, hashlib.sha256).digest())
                out.write(payload)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path
