"""Noticing changes: the inotify watcher, the polling fallback, and the debouncing ``Batch``.

A watcher only wakes the daemon ("something under the watched directories
changed"); the daemon then re-discovers the candidates and compares the
identities of their files (``signature``: device, inode, size, mtime of every
certificate, issuer and staple file), so a missed or coalesced event costs
nothing but latency (the ``--sweep-interval`` rescan catches the rest).
certbot renews by swapping symlinks in ``live/``: directories are watched
recursively, new ones as they appear.

inotify comes from ``inotify_simple`` (PyPI: a small, maintained ctypes
wrapper of the three system calls, no compiled code, no threads of its own).
It is a dependency on Linux; where it cannot be imported or the kernel
refuses (no inotify, ``max_user_watches`` or ``max_user_instances``
exhausted) the poller (lists the directories and stats the files every
``POLL_INTERVAL`` s) takes over and the log says so.

``Batch`` is pure (times in, decisions out): a burst of events becomes one
action after a quiet period, or at the latest some time after the first.
"""

from __future__ import annotations

import errno
import os
import select
import stat
import threading
from typing import Callable, Collection, Dict, Iterable, List, Optional, Sequence, Tuple

from .. import store
from ..discovery import Candidate
from ..statecache import identity

POLL_INTERVAL = 2.0


class Batch:
    """Collects things (paths) and says when the batch is complete: QUIET seconds after the
    last addition, or at most LONGEST seconds after the first."""

    def __init__(self, quiet: float, longest: float) -> None:
        self.quiet, self.longest = quiet, longest
        self.items: List[str] = []
        self.first: Optional[float] = None
        self.last: Optional[float] = None

    def add(self, things: Iterable[str], now: float) -> None:
        added = False
        for t in things:
            if t not in self.items:
                self.items.append(t)
            added = True
        if added:
            self.first = now if self.first is None else self.first
            self.last = now

    def deadline(self) -> Optional[float]:
        if self.first is None or self.last is None:
            return None
        return min(self.last + self.quiet, self.first + self.longest)

    def ready(self, now: float) -> bool:
        d = self.deadline()
        return d is not None and now >= d

    def take(self) -> List[str]:
        items, self.items, self.first, self.last = self.items, [], None, None
        return items


WatchRoot = Tuple[str, bool]                # (directory, recursive)


class Watcher:
    """Calls ``notify(overflow)`` from its own thread when something under ROOTS changed
    (paths IGNORE accepts do not count); ``stop()`` ends the thread."""

    mode = "none"

    def __init__(self, roots: Sequence[WatchRoot], notify: Callable[[bool], None],
                 ignore: Callable[[str], bool]) -> None:
        self.roots = [(os.path.abspath(d), r) for d, r in roots]
        self.notify = notify                # notify(overflow): something changed
        self.ignore = ignore
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "Watcher":
        self._thread = threading.Thread(target=self._run, name=f"ocsp-watch-{self.mode}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wakeup()
        if self._thread is not None:
            self._thread.join(2.0)

    def _wakeup(self) -> None:
        pass

    def _run(self) -> None:
        raise NotImplementedError


class WatcherUnavailable(Exception):
    """inotify cannot be used here (no module, no kernel support, limits reached): poll."""


def _walk_dirs(root: str, recursive: bool) -> List[str]:
    if not os.path.isdir(root):
        return []
    if not recursive:
        return [root]
    out = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        out.append(dirpath)
    return out


class InotifyWatcher(Watcher):
    """inotify on every directory (recursively where asked; new directories added as they come)."""

    mode = "inotify"

    def __init__(self, roots: Sequence[WatchRoot], notify: Callable[[bool], None],
                 ignore: Callable[[str], bool]) -> None:
        super().__init__(roots, notify, ignore)
        try:
            import inotify_simple as ino
        except ImportError as exc:
            raise WatcherUnavailable(f"the inotify_simple module is not installed ({exc})") from None
        self.ino_mod = ino
        f = ino.flags
        self.mask = (f.CLOSE_WRITE | f.MOVED_TO | f.CREATE | f.DELETE | f.MOVED_FROM | f.ATTRIB
                     | f.DELETE_SELF | f.MOVE_SELF)
        try:
            self.inotify = ino.INotify()
        except OSError as exc:
            raise WatcherUnavailable(f"inotify: {exc.strerror or exc}") from None
        self.wds: Dict[int, Tuple[str, bool]] = {}
        self._r, self._w = os.pipe()
        try:
            for root, recursive in self.roots:
                for d in _walk_dirs(root, recursive):
                    self._add(d, recursive)
        except WatcherUnavailable:
            self.close()
            raise

    def _add(self, d: str, recursive: bool) -> None:
        try:
            wd = self.inotify.add_watch(d, self.mask)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EMFILE, errno.ENOMEM):
                raise WatcherUnavailable(f"inotify: cannot watch {d}: {exc.strerror} (raise "
                                         f"fs.inotify.max_user_watches)") from None
            return                                # vanished or unreadable: the sweep covers it
        self.wds[wd] = (d, recursive)

    def _wakeup(self) -> None:
        try:
            os.write(self._w, b"x")
        except OSError:
            pass

    def close(self) -> None:
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.inotify.close()
        except OSError:
            pass

    def _run(self) -> None:
        f = self.ino_mod.flags
        try:
            while not self._stop.is_set():
                try:
                    ready, _, _ = select.select([self.inotify.fileno(), self._r], [], [])
                except InterruptedError:
                    continue
                if self._r in ready or self._stop.is_set():
                    break
                events = self.inotify.read(timeout=0)
                relevant = False
                overflow = False
                for ev in events:
                    if ev.mask & f.Q_OVERFLOW:
                        overflow = True
                        continue
                    where = self.wds.get(ev.wd)
                    if ev.mask & f.IGNORED:
                        self.wds.pop(ev.wd, None)
                        continue
                    if where is None:
                        continue
                    d, recursive = where
                    path = os.path.join(d, ev.name) if ev.name else d
                    if ev.mask & f.ISDIR and ev.mask & (f.CREATE | f.MOVED_TO) and recursive:
                        try:
                            for sub in _walk_dirs(path, True):
                                self._add(sub, True)
                        except WatcherUnavailable:
                            overflow = True
                        relevant = True
                        continue
                    if ev.name and self.ignore(path):
                        continue
                    relevant = True
                if relevant or overflow:
                    self.notify(overflow)
        except OSError:
            self.notify(True)
        finally:
            self.close()


class PollWatcher(Watcher):
    """Where inotify is unavailable: list the directories and stat the files every POLL_INTERVAL s."""

    mode = "poll"

    def __init__(self, roots: Sequence[WatchRoot], notify: Callable[[bool], None],
                 ignore: Callable[[str], bool], extra: Callable[[], Iterable[str]] = lambda: (),
                 interval: float = POLL_INTERVAL) -> None:
        super().__init__(roots, notify, ignore)
        self.extra = extra
        self.interval = interval
        self._last = self.snapshot()

    def _wakeup(self) -> None:
        pass

    def snapshot(self) -> Dict[str, tuple]:
        snap: Dict[str, tuple] = {}
        for root, recursive in self.roots:
            for d in _walk_dirs(root, recursive):
                try:
                    names = os.listdir(d)
                except OSError:
                    continue
                for n in names:
                    p = os.path.join(d, n)
                    if self.ignore(p):
                        continue
                    snap[p] = _stat_sig(p)
        for p in self.extra():
            snap.setdefault(p, _stat_sig(p))
        return snap

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            snap = self.snapshot()
            if snap != self._last:
                self._last = snap
                self.notify(False)


def _stat_sig(path: str) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return ()
    if stat.S_ISDIR(st.st_mode):
        return ("dir",)                     # its entries are listed themselves
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)


def make_watcher(roots: Sequence[WatchRoot], notify: Callable[[bool], None],
                 ignore: Callable[[str], bool], extra: Callable[[], Iterable[str]],
                 *, force_poll: bool = False) -> Tuple[Watcher, str]:
    """The inotify watcher, or the poller with the reason inotify is not used."""
    if not force_poll:
        try:
            return InotifyWatcher(roots, notify, ignore), ""
        except WatcherUnavailable as exc:
            return PollWatcher(roots, notify, ignore, extra), str(exc)
    return PollWatcher(roots, notify, ignore, extra), "polling requested"


# ---------------------------------------------------------------------------
# What to watch, what to ignore, and what counts as a change
# ---------------------------------------------------------------------------

def roots_for(roots: Sequence[WatchRoot], cands: Iterable[Candidate]) -> List[WatchRoot]:
    """ROOTS plus the directories (not recursively) of files outside them: explicit certificate
    files, issuers, and the targets of symlinks."""
    out = list(roots)
    covered = [(os.path.abspath(d), r) for d, r in roots]

    def under(p: str) -> bool:
        for d, r in covered:
            if p == d or (r and p.startswith(d.rstrip("/") + "/")):
                return True
        return False
    for c in cands:
        for f in [c.cert, c.issuer or ""] + list(c.issuer_files):
            if not f:
                continue
            for p in {os.path.dirname(os.path.abspath(f)), os.path.dirname(os.path.realpath(f))}:
                if not under(p) and (p, False) not in out:
                    out.append((p, False))
    return out


def own_file(path: str, staples: Collection[str], state_files: Collection[str]) -> bool:
    """Is PATH one the daemon writes itself (a staple, its backup or temp file, the state)?
    Such a change is never a certificate change."""
    name = os.path.basename(path)
    if name.endswith(store.TEMP_SUFFIX):
        return True
    if path in staples or path in state_files:
        return True
    if store.BACKUP_RE.search(path) and path[:-16] in staples:
        return True                         # <staple>-YYYYmmdd-HHMMSS
    return False


def input_files(cands: Iterable[Candidate]) -> List[str]:
    """The certificate and issuer files of CANDS (the poller stats them wherever they are)."""
    out: List[str] = []
    for c in cands:
        out += [c.cert] + ([c.issuer] if c.issuer else []) + list(c.issuer_files)
    return out


def signature(cand: Candidate) -> tuple:
    """The identities of a candidate's files: a different one means it changed."""
    files = [cand.cert, cand.staple, cand.issuer or ""] + list(cand.issuer_files)
    return tuple(tuple(identity(p) or ()) if p else () for p in files)
