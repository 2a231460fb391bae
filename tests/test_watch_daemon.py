"""ocsptools/watch/daemon.py: ocsp-renew-dir --watch as a real process, against real `openssl ocsp` responders with
1-minute staples (-nmin 1): renewals without a poke, backoff and recovery, new, re-issued and
deleted certificates, SIGHUP, SIGUSR1, SIGTERM, --on-change batches, syslog, the textfile.

The backoff base is scaled to 1 s through OCSPTOOLS_WATCH_BACKOFF_BASE (the real 1 min / 1 h
values are checked with a controllable clock in test_watch_schedule.py).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.x509 import ocsp as x509_ocsp
from prometheus_client.parser import text_string_to_metric_families

import pki as pkimod
from conftest import assert_one_line_error, command, run_cmd
from fake_responder import Answer, FakeResponder, status_only

from ocsptools import verify
from ocsptools.certs import load_file
from ocsptools.openssl import OpenSSL
from ocsptools.watch.daemon import MAX_SLEEP, sleep_for

BASE_ENV = {"OCSPTOOLS_WATCH_BACKOFF_BASE": "1"}


# ---------------------------------------------------------------------------
# helpers

class Watch:
    """A running `ocsp-renew-dir --watch ... --log-format json`, its log read as it grows."""

    def __init__(self, tmp: Path, *args, env=None) -> None:
        self.log_path = tmp / f"watch-{secrets.token_hex(3)}.log"
        self.log_fh = open(self.log_path, "wb")
        full = dict(os.environ)
        full.update(BASE_ENV)
        full.update(env or {})
        full.pop("JOURNAL_STREAM", None)
        self.argv = [command("ocsp-renew-dir"), "--watch", "--log-format", "json", *map(str, args)]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.log_fh, env=full)

    def events(self, kind: str | None = None, cert: str | None = None) -> list[dict]:
        out = []
        for line in self.log_path.read_text().splitlines():
            if not line.startswith("{"):
                continue
            rec = json.loads(line)
            if (kind is None or rec["event"] == kind) and (cert is None or rec.get("cert") == str(cert)):
                out.append(rec)
        return out

    def wait_for(self, pred, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = pred()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited ({self.proc.returncode}) while waiting "
                                     f"for {what}:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n"
                             f"{self.log_path.read_text()}")

    def signal(self, sig) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> tuple[int, float]:
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout + 5)
        return rc, time.monotonic() - start

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.log_fh.close()


@pytest.fixture
def watches():
    live = []

    def start(*args, **kw) -> Watch:
        w = Watch(*args, **kw)
        live.append(w)
        return w
    yield start
    for w in live:
        w.close()


@pytest.fixture(scope="module")
def short(pki):
    """A real responder for the PKI handing out 1-minute staples, on its own port."""
    with pkimod.Responder(pki, port=0, nmin=1) as r:
        yield r


def new_leaf(pki, responder, prefix: str):
    leaf = pki.make_leaf(f"{prefix}{secrets.token_hex(3)}")
    responder.restart()             # the responder sees index.txt changes only a request later
    return leaf


def times(path: Path) -> tuple[datetime, datetime, int]:
    """(thisUpdate, nextUpdate, serial) of a DER staple (parsed without openssl: cheap)."""
    r = x509_ocsp.load_der_ocsp_response(path.read_bytes())
    return r.this_update_utc, r.next_update_utc, r.serial_number


def verified(staple: Path, cert: Path, pki) -> None:
    ossl = OpenSSL()
    st = verify.verify(staple.read_bytes(), load_file(str(cert), ossl)[0],
                       load_file(str(pki.inter_cert), ossl)[0], ossl)
    assert st.cert_status == "good"


def serial_of(cert: Path) -> int:
    return int(pkimod.cert_info(cert)["serial"], 16)


def metrics(path: Path) -> dict:
    out = {}
    for fam in text_string_to_metric_families(path.read_text()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class NeverExpires:
    """Checks every staple under DIR continuously: none may ever be served past nextUpdate."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            now = datetime.now(timezone.utc)
            for p in self.dir.glob("*.ocsp"):
                if not p.with_suffix("").exists():
                    continue                # its certificate was removed: no longer managed
                try:
                    _, nu, _ = times(p)
                except (OSError, ValueError):
                    self.problems.append(f"{p}: unreadable")
                    continue
                if nu <= now:
                    self.problems.append(f"{p}: expired at {nu}")

    def stop(self) -> list[str]:
        self._stop.set()
        self._t.join(2)
        return self.problems


# ---------------------------------------------------------------------------
# how long the loop sleeps (pure: both clocks passed in)

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("next_in,mono,deadlines,timeout", [
    (None, 0.0, [], MAX_SLEEP),                             # nothing due: re-read the clock anyway
    (None, 0.0, [None, None, 5000.0], MAX_SLEEP),
    (30.0, 100.0, [None, None, 5000.0], 30.0),              # the scheduler's next instant
    (30.0, 100.0, [100.3, None, 5000.0], pytest.approx(0.3)),   # a watcher batch settling
    (-2.0, 100.0, [], -2.0),                                # overdue: no sleep at all
    (None, 100.0, [float("-inf")], float("-inf")),          # a write never done yet
])
def test_sleep_for(next_in, mono, deadlines, timeout):
    nxt = None if next_in is None else NOW + timedelta(seconds=next_in)
    assert sleep_for(NOW, nxt, mono, deadlines) == timeout


# ---------------------------------------------------------------------------
# the long one: one daemon lifetime, many behaviours

def test_watch_lifecycle(tmp_path, pki, short, watches):
    a, b, c = (new_leaf(pki, short, p) for p in ("wa", "wb", "wc"))
    certs = tmp_path / "certs"
    certs.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    for name, leaf in (("a", a), ("b", b)):
        shutil.copy(leaf.fullchain, certs / f"{name}.pem")
    cfg = tmp_path / "ocsptools.yaml"
    cfg.write_text(f"dirs: [{certs}]\n")
    hooklog = tmp_path / "hook.log"
    prom = tmp_path / "metrics" / "ocsp.prom"
    prom.parent.mkdir()
    state = tmp_path / "state.json"
    w = watches(tmp_path, "--config", cfg, "-u", short.url, "--state", state,
                "--prometheus-textfile", prom,
                "--on-change", f'printf "%s\\n--\\n" "$OCSP_CHANGED" >> {hooklog}')
    watch = NeverExpires(certs)
    sa, sb, sc = (certs / f"{n}.pem.ocsp" for n in "abc")

    # 1. the initial pass: both staples, verified, one --on-change run for the batch
    w.wait_for(lambda: sa.exists() and sb.exists(), 10, "the first staples")
    verified(sa, certs / "a.pem", pki)
    verified(sb, certs / "b.pem", pki)
    w.wait_for(lambda: hooklog.exists() and hooklog.read_text().count("--\n") == 1, 5, "the hook")
    time.sleep(1.2)
    batches = hooklog.read_text().split("--\n")[:-1]
    assert len(batches) == 1 and set(batches[0].split()) == {str(sa), str(sb)}, batches
    start = w.events("start")[0]
    assert start["mode"] == "inotify"

    # the daemon's decisions are the one-shot's: a one-shot -q finds everything up to date,
    # and a one-shot real run is refused while the daemon owns the state (exit 2, one line)
    q = run_cmd("ocsp-renew-dir", "-q", "--config", cfg, "-u", short.url, "--state", state)
    assert q.returncode == 0, q.stdout + q.stderr
    busy = run_cmd("ocsp-renew-dir", "--config", cfg, "-u", short.url, "--state", state)
    assert busy.returncode == 2 and "still running" in assert_one_line_error(busy.stderr)

    # 2. a new certificate dropped into the directory: its staple within 5 s
    t0 = time.monotonic()
    tmp = certs / ".incoming"
    shutil.copy(c.fullchain, tmp)
    os.replace(tmp, certs / "c.pem")
    w.wait_for(sc.exists, 5, "the new certificate's staple")
    assert time.monotonic() - t0 < 5
    verified(sc, certs / "c.pem", pki)
    assert w.events("added", str(certs / "c.pem"))
    w.wait_for(lambda: hooklog.read_text().count("--\n") == 2, 5, "the hook run for c")

    # 3. a re-issued certificate (new serial, same file): the staple follows within 5 s
    a2 = new_leaf(pki, short, "wa")
    t0 = time.monotonic()
    (certs / "a.pem").write_text(Path(a2.fullchain).read_text())
    w.wait_for(lambda: times(sa)[2] == serial_of(a2.cert), 5, "the re-issued certificate's staple")
    assert time.monotonic() - t0 < 5
    verified(sa, certs / "a.pem", pki)

    # --on-change ran once per batch, never once per staple
    w.wait_for(lambda: hooklog.read_text().count("--\n") >= 3, 5, "the hook run for a")
    batches = hooklog.read_text().split("--\n")[:-1]
    assert [set(x.split()) for x in batches[1:]] == [{str(sc)}, {str(sa)}], batches

    # 4. SIGUSR1: everything renewed now
    time.sleep(1.05 - time.time() % 1.0)        # thisUpdate has 1-second resolution
    before = {p: times(p)[0] for p in (sa, sb, sc)}
    w.signal(signal.SIGUSR1)
    w.wait_for(lambda: all(times(p)[0] > before[p] for p in before), 5, "SIGUSR1 renewals")
    assert w.events("renew-all")
    w.wait_for(lambda: hooklog.read_text().count("--\n") == 4, 5, "one hook run for SIGUSR1")
    assert set(hooklog.read_text().split("--\n")[3].split()) == {str(sa), str(sb), str(sc)}
    usr1 = {p: times(p)[0] for p in (sa, sb, sc)}

    # 5. SIGHUP: the configuration is re-read (a second directory) and rescanned
    d = new_leaf(pki, short, "wd")
    shutil.copy(d.fullchain, other / "d.pem")
    time.sleep(1.0)
    assert not (other / "d.pem.ocsp").exists()          # not configured yet
    cfg.write_text(f"dirs: [{certs}, {other}]\nrenew-at: lots\n")       # a typo: kept the old one
    w.signal(signal.SIGHUP)
    failed = w.wait_for(lambda: w.events("reload-failed"), 5, "the rejected reload")
    assert "renew-at" in failed[0]["message"] and "keeping the previous configuration" in failed[0]["message"]
    assert w.proc.poll() is None and not (other / "d.pem.ocsp").exists()
    cfg.write_text(f"dirs: [{certs}, {other}]\n")
    w.signal(signal.SIGHUP)
    w.wait_for((other / "d.pem.ocsp").exists, 5, "the staple from the re-read configuration")
    assert w.events("reload")
    # the reload re-planned every staple (from the state cache): the textfile still knows them
    good = lambda p: ("ocsp_renew_dir_staple_status", (("staple", str(p)), ("status", "good")))  # noqa: E731
    w.wait_for(lambda: all(metrics(prom).get(good(p)) == 1 for p in (sa, sb, sc, other / "d.pem.ocsp")),
               3, "every staple good in the textfile after the reload")

    # 6. a deleted certificate leaves the schedule (its staple file is left alone)
    (certs / "b.pem").unlink()
    w.wait_for(lambda: w.events("removed", str(certs / "b.pem")), 5, "the removal")

    # 7. no poke: each staple renewed again shortly before its half-life (30 s of 60; the jitter
    # moves it up to 10 % of the time left earlier, never later: a cron `-q` at any moment agrees
    # the staple is up to date), long before it expires
    w.wait_for(lambda: times(sa)[0] > usr1[sa] and times(sc)[0] > usr1[sc], 45, "unpoked renewals")
    for p in (sa, sc):
        renewed_at = (times(p)[0] - usr1[p]).total_seconds()
        # thisUpdate has 1-second resolution and is stamped when the responder answers
        assert 26 <= renewed_at <= 31, (p, renewed_at)
    renewals = [e for e in w.events("renewed") if e["cert"] == str(certs / "a.pem")]
    assert renewals[-1]["next"] is not None
    assert not watch.stop(), watch.problems

    # the textfile: per-staple gauges; the removed certificate is gone from it
    time.sleep(1.1)                         # the textfile is rewritten at most once a second
    m = metrics(prom)
    assert m.get(good(sa)) == 1, m
    assert m[("ocsp_renew_dir_staple_consecutive_failures", (("staple", str(sa)),))] == 0
    assert 0 < m[("ocsp_renew_dir_staple_seconds_to_next_update", (("staple", str(sa)),))] <= 60
    assert m[("ocsp_renew_dir_staple_last_success_timestamp_seconds", (("staple", str(sa)),))] > 0
    assert not [k for k in m if ("staple", str(sb)) in k[1]]
    assert m[("ocsp_renew_dir_renewals_total", ())] >= 7

    # 8. SIGTERM: exit 0 within 5 s, nothing half-written left behind
    rc, took = w.stop()
    assert rc == 0 and took < 5, (rc, took, w.log_path.read_text())
    assert w.events("exit")
    assert not [p for p in certs.iterdir() if "tmp" in p.name]
    assert "Traceback" not in w.log_path.read_text()


# ---------------------------------------------------------------------------
# failures: backoff with growing intervals, old staples kept, recovery, syslog

def test_backoff_keeps_staples_and_recovers(tmp_path, pki, watches):
    leaves = [pki.make_leaf(f"wf{secrets.token_hex(3)}") for _ in range(2)]
    certs = tmp_path / "certs"
    certs.mkdir()
    for i, leaf in enumerate(leaves):
        shutil.copy(leaf.fullchain, certs / f"s{i}.pem")
    staples = [certs / f"s{i}.pem.ocsp" for i in range(2)]
    sock_path = str(tmp_path / "syslog.sock")
    syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    syslog.bind(sock_path)
    syslog.settimeout(0.2)
    got: list[str] = []
    done = threading.Event()

    def read_syslog() -> None:              # a syslog daemon that keeps up
        while not done.is_set():
            try:
                got.append(syslog.recv(8192).decode())
            except OSError:
                continue
    reader = threading.Thread(target=read_syslog, daemon=True)
    reader.start()
    prom = tmp_path / "ocsp.prom"
    responder = pkimod.Responder(pki, port=0, nmin=1).start()
    try:
        w = watches(tmp_path, "-u", responder.url, "--state", tmp_path / "state.json",
                    "--renew-at", "10", "--syslog", "--prometheus-textfile", prom, certs,
                    env={"OCSPTOOLS_SYSLOG_SOCKET": sock_path})
        w.wait_for(lambda: all(p.exists() for p in staples), 10, "the first staples")
        responder.stop()                    # the responder is gone before the renewals fall due
        kept = [p.read_bytes() for p in staples]
        cert0 = str(certs / "s0.pem")
        fails = w.wait_for(lambda: (lambda f: f if len(f) >= 4 else None)(w.events("failed", cert0)),
                           40, "four failed attempts")
        gaps = [f["retry_in"] for f in fails[:4]]
        assert gaps == sorted(gaps) and gaps[0] < gaps[-1] and len(set(gaps)) == 4, gaps
        assert gaps[:3] == [1.0, 2.0, 4.0], gaps
        assert [f["failures"] for f in fails[:4]] == [1, 2, 3, 4]
        assert "connection refused" in fails[0]["detail"] and "kept, valid until" in fails[0]["detail"]
        assert [p.read_bytes() for p in staples] == kept            # old staples untouched
        m = metrics(prom)
        assert m[("ocsp_renew_dir_staple_consecutive_failures", (("staple", str(staples[0])),))] >= 3
        assert m[("ocsp_renew_dir_staple_status", (("staple", str(staples[0])), ("status", "failed")))] == 1
        assert m[("ocsp_renew_dir_staple_last_failure_timestamp_seconds", (("staple", str(staples[0])),))] > 0
        responder.start()                   # back on the same port
        w.wait_for(lambda: all(p.read_bytes() != k for p, k in zip(staples, kept)), 20, "recovery")
        for i, p in enumerate(staples):
            verified(p, certs / f"s{i}.pem", pki)
        w.wait_for(lambda: w.events("renewed", cert0)[-1:] and w.events("renewed", cert0)[-1]["time"]
                   > fails[-1]["time"], 5, "the renewed event")
        w.wait_for(lambda: metrics(prom)[("ocsp_renew_dir_staple_consecutive_failures",
                                          (("staple", str(staples[0])),))] == 0, 5, "metrics reset")
        rc, took = w.stop()
        assert rc == 0 and took < 5
    finally:
        responder.stop()
        time.sleep(0.3)
        done.set()
        reader.join(2)
        syslog.close()
    text = "\n".join(got)
    assert f"ocsp-renew-dir[{w.proc.pid}]: failed {cert0}" in text, text
    assert f"ocsp-renew-dir[{w.proc.pid}]: renewed {cert0}" in text
    assert any(g.startswith("<28>") for g in got if " failed " in g)      # daemon.warning


# ---------------------------------------------------------------------------
# the responder's own pacing: Retry-After and tryLater

@pytest.mark.parametrize("answer,gap", [
    (Answer(status=503, body=b"busy", content_type="text/plain", headers={"Retry-After": "3"}), 3.0),
    (Answer(body=status_only("tryLater")), 5.0),
])
def test_retry_after_and_try_later_slow_the_retries(tmp_path, pki, watches, answer, gap):
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(pki.leaves["good1"].fullchain, certs / "g.pem")
    with FakeResponder() as fake:
        fake.set(status=answer.status, body=answer.body, content_type=answer.content_type,
                 headers=answer.headers)
        w = watches(tmp_path, "-u", fake.url, "--state", tmp_path / "state.json", certs)
        fail = w.wait_for(lambda: w.events("failed"), 10, "the failure")[0]
        assert fail["retry_in"] == gap, fail            # not the 1-base first backoff
        n = len(fake.requests)
        time.sleep(gap - 1.0)
        assert len(fake.requests) == n                  # nobody asked again in between
        rc, _ = w.stop()
        assert rc == 0
    assert not (certs / "g.pem.ocsp").exists()


# ---------------------------------------------------------------------------
# a revoked certificate stays on the schedule and is reported every time

def test_revoked_certificate_is_reported_every_time(tmp_path, pki, responder, watches):
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(pki.leaves["revoked1"].fullchain, certs / "r.pem")
    prom = tmp_path / "ocsp.prom"
    w = watches(tmp_path, "-u", responder.url, "--state", tmp_path / "s.json",
                "--prometheus-textfile", prom, certs)
    revs = w.wait_for(lambda: (lambda r: r if len(r) >= 3 else None)(w.events("revoked")), 30,
                      "three revoked events")
    assert [r["failures"] for r in revs[:3]] == [1, 2, 3]
    assert [r["retry_in"] for r in revs[:3]] == [1.0, 2.0, 4.0]        # still scheduled
    assert all("REVOKED at" in r["detail"] and r["next"] for r in revs)
    assert not w.events("failed") and not (certs / "r.pem.ocsp").exists()
    status = ("ocsp_renew_dir_staple_status", (("staple", str(certs / "r.pem.ocsp")), ("status", "revoked")))
    w.wait_for(lambda: prom.exists() and metrics(prom).get(status) == 1, 5, "status revoked in the textfile")
    assert w.stop()[0] == 0


# ---------------------------------------------------------------------------
# SIGTERM while a fetch hangs: gone within 5 s, and the abandoned fetch never writes

def test_sigterm_abandons_a_hung_fetch(tmp_path, pki, watches):
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(pki.leaves["good2"].fullchain, certs / "h.pem")
    with FakeResponder() as fake:
        fake.set(delay=30)
        w = watches(tmp_path, "-u", fake.url, "--timeout", "30", "--state", tmp_path / "s.json", certs)
        w.wait_for(lambda: fake.requests, 10, "the fetch to start")
        rc, took = w.stop()
        assert rc == 0 and took < 5, (rc, took, w.log_path.read_text())
        assert any("abandoned" in e.get("message", "") for e in w.events("stop"))
        time.sleep(0.5)
        assert not (certs / "h.pem.ocsp").exists()
        assert not [p for p in certs.iterdir() if p.name != "h.pem"]


# ---------------------------------------------------------------------------
# systemd Type=notify: READY before the first pass (which may outlast a start timeout)

def test_ready_comes_before_the_first_pass_and_status_after_it(tmp_path, pki, watches):
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(pki.leaves["good1"].fullchain, certs / "n.pem")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(5)
    try:
        with FakeResponder() as fake:
            fake.set(delay=30)              # a responder that hangs: the first pass takes 3 s
            w = watches(tmp_path, "-u", fake.url, "--timeout", "3", "--state", tmp_path / "s.json",
                        certs, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
            ready = notify.recv(1024).decode()
            assert ready == "READY=1\nSTATUS=first pass over 1 certificates", ready
            assert not w.events("failed")   # the first pass is still waiting for the responder
            status = notify.recv(1024).decode()
            assert status == "STATUS=watching 1 certificates (first pass done)", status
            assert w.events("failed")       # sent after the pass gave its verdict
            assert w.stop()[0] == 0
            assert notify.recv(1024) == b"STOPPING=1"
    finally:
        notify.close()


# ---------------------------------------------------------------------------
# the polling fallback, where inotify is unavailable

def test_polling_fallback_picks_up_a_new_certificate(tmp_path, pki, watches, responder):
    certs = tmp_path / "certs"
    certs.mkdir()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)       # systemd's Type=notify
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(5)
    w = watches(tmp_path, "--state", tmp_path / "s.json", certs,
                env={"OCSPTOOLS_WATCH_POLL": "1", "NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    assert notify.recv(1024).startswith(b"READY=1")
    w.wait_for(lambda: w.events("start"), 5, "start")
    assert w.events("start")[0]["mode"] == "poll"
    time.sleep(0.5)
    t0 = time.monotonic()
    shutil.copy(pki.leaves["good1"].fullchain, certs / "p.pem")
    w.wait_for((certs / "p.pem.ocsp").exists, 5, "the staple")
    assert time.monotonic() - t0 < 5
    verified(certs / "p.pem.ocsp", certs / "p.pem", pki)
    w.signal(signal.SIGINT)                 # Ctrl-C in a terminal: the same clean stop
    assert w.proc.wait(5) == 0
    assert w.events("exit")[0]["signal"] == "SIGINT"
    assert notify.recv(1024).startswith(b"STATUS=watching 0 certificates")
    assert notify.recv(1024) == b"STOPPING=1"
    notify.close()


# ---------------------------------------------------------------------------
# --sweep-interval: the full sweep catches a change no watcher reports

def test_sweep_catches_a_change_the_watcher_cannot_see(tmp_path, pki, short, watches):
    """A certificate re-issued in place through a hard link in an unwatched directory: inotify
    on the watched directory reports nothing (events go to the parent the write went through),
    so only the --sweep-interval rescan sees the new identity and renews it."""
    old, new = new_leaf(pki, short, "sw"), new_leaf(pki, short, "sw")
    certs, elsewhere = tmp_path / "certs", tmp_path / "elsewhere"
    certs.mkdir()
    elsewhere.mkdir()
    shutil.copy(old.fullchain, certs / "s.pem")
    os.link(certs / "s.pem", elsewhere / "s.pem")
    staple = certs / "s.pem.ocsp"
    w = watches(tmp_path, "-u", short.url, "--state", tmp_path / "state.json",
                "--sweep-interval", "2s", certs)
    w.wait_for(staple.exists, 10, "the first staple")
    assert times(staple)[2] == serial_of(old.cert)
    w.wait_for(lambda: w.events("sweep"), 5, "a first sweep")
    with open(elsewhere / "s.pem", "r+") as fh:            # the same inode, rewritten in place
        fh.write(Path(new.fullchain).read_text())
        fh.truncate()
    w.wait_for(lambda: times(staple)[2] == serial_of(new.cert), 6, "the re-issued certificate's staple")
    sweeps = w.events("sweep")
    assert sweeps[0]["certificates"] == 1
    caught = [e for e in sweeps if "1 changed" in e["message"]]
    assert len(caught) == 1, sweeps         # the sweep found it, not the watcher
    changed = w.events("changed", str(certs / "s.pem"))
    assert len(changed) == 1                # logged once, by that sweep's rescan
    verified(staple, certs / "s.pem", pki)
    assert w.stop()[0] == 0


# ---------------------------------------------------------------------------
# usage

@pytest.mark.parametrize("args,needle", [
    (["--sweep-interval", "10m", "DIR"], "--sweep-interval needs --watch"),
    (["--prometheus-textfile", "/tmp/x.prom", "DIR"], "--prometheus-textfile needs --watch"),
    (["--watch", "-n", "DIR"], "cannot be combined"),
    (["--watch", "-"], "not - (standard input)"),
    (["--watch", "NOPE"], "no such file or directory"),
    (["--watch", "--sweep-interval", "0s", "DIR"], "at least 1s"),
    (["--haproxy-socket", "nonsense", "DIR"], "not a socket path or HOST:PORT"),
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path, args, needle):
    args = [str(tmp_path / "nope") if a == "NOPE" else str(tmp_path) if a == "DIR" else a for a in args]
    res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", *args, timeout=20)
    assert res.returncode == 2, res.stderr
    assert needle in assert_one_line_error(res.stderr)


def test_a_second_daemon_on_the_same_trees_exits_2(tmp_path, watches):
    w = watches(tmp_path, "--state", tmp_path / "s.json", tmp_path)
    w.wait_for(lambda: w.events("start"), 5, "start")
    res = run_cmd("ocsp-renew-dir", "--watch", "--state", tmp_path / "s.json", tmp_path, timeout=20)
    assert res.returncode == 2 and "still running" in assert_one_line_error(res.stderr)
    assert w.stop()[0] == 0
