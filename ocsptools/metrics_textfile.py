"""``ocsp-renew-dir --watch --prometheus-textfile PATH``: gauges for node_exporter's textfile collector.

``render`` is pure (a snapshot and ``now`` in, the exposition text out, through
``ocsptools.metrics``);
``write`` replaces the file atomically (``store.atomic_write``: the collector
never reads half a file).  The daemon rewrites it after every change (a
renewal, a failure, a certificate added or removed) and at every sweep.

Label cardinality is bounded: per-staple series carry only ``staple`` (the
staple file's path, one per managed certificate) and ``status`` (one of
``STATUSES``, one series per staple: the current one).  No label value comes
from the network.

Per staple:

* ``ocsp_renew_dir_staple_next_update_timestamp_seconds``: nextUpdate of
  the installed staple (absent when there is none);
* ``ocsp_renew_dir_staple_seconds_to_next_update``: the same, as seconds
  left when the file was written (alert on the timestamp: ``..._timestamp_seconds
  - time() < 3600``);
* ``ocsp_renew_dir_staple_valid_until_timestamp_seconds``: min(nextUpdate,
  responder certificate notAfter);
* ``ocsp_renew_dir_staple_last_success_timestamp_seconds`` /
  ``..._last_failure_timestamp_seconds``: the last renewal attempt that
  installed (or confirmed) a staple / that failed (0: never, since start);
* ``ocsp_renew_dir_staple_consecutive_failures``;
* ``ocsp_renew_dir_staple_next_attempt_timestamp_seconds``;
* ``ocsp_renew_dir_staple_status{status=...} 1``;
* ``ocsp_renew_dir_staple_failing_since_timestamp_seconds`` (while renewal
  fails) and ``ocsp_renew_dir_staple_responder_revoked`` (1: the responder's
  last answer said revoked): the facts ``ocsp-check --renew-state`` reports.

Process: start time, last write, last sweep, certificates by status,
renewals/failures/pushes counted since start, the watcher in use.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, List, Optional

from . import metrics, store

PREFIX = "ocsp_renew_dir"
#: good: a good staple is installed; failed: the last attempt failed (revoked/unknown have their
#: own); missing: no usable staple and no answer yet; not-applicable: no OCSP URL;
#: cert-expired: the certificate expired; error: the certificate could not be loaded.
STATUSES = ("good", "failed", "revoked", "unknown", "missing", "not-applicable", "cert-expired",
            "error")


@dataclass(frozen=True)
class StapleMetrics:
    staple: str
    status: str
    next_update: Optional[datetime] = None
    valid_until: Optional[datetime] = None
    last_success: Optional[datetime] = None
    last_failure: Optional[datetime] = None
    failures: int = 0
    next_attempt: Optional[datetime] = None
    failing_since: Optional[datetime] = None   # renewal failing since (renewstatus)
    responder_revoked: bool = False            # the responder's last answer said revoked


@dataclass(frozen=True)
class ProcessMetrics:
    started: datetime
    last_sweep: Optional[datetime] = None
    watcher: str = "inotify"                # inotify | poll
    renewals: int = 0
    failures: int = 0
    pushes: int = 0
    push_failures: int = 0
    hook_runs: int = 0
    hook_failures: int = 0


def _ts(dt: Optional[datetime]) -> Optional[float]:
    return None if dt is None else dt.timestamp()


def render(staples: Iterable[StapleMetrics], proc: ProcessMetrics, now: datetime) -> str:
    """The text exposition format for STAPLES and PROC as of NOW (pure; ``metrics.exposition``)."""
    rows = sorted(staples, key=lambda s: s.staple)
    fams: List[metrics.Family] = []

    def gauge(name: str, help_text: str, *labels: str) -> metrics.Family:
        fams.append(metrics.gauge(f"{PREFIX}_{name}", help_text, labels))
        return fams[-1]

    def counter(name: str, help_text: str, value: float) -> None:
        fams.append(metrics.counter(f"{PREFIX}_{name}_total", help_text).add(value))

    nu = gauge("staple_next_update_timestamp_seconds",
               "nextUpdate of the installed staple (Unix time).", "staple")
    left = gauge("staple_seconds_to_next_update",
                 "Seconds from when this file was written to the installed staple's nextUpdate.",
                 "staple")
    vu = gauge("staple_valid_until_timestamp_seconds",
               "When the installed staple stops being usable: min(nextUpdate, responder and "
               "certificate notAfter).", "staple")
    ok = gauge("staple_last_success_timestamp_seconds",
               "Last renewal attempt that installed or confirmed a good staple (0: none since "
               "start).", "staple")
    bad = gauge("staple_last_failure_timestamp_seconds",
                "Last renewal attempt that failed (0: none since start).", "staple")
    fails = gauge("staple_consecutive_failures", "Failed renewal attempts in a row.", "staple")
    nxt = gauge("staple_next_attempt_timestamp_seconds",
                "When the daemon next looks at this staple (absent: only on a file change).",
                "staple")
    status = gauge("staple_status", "1 for the staple's current status (" + ", ".join(STATUSES)
                   + ").", "staple", "status")
    failing = gauge("staple_failing_since_timestamp_seconds",
                    "When renewal started failing, for a staple whose renewal fails (Unix time; "
                    "absent while it succeeds).", "staple")
    revoked = gauge("staple_responder_revoked",
                    "1 when the responder's last answer said revoked (the old staple is kept and "
                    "may still say good), else 0.", "staple")
    for s in rows:
        nu.add(_ts(s.next_update), s.staple)
        if s.next_update is not None:
            left.add(round((s.next_update - now).total_seconds(), 3), s.staple)
        vu.add(_ts(s.valid_until), s.staple)
        ok.add(_ts(s.last_success) or 0, s.staple)
        bad.add(_ts(s.last_failure) or 0, s.staple)
        fails.add(s.failures, s.staple)
        nxt.add(_ts(s.next_attempt), s.staple)
        status.add(1, s.staple, s.status if s.status in STATUSES else "error")
        failing.add(_ts(s.failing_since), s.staple)
        revoked.add(int(s.responder_revoked), s.staple)

    counts = Counter(s.status for s in rows)
    certs = gauge("certificates", "Managed certificates by status.", "status")
    for st in STATUSES:
        certs.add(counts.get(st, 0), st)
    served = [s.valid_until for s in rows if s.valid_until is not None and s.status != "not-applicable"]
    if served:
        gauge("earliest_valid_until_timestamp_seconds",
              "When the first installed staple stops being usable (Unix time).").add(
            min(served).timestamp())
    gauge("start_time_seconds", "When the daemon started (Unix time).").add(_ts(proc.started))
    gauge("last_write_timestamp_seconds", "When this file was written (Unix time).").add(
        round(now.timestamp(), 3))
    gauge("last_sweep_timestamp_seconds", "When the last full sweep ran (Unix time).").add(
        _ts(proc.last_sweep))
    gauge("watcher", "1 for the change watcher in use (inotify, or poll where inotify is "
                     "unavailable).", "mode").add(1, proc.watcher)
    counter("renewals", "Staples renewed since start.", proc.renewals)
    counter("failures", "Failed renewal attempts (revoked and unknown included) since start.",
            proc.failures)
    counter("haproxy_pushes", "Staples HAProxy took over its runtime API since start.", proc.pushes)
    counter("haproxy_push_failures", "Pushes HAProxy refused or could not be asked, since start.",
            proc.push_failures)
    counter("on_change_runs", "--on-change command runs since start.", proc.hook_runs)
    counter("on_change_failures", "--on-change command runs that failed since start.",
            proc.hook_failures)
    return metrics.exposition(fams).decode("utf-8")


def write(path: str, text: str) -> None:
    """Replace PATH atomically (mode 0644 for a new file, so node_exporter can read it)."""
    store.atomic_write(path, text.encode("utf-8"), mode=0o644)
