"""The --watch daemon: its loop, signals, rescans and sweeps, reload, driver passes, a clean stop.

The process sleeps until the earliest instant (``schedule.Scheduler``), the
watcher's wake-up or a signal (an Event wait): no polling, no fixed tick; it
re-reads the wall clock at least every ``MAX_SLEEP`` so a suspended machine or
a stepped clock cannot make it oversleep.  Every pass is an
``ocsptools.renewal.Driver`` run over the targets whose instant came (forced)
or whose files changed (re-planned only).  SIGTERM/SIGINT start no new fetch,
let the installs in progress finish (``renewal.WriteGate``) and exit 0 within
5 s, abandoning fetches still waiting for a responder (the gate is closed, so
an abandoned fetch can never write).  Both clocks (``clock``: wall,
``monotonic``: deadlines) are passed in; the decisions are the pure parts'.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import threading
import time
from datetime import datetime, timedelta
from typing import Callable, List, Optional, Sequence, Set

from .. import metrics_textfile
from ..renewal import Driver
from ..errors import OcspToolsError
from ..statecache import StateCache, pair_key
from .eventlog import EventLog, sd_notify
from .hooks import HookRunner
from .messages import in_words, outcome_line
from .monitor import Monitor
from .options import Clock, Setup, WatchOptions, utcnow
from .passes import Pass
from .schedule import Scheduler, Slot
from .watchers import (POLL_INTERVAL, Batch, Watcher, input_files, make_watcher, own_file, roots_for,
                       signature)

#: Wake at least this often to re-read the wall clock (suspend, clock steps).
MAX_SLEEP = 600.0
#: Watcher events: act after this much quiet, at most this long after the first event.
SETTLE, SETTLE_MAX = 0.3, 2.0
#: --on-change: once per batch, after this much quiet, at most this long after the first change.
HOOK_QUIET, HOOK_MAX = 1.0, 10.0
#: SIGTERM/SIGINT: be gone within this budget (the issue promises 5 s).
STOP_BUDGET = 4.0


def sleep_for(now: datetime, next_instant: Optional[datetime], mono: float,
              deadlines: Sequence[Optional[float]]) -> float:
    """Seconds until the earliest of the scheduler's NEXT_INSTANT (wall clock, against NOW) and
    the monotonic DEADLINES (against MONO), at most ``MAX_SLEEP``; 0 or less: do not sleep."""
    timeout = MAX_SLEEP
    if next_instant is not None:
        timeout = min(timeout, (next_instant - now).total_seconds())
    for deadline in deadlines:
        if deadline is not None:
            timeout = min(timeout, deadline - mono)
    return timeout


class Daemon:
    """``ocsp-renew-dir --watch``: ``install_signals()``, then ``serve()`` until a signal stops it."""

    def __init__(self, prog: str, load: Callable[[], Setup], cache: StateCache, log: EventLog,
                 wopts: WatchOptions = WatchOptions(), *, clock: Clock = utcnow,
                 rand: Callable[[], float] = random.random,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.prog = prog
        self.load = load                        # the configuration: at start, then on SIGHUP
        self.cache = cache
        self.log = log
        self.wopts = wopts
        self.clock = clock
        self.monotonic = monotonic
        self.sched = Scheduler(wopts.backoff, rand)
        self.out = Monitor(log, cache, wopts.textfile, wopts.status_file)
        self.wake = threading.Event()
        self.setup: Optional[Setup] = None
        self.watcher: Optional[Watcher] = None
        self.watcher_mode = "inotify"           # the last watcher's (the textfile says it at exit too)
        self.hooks: Optional[HookRunner] = None
        self.changes = Batch(HOOK_QUIET, HOOK_MAX)      # staples changed, for --on-change
        self.events = Batch(SETTLE, SETTLE_MAX)         # the watcher's wake-ups
        self.started = clock()
        self.last_sweep: Optional[datetime] = None
        self.next_sweep = monotonic() + wopts.sweep_interval
        self._stop_signal: Optional[str] = None
        self._reload = False
        self._renew_all = False
        self._pass: Optional[Pass] = None       # the pass in progress
        self._staple_paths: Set[str] = set()
        self._pending: Set[str] = set()         # to look at (not forced) in the next pass
        self._first_pass = False                # systemd STATUS once the first pass is done
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
        # an overflow needs nothing more: every rescan re-discovers everything
        with self._lock:
            self.events.add(["fs"], self.monotonic())
        self.wake.set()

    def _ignored(self, path: str) -> bool:
        return own_file(path, self._staple_paths, self.wopts.state_files)

    def _start_watcher(self, setup: Setup) -> None:
        cands, _ = setup.discover()
        self.watcher, why = make_watcher(
            roots_for(setup.roots, cands), self._on_fs_event, self._ignored,
            lambda: input_files(s.cand for s in list(self.sched.slots.values())),
            force_poll=self.wopts.force_poll)
        self.watcher_mode = self.watcher.mode
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
        status = self.out.status
        if status is not None and status.warning:
            self.log.event("warning", status.warning, level=logging.WARNING)
        if self.setup.on_change:
            self.hooks = HookRunner(self.setup.on_change, self.log)
        self._start_watcher(self.setup)
        assert self.watcher is not None
        sweep = in_words(self.started, self.started + timedelta(seconds=self.wopts.sweep_interval))
        self.log.event("start", f"watching {', '.join(d for d, _ in self.setup.roots) or '(config)'} "
                                f"({self.watcher.mode}); sweep every {sweep}",
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
            if settle:
                batch |= self._rescan()
            if mono >= self.next_sweep:
                batch |= self._rescan(sweep=True)
            due = set(self.sched.due(self.clock()))
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
            if self.out.textfile_due(mono):
                self._write_metrics()
            if self.out.cache_due(mono):
                self.out.save_cache(self.monotonic())
            self._sleep()

    def _sleep(self) -> None:
        deadlines: List[Optional[float]] = [self.events.deadline(), self.changes.deadline(),
                                            self.next_sweep, *self.out.deadlines()]
        timeout = sleep_for(self.clock(), self.sched.next_instant(), self.monotonic(),
                            deadlines)
        if timeout > 0:
            self.wake.wait(timeout)

    # -- rescans ---------------------------------------------------------------
    def _rescan(self, *, initial: bool = False, sweep: bool = False) -> Set[str]:
        """Re-discover; return the keys to look at now (new and changed; all at first)."""
        assert self.setup is not None
        cands, problems = self.setup.discover()
        for p in problems:
            self.log.event("warning", p, level=logging.WARNING)
        self._staple_paths = {os.path.abspath(c.staple) for c in cands}
        sigs = {pair_key(c.cert, c.staple): signature(c) for c in cands}
        new, changed, removed = self.sched.sync(cands, sigs)
        for slot in removed:
            self.cache.drop(slot.key)
            self.log.event("removed", f"{slot.cand.cert}: no longer found; its staple "
                                      f"{slot.cand.staple} is left as it is", cert=slot.cand.cert,
                           staple=slot.cand.staple)
        if removed:
            self.out.dirty = True
            self.out.save_status(self.sched.slots.values(), self.clock(), keep=True)
        if not initial:
            for event, keys in (("added", new), ("changed", changed)):
                for key in keys:
                    c = self.sched.slots[key].cand
                    self.log.event(event, c.cert, cert=c.cert, staple=c.staple)
        if sweep:
            self.last_sweep = self.clock()
            self.next_sweep = self.monotonic() + self.wopts.sweep_interval
            self.log.event("sweep", f"{len(cands)} certificates, {len(new)} new, {len(changed)} "
                                    f"changed, {len(removed)} removed", certificates=len(cands))
            self.out.dirty = True
        if initial:
            return set(self.sched.slots)
        return set(new) | set(changed)

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
        self._pending |= self._rescan() | set(self.sched.not_in_backoff())
        self.log.event("reload", f"SIGHUP: configuration re-read; {len(self.sched.slots)} "
                                 f"certificates", certificates=len(self.sched.slots))

    # -- one pass of the driver -----------------------------------------------
    def _cycle(self, keys: Set[str], forced: Set[str]) -> None:
        assert self.setup is not None
        setup = self.setup
        slots = [self.sched.slots[k] for k in self.sched.slots if k in keys]
        if not slots:
            return
        run = self._pass = Pass(setup, self.cache, self.clock, slots, forced, self.wake.set,
                                on_push=self.out.count_push).start()
        driver = run.driver
        while run.running():
            self.wake.wait(1.0)
            self.wake.clear()
            if self._stop_signal:
                driver.stop()
                return                          # _shutdown finishes or abandons it
        self._pass = None
        if run.error is not None:
            self.log.event("error", f"the renewal pass failed: {run.error}", level=logging.ERROR)
            self.sched.postpone(slots, self.clock())
            return
        self._after(driver, slots)

    def _after(self, driver: Driver, slots: List[Slot]) -> None:
        assert self.setup is not None
        now = self.clock()
        outcomes = self.sched.update(driver.items, now, self.setup.opts)
        for slot in slots:
            slot.sig = signature(slot.cand)
        for o in outcomes:
            line = outcome_line(o, now)
            self.log.event(line.event, line.text, level=line.level, **line.fields)
            self.out.count(o.event)
        if driver.result.changed:
            self.changes.add(driver.result.changed, self.monotonic())
        self.out.record(driver.items, now)
        self.out.save_status(self.sched.slots.values(), self.clock())

    # -- hooks and metrics -----------------------------------------------------
    def _hooks_due(self) -> None:
        if self.changes.ready(self.monotonic()):
            paths = self.changes.take()
            if self.hooks is not None:
                self.hooks.submit(paths)
            self.out.dirty = True

    def _write_metrics(self) -> None:
        proc = metrics_textfile.ProcessMetrics(
            started=self.started, last_sweep=self.last_sweep,
            watcher=self.watcher_mode, renewals=self.out.renewals,
            failures=self.out.failures, pushes=self.out.pushes,
            push_failures=self.out.push_failures,
            hook_runs=self.hooks.runs if self.hooks else 0,
            hook_failures=self.hooks.failures if self.hooks else 0)
        self.out.write_textfile(self.sched.slots.values(), proc, self.clock(), self.monotonic())

    # -- stopping --------------------------------------------------------------
    def _shutdown(self, signame: str) -> int:
        deadline = self.monotonic() + STOP_BUDGET
        sd_notify("STOPPING=1")
        abandoned = False
        run = self._pass
        if run is not None:
            driver = run.driver
            driver.stop()                       # no new fetch
            self.log.event("stop", f"{signame}: no new fetches; waiting for those in flight")
            run.thread.join(max(0.0, deadline - 1.5 - self.monotonic()))
            if run.running():
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
            self.out.save_cache(self.monotonic())
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
