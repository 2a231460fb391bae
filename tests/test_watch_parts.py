"""--watch's parts on their own: the Prometheus textfile, the event log (stderr, json, syslog),
the inotify watcher and the polling fallback."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ocsptools import metrics_textfile as mt
from ocsptools.errors import UsageError
from ocsptools.watch import EventLog, InotifyWatcher, PollWatcher, make_watcher

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fams: dict, name: str) -> dict:
    out = {}
    for s in fams[name].samples:
        out[tuple(sorted(s.labels.items()))] = s.value
    return out


# ---------------------------------------------------------------------------
# Prometheus textfile

def test_textfile_parses_with_prometheus_client_and_has_every_gauge():
    odd = '/certs/we"ird\\name\n.pem.ocsp'
    rows = [
        mt.StapleMetrics("/certs/a.pem.ocsp", "good", next_update=T0 + timedelta(hours=20),
                         valid_until=T0 + timedelta(hours=20), last_success=T0 - timedelta(hours=4),
                         next_attempt=T0 + timedelta(hours=8)),
        mt.StapleMetrics("/certs/b.pem.ocsp", "failed", next_update=T0 + timedelta(hours=1),
                         valid_until=T0 + timedelta(hours=1), last_success=T0 - timedelta(hours=23),
                         last_failure=T0 - timedelta(minutes=1), failures=3,
                         next_attempt=T0 + timedelta(minutes=4)),
        mt.StapleMetrics(odd, "not-applicable"),
    ]
    proc = mt.ProcessMetrics(started=T0 - timedelta(days=1), last_sweep=T0 - timedelta(minutes=5),
                             renewals=7, failures=3, pushes=2, push_failures=1)
    text = mt.render(rows, proc, T0)
    fams = families(text)
    left = samples(fams, "ocsp_renew_dir_staple_seconds_to_next_update")
    assert left[(("staple", "/certs/a.pem.ocsp"),)] == 20 * 3600
    assert left[(("staple", "/certs/b.pem.ocsp"),)] == 3600
    assert (("staple", odd),) not in left                  # no staple: no series
    nu = samples(fams, "ocsp_renew_dir_staple_next_update_timestamp_seconds")
    assert nu[(("staple", "/certs/b.pem.ocsp"),)] == (T0 + timedelta(hours=1)).timestamp()
    fails = samples(fams, "ocsp_renew_dir_staple_consecutive_failures")
    assert fails[(("staple", "/certs/b.pem.ocsp"),)] == 3 and fails[(("staple", odd),)] == 0
    last_fail = samples(fams, "ocsp_renew_dir_staple_last_failure_timestamp_seconds")
    assert last_fail[(("staple", "/certs/a.pem.ocsp"),)] == 0
    assert last_fail[(("staple", "/certs/b.pem.ocsp"),)] == (T0 - timedelta(minutes=1)).timestamp()
    ok = samples(fams, "ocsp_renew_dir_staple_last_success_timestamp_seconds")
    assert ok[(("staple", "/certs/a.pem.ocsp"),)] == (T0 - timedelta(hours=4)).timestamp()
    status = samples(fams, "ocsp_renew_dir_staple_status")
    assert status == {(("staple", "/certs/a.pem.ocsp"), ("status", "good")): 1,
                      (("staple", "/certs/b.pem.ocsp"), ("status", "failed")): 1,
                      (("staple", odd), ("status", "not-applicable")): 1}
    certs = samples(fams, "ocsp_renew_dir_certificates")
    assert certs[(("status", "good"),)] == 1 and certs[(("status", "revoked"),)] == 0
    assert set(dict(k)["status"] for k in certs) == set(mt.STATUSES)
    earliest = samples(fams, "ocsp_renew_dir_earliest_valid_until_timestamp_seconds")
    assert list(earliest.values()) == [(T0 + timedelta(hours=1)).timestamp()]
    counters = {f.name: f.samples[0].value for f in fams.values() if f.type == "counter"}
    assert counters["ocsp_renew_dir_renewals"] == 7
    assert counters["ocsp_renew_dir_haproxy_push_failures"] == 1
    assert list(samples(fams, "ocsp_renew_dir_start_time_seconds").values()) == [
        (T0 - timedelta(days=1)).timestamp()]
    assert samples(fams, "ocsp_renew_dir_watcher") == {(("mode", "inotify"),): 1}


def test_textfile_labels_are_bounded_to_staple_and_status():
    rows = [mt.StapleMetrics(f"/c/{i}.ocsp", "good", next_update=T0) for i in range(50)]
    fams = families(mt.render(rows, mt.ProcessMetrics(started=T0), T0))
    for f in fams.values():
        for s in f.samples:
            assert set(s.labels) <= {"staple", "status", "mode"}
    assert len(samples(fams, "ocsp_renew_dir_staple_status")) == 50


def test_textfile_write_is_atomic_and_readable(tmp_path):
    path = tmp_path / "ocsp.prom"
    path.write_text("old\n")
    os.chmod(path, 0o640)
    before = os.stat(path).st_ino
    mt.write(str(path), mt.render([], mt.ProcessMetrics(started=T0), T0))
    assert os.stat(path).st_ino != before                 # a new file renamed over the old
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640   # mode kept
    families(path.read_text())
    fresh = tmp_path / "new.prom"
    mt.write(str(fresh), "x 1\n")
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o644
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name]


# ---------------------------------------------------------------------------
# the event log

def test_json_lines_carry_an_iso_utc_time_and_fields():
    out = io.StringIO()
    log = EventLog("ocsp-renew-dir", "json", stream=out, clock=lambda: T0.replace(microsecond=250000))
    log.event("failed", "/c/a.pem: connection refused; retry 2 in 2m", cert="/c/a.pem",
              next=T0 + timedelta(minutes=2), failures=2, empty="", nothing=None)
    rec = json.loads(out.getvalue())
    assert rec == {"time": "2026-11-28T12:00:00.250Z", "event": "failed",
                   "message": "/c/a.pem: connection refused; retry 2 in 2m", "cert": "/c/a.pem",
                   "next": "2026-11-28T12:02:00Z", "failures": 2}


def test_text_lines_are_one_line_with_a_time_unless_under_the_journal(monkeypatch):
    out = io.StringIO()
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    EventLog("p", "text", stream=out, clock=lambda: T0).event("renewed", "a\nb")
    assert out.getvalue() == "2026-11-28T12:00:00Z renewed a b\n"
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    out = io.StringIO()
    EventLog("p", "text", stream=out, clock=lambda: T0).event("renewed", "x")
    assert out.getvalue() == "renewed x\n"


def test_syslog_receives_each_event(tmp_path, monkeypatch):
    path = str(tmp_path / "log.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    monkeypatch.setenv("OCSPTOOLS_SYSLOG_SOCKET", path)
    try:
        log = EventLog("ocsp-renew-dir", "text", syslog=True, stream=io.StringIO())
        log.event("renewed", "/c/a.pem: good until X")
        import logging
        log.event("revoked", "/c/b.pem: REVOKED", level=logging.ERROR)
        first = server.recv(4096).decode()
        second = server.recv(4096).decode()
        log.close()
    finally:
        server.close()
    # facility daemon (3): info = <30>, err = <27>
    assert first.startswith(f"<30>ocsp-renew-dir[{os.getpid()}]: renewed /c/a.pem: good until X"), first
    assert second.startswith("<27>") and "revoked /c/b.pem: REVOKED" in second, second


def test_a_syslog_daemon_that_falls_behind_never_blocks_the_log(tmp_path, monkeypatch):
    path = str(tmp_path / "slow.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)                       # bound, never read: its queue fills up
    monkeypatch.setenv("OCSPTOOLS_SYSLOG_SOCKET", path)
    try:
        log = EventLog("ocsp-renew-dir", "text", syslog=True, stream=io.StringIO())
        start = time.monotonic()
        for i in range(300):
            log.event("renewed", f"/c/{i}.pem")
        assert time.monotonic() - start < 2.0
        assert log.syslog is not None and 0 < log.syslog.dropped < 300
        log.close()
    finally:
        server.close()


def test_syslog_unreachable_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv("OCSPTOOLS_SYSLOG_SOCKET", str(tmp_path / "none.sock"))
    with pytest.raises(UsageError, match="cannot reach the syslog socket"):
        EventLog("ocsp-renew-dir", "text", syslog=True)


# ---------------------------------------------------------------------------
# watchers

class Hits:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0

    def __call__(self, overflow: bool) -> None:
        self.count += 1
        self.event.set()

    def wait(self, timeout: float = 3.0) -> bool:
        ok = self.event.wait(timeout)
        self.event.clear()
        return ok


def _exercise(watcher_cls, tmp_path, **kw):
    root = tmp_path / "tree"
    (root / "live" / "a").mkdir(parents=True)
    (root / "archive" / "a").mkdir(parents=True)
    hits = Hits()
    ignore = lambda p: p.endswith(".ocsp")  # noqa: E731
    w = watcher_cls([(str(root), True)], hits, ignore, **kw).start()
    try:
        time.sleep(0.2)
        (root / "live" / "a" / "cert.pem").write_text("one")          # a new file, deep down
        assert hits.wait(), "new file not seen"
        (root / "archive" / "a" / "cert2.pem").write_text("two")       # certbot: new archive file,
        os.symlink("../../archive/a/cert2.pem", root / "live" / "a" / ".tmp-link")
        os.replace(root / "live" / "a" / ".tmp-link", root / "live" / "a" / "cert.pem")  # swap
        assert hits.wait(), "symlink swap not seen"
        (root / "new").mkdir()                                          # a new directory...
        time.sleep(0.3)
        hits.wait(0.5)
        (root / "new" / "site.pem").write_text("x")                      # ...is watched too
        assert hits.wait(), "file in a new directory not seen"
        (root / "live" / "a" / "cert.pem").unlink()
        assert hits.wait(), "deletion not seen"
        before = hits.count
        (root / "live" / "a" / "x.ocsp").write_text("ours")              # ignored
        time.sleep(1.0 if watcher_cls is InotifyWatcher else 0.6)
        assert hits.count == before, "an ignored file woke the watcher"
        os.utime(root / "new" / "site.pem", (1, 1))                      # touch: attributes
        assert hits.wait(), "touch not seen"
    finally:
        w.stop()


def test_inotify_watcher_sees_creates_swaps_new_dirs_deletes_touches(tmp_path):
    _exercise(InotifyWatcher, tmp_path)


def test_polling_watcher_sees_the_same(tmp_path):
    _exercise(PollWatcher, tmp_path, interval=0.2)


def test_make_watcher_prefers_inotify_and_polls_on_request(tmp_path):
    w, why = make_watcher([(str(tmp_path), True)], lambda o: None, lambda p: False, lambda: ())
    assert w.mode == "inotify" and why == ""
    w.start()
    w.stop()
    w, why = make_watcher([(str(tmp_path), True)], lambda o: None, lambda p: False, lambda: (),
                          force_poll=True)
    assert w.mode == "poll"


def test_inotify_watcher_stops_at_once(tmp_path):
    w = InotifyWatcher([(str(tmp_path), True)], lambda o: None, lambda p: False).start()
    start = time.monotonic()
    w.stop()
    assert time.monotonic() - start < 1.0
    assert w._thread is not None and not w._thread.is_alive()


# ---------------------------------------------------------------------------
# the configuration file knows the new options

def test_config_keys_for_watch_mode(tmp_path):
    from ocsptools import config as configmod
    from ocsptools.errors import ConfigError
    cfg = tmp_path / "c.yaml"
    cfg.write_text("watch: true\nsweep-interval: 10m\nlog_format: json\nsyslog: false\n"
                   "prometheus-textfile: metrics/ocsp.prom\n"
                   "haproxy-socket: [/run/haproxy/a.sock, '127.0.0.1:9999']\n")
    opts = configmod.load(str(cfg)).options
    assert opts["watch"] is True and opts["sweep_interval"] == timedelta(minutes=10)
    assert opts["log_format"] == "json" and opts["syslog"] is False
    assert opts["prometheus_textfile"] == str(tmp_path / "metrics" / "ocsp.prom")
    assert opts["haproxy_socket"] == ["/run/haproxy/a.sock", "127.0.0.1:9999"]
    cfg.write_text("log-format: xml\n")
    with pytest.raises(ConfigError, match=r"c.yaml:1: key 'log-format': expected text or json"):
        configmod.load(str(cfg))


# ---------------------------------------------------------------------------
# the driver's write gate: at shutdown, installs in progress finish and none starts afterwards

def test_write_gate_waits_for_installs_in_progress_and_refuses_later_ones():
    from ocsptools.driver import WriteGate
    from ocsptools.errors import StoreError
    gate = WriteGate()
    inside, release, done = threading.Event(), threading.Event(), []

    def install() -> None:
        with gate.passage("/c/a.pem.ocsp"):
            inside.set()
            release.wait(5)
            done.append("written")
    t = threading.Thread(target=install)
    t.start()
    inside.wait(5)
    assert gate.close(timeout=0.2) is False          # still one in progress
    with pytest.raises(StoreError, match="not installed: shutting down"):
        with gate.passage("/c/b.pem.ocsp"):
            done.append("must not happen")
    release.set()
    assert gate.close(timeout=5) is True
    t.join(5)
    assert done == ["written"]
