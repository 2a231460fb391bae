"""What the --watch daemon leaves for others to read: the status file, the textfile, the state cache.

* the status file (``renewstatus``, what ``ocsp-check --renew-state`` reads):
  recorded and saved after every pass, and when certificates are removed;
* the Prometheus textfile (``--prometheus-textfile``, ``metrics_textfile``):
  rewritten after every change, at most every ``METRICS_EVERY`` seconds (the
  changes in between go into the next write), and at exit;
* the state cache (an optimisation only: the daemon keeps it in memory): saved
  at most every ``CACHE_EVERY`` seconds, and at exit;
* the counters the textfile reports (renewals, failures, HAProxy pushes).

Times are passed in (``now`` for the files, ``mono`` for the rate limits);
``staple_rows`` is pure.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Iterable, List, Optional, Sequence

from .. import life, metrics_textfile, renewstatus
from ..renewal import FAILED, RENEWED, REVOKED, Item
from ..errors import OcspToolsError
from ..haproxy import PushResult
from ..statecache import StateCache
from .eventlog import EventLog
from .schedule import IGNORED, Slot

#: The textfile is rewritten at most this often; the state cache saved at most this often.
METRICS_EVERY, CACHE_EVERY = 1.0, 60.0


def staple_rows(slots: Iterable[Slot], status: Optional[renewstatus.StatusFile]
                ) -> List[metrics_textfile.StapleMetrics]:
    """The textfile's per-staple facts: the scheduler's, and the status file's failing-since
    and revocation."""
    rows = []
    for s in slots:
        if s.status == IGNORED:
            continue
        rec = status.get(s.cand.staple) if status is not None else None
        rows.append(metrics_textfile.StapleMetrics(
            staple=s.cand.staple, status=s.status, next_update=s.next_update,
            valid_until=s.valid_until, last_success=s.last_success, last_failure=s.last_failure,
            failures=s.failures, next_attempt=s.next_at,
            failing_since=life.parse_iso(rec.failing_since) if rec is not None else None,
            responder_revoked=rec is not None and rec.status == "revoked"))
    return rows


class Monitor:
    """The status file, the textfile and the state cache of one daemon, and its counters."""

    def __init__(self, log: EventLog, cache: StateCache, textfile: Optional[str],
                 status_file: Optional[str]) -> None:
        self.log = log
        self.cache = cache
        self.textfile = textfile
        self.status = renewstatus.StatusFile(status_file).load() if status_file else None
        self.dirty = True                   # the textfile is behind
        self.written_at = self.saved_at = float("-inf")      # monotonic seconds
        self.renewals = self.failures = self.pushes = self.push_failures = 0
        self._cache_warned = ""
        self._lock = threading.Lock()

    # -- counters ----------------------------------------------------------------
    def count(self, event: str) -> None:
        if event == RENEWED:
            self.renewals += 1
        elif event in (FAILED, REVOKED):
            self.failures += 1

    def count_push(self, res: PushResult) -> None:
        """``haproxy.pusher``'s ON_RESULT (called from the driver's worker threads)."""
        with self._lock:
            if res.ok:
                self.pushes += 1
            else:
                self.push_failures += 1

    # -- the status file -----------------------------------------------------------
    def record(self, items: Sequence[Item], now: datetime) -> None:
        """What a pass found out (the status file is saved by ``save_status``)."""
        self.dirty = True
        if self.status is not None:
            self.status.record(items, now)

    def save_status(self, slots: Iterable[Slot], now: datetime, *, keep: bool = False) -> None:
        """Write the status file (KEEP: forget staples no longer among SLOTS)."""
        if self.status is None:
            return
        if keep:
            self.status.keep_only(s.cand.staple for s in slots)
        warned = self.status.warning
        self.status.save(now)
        if self.status.warning and self.status.warning != warned:
            self.log.event("warning", self.status.warning, level=logging.WARNING)

    # -- the state cache -------------------------------------------------------------
    def cache_due(self, mono: float) -> bool:
        return self.cache.dirty and mono >= self.saved_at + CACHE_EVERY

    def save_cache(self, mono: float) -> None:
        self.saved_at = mono
        self.cache.save()
        if self.cache.warning and self.cache.warning != self._cache_warned:
            self._cache_warned = self.cache.warning
            self.log.event("warning", self.cache.warning, level=logging.WARNING)

    # -- the textfile ----------------------------------------------------------------
    def textfile_due(self, mono: float) -> bool:
        return self.dirty and mono >= self.written_at + METRICS_EVERY

    def deadlines(self) -> List[float]:
        """The monotonic instants a write falls due (for the daemon's sleep)."""
        out = []
        if self.dirty and self.textfile:
            out.append(self.written_at + METRICS_EVERY)
        if self.cache.dirty:
            out.append(self.saved_at + CACHE_EVERY)
        return out

    def write_textfile(self, slots: Iterable[Slot], proc: metrics_textfile.ProcessMetrics,
                       now: datetime, mono: float) -> None:
        """Rewrite the textfile (if there is one) from SLOTS and PROC; a failure is logged."""
        self.dirty = False
        self.written_at = mono
        if not self.textfile:
            return
        try:
            metrics_textfile.write(self.textfile, metrics_textfile.render(
                staple_rows(slots, self.status), proc, now))
        except OcspToolsError as exc:
            self.log.event("metrics-failed", str(exc), level=logging.ERROR)
