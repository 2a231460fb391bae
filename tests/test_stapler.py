"""ocsptools.stapler.service: the Stapler end to end, with real parts.

The real ``openssl ocsp`` responder on 127.0.0.1 (a PKI of this module's own, so it can be
stopped and started freely), pyOpenSSL TLS servers on 127.0.0.1 and ``openssl s_client
-status`` as the client; the Stapler's clock is injected (tests/stapler_support.py).  The parts
on their own: tests/test_stapler_{schedule,entries,handshake,refresh,metrics}.py.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from stapler_support import (ROOT, TLSServer, clock, der_of, fullchain, make_stapler,  # noqa: F401
                             openssl_time, s_client, spki, sresp, stapled_der, stapler_responder,
                             status_of, verified, wait_for)

import pki as pkimod
from ocsptools.errors import FetchError, NotApplicable, StoreError, UsageError
from ocsptools.stapler import EXPIRED, NOT_APPLICABLE, STAPLED, UNSTAPLED, Stapler


# --------------------------------------------------------------------------
# the service with the real responder (no TLS server; injected clock)
# --------------------------------------------------------------------------

def test_bad_options_refused(tmp_path):
    with pytest.raises(UsageError):
        Stapler(method="put")
    with pytest.raises(UsageError):
        Stapler(hash_alg="md5")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create the staple directory|not a directory"):
        Stapler(tmp_path / "file")


def test_prestaple_fetches_verifies_and_persists(spki, sresp, make_stapler, tmp_path):
    st = make_stapler(tmp_path / "staples")
    info = st.add(fullchain(spki, "good1"), name="good1")
    assert info.state == UNSTAPLED and info.staple_file.endswith(info.fingerprint + ".ocsp")
    st.prestaple(require_all=True)
    s = status_of(st, "good1")
    assert s.state == STAPLED and s.failures == 0
    der = st.staple_for(der_of(spki, "good1"))
    staple = verified(spki, "good1", der)
    assert staple.this_update == s.this_update
    assert s.next_refresh == s.this_update + (s.valid_until - s.this_update) / 2
    assert Path(s.staple_file).read_bytes() == der          # persisted, DER
    assert st.counters()["refreshes"]["ok"] == 1
    # adding the same certificate again changes nothing
    again = st.add(fullchain(spki, "good1"), name="other name")
    assert again.name == "good1" and len(st.status()) == 1


def test_expired_staple_is_never_served(spki, sresp, make_stapler, clock, caplog):
    st = make_stapler()
    st.add(fullchain(spki, "good1"), name="good1")
    st.prestaple()
    assert st.staple_for(der_of(spki, "good1"))
    sresp.stop()
    clock.offset = timedelta(days=1, minutes=1)               # past nextUpdate (1-day responses)
    with caplog.at_level(logging.WARNING, logger="ocsptools.stapler"):
        assert st.staple_for(der_of(spki, "good1")) == b""
        assert st.staple_for(der_of(spki, "good1")) == b""
    assert status_of(st, "good1").state == UNSTAPLED
    notes = [r for r in caplog.records if "handshakes get no staple" in r.getMessage()]
    assert len(notes) == 1 and "expired" in notes[0].getMessage()      # logged once, not per handshake
    assert st.counters()["requests"]["unstapled"] == 2
    st.refresh_due()                                          # responder down: still nothing served
    assert st.staple_for(der_of(spki, "good1")) == b""


def test_expired_certificate_is_dropped_with_its_staple(spki, sresp, make_stapler, clock, tmp_path,
                                                        caplog):
    st = make_stapler(tmp_path / "staples")
    info = st.add(fullchain(spki, "short"), name="short")
    st.prestaple(require_all=True)
    assert Path(info.staple_file).exists()
    der = der_of(spki, "short")
    assert st.staple_for(der)
    clock.offset = timedelta(hours=31)                        # the certificate's notAfter passed
    with caplog.at_level(logging.WARNING, logger="ocsptools.stapler"):
        st.refresh_due()
        assert st.status() == []
        assert st.staple_for(der) == b""
        assert st.staple_for(der) == b""
    assert not Path(info.staple_file).exists()
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("dropped" in m for m in msgs) == 1
    assert sum("still presents this expired certificate" in m for m in msgs) == 1
    assert st.seconds_until_due() == 300.0
    # adding an already expired certificate: reported, never managed
    later = st.add(fullchain(spki, "short"), name="short")
    assert later.state == EXPIRED and st.status() == []


def test_must_staple_prestaple(spki, sresp, make_stapler):
    st = make_stapler()
    st.add(fullchain(spki, "must"), name="must")
    st.start(wait=True, timeout=10)
    assert status_of(st, "must").state == STAPLED and status_of(st, "must").must_staple
    verified(spki, "must", st.staple_for(der_of(spki, "must")))


def test_must_staple_without_staple_refuses_to_start(spki, sresp, make_stapler, tmp_path):
    sresp.stop()
    st = make_stapler(tmp_path / "empty")
    st.add(fullchain(spki, "must"), name="must")
    st.add(fullchain(spki, "good1"), name="good1")       # not Must-Staple: not waited for
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        st.start(wait=True, timeout=1.0)
    assert time.monotonic() - started < 5
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("must: Must-Staple certificate has no valid staple")
    assert "connection refused" in msg and "good1" not in msg
    assert not st.running


def test_must_staple_without_ocsp_url_is_an_error(spki, make_stapler, caplog):
    st = make_stapler()
    with caplog.at_level(logging.ERROR, logger="ocsptools.stapler"):
        assert st.add(fullchain(spki, "mustnourl"), name="m").state == NOT_APPLICABLE
    assert any("Must-Staple certificate without an OCSP responder" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(NotApplicable, match="names no OCSP responder"):
        st.prestaple(timeout=5)


def test_no_ocsp_url_is_quietly_not_applicable(spki, make_stapler, caplog):
    st = make_stapler()
    with caplog.at_level(logging.INFO, logger="ocsptools.stapler"):
        assert st.add(fullchain(spki, "nourl"), name="n").state == NOT_APPLICABLE
        st.prestaple(timeout=5, require_all=False)
        assert st.refresh_due() == 0
        assert st.staple_for(der_of(spki, "nourl")) == b""
    assert caplog.records == []
    assert status_of(st, "n").next_refresh is None


def test_refresh_now_asks_the_responder(spki, sresp, make_stapler, clock):
    st = make_stapler()
    st.add(fullchain(spki, "good1"), name="good1")
    st.prestaple()
    first = status_of(st, "good1").this_update
    st.start(wait=False)
    time.sleep(1.05)
    st.refresh_now()
    assert wait_for(lambda: status_of(st, "good1").this_update > first)
    st.close()
    assert not st.running


# --------------------------------------------------------------------------
# a real pyOpenSSL TLS server, seen by openssl s_client -status
# --------------------------------------------------------------------------

def test_s_client_sees_a_valid_staple_per_sni_certificate(spki, sresp, make_stapler, tmp_path):
    st = make_stapler(tmp_path / "staples")
    st.add(fullchain(spki, "good1"), name="good1")
    st.add(fullchain(spki, "good2"), name="good2")
    st.start()
    with TLSServer(st, spki, ["good1", "good2"]) as server:
        for name in ("good1", "good2"):
            seen = s_client(spki, server.port, name)
            assert seen["subject_cn"] == name
            assert seen["Cert Status"] == "good"
            assert seen["Serial Number"] == spki.leaves[name].serial
            assert seen["This Update"] == openssl_time(status_of(st, name).this_update)
            der = stapled_der(server.port, name)
            verified(spki, name, der)
            assert der == Path(status_of(st, name).staple_file).read_bytes()
    assert st.counters()["requests"]["stapled"] == 4


def test_restart_staples_from_the_first_handshake_without_responder(spki, sresp, make_stapler,
                                                                    tmp_path):
    d = tmp_path / "staples"
    first = make_stapler(d)
    first.add(fullchain(spki, "must"), name="must")
    first.start()
    before = status_of(first, "must")
    first.close()
    sresp.stop()                                             # the responder is down from here on
    st = make_stapler(d)                                     # "the server restarts"
    st.add(fullchain(spki, "must"), name="must")
    st.start(wait=True, timeout=1)                           # Must-Staple: satisfied from the disk
    with TLSServer(st, spki, ["must"]) as server:
        seen = s_client(spki, server.port, "must")           # the very first connection
        assert seen["Cert Status"] == "good"
        assert seen["This Update"] == openssl_time(before.this_update)
        verified(spki, "must", stapled_der(server.port, "must"))
    assert st.counters()["requests"] == {"stapled": 2, "unstapled": 0,
                                         "unknown_certificate": 0, "error": 0}


def test_refreshed_while_the_server_runs(spki, sresp, make_stapler, clock, tmp_path):
    st = make_stapler(tmp_path / "staples")
    st.add(fullchain(spki, "good1"), name="good1")
    st.start()
    with TLSServer(st, spki, ["good1"]) as server:
        before = s_client(spki, server.port, "good1")
        first = status_of(st, "good1")
        assert before["This Update"] == openssl_time(first.this_update)
        time.sleep(1.05)
        clock.offset = timedelta(hours=12, minutes=1)        # the half-life has passed
        st.wake()
        assert wait_for(lambda: status_of(st, "good1").this_update > first.this_update)
        after = s_client(spki, server.port, "good1")
        new = status_of(st, "good1")
        assert after["This Update"] == openssl_time(new.this_update) != before["This Update"]
        assert after["Cert Status"] == "good"
        verified(spki, "good1", stapled_der(server.port, "good1"))
        assert Path(new.staple_file).read_bytes() == stapled_der(server.port, "good1")


def test_outage_keeps_serving_then_expiry_drops_it(spki, sresp, make_stapler, clock):
    st = make_stapler()
    st.add(fullchain(spki, "good1"), name="good1")
    st.start()
    with TLSServer(st, spki, ["good1"]) as server:
        before = s_client(spki, server.port, "good1")
        sresp.stop()
        clock.offset = timedelta(hours=13)
        st.wake()
        assert wait_for(lambda: status_of(st, "good1").failures >= 1)
        during = s_client(spki, server.port, "good1")
        assert during["This Update"] == before["This Update"] and during["Cert Status"] == "good"
        clock.offset = timedelta(days=1, seconds=30)         # past nextUpdate, still no responder
        st.wake()
        assert s_client(spki, server.port, "good1") == {}
        assert stapled_der(server.port, "good1") == b""
        assert status_of(st, "good1").state == UNSTAPLED
    assert server.errors == []


def test_handshakes_during_refreshes_always_get_a_valid_staple(spki, sresp, make_stapler, clock):
    """Many callback threads while the staple is replaced: never nothing, never a torn value."""
    st = make_stapler()
    st.add(fullchain(spki, "good1"), name="good1")
    st.prestaple()
    der = der_of(spki, "good1")
    seen, stop = set(), threading.Event()
    empty = []

    def hammer():
        while not stop.is_set():
            got = st.staple_for(der)
            if not got:
                empty.append(1)
            seen.add(got)
    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        for _ in range(2):                          # two forced refreshes, each a newer staple
            time.sleep(1.05)
            st.refresh_now()
            assert st.refresh_due() == 1
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert not empty
    assert len(seen) == 3 and st.counters()["refreshes"]["ok"] == 3
    for got in seen:
        verified(spki, "good1", got)


# --------------------------------------------------------------------------
# the example server
# --------------------------------------------------------------------------

def test_example_server(spki, sresp, tmp_path):
    port = pkimod.free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "stapled_server.py"),
         "--cert", fullchain(spki, "must"), "--key", str(spki.leaves["must"].key),
         "--staples", str(tmp_path / "staples"), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=pkimod._pdeathsig)       # dies with the test run, even if it is killed
    lines = []
    listening = threading.Event()

    def read():                             # log lines come first (stderr is merged)
        for line in proc.stdout:
            lines.append(line)
            if f"listening on https://127.0.0.1:{port}/" in line:
                listening.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert listening.wait(20) and proc.poll() is None, "".join(lines)
        seen = s_client(spki, port, "must")
        assert seen["Cert Status"] == "good"
        assert list((tmp_path / "staples").glob("*.ocsp"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "stopped" in out
