"""Where a result comes from: hardware, library versions, git revision, source fingerprints."""

from __future__ import annotations

import hashlib
import inspect
import os
import platform
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import torch


@cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def hardware(device: str, threads: int) -> dict[str, Any]:
    """The machine a run executes on; ``class`` groups runs whose wall times are comparable
    (same processor or GPU model and the same thread count)."""
    gpu = None
    if str(device).startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(device))
    kind = f"gpu:{gpu}" if gpu else f"cpu:{cpu_model()}"
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": memory_gb(),
        "gpu": gpu,
        "threads": threads,
        "class": f"{kind}|threads={threads}",
    }


def versions() -> dict[str, str]:
    import numpy

    from bilevel_bench import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "bilevel_bench": __version__,
        "platform": platform.platform(),
    }


@cache
def git_revision() -> dict[str, Any] | None:
    """The git commit of the bilevel_bench checkout (None when not installed from git)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def source_sha256(obj: Any) -> tuple[str | None, str | None]:
    """(path, sha256) of the file that defines ``obj``."""
    try:
        path = inspect.getsourcefile(obj)
    except TypeError:
        return None, None
    if path is None or not os.path.exists(path):
        return None, None
    return path, hashlib.sha256(Path(path).read_bytes()).hexdigest()


def source_identity(obj: Any) -> dict[str, Any]:
    """Where the code of ``obj`` comes from, without any absolute path: the distribution
    (package name and version) that installs its module, or, for a plugin loaded from a file,
    the file's name; with the sha256 of the defining file and the module name."""
    module = getattr(obj, "__module__", "") or ""
    _path, sha = source_sha256(obj)
    identity: dict[str, Any] = {"module": module, "sha256": sha, "package": None,
                                "package_version": None}
    top = module.split(".")[0]
    if top.startswith("bilevel_bench_plugin_"):  # loaded by path: path/to/file.py:Class
        identity["file"] = os.path.basename(_path) if _path else None
        identity["spec"] = f"{identity['file']}:{getattr(obj, '__qualname__', '')}"
        return identity
    dists = distributions_of().get(top) or []
    if dists:
        identity["package"] = dists[0]
        try:
            from importlib import metadata

            identity["package_version"] = metadata.version(dists[0])
        except Exception:  # noqa: BLE001 - broken metadata never stops a run
            pass
    return identity


@cache
def distributions_of() -> dict[str, list[str]]:
    """Top-level module -> distributions that install it (cached: a scan of site-packages)."""
    try:
        from importlib import metadata

        return dict(metadata.packages_distributions())
    except Exception:  # noqa: BLE001
        return {}


def pin_threads(threads: int) -> None:
    """Pin BLAS/OpenMP/torch threads of this process (call before heavy work)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # only settable before the first parallel work
        pass
