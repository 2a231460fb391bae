"""``ocsp-renew-dir --watch --prometheus-textfile PATH``: gauges for node_exporter's textfile collector.

``render`` is pure (a snapshot and ``now`` in, the exposition text out);
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
from typing import Dict, Iterable, List, Optional

from . import store

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


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return repr(float(value))


def _ts(dt: Optional[datetime]) -> Optional[float]:
    return None if dt is None else dt.timestamp()


class _Family:
    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = f"{PREFIX}_{name}"
        self.kind = kind
        self.help = help_text
        self.samples: List[str] = []

    def add(self, value: Optional[float], **labels: str) -> None:
        if value is None:
            return
        sample = self.name + ("_total" if self.kind == "counter" else "")
        if labels:
            sample += "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"
        self.samples.append(f"{sample} {_num(value)}")

    def text(self) -> str:
        name = self.name + ("_total" if self.kind == "counter" else "")
        head = f"# HELP {name} {self.help}\n# TYPE {name} {self.kind}\n"
        return head + "".join(s + "\n" for s in self.samples)


def render(staples: Iterable[StapleMetrics], proc: ProcessMetrics, now: datetime) -> str:
    """The text exposition format for STAPLES and PROC as of NOW (pure)."""
    rows = sorted(staples, key=lambda s: s.staple)
    fams: Dict[str, _Family] = {}

    def fam(name: str, kind: str, help_text: str) -> _Family:
        return fams.setdefault(name, _Family(name, kind, help_text))

    nu = fam("staple_next_update_timestamp_seconds", "gauge",
             "nextUpdate of the installed staple (Unix time).")
    left = fam("staple_seconds_to_next_update", "gauge",
               "Seconds from when this file was written to the installed staple's nextUpdate.")
    vu = fam("staple_valid_until_timestamp_seconds", "gauge",
             "When the installed staple stops being usable: min(nextUpdate, responder and "
             "certificate notAfter).")
    ok = fam("staple_last_success_timestamp_seconds", "gauge",
             "Last renewal attempt that installed or confirmed a good staple (0: none since start).")
    bad = fam("staple_last_failure_timestamp_seconds", "gauge",
              "Last renewal attempt that failed (0: none since start).")
    fails = fam("staple_consecutive_failures", "gauge", "Failed renewal attempts in a row.")
    nxt = fam("staple_next_attempt_timestamp_seconds", "gauge",
              "When the daemon next looks at this staple (absent: only on a file change).")
    status = fam("staple_status", "gauge",
                 "1 for the staple's current status (" + ", ".join(STATUSES) + ").")
    failing = fam("staple_failing_since_timestamp_seconds", "gauge",
                  "When renewal started failing, for a staple whose renewal fails (Unix time; "
                  "absent while it succeeds).")
    revoked = fam("staple_responder_revoked", "gauge",
                  "1 when the responder's last answer said revoked (the old staple is kept and "
                  "may still say good), else 0.")
    for s in rows:
        nu.add(_ts(s.next_update), staple=s.staple)
        if s.next_update is not None:
            left.add(round((s.next_update - now).total_seconds(), 3), staple=s.staple)
        vu.add(_ts(s.valid_until), staple=s.staple)
        ok.add(_ts(s.last_success) or 0, staple=s.staple)
        bad.add(_ts(s.last_failure) or 0, staple=s.staple)
        fails.add(s.failures, staple=s.staple)
        nxt.add(_ts(s.next_attempt), staple=s.staple)
        status.add(1, staple=s.staple, status=s.status if s.status in STATUSES else "error")
        failing.add(_ts(s.failing_since), staple=s.staple)
        revoked.add(int(s.responder_revoked), staple=s.staple)

    counts = Counter(s.status for s in rows)
    certs = fam("certificates", "gauge", "Managed certificates by status.")
    for st in STATUSES:
        certs.add(counts.get(st, 0), status=st)
    served = [s.valid_until for s in rows if s.valid_until is not None and s.status != "not-applicable"]
    if served:
        fam("earliest_valid_until_timestamp_seconds", "gauge",
            "When the first installed staple stops being usable (Unix time).").add(
            min(served).timestamp())
    fam("start_time_seconds", "gauge", "When the daemon started (Unix time).").add(_ts(proc.started))
    fam("last_write_timestamp_seconds", "gauge", "When this file was written (Unix time).").add(
        round(now.timestamp(), 3))
    fam("last_sweep_timestamp_seconds", "gauge", "When the last full sweep ran (Unix time).").add(
        _ts(proc.last_sweep))
    fam("watcher", "gauge", "1 for the change watcher in use (inotify, or poll where inotify "
                            "is unavailable).").add(1, mode=proc.watcher)
    fam("renewals", "counter", "Staples renewed since start.").add(proc.renewals)
    fam("failures", "counter", "Failed renewal attempts (revoked and unknown included) since "
                               "start.").add(proc.failures)
    fam("haproxy_pushes", "counter", "Staples HAProxy took over its runtime API since start.").add(
        proc.pushes)
    fam("haproxy_push_failures", "counter", "Pushes HAProxy refused or could not be asked, since "
                                            "start.").add(proc.push_failures)
    fam("on_change_runs", "counter", "--on-change command runs since start.").add(proc.hook_runs)
    fam("on_change_failures", "counter", "--on-change command runs that failed since start.").add(
        proc.hook_failures)
    return "".join(f.text() for f in fams.values())


def write(path: str, text: str) -> None:
    """Replace PATH atomically (mode 0644 for a new file, so node_exporter can read it)."""
    store.atomic_write(path, text.encode("utf-8"), mode=0o644)
