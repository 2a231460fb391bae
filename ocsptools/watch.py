"""``ocsp-renew-dir --watch``: one long-running process that never lets a staple lapse.

The daemon makes exactly the one-shot run's decisions: every pass over a
set of certificates is an ``ocsptools.driver.Driver`` run (the same facts,
the same pure ``plan()``/``policy.renewal_decision``, the same verification
and atomic install).  What this module adds is *when* to run it:

* **Schedule** (pure functions, a controllable clock): a good staple is
  looked at again at its due instant (``Decision.renew_at``) moved up to
  10 % of the time left until then *earlier* (``life.renewal_instant``), so a fleet
  started together does not hit a responder at once, and never after the
  one-shot rule's due instant (a ``-q`` run always agrees with the daemon)
  nor later than a safety margin before the staple stops being usable.  When that instant comes the
  target is renewed (``plan(force=...)``: the jittered instant stands in for
  the due one; the installed file is still replaced only by a verified,
  newer answer).  The process sleeps until the earliest instant (an Event
  wait woken by the watcher and by signals): no polling, no fixed tick (it
  re-reads the wall clock at least every ``MAX_SLEEP`` so a suspended
  machine or a stepped clock cannot make it oversleep).
* **Failures** (``life.retry_delay``): 1 minute doubling up to 1 hour;
  ``tryLater`` waits at least 5 minutes and an HTTP ``Retry-After`` is
  honoured; but never past the point where the installed staple lapses: the
  retries tighten to a quarter of the time left.  Revoked and unknown
  answers stay on this schedule and are logged every time (ocsprenewer
  dropped such certificates).
* **Changes**: an inotify watcher (directories recursively; certbot renews
  by swapping symlinks in ``live/``) or, where inotify is unavailable, a
  poller (lists the directories and stats the files every 2 s) wakes the
  loop; after a short quiet period it re-discovers the candidates and
  compares the identities (device, inode, size, mtime) of every
  certificate, issuer and staple file: new, changed, re-issued and deleted
  certificates are handled at once.  A full sweep runs every
  ``--sweep-interval`` to catch anything a watcher missed.
* **Signals**: SIGHUP re-reads the configuration and rescans; SIGUSR1
  renews everything now; SIGTERM/SIGINT start no new fetch, let the
  installs in progress finish (``driver.WriteGate``) and exit 0 within 5 s,
  abandoning fetches still waiting for a responder (the gate is closed, so
  an abandoned fetch can never write).
* **--on-change** runs once per batch (after 1 s without further changes,
  at most 10 s after the first); ``--haproxy-socket`` pushes each renewed
  staple as it is installed (``ocsptools.haproxy``).
* **Logging**: one line per event on stderr, ``text`` (with an ISO UTC time
  unless stderr is systemd's journal) or ``json``; ``--syslog`` also sends
  them to syslog.  ``--prometheus-textfile`` is rewritten atomically after
  every change (``ocsptools.metrics_textfile``).

inotify comes from ``inotify_simple`` (PyPI: a small, maintained ctypes
wrapper of the three system calls, no compiled code, no threads of its own).
It is a dependency on Linux; where it cannot be imported or the kernel
refuses (no inotify, ``max_user_watches`` or ``max_user_instances``
exhausted) the poller takes over and the log says so.

Hidden knobs for tests: ``OCSPTOOLS_WATCH_BACKOFF_BASE`` (seconds; the
1-minute base, and the 1-hour cap as 60 times it), ``OCSPTOOLS_WATCH_POLL=1``
(use the poller), ``OCSPTOOLS_SYSLOG_SOCKET`` (instead of /dev/log).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from . import haproxy, life, metrics_textfile, policy, renewstatus, store
from .discovery import Candidate
from .driver import FAILED, RENEWED, REVOKED, Driver, Item, RunOptions, cached_facts, plan
from .errors import OcspToolsError, UsageError
from .openssl import OpenSSL
from .staple import iso
from .statecache import StateCache, identity, pair_key

Clock = Callable[[], datetime]

#: Backoff after failures: 1 minute doubling up to 1 hour (``life.retry_delay``).
BACKOFF = life.Backoff(base=60.0, cap=3600.0)
#: Wake at least this often to re-read the wall clock (suspend, clock steps).
MAX_SLEEP = 600.0
#: Targets due within this many seconds of the earliest one run in the same pass.
COALESCE = 0.5
#: Watcher events: act after this much quiet, at most this long after the first event.
SETTLE, SETTLE_MAX = 0.3, 2.0
#: --on-change: once per batch, after this much quiet, at most this long after the first change.
HOOK_QUIET, HOOK_MAX = 1.0, 10.0
#: SIGTERM/SIGINT: be gone within this budget (the issue promises 5 s).
STOP_BUDGET = 4.0
POLL_INTERVAL = 2.0
#: The textfile is rewritten after every change, at most this often (changes in between are
#: collected into the next write); the state cache (an optimisation only: the daemon keeps it in
#: memory) is saved at most this often, and at exit.
METRICS_EVERY, CACHE_EVERY = 1.0, 60.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------------------
# Pure scheduling
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Per-target state and the scheduler (no I/O; the clock is passed in)
# ---------------------------------------------------------------------------

@dataclass
class Slot:
    cand: Candidate
    key: str
    next_at: Optional[datetime] = None      # None: only a file change brings it back
    why: str = ""                           # what the next instant is for
    status: str = "missing"                 # see metrics_textfile.STATUSES
    failures: int = 0
    unchanged: int = 0
    last_success: Optional[datetime] = None
    last_failure: Optional[datetime] = None
    next_update: Optional[datetime] = None
    valid_until: Optional[datetime] = None
    sig: Optional[tuple] = None             # identities of its files when last seen

    @property
    def in_backoff(self) -> bool:
        return self.failures > 0 or self.unchanged > 0


@dataclass(frozen=True)
class Outcome:
    """What one pass did to one target, for the log."""

    event: str                              # renewed | failed | revoked | unchanged | ...
    slot: Slot
    detail: str


class Scheduler:
    """Every target's next instant, updated from the items of each driver run."""

    def __init__(self, backoff: life.Backoff = BACKOFF, rand: Callable[[], float] = random.random) -> None:
        self.backoff = backoff
        self.rand = rand
        self.slots: Dict[str, Slot] = {}

    # -- the candidate set ---------------------------------------------------
    def sync(self, cands: Sequence[Candidate], sigs: Dict[str, tuple]) -> Tuple[List[str], List[str], List[Slot]]:
        """Take the current candidates; return (new keys, changed keys, removed slots)."""
        new: List[str] = []
        changed: List[str] = []
        seen: Set[str] = set()
        for cand in cands:
            key = pair_key(cand.cert, cand.staple)
            if key in seen:
                continue
            seen.add(key)
            slot = self.slots.get(key)
            if slot is None:
                self.slots[key] = Slot(cand, key)
                new.append(key)
            else:
                if slot.cand != cand:
                    slot.cand = cand
                    changed.append(key)
                elif slot.sig != sigs.get(key):
                    changed.append(key)
        removed = [self.slots.pop(k) for k in list(self.slots) if k not in seen]
        return new, changed, removed

    # -- when ----------------------------------------------------------------
    def due(self, now: datetime, window: float = COALESCE) -> List[str]:
        limit = now + timedelta(seconds=window)
        return [k for k, s in self.slots.items() if s.next_at is not None and s.next_at <= limit]

    def next_instant(self) -> Optional[datetime]:
        times = [s.next_at for s in self.slots.values() if s.next_at is not None]
        return min(times) if times else None

    def not_in_backoff(self) -> List[str]:
        return [k for k, s in self.slots.items() if not s.in_backoff]

    # -- after a run -----------------------------------------------------------
    def update(self, items: Sequence[Item], now: datetime, opts: RunOptions) -> List[Outcome]:
        """Set each item's slot from what the run did; re-plan renewed ones (the same planner)."""
        out: List[Outcome] = []
        for item in items:
            slot = self.slots.get(item.key)
            if slot is None:
                continue
            out.extend(self._update(slot, item, now, opts))
        return out

    def _update(self, slot: Slot, item: Item, now: datetime, opts: RunOptions) -> List[Outcome]:
        events: List[Outcome] = []
        if item.kind == "ignore":
            slot.status, slot.next_at, slot.why = "error", None, "not a leaf certificate"
            slot.failures = slot.unchanged = 0
            slot.next_update = slot.valid_until = None
            return events
        if item.kind != "leaf" or item.decision is None:
            # could not be loaded (or two certificates share one staple): retry with backoff
            slot.status = "error"
            events.append(self._failed(slot, item, now, item.error or item.detail))
            return events
        self._staple_facts(slot, item)
        d = item.decision
        if d.action == policy.NOT_APPLICABLE:
            slot.status, slot.next_at, slot.why = "not-applicable", None, ""
            slot.failures = slot.unchanged = 0
            if item.outcome:
                events.append(Outcome(item.outcome, slot, item.detail))
            return events
        if d.action == policy.CERT_EXPIRED:
            slot.status, slot.next_at, slot.why = "cert-expired", None, ""
            slot.failures = slot.unchanged = 0
            if item.outcome:
                events.append(Outcome(item.outcome, slot, item.detail))
            return events
        if d.action == policy.FRESH:
            slot.failures = slot.unchanged = 0
            self._plan_renewal(slot, d, now)
            if item.outcome:
                events.append(Outcome(item.outcome, slot, item.detail))
            return events
        # RENEW: what came of it?
        if item.outcome == RENEWED:
            slot.failures = slot.unchanged = 0
            slot.last_success = now
            self._staple_facts(slot, item)
            plan([item], now, opts)                 # fresh until when?  the one-shot rule
            nd = item.decision
            if nd is not None and nd.action == policy.FRESH:
                self._plan_renewal(slot, nd, now)
            else:
                self._retry(slot, now, unchanged=True)
            events.append(Outcome(RENEWED, slot, item.detail))
        elif item.outcome == "unchanged":
            # the responder handed out the installed answer again
            slot.last_success = now
            plan([item], now, opts)
            nd = item.decision
            if nd is not None and nd.action == policy.FRESH:
                slot.failures = slot.unchanged = 0
                self._plan_renewal(slot, nd, now)
            else:
                slot.failures = 0
                self._retry(slot, now, unchanged=True)
            events.append(Outcome("unchanged", slot, "the responder's answer is the installed "
                                                     "staple; asking again later"))
        elif item.outcome in (FAILED, REVOKED):
            if item.outcome == REVOKED:
                slot.status = "revoked"
            elif item.cert_status == "unknown":
                slot.status = "unknown"
            else:
                slot.status = "failed"
            events.append(self._failed(slot, item, now, item.detail, keep_status=True))
        else:
            # not attempted (shutting down, or -S after another failure): soon again
            slot.next_at = now + timedelta(seconds=self.backoff.base)
            slot.why = "not attempted"
        return events

    def _staple_facts(self, slot: Slot, item: Item) -> None:
        cert, st = cached_facts(item)
        lf = st.life(cert.not_after) if st is not None and cert is not None else None
        if st is not None and cert is not None and lf is not None and st.status == "good" \
                and st.serial == cert.serial:
            slot.next_update, slot.valid_until = st.next_update, lf.end
            slot.status = "good"
        else:
            slot.next_update = slot.valid_until = None
            slot.status = "missing"

    def _plan_renewal(self, slot: Slot, d: policy.Decision, now: datetime) -> None:
        if d.renew_at is None:
            slot.next_at, slot.why = None, ""
            return
        slot.next_at = life.renewal_instant(now, d.renew_at, d.valid_until, rand=self.rand(),
                                            jitter=life.JITTER,
                                            floor=timedelta(seconds=self.backoff.base / 60.0))
        slot.why = "renewal"

    def _left(self, slot: Slot, now: datetime) -> Optional[float]:
        if slot.valid_until is None:
            return None
        return (slot.valid_until - now).total_seconds()

    def _retry(self, slot: Slot, now: datetime, *, unchanged: bool = False,
               retry_after: Optional[float] = None, try_later: bool = False) -> float:
        if unchanged:
            slot.unchanged += 1
            n = slot.unchanged
        else:
            slot.failures += 1
            n = slot.failures
        delay = life.retry_delay(n, self.backoff, retry_after=retry_after, try_later=try_later,
                            left=self._left(slot, now))
        slot.next_at = now + timedelta(seconds=delay)
        slot.why = "retry"
        return delay

    def _failed(self, slot: Slot, item: Item, now: datetime, detail: str, *,
                keep_status: bool = False) -> Outcome:
        if not keep_status:
            slot.status = "error"
        slot.last_failure = now
        slot.unchanged = 0
        self._retry(slot, now, retry_after=item.retry_after, try_later=item.try_later)
        event = item.outcome if item.outcome in (FAILED, REVOKED) else FAILED
        return Outcome(event, slot, detail)


# ---------------------------------------------------------------------------
# Debouncing (pure: times in, decisions out)
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Watchers: tell the loop that something under the watched directories changed
# ---------------------------------------------------------------------------

WatchRoot = Tuple[str, bool]                # (directory, recursive)


class Watcher:
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
    pass


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
# Event log
# ---------------------------------------------------------------------------

class SyslogSender:
    """RFC 3164-style datagrams (``<PRI>ident[pid]: text``, facility daemon) to the syslog socket.

    Never blocks: the socket is non-blocking and a message the syslog daemon has no room for
    is dropped (and counted) rather than stopping renewals; a restarted syslog daemon is
    reconnected to.  (logging's SysLogHandler blocks on a full queue.)"""

    FACILITY = 3                            # daemon
    SEVERITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                logging.CRITICAL: 2}

    def __init__(self, address: str, ident: str) -> None:
        self.address = address
        self.ident = ident
        self.sock: Optional[socket.socket] = None
        self.dropped = 0
        self._connect()                     # OSError at start: the caller says what to do

    def _connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.setblocking(False)
        try:
            s.connect(self.address)
        except OSError:
            s.close()
            raise
        self.sock = s

    def send(self, level: int, text: str) -> None:
        pri = self.FACILITY * 8 + self.SEVERITY.get(level, 6)
        msg = f"<{pri}>{self.ident}[{os.getpid()}]: {text}".encode("utf-8", "replace")[:8192]
        for _ in range(2):
            try:
                if self.sock is None:
                    self._connect()
                assert self.sock is not None
                self.sock.send(msg)
                return
            except BlockingIOError:
                break                       # the syslog daemon is behind: drop this one
            except OSError:
                if self.sock is not None:
                    self.sock.close()
                self.sock = None            # restarted syslog daemon: connect again, once
        self.dropped += 1

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class EventLog:
    """One line per event: stderr (text or json), and syslog with --syslog."""

    def __init__(self, prog: str, fmt: str = "text", *, syslog: bool = False,
                 stream=None, clock: Clock = utcnow) -> None:
        self.prog = prog
        self.fmt = fmt
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.stamp = not os.environ.get("JOURNAL_STREAM")     # the journal stamps lines itself
        self._lock = threading.Lock()
        self.syslog: Optional[SyslogSender] = None
        if syslog:
            address = os.environ.get("OCSPTOOLS_SYSLOG_SOCKET") or "/dev/log"
            try:
                self.syslog = SyslogSender(address, prog)
            except OSError as exc:
                raise UsageError(f"--syslog: cannot reach the syslog socket {address}: "
                                 f"{exc.strerror or exc} (is a syslog daemon running? under "
                                 f"systemd stderr already goes to the journal)") from None

    def event(self, event: str, text: str = "", *, level: int = logging.INFO, **fields) -> None:
        now = self.clock()
        fields = {k: v for k, v in fields.items() if v is not None and v != ""}
        if self.fmt == "json":
            record: Dict[str, object] = {"time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                      "event": event}
            if text:
                record["message"] = text
            for k, v in fields.items():
                record[k] = iso(v) if isinstance(v, datetime) else v
            line = json.dumps(record, sort_keys=False)
        else:
            line = f"{event} {text}".rstrip().replace("\n", " ")
            if self.stamp:
                line = f"{iso(now)} {line}"
        plain = f"{event} {text}".rstrip().replace("\n", " ")
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            if self.syslog is not None:
                self.syslog.send(level, plain)

    def close(self) -> None:
        if self.syslog is not None:
            self.syslog.close()


def _in(now: datetime, at: Optional[datetime]) -> str:
    if at is None:
        return ""
    secs = max((at - now).total_seconds(), 0.0)
    if secs < 10:
        return f"{secs:.1f}s"
    from .durations import format_duration
    return format_duration(timedelta(seconds=round(secs)))


# ---------------------------------------------------------------------------
# --on-change, run once per batch in the background
# ---------------------------------------------------------------------------

class HookRunner:
    def __init__(self, command: str, log: EventLog) -> None:
        self.command = command
        self.log = log
        self.runs = 0
        self.failures = 0
        self._queue: List[List[str]] = []
        self._cond = threading.Condition()
        self._busy = False
        self._thread = threading.Thread(target=self._loop, name="ocsp-on-change", daemon=True)
        self._thread.start()

    def submit(self, paths: List[str]) -> None:
        with self._cond:
            self._queue.append(paths)
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def wait(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue))
                paths: List[str] = []
                for batch in self._queue:
                    paths += [p for p in batch if p not in paths]
                self._queue = []
                self._busy = True
            try:
                self._run(paths)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _run(self, paths: List[str]) -> None:
        env = dict(os.environ)
        env["OCSP_CHANGED"] = "\n".join(paths)
        self.runs += 1
        try:
            proc = subprocess.run(self.command, shell=True, env=env, stdin=subprocess.DEVNULL,
                                  stdout=sys.stderr.fileno(), start_new_session=True)
        except OSError as exc:
            self.failures += 1
            self.log.event("on-change-failed", f"cannot run the --on-change command: {exc.strerror}",
                           level=logging.ERROR, staples=len(paths))
            return
        if proc.returncode != 0:
            self.failures += 1
            how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
                   else f"exited with status {proc.returncode}")
            self.log.event("on-change-failed", f"the --on-change command {how} "
                                               f"({len(paths)} changed staples)",
                           level=logging.ERROR, staples=len(paths), status=proc.returncode)
        else:
            self.log.event("on-change", f"ran the --on-change command for {len(paths)} changed "
                                        f"staples", staples=len(paths))


# ---------------------------------------------------------------------------
# The daemon
# ---------------------------------------------------------------------------

@dataclass
class Setup:
    """What the configuration says (rebuilt on SIGHUP)."""

    opts: RunOptions
    ossl: OpenSSL
    discover: Callable[[], Tuple[List[Candidate], List[str]]]   # (candidates, problems)
    roots: List[WatchRoot]
    on_change: Optional[str] = None
    sockets: Tuple[str, ...] = ()
    warnings: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class WatchOptions:
    sweep_interval: float = 3600.0
    textfile: Optional[str] = None
    backoff: life.Backoff = BACKOFF
    force_poll: bool = False
    state_files: Tuple[str, ...] = ()       # never treated as certificate changes
    status_file: Optional[str] = None       # renewstatus: what ocsp-check --renew-state reads


def backoff_from_env() -> life.Backoff:
    raw = os.environ.get("OCSPTOOLS_WATCH_BACKOFF_BASE")
    if not raw:
        return BACKOFF
    try:
        from .durations import parse_duration
        base = parse_duration(raw).total_seconds()
    except ValueError:
        raise UsageError(f"OCSPTOOLS_WATCH_BACKOFF_BASE={raw!r}: not a duration") from None
    if base <= 0:
        raise UsageError(f"OCSPTOOLS_WATCH_BACKOFF_BASE={raw!r}: must be positive")
    return life.Backoff(base=base, cap=60.0 * base)


def _signature(cand: Candidate) -> tuple:
    files = [cand.cert, cand.staple, cand.issuer or ""] + list(cand.issuer_files)
    return tuple(tuple(identity(p) or ()) if p else () for p in files)


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) about READY=1 / STOPPING=1 / STATUS=...; no-op elsewhere."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(address)
            s.sendall(state.encode())
    except OSError:
        pass


class Daemon:
    def __init__(self, prog: str, load: Callable[[], Setup], cache: StateCache, log: EventLog,
                 wopts: WatchOptions = WatchOptions(), *, clock: Clock = utcnow,
                 rand: Callable[[], float] = random.random,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.prog = prog
        self.load = load
        self.cache = cache
        self.log = log
        self.wopts = wopts
        self.clock = clock
        self.monotonic = monotonic
        self.sched = Scheduler(wopts.backoff, rand)
        self.wake = threading.Event()
        self.setup: Optional[Setup] = None
        self.watcher: Optional[Watcher] = None
        self.hooks: Optional[HookRunner] = None
        self.changes = Batch(HOOK_QUIET, HOOK_MAX)
        self.events = Batch(SETTLE, SETTLE_MAX)
        self._overflow = False
        self._stop_signal: Optional[str] = None
        self._reload = False
        self._renew_all = False
        self._cycle_thread: Optional[threading.Thread] = None
        self._driver: Optional[Driver] = None
        self.started = clock()
        self.last_sweep: Optional[datetime] = None
        self.next_sweep = monotonic() + wopts.sweep_interval
        self.renewals = self.failures = self.pushes = self.push_failures = 0
        self._metrics_dirty = True
        self.status = (renewstatus.StatusFile(wopts.status_file).load()
                       if wopts.status_file else None)
        self._staple_paths: Set[str] = set()
        self._pending: Set[str] = set()         # to look at (not forced) in the next pass
        self._first_pass = False                # systemd STATUS once the first pass is done
        self._metrics_at = self._saved_at = float("-inf")
        self._cache_warned = ""
        self._lock = threading.Lock()

    # -- signals ---------------------------------------------------------------
    def install_signals(self) -> None:
        def stop(signum, _frame):
            self._stop_signal = signal.Signals(signum).name
            self.wake.set()

        def hup(_s, _f):
            self._reload = True
            self.wake.set()

        def usr1(_s, _f):
            self._renew_all = True
            self.wake.set()
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)
        signal.signal(signal.SIGUSR1, usr1)

    # -- watcher ---------------------------------------------------------------
    def _on_fs_event(self, overflow: bool) -> None:
        with self._lock:
            self.events.add(["fs"], self.monotonic())
            self._overflow = self._overflow or overflow
        self.wake.set()

    def _ignored(self, path: str) -> bool:
        name = os.path.basename(path)
        if name.endswith(store.TEMP_SUFFIX):
            return True
        if path in self._staple_paths or path in self.wopts.state_files:
            return True
        if store.BACKUP_RE.search(path) and path[:-16] in self._staple_paths:
            return True                         # <staple>-YYYYmmdd-HHMMSS
        return False

    def _extra_files(self) -> List[str]:
        out = []
        for slot in list(self.sched.slots.values()):
            c = slot.cand
            out += [c.cert] + ([c.issuer] if c.issuer else []) + list(c.issuer_files)
        return out

    def _start_watcher(self, setup: Setup) -> None:
        roots = list(setup.roots)
        covered = [(os.path.abspath(d), r) for d, r in roots]

        def under(p: str) -> bool:
            for d, r in covered:
                if p == d or (r and p.startswith(d.rstrip("/") + "/")):
                    return True
            return False
        cands, _ = setup.discover()
        for c in cands:        # explicit certificates, symlink targets: their directories too
            for f in [c.cert, c.issuer or ""] + list(c.issuer_files):
                if not f:
                    continue
                for p in {os.path.dirname(os.path.abspath(f)), os.path.dirname(os.path.realpath(f))}:
                    if not under(p) and (p, False) not in roots:
                        roots.append((p, False))
        self.watcher, why = make_watcher(roots, self._on_fs_event, self._ignored, self._extra_files,
                                         force_poll=self.wopts.force_poll)
        self.watcher.start()
        if why and not self.wopts.force_poll:
            self.log.event("watcher", f"inotify unavailable ({why}); polling every "
                                      f"{POLL_INTERVAL:g} s instead", level=logging.WARNING,
                           mode="poll")

    # -- the loop --------------------------------------------------------------
    def serve(self) -> int:
        self.setup = self.load()
        for w in self.setup.warnings:
            self.log.event("warning", w, level=logging.WARNING)
        if self.status is not None and self.status.warning:
            self.log.event("warning", self.status.warning, level=logging.WARNING)
        if self.setup.on_change:
            self.hooks = HookRunner(self.setup.on_change, self.log)
        self._start_watcher(self.setup)
        assert self.watcher is not None
        self.log.event("start", f"watching {', '.join(d for d, _ in self.setup.roots) or '(config)'} "
                                f"({self.watcher.mode}); sweep every "
                                f"{_in(self.started, self.started + timedelta(seconds=self.wopts.sweep_interval))}",
                       mode=self.watcher.mode, pid=os.getpid())
        self._pending |= self._rescan(initial=True)
        # READY as soon as the certificates are known and the watcher runs, before the first
        # pass: with thousands of certificates or a slow responder that pass can outlast
        # systemd's start timeout (90 s by default), which would kill and restart us for ever.
        # STATUS says when the first pass is done.
        sd_notify(f"READY=1\nSTATUS=first pass over {len(self.sched.slots)} certificates")
        self._first_pass = True
        try:
            return self._loop()
        finally:
            if self.watcher is not None:
                self.watcher.stop()
            self.log.close()

    def _loop(self) -> int:
        while True:
            self.wake.clear()
            if self._stop_signal:
                return self._shutdown(self._stop_signal)
            if self._reload:
                self._reload = False
                self._do_reload()
            forced: Set[str] = set()
            batch: Set[str] = set(self._pending)
            self._pending.clear()
            if self._renew_all:
                self._renew_all = False
                forced = set(self.sched.slots)
                self.log.event("renew-all", f"SIGUSR1: renewing all {len(forced)} certificates now")
                batch |= forced
            mono = self.monotonic()
            with self._lock:
                settle = self.events.ready(mono)
                if settle:
                    self.events.take()
                    overflow, self._overflow = self._overflow, False
            if settle:
                batch |= self._rescan(full=overflow)
            if mono >= self.next_sweep:
                batch |= self._rescan(full=True, sweep=True)
            now = self.clock()
            due = set(self.sched.due(now))
            forced |= due
            batch |= due
            if batch:
                self._cycle(batch, forced)
                if self._stop_signal:
                    continue
            if self._first_pass:
                self._first_pass = False
                sd_notify(f"STATUS=watching {len(self.sched.slots)} certificates (first pass done)")
            self._hooks_due()
            mono = self.monotonic()
            if self._metrics_dirty and mono >= self._metrics_at + METRICS_EVERY:
                self._write_metrics()
            if self.cache.dirty and mono >= self._saved_at + CACHE_EVERY:
                self._save_cache()
            self._sleep()

    def _sleep(self) -> None:
        now = self.clock()
        mono = self.monotonic()
        timeout = MAX_SLEEP
        nxt = self.sched.next_instant()
        if nxt is not None:
            timeout = min(timeout, (nxt - now).total_seconds())
        deadlines = [self.events.deadline(), self.changes.deadline(), self.next_sweep]
        if self._metrics_dirty and self.wopts.textfile:
            deadlines.append(self._metrics_at + METRICS_EVERY)
        if self.cache.dirty:
            deadlines.append(self._saved_at + CACHE_EVERY)
        for deadline in deadlines:
            if deadline is not None:
                timeout = min(timeout, deadline - mono)
        if timeout > 0:
            self.wake.wait(timeout)

    # -- rescans ---------------------------------------------------------------
    def _discover(self) -> List[Candidate]:
        assert self.setup is not None
        cands, problems = self.setup.discover()
        for p in problems:
            self.log.event("warning", p, level=logging.WARNING)
        self._staple_paths = {os.path.abspath(c.staple) for c in cands}
        return cands

    def _rescan(self, *, initial: bool = False, full: bool = False, sweep: bool = False) -> Set[str]:
        """Re-discover; return the keys to look at now (new, changed; all not in backoff on a
        reload)."""
        cands = self._discover()
        sigs = {pair_key(c.cert, c.staple): _signature(c) for c in cands}
        new, changed, removed = self.sched.sync(cands, sigs)
        for slot in removed:
            self.cache.drop(slot.key)
            self.log.event("removed", f"{slot.cand.cert}: no longer found; its staple "
                                      f"{slot.cand.staple} is left as it is", cert=slot.cand.cert,
                           staple=slot.cand.staple)
        if removed:
            self._metrics_dirty = True
            self._save_status(keep=True)
        if not initial:
            for key in new:
                c = self.sched.slots[key].cand
                self.log.event("added", c.cert, cert=c.cert, staple=c.staple)
            for key in changed:
                c = self.sched.slots[key].cand
                self.log.event("changed", c.cert, cert=c.cert, staple=c.staple)
        if sweep:
            self.last_sweep = self.clock()
            self.next_sweep = self.monotonic() + self.wopts.sweep_interval
            self.log.event("sweep", f"{len(cands)} certificates, {len(new)} new, {len(changed)} "
                                    f"changed, {len(removed)} removed", certificates=len(cands))
            self._metrics_dirty = True
        keys = set(new) | set(changed)
        if initial:
            keys = set(self.sched.slots)
        return keys

    def _do_reload(self) -> None:
        try:
            setup = self.load()
        except OcspToolsError as exc:
            self.log.event("reload-failed", f"SIGHUP: {exc}; keeping the previous configuration",
                           level=logging.ERROR)
            return
        old = self.setup
        self.setup = setup
        for w in setup.warnings:
            self.log.event("warning", w, level=logging.WARNING)
        if self.watcher is not None:
            self.watcher.stop()
        self._start_watcher(setup)
        if setup.on_change != (old.on_change if old else None):
            self.hooks = HookRunner(setup.on_change, self.log) if setup.on_change else None
        # new and changed certificates, and every one not in backoff: re-planned with the new
        # options at once (renewed only if the one-shot rule says so)
        self._pending |= self._rescan(full=True) | set(self.sched.not_in_backoff())
        self.log.event("reload", f"SIGHUP: configuration re-read; {len(self.sched.slots)} "
                                 f"certificates", certificates=len(self.sched.slots))

    # -- one pass of the driver -----------------------------------------------
    def _cycle(self, keys: Set[str], forced: Set[str]) -> None:
        assert self.setup is not None
        setup = self.setup
        slots = [self.sched.slots[k] for k in self.sched.slots if k in keys]
        if not slots:
            return
        # a target whose instant came is renewed; one only re-planned (new, changed, reload) is not
        force = {s.key for s in slots if s.key in forced}
        driver = Driver(setup.opts, setup.ossl, self.cache, self.clock)
        driver.force = force
        if setup.sockets:
            driver.after_install = self._pusher(setup)
        self._driver = driver
        cands = [s.cand for s in slots]
        box: Dict[str, BaseException] = {}

        def work() -> None:
            try:
                driver.run(cands, forget=False)
            except BaseException as exc:        # reported below, in the loop's thread
                box["error"] = exc
            finally:
                self.wake.set()
        t = threading.Thread(target=work, name="ocsp-renew-pass", daemon=True)
        self._cycle_thread = t
        t.start()
        while t.is_alive():
            self.wake.wait(1.0)
            self.wake.clear()
            if self._stop_signal:
                driver._stop.set()
                return                          # _shutdown finishes or abandons it
        self._cycle_thread = None
        self._driver = None
        if "error" in box:
            exc = box["error"]
            self.log.event("error", f"the renewal pass failed: {exc}", level=logging.ERROR)
            now = self.clock()
            for s in slots:
                s.next_at = now + timedelta(seconds=self.sched.backoff.base)
            return
        self._after(driver, slots)

    def _pusher(self, setup: Setup) -> Callable[[Item, object], Optional[str]]:
        timeout = setup.opts.fetch.http.timeout

        def push(item: Item, staple) -> Optional[str]:
            problems = []
            for spec in setup.sockets:
                res = haproxy.push(spec, staple.der, timeout=timeout)
                with self._lock:
                    if res.ok:
                        self.pushes += 1
                    else:
                        self.push_failures += 1
                if not res.ok:
                    problems.append(res.describe())
            return "; ".join(problems) or None
        return push

    def _after(self, driver: Driver, slots: List[Slot]) -> None:
        assert self.setup is not None
        now = self.clock()
        outcomes = self.sched.update(driver.items, now, self.setup.opts)
        for slot in slots:
            slot.sig = _signature(slot.cand)
        for o in outcomes:
            self._log_outcome(o, now)
            if o.event == RENEWED:
                self.renewals += 1
            elif o.event in (FAILED, REVOKED):
                self.failures += 1
        if driver.result.changed:
            self.changes.add(driver.result.changed, self.monotonic())
        self._metrics_dirty = True
        if self.status is not None:
            self.status.record(driver.items, now)
            self._save_status()

    def _save_status(self, *, keep: bool = False) -> None:
        """Write the status file monitoring reads (KEEP: forget staples no longer watched)."""
        if self.status is None:
            return
        if keep:
            self.status.keep_only(s.cand.staple for s in self.sched.slots.values())
        warned = self.status.warning
        self.status.save(self.clock())
        if self.status.warning and self.status.warning != warned:
            self.log.event("warning", self.status.warning, level=logging.WARNING)

    def _save_cache(self) -> None:
        self._saved_at = self.monotonic()
        self.cache.save()
        if self.cache.warning and self.cache.warning != self._cache_warned:
            self._cache_warned = self.cache.warning
            self.log.event("warning", self.cache.warning, level=logging.WARNING)

    def _log_outcome(self, o: Outcome, now: datetime) -> None:
        s = o.slot
        nxt = ""
        if s.next_at is not None:
            if o.event in (FAILED, REVOKED):
                nxt = f"; retry {s.failures} in {_in(now, s.next_at)} at {iso(s.next_at)}"
            elif o.event == "unchanged":
                nxt = f"; again in {_in(now, s.next_at)} at {iso(s.next_at)}"
            else:
                nxt = f"; next renewal in {_in(now, s.next_at)} at {iso(s.next_at)}"
        level = logging.INFO
        if o.event in (FAILED, REVOKED):
            level = logging.ERROR if o.event == REVOKED else logging.WARNING
        self.log.event(o.event, f"{s.cand.cert}: {o.detail}{nxt}", level=level, cert=s.cand.cert,
                       staple=s.cand.staple, status=s.status, detail=o.detail, next=s.next_at,
                       valid_until=s.valid_until,
                       retry_in=(round((s.next_at - now).total_seconds(), 3)
                                 if s.next_at is not None and o.event in (FAILED, REVOKED) else None),
                       failures=s.failures if o.event in (FAILED, REVOKED) else None)

    # -- hooks and metrics -----------------------------------------------------
    def _hooks_due(self) -> None:
        if self.changes.ready(self.monotonic()):
            paths = self.changes.take()
            if self.hooks is not None:
                self.hooks.submit(paths)
            self._metrics_dirty = True

    def _write_metrics(self) -> None:
        self._metrics_dirty = False
        self._metrics_at = self.monotonic()
        path = self.wopts.textfile
        if not path:
            return
        now = self.clock()
        rows = []
        for s in self.sched.slots.values():
            rec = self.status.get(s.cand.staple) if self.status is not None else None
            rows.append(metrics_textfile.StapleMetrics(
                staple=s.cand.staple, status=s.status, next_update=s.next_update,
                valid_until=s.valid_until, last_success=s.last_success, last_failure=s.last_failure,
                failures=s.failures, next_attempt=s.next_at,
                failing_since=life.parse_iso(rec.failing_since) if rec is not None else None,
                responder_revoked=rec is not None and rec.status == "revoked"))
        proc = metrics_textfile.ProcessMetrics(
            started=self.started, last_sweep=self.last_sweep,
            watcher=self.watcher.mode if self.watcher else "none", renewals=self.renewals,
            failures=self.failures, pushes=self.pushes, push_failures=self.push_failures,
            hook_runs=self.hooks.runs if self.hooks else 0,
            hook_failures=self.hooks.failures if self.hooks else 0)
        try:
            metrics_textfile.write(path, metrics_textfile.render(rows, proc, now))
        except OcspToolsError as exc:
            self.log.event("metrics-failed", str(exc), level=logging.ERROR)

    # -- stopping --------------------------------------------------------------
    def _shutdown(self, signame: str) -> int:
        start = self.monotonic()
        deadline = start + STOP_BUDGET
        sd_notify("STOPPING=1")
        abandoned = False
        t, driver = self._cycle_thread, self._driver
        if t is not None and driver is not None:
            driver._stop.set()                  # no new fetch
            self.log.event("stop", f"{signame}: no new fetches; waiting for those in flight")
            t.join(max(0.0, deadline - 1.5 - self.monotonic()))
            if t.is_alive():
                # fetches still waiting for a responder: close the gate (an install in progress
                # finishes; none starts after this) and leave them behind
                driver.gate.close(max(0.1, deadline - 1.0 - self.monotonic()))
                abandoned = True
                self.log.event("stop", "abandoned the fetches still waiting for a responder; "
                                       "their staples are left as they were")
            else:
                self._after(driver, [self.sched.slots[it.key] for it in driver.items
                                     if it.key in self.sched.slots])
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if not abandoned:
            self._save_cache()
        if self.changes.items:
            paths = self.changes.take()
            if self.hooks is not None:
                self.hooks.submit(paths)
        self._write_metrics()
        if self.hooks is not None and not self.hooks.idle():
            if not self.hooks.wait(max(0.0, deadline - self.monotonic())):
                self.log.event("stop", "the --on-change command is still running; left to finish")
        self.log.event("exit", f"{signame}: stopped", signal=signame)
        if abandoned:
            self.log.close()
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(0)
        return 0
