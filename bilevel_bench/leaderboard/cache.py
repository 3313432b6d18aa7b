"""A cache of summarised run records for repeated leaderboard builds, kept outside the site.

Reading 50,000 records means parsing 550 MB of JSON, checking every record and summarising it
(row, primary-metric trace, official outcome): about 17 s on one core. A rebuild after a few
new records should not pay that again. The cache maps the sha256 of a record file's bytes to
what :func:`~bilevel_bench.leaderboard.collect.collect` made of it: an edited file is read
again (its digest changed), a moved or copied one keeps its entry. Hashing every file costs
about 1.6 ms per MB, a tenth of parsing it.

An entry also depends on the official metadata it was checked against and on the code that
made it; both go into the cache's :func:`fingerprint`, and a cache file made under another
fingerprint is never read (nor kept: one file per folder).

The cache is a pickle file in a folder of the builder's choice (``bilevel-bench leaderboard
--cache DIR``). A pickle runs code when it is loaded, so it is written atomically with mode
0600 and loaded only when the current user owns it and nobody else may write to it or its
folder. An unreadable, foreign or corrupt cache is ignored and rewritten, never an error.
"""

from __future__ import annotations

import gc
import hashlib
import inspect
import json
import os
import pickle
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

#: bumped when the layout of the pickle changes
LAYOUT = 1


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


def _trusted(path: Path) -> bool:
    """Owned by this user and writable by nobody else (the file and its folder)."""
    if not hasattr(os, "getuid"):
        return True
    for item in (path, path.parent):
        info = item.stat()
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
    return True


class RecordCache:
    """sha256 of a record file -> its summary, loaded from and saved to ``folder``.

    ``get`` marks an entry as used; ``save`` writes the used and new entries only (entries of
    files no longer read are dropped), and only when something changed."""

    def __init__(self, folder: str | Path, key: str) -> None:
        self.folder, self.key = Path(folder), key
        self.path = self.folder / "records.pickle"
        self.loaded: dict[str, Any] = {}
        self.used: dict[str, Any] = {}
        self.hits = self.misses = 0
        try:
            if self.path.is_file() and _trusted(self.path):
                with open(self.path, "rb") as handle, gc_paused():
                    stored = pickle.load(handle)
                if isinstance(stored, dict) and stored.get("key") == key \
                        and isinstance(stored.get("entries"), dict):
                    self.loaded = stored["entries"]
        except Exception:  # noqa: BLE001 - a broken cache is ignored and rewritten
            self.loaded = {}

    def get(self, digest: str) -> Any | None:
        entry = self.loaded.get(digest)
        if entry is not None:
            self.used[digest] = entry
            self.hits += 1
        return entry

    def put(self, digest: str, entry: Any) -> None:
        self.used[digest] = entry
        self.misses += 1

    def save(self) -> None:
        """Write the entries of this build (atomically, mode 0600) when they changed; a folder
        that cannot be written leaves the build uncached, never failed."""
        if not self.misses and len(self.used) == len(self.loaded):
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-records-")
            try:
                with os.fdopen(handle, "wb") as out:
                    pickle.dump({"key": self.key, "entries": self.used}, out,
                                protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, self.path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError:
            return
