"""--watch's parts that live outside ocsptools/watch/: the Prometheus textfile (metrics_textfile),
the configuration keys (config), the driver's write gate.  (The watch package's own parts are tested
in tests/test_watch_<module>.py.)"""

from __future__ import annotations

import os
import stat
import threading
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ocsptools import metrics_textfile as mt

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
    from ocsptools.renewal import WriteGate
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
