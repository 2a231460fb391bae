"""ocsptools/watch/monitor.py: what the daemon leaves for monitoring (the textfile's rows, pure; the
rate limits of the textfile and the state cache; failures said once)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

from ocsptools import metrics_textfile as mt
from ocsptools.discovery import Candidate
from ocsptools.renewal import FAILED, RENEWED, REVOKED
from ocsptools.haproxy import PushResult
from ocsptools.renewstatus import StapleStatus, StatusFile
from ocsptools.statecache import StateCache
from ocsptools.watch.eventlog import EventLog
from ocsptools.watch.monitor import CACHE_EVERY, METRICS_EVERY, Monitor, staple_rows
from ocsptools.watch.schedule import IGNORED, Slot

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)


def slot(name: str, **kw) -> Slot:
    s = Slot(Candidate(cert=f"/c/{name}.pem", staple=f"/c/{name}.pem.ocsp", name=name), name)
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def log_lines(out: io.StringIO) -> list:
    return [json.loads(l) for l in out.getvalue().splitlines()]


def test_staple_rows_join_the_scheduler_and_the_status_file(tmp_path):
    a = slot("a", status="good", next_update=T0 + timedelta(hours=5), valid_until=T0 + timedelta(hours=4),
             last_success=T0, next_at=T0 + timedelta(hours=2))
    b = slot("b", status="failed", failures=3, last_failure=T0)
    assert staple_rows([a, b], None) == [
        mt.StapleMetrics("/c/a.pem.ocsp", "good", next_update=a.next_update, valid_until=a.valid_until,
                         last_success=T0, next_attempt=a.next_at),
        mt.StapleMetrics("/c/b.pem.ocsp", "failed", last_failure=T0, failures=3)]
    status = StatusFile(str(tmp_path / "s.status"))
    status.staples = {"/c/b.pem.ocsp": StapleStatus(cert="/c/b.pem", status="revoked",
                                                    failing_since="2026-11-28T11:00:00Z")}
    rows = staple_rows([a, b], status)
    assert rows[0].failing_since is None and not rows[0].responder_revoked
    assert rows[1].failing_since == T0 - timedelta(hours=1) and rows[1].responder_revoked


def test_files_that_hold_no_leaf_certificate_are_not_exported():
    """A bundle tree's keys and CA certificates were exported as staples in status "error"."""
    rows = staple_rows([slot("site", status="good"), slot("site.key", status=IGNORED),
                        slot("ca", status=IGNORED)], None)
    assert [r.staple for r in rows] == ["/c/site.pem.ocsp"]


def test_counters():
    m = Monitor(EventLog("p", "json", stream=io.StringIO()), StateCache(None), None, None)
    for event in (RENEWED, RENEWED, FAILED, REVOKED, "unchanged"):
        m.count(event)
    for ok in (True, False, True):
        m.count_push(PushResult("/s", ok, ""))
    assert (m.renewals, m.failures, m.pushes, m.push_failures) == (2, 2, 2, 1)


def test_textfile_at_most_once_a_second_and_only_when_behind(tmp_path):
    path = tmp_path / "ocsp.prom"
    m = Monitor(EventLog("p", "json", stream=io.StringIO()), StateCache(None), str(path), None)
    assert m.textfile_due(0.0) and m.deadlines() == [float("-inf")]
    m.write_textfile([slot("a", status="good")], mt.ProcessMetrics(started=T0), T0, 100.0)
    assert "ocsp_renew_dir_staple_status" in path.read_text()
    assert not m.textfile_due(1000.0) and m.deadlines() == []      # nothing new to say
    m.dirty = True
    assert not m.textfile_due(100.0 + METRICS_EVERY - 0.01) and m.textfile_due(100.0 + METRICS_EVERY)
    assert m.deadlines() == [100.0 + METRICS_EVERY]


def test_no_textfile_still_clears_the_flag_and_sets_no_deadline():
    m = Monitor(EventLog("p", "json", stream=io.StringIO()), StateCache(None), None, None)
    assert m.deadlines() == []
    m.write_textfile([], mt.ProcessMetrics(started=T0), T0, 5.0)
    assert not m.dirty and m.written_at == 5.0


def test_a_textfile_that_cannot_be_written_is_logged(tmp_path):
    out = io.StringIO()
    m = Monitor(EventLog("p", "json", stream=out, clock=lambda: T0), StateCache(None),
                str(tmp_path / "missing-dir" / "ocsp.prom"), None)
    m.write_textfile([], mt.ProcessMetrics(started=T0), T0, 1.0)
    (rec,) = log_lines(out)
    assert rec["event"] == "metrics-failed" and "ocsp.prom" in rec["message"]


def test_state_cache_saved_at_most_once_a_minute_and_a_failure_said_once(tmp_path):
    out = io.StringIO()
    cache = StateCache(str(tmp_path / "state.json"))
    m = Monitor(EventLog("p", "json", stream=out, clock=lambda: T0), cache, None, None)
    assert not m.cache_due(0.0)                         # nothing to save
    cache.put("k", {"x": 1})
    assert m.cache_due(0.0) and m.deadlines() == [float("-inf")]
    m.save_cache(10.0)
    assert (tmp_path / "state.json").exists() and not cache.dirty and not m.cache_due(10.0)
    cache.put("k", {"x": 2})
    assert not m.cache_due(10.0 + CACHE_EVERY - 1) and m.cache_due(10.0 + CACHE_EVERY)
    (tmp_path / "state.json").unlink()
    (tmp_path / "state.json").mkdir()                   # cannot be replaced any more
    m.save_cache(100.0)
    m.save_cache(200.0)
    warnings = [r for r in log_lines(out) if r["event"] == "warning"]
    assert len(warnings) == 1 and "cannot save the state cache" in warnings[0]["message"]


def test_status_file_saved_and_pruned_of_staples_no_longer_watched(tmp_path):
    path = tmp_path / "s.status"
    m = Monitor(EventLog("p", "json", stream=io.StringIO()), StateCache(None), None, str(path))
    assert m.status is not None and not m.status.warning          # missing: starts empty
    m.status.staples = {"/c/a.pem.ocsp": StapleStatus("/c/a.pem", "good"),
                        "/c/b.pem.ocsp": StapleStatus("/c/b.pem", "good")}
    m.status.changed = True
    m.save_status([slot("a")], T0)
    assert len(path.read_text().splitlines()) == 3                # header and both
    m.save_status([slot("a")], T0, keep=True)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["staple"] == "/c/a.pem.ocsp"
