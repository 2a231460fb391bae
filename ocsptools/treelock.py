"""The renewal lock: keyed on what a run renews (real directory paths), not on how it was spelled.

A run of ``ocsp-renew-dir`` (one-shot, ``--watch``, or ``ocsptools.renew``) locks
the real paths of its trees: ``/etc/ssl/t``, a symbolic link to it and
``/etc/ssl/t/sub/..`` are one lock, whatever state file each run uses.  A tree
and a tree inside it conflict too, the way a database locks a subtree: the run
takes an exclusive ``flock`` on each directory it renews and a shared one on
each of its ancestors, so a run on ``/etc/ssl`` (exclusive) and one on
``/etc/ssl/t`` (shared on ``/etc/ssl``) cannot overlap, while ``/etc/ssl/a``
and ``/etc/ssl/b`` can.  Locks are taken in path order (no deadlock) and die
with the process.  The lock files (named by a hash of the path) live in one
directory per user: ``/run/lock/ocsptools`` for root, else
``$XDG_RUNTIME_DIR/ocsptools-locks`` or ``/tmp/ocsptools-locks-UID``.

The state file keeps its own lock besides (two trees sharing one ``--state``
must not interleave their saves).
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from typing import Dict, Iterable, List, Optional, Sequence

from .errors import StoreError, UsageError
from .store import FileLock

#: More distinct directories than this (e.g. certificate paths on stdin) are locked through
#: their common ancestor: coarser, but a run never holds thousands of file descriptors.
MAX_UNITS = 64


def lock_dir() -> str:
    """Where this user's renewal lock files live (created mode 0700 when first needed)."""
    if os.geteuid() == 0 and os.path.isdir("/run/lock") and os.access("/run/lock", os.W_OK):
        return "/run/lock/ocsptools"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK | os.X_OK):
        return os.path.join(runtime, "ocsptools-locks")
    return f"/tmp/ocsptools-locks-{os.geteuid()}"


def units(roots: Iterable[str], files: Iterable[str] = ()) -> List[str]:
    """The directories a run renews, as real paths: each root directory (a root that is a file:
    the file itself) and the directory of each other certificate FILES names; none inside
    another; at most MAX_UNITS (else their common ancestor)."""
    found = set()
    for r in roots:
        found.add(os.path.realpath(r))
    for f in files:
        found.add(os.path.dirname(os.path.realpath(f)))
    kept: List[str] = []
    for path in sorted(found):
        if not any(_within(path, k) for k in kept):
            kept.append(path)
    if len(kept) > MAX_UNITS:
        kept = [os.path.commonpath(kept)]
    return kept


def for_run(roots: Sequence[str], cert_paths: Iterable[str], out_dir: Optional[str] = None) -> List[str]:
    """``units`` of a run over ROOTS (``-`` skipped) whose candidates' certificates are
    CERT_PATHS: only the certificates outside every root (stdin lists, configuration entries)
    are resolved one by one; --out-dir, where staples are written, is a unit too."""
    tops = [os.path.abspath(r) for r in roots if r != "-"]
    if out_dir:
        tops.append(os.path.abspath(out_dir))
    prefixes = tuple(t.rstrip("/") + "/" for t in tops)
    cwd = os.getcwd()
    outside = [c for c in cert_paths
               if not os.path.normpath(os.path.join(cwd, c)).startswith(prefixes)]
    return units(tops, outside)


def _within(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _ancestors(path: str) -> List[str]:
    out: List[str] = []
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return out
        out.append(parent)
        path = parent


class RenewLock:
    """The tree locks of UNITS and the state file's lock, acquired together or not at all."""

    def __init__(self, unit_paths: Sequence[str], state_path: Optional[str], *,
                 directory: Optional[str] = None) -> None:
        self.units = list(unit_paths)
        self.state_path = state_path
        self.directory = directory or lock_dir()
        self.held: List[FileLock] = []

    def plan(self) -> List[FileLock]:
        """The locks, in acquisition order: exclusive on each unit, shared on its ancestors."""
        modes: Dict[str, bool] = {}
        for unit in self.units:
            for anc in _ancestors(unit):
                modes.setdefault(anc, True)
        for unit in self.units:
            modes[unit] = False
        locks = []
        hint = f"make {self.directory} a private directory of this user"
        for path in sorted(modes):
            name = "tree-" + hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:32]
            locks.append(FileLock(os.path.join(self.directory, name + ".lock"), shared=modes[path],
                                  label=path, hint=hint,
                                  holders=functools.partial(self.holders_within, path)))
        if self.state_path is not None:
            locks.append(FileLock(self.state_path + ".lock"))
        return locks

    def holders_within(self, top: str) -> str:
        """Who holds a tree lock inside TOP (the runs whose shared locks kept ours out), as the
        holders wrote it: ``pid N since T on PATH``."""
        found = []
        try:
            names = sorted(n for n in os.listdir(self.directory) if n.startswith("tree-"))
        except OSError:
            names = []
        for name in names:
            try:
                with open(os.path.join(self.directory, name), "rb") as fh:
                    text = fh.read(1000).decode("utf-8", "replace").strip()
            except OSError:
                continue
            on = text.partition(" on ")[2]
            if on and on != top and _within(on, top):
                found.append(text)
        return "; ".join(found[:3]) or "a run on a directory inside it"

    def acquire(self, timeout: float = 0.0, *, what: str = "another run") -> "RenewLock":
        """Every lock within TIMEOUT seconds in all; LockBusy naming the holder otherwise."""
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            for lock in self.plan():
                self.held.append(lock.acquire(max(0.0, deadline - time.monotonic()), what=what))
        except StoreError as exc:       # an unusable lock or state directory: a setup problem
            self.release()
            raise UsageError(str(exc)) from None
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        for lock in reversed(self.held):
            lock.release()
        self.held = []

    def __enter__(self) -> "RenewLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
