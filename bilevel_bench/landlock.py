"""Landlock (Linux >= 5.13) filesystem confinement of a solver process, through ctypes.

:func:`deny` makes a set of paths (files or folders) unreadable and unwritable for the calling
process and every process it starts later, and leaves the rest of the filesystem as it was.
Landlock grants by allow-list, so the rules are built by walking down from ``/``: every entry of
a folder on the way to a denied path is allowed whole (its subtree), except the denied path
itself and the folders leading to another denied path, which are walked in turn. Siblings of a
denied path stay usable; folders *on the way* keep their existing entries, but a file created
directly in one of them after the restriction can be neither read nor written (no rule covers
it): the caller gives the process a private temporary folder where that matters.

Handled rights: reading and writing files, truncating, creating, removing, linking and renaming
entries. Listing folders and executing are left alone (so the import system can scan
``site-packages`` even when a denied folder lies beneath it; names of denied files are visible,
their contents are not). Where the kernel offers it (ABI 6), the process is also scoped: it
cannot signal processes outside its Landlock domain (its evaluator, other runs). A Landlock
domain also stops it from ptrace-ing or reading the memory (``/proc/PID/mem``) of processes
outside it.

Limits, stated: the restriction applies to the calling thread and its future threads and
children (a thread started before it stays unrestricted: :func:`deny` reports how many other
threads there were); a file reachable through another mount of the same filesystem, or a hard
link outside the denied folders, is not covered.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import stat
import sys
from collections.abc import Iterable
from typing import Any

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446  # the same on every arch
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
#: rights that apply to a file (not a folder): the kernel refuses others on a file's rule
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
SCOPE_SIGNAL = 1 << 1  # ABI 6


class LandlockError(OSError):
    """Landlock is unavailable here, or the restriction could not be applied (nothing was
    restricted: the process is as it was)."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@functools.cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _syscall(number: int, *args: Any) -> int:
    libc = _libc()
    result = libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        code = ctypes.get_errno()
        raise LandlockError(code, os.strerror(code))
    return int(result)


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 where Landlock is unavailable."""
    if _libc() is None:
        return 0
    try:
        return _syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0),
                        ctypes.c_uint32(CREATE_RULESET_VERSION))
    except LandlockError:
        return 0


def unavailable() -> str | None:
    """Why Landlock cannot be used here (None: it can), in a few words."""
    if not sys.platform.startswith("linux"):
        return f"Landlock is Linux-only (this is {sys.platform})"
    if _libc() is None:
        return "no C library to call Landlock through"
    try:
        _syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0),
                 ctypes.c_uint32(CREATE_RULESET_VERSION))
    except LandlockError as exc:
        if exc.errno == errno.ENOSYS:
            return f"the kernel ({os.uname().release}) has no Landlock (Linux >= 5.13 needed)"
        if exc.errno == errno.EOPNOTSUPP:
            return "Landlock is disabled at boot (add landlock to the lsm= kernel parameter)"
        return f"Landlock is unusable here ({exc.strerror})"
    return None


def handled_rights(abi: int) -> int:
    """The filesystem rights a ruleset handles for a kernel of ABI ``abi``."""
    rights = (WRITE_FILE | READ_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_CHAR | MAKE_DIR
              | MAKE_REG | MAKE_SOCK | MAKE_FIFO | MAKE_BLOCK | MAKE_SYM)
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    return rights


def _is_beneath(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def plan(denied: Iterable[str]) -> tuple[list[str], list[str]]:
    """(denied, ancestors): the existing denied paths, resolved, with those beneath another
    one dropped; and every folder on the way from ``/`` to one of them."""
    resolved = sorted({os.path.realpath(p) for p in denied if os.path.lexists(p)})
    kept: list[str] = []
    for path in resolved:  # sorted: a folder comes before what lies beneath it
        if not any(_is_beneath(path, k) for k in kept):
            kept.append(path)
    ancestors = set()
    for path in kept:
        parent = os.path.dirname(path)
        while True:
            ancestors.add(parent)
            if parent == "/":
                break
            parent = os.path.dirname(parent)
    return kept, sorted(ancestors)


def deny(paths: Iterable[str]) -> dict[str, Any]:
    """Restrict this process (and its later threads and children) so that ``paths`` cannot be
    read or written; everything else keeps its access. Raises :class:`LandlockError` (nothing
    restricted) where Landlock is unavailable or a rule cannot be made. Returns what was done:
    ``abi``, ``denied`` (resolved paths), ``rules``, ``scoped`` and ``threads_before`` (other
    threads of the process, which stay unrestricted)."""
    why = unavailable()
    if why:
        raise LandlockError(errno.EOPNOTSUPP, why)
    abi = abi_version()
    denied, ancestors = plan(paths)
    if "/" in denied:
        raise LandlockError(errno.EINVAL, "refusing to deny the whole filesystem")
    handled = handled_rights(abi)
    scoped = SCOPE_SIGNAL if abi >= 6 else 0
    attr = _RulesetAttr(handled, 0, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = _syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                       ctypes.c_uint32(0))
    try:
        rules = _allow_all_but(ruleset, handled, set(denied), set(ancestors))
        if _libc().prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), ctypes.c_ulong(0),
                         ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
            code = ctypes.get_errno()
            raise LandlockError(code, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(code)}")
        _syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    try:
        threads = len(os.listdir("/proc/self/task")) - 1
    except OSError:
        threads = -1
    return {"abi": abi, "denied": denied, "rules": rules,
            "scoped": ["signal"] if scoped else [], "threads_before": threads}


def _allow_all_but(ruleset: int, handled: int, denied: set[str], ancestors: set[str]) -> int:
    """Add a rule for every entry of the ancestor folders that is neither denied nor an
    ancestor itself (walked in turn). Symbolic links get no rule: what they point to is covered
    where it lies. Returns the number of rules."""
    count = 0
    stack = ["/"]
    while stack:
        folder = stack.pop()
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, name)
            if path in denied:
                continue
            if path in ancestors:
                stack.append(path)
                continue
            count += _allow(ruleset, path, handled)
    return count


def _allow(ruleset: int, path: str, handled: int) -> int:
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0  # unreachable for us anyway
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISLNK(mode):
            return 0
        rights = handled if stat.S_ISDIR(mode) else handled & FILE_RIGHTS
        if not rights:
            return 0
        attr = _PathBeneathAttr(rights, fd)
        _syscall(SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_uint32(RULE_PATH_BENEATH),
                 ctypes.byref(attr), ctypes.c_uint32(0))
        return 1
    finally:
        os.close(fd)
