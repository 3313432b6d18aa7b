"""The paths a command is given, checked before any work.

Each check returns the path (``~`` expanded) or raises :class:`~bilevel_bench.errors.PathError`
with one line that names the path, the problem and the fix; the command line reports it with
exit status 2. The problems: a path that does not exist, a file where a folder is expected (or
a folder where a file is), a folder that cannot be created or written, an input folder without
run records, a leaderboard site given as records, and a site folder that would hold records.

Also here: where the official leaderboard lives (``leaderboard/submissions``, built into
``leaderboard/site``) and the marker file that tells a built site from a folder of records.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bilevel_bench.errors import PathError

#: a file that every built leaderboard site holds; folders holding it are never read as records
SITE_MARKER = ".bilevel-bench-site"
#: the official submissions folder and the official site's folder, relative to a checkout
OFFICIAL_SUBMISSIONS = Path("leaderboard", "submissions")
OFFICIAL_SITE = Path("leaderboard", "site")


def _shown(path: Path) -> str:
    return repr(str(path))


def is_site(folder: str | Path) -> bool:
    """Whether ``folder`` is a leaderboard site that ``bilevel-bench leaderboard`` built."""
    return (Path(folder) / SITE_MARKER).is_file()


def input_path(path: str | Path, role: str) -> Path:
    """A file or folder that must exist (e.g. a bundle, an asv results folder)."""
    out = Path(path).expanduser()
    if not out.exists():
        raise PathError(f"{role} {_shown(out)} does not exist: check the path")
    return out


def input_file(path: str | Path, role: str) -> Path:
    """An existing, readable file."""
    out = input_path(path, role)
    if not out.is_file():
        raise PathError(f"{role} {_shown(out)} is a folder, not a file: name the file itself")
    if not os.access(out, os.R_OK):
        raise PathError(f"{role} {_shown(out)} is not readable: fix its permissions")
    return out


def input_folder(path: str | Path, role: str) -> Path:
    """An existing folder that can be read."""
    out = input_path(path, role)
    if not out.is_dir():
        raise PathError(f"{role} {_shown(out)} is a file, not a folder: name the folder that "
                        f"holds it ({str(out.parent)!r})")
    if not os.access(out, os.R_OK | os.X_OK):
        raise PathError(f"{role} {_shown(out)} is not readable: fix its permissions")
    return out


def records_folder(path: str | Path, role: str = "results folder") -> Path:
    """An existing folder with at least one run record file (``*.json``) under it."""
    from bilevel_bench.results import record_files  # results imports this module

    out = input_folder(path, role)
    if is_site(out):
        raise PathError(f"{role} {_shown(out)} is a leaderboard site, not a folder of run "
                        "records: name the results folder it was built from")
    if next(record_files(out), None) is None:
        raise PathError(f"no run records (*.json) were found in {role} {_shown(out)}: name a "
                        "folder that `bilevel-bench run --results DIR` wrote to")
    return out


def output_folder(path: str | Path, role: str, option: str, *, empty: bool = False) -> Path:
    """A folder to write into: created when missing (with its parents) and proven writable;
    ``empty``: an existing folder must be empty."""
    out = Path(path).expanduser()
    fix = f"choose another with {option} DIR"
    if out.exists() and not out.is_dir():
        raise PathError(f"{role} {_shown(out)} is a file, not a folder: {fix} (a missing "
                        "folder is created)")
    if empty and out.is_dir() and any(out.iterdir()):
        raise PathError(f"{role} {_shown(out)} exists and is not empty: {fix} (a new name)")
    for above in out.parents:
        if above.exists():
            if not above.is_dir():
                raise PathError(f"{role} {_shown(out)} is not writable ({str(above)!r} is a "
                                f"file, not a folder): {fix}")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", delete=True):
            pass
    except OSError as exc:
        raise PathError(f"{role} {_shown(out)} is not writable ({exc.strerror or exc}): {fix} "
                        "or fix its permissions") from exc
    return out


def output_file(path: str | Path, role: str, option: str, *, new: bool = False) -> Path:
    """A file to write: not a folder, in a folder that is created when missing and proven
    writable; ``new``: it must not exist yet."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise PathError(f"{role} {_shown(out)} is a folder, not a file: name a file with "
                        f"{option} FILE")
    if new and out.exists():
        raise PathError(f"{role} {_shown(out)} exists: choose a new name with {option} FILE")
    output_folder(out.parent, f"the folder of {role} {_shown(out)},", option)
    return out


def site_folder(path: str | Path, inputs: Sequence[Path]) -> Path:
    """The folder of a leaderboard site: writable, and neither one of the input folders nor
    a folder that holds one (a site inside a results folder is fine: it is never read)."""
    out = Path(path).expanduser()
    where = out.resolve()
    for root in inputs:
        if root.resolve().is_relative_to(where):
            raise PathError(f"site folder {_shown(out)} holds the run records of "
                            f"{str(root)!r}: choose a folder of its own with -o DIR, e.g. "
                            f"{str(root / 'site')!r}")
    return output_folder(out, "site folder", "-o")


def cache_folder(path: str | Path, inputs: Sequence[Path], site: Path) -> Path:
    """The leaderboard's cache folder: apart from every input folder (a cache inside one could
    be planted by whoever submits records, one holding one would be read as records) and
    outside the published site."""
    out = Path(path).expanduser()
    where = out.resolve()
    if where.exists() and not where.is_dir():
        raise PathError(f"cache folder {_shown(out)} is a file, not a folder: name a folder "
                        "(it is created when missing)")
    for root in [*inputs, site]:
        root = root.resolve()
        if where.is_relative_to(root) or root.is_relative_to(where):
            what = "the site" if root == site.resolve() else "the run records"
            raise PathError(f"cache folder {_shown(out)} overlaps {what} in {str(root)!r}: "
                            "keep the cache in a folder of its own, e.g. ./.leaderboard-cache")
    return out


def is_official_submissions(inputs: Sequence[str | Path]) -> bool:
    """Whether the inputs are the official submissions folder (``leaderboard/submissions``)."""
    return len(inputs) == 1 and Path(inputs[0]).resolve().parts[-2:] == OFFICIAL_SUBMISSIONS.parts


def is_official_site(folder: str | Path) -> bool:
    """Whether ``folder`` is the official site's folder of a checkout (``leaderboard/site``,
    beside ``leaderboard/submissions``)."""
    where = Path(folder).resolve()
    return (where.parts[-2:] == OFFICIAL_SITE.parts
            and (where.parent / OFFICIAL_SUBMISSIONS.name).is_dir())
