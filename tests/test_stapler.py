"""ocsptools.stapler: the in-process Stapler for pyOpenSSL servers.

Real parts: a PKI of this module's own (so its responder can be stopped and
started freely), the real ``openssl ocsp`` responder on 127.0.0.1, pyOpenSSL
TLS servers on 127.0.0.1 and ``openssl s_client -status`` as the client.
The Stapler's clock is injected (real time plus an offset the test moves),
so half-lives and expiry are reached without waiting; the fake responder is
used only for answers a real responder will not give (an older response, a
response for another certificate).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("OpenSSL", reason="pyOpenSSL is not installed (pip install -e '.[test]')")
from OpenSSL import SSL  # noqa: E402

import pki as pkimod  # noqa: E402
from fake_responder import FakeResponder  # noqa: E402
from ocsptools import life, verify  # noqa: E402
from ocsptools.errors import FetchError, NotApplicable, Revoked, StoreError, UsageError  # noqa: E402
from ocsptools.openssl import OpenSSL  # noqa: E402
from ocsptools.staple import ResponseInfo, SingleResponse, Staple  # noqa: E402
from ocsptools.stapler import (EXPIRED, NOT_APPLICABLE, REVOKED, STAPLED, UNSTAPLED,  # noqa: E402
                               Schedule, Stapler, next_refresh, retry_at, serve_window,
                               servable, system_clock)

ROOT = Path(__file__).resolve().parent.parent
OSSL = OpenSSL()
UTC = timezone.utc
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NOJITTER = Schedule(jitter=0.0)


# --------------------------------------------------------------------------
# fixtures: a PKI of our own, its responder, a movable clock
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spki(tmp_path_factory):
    p = pkimod.build_pki(tmp_path_factory.mktemp("stapler-pki"))
    p.make_leaf("must", must_staple=True)
    p.make_leaf("mustnourl", must_staple=True, ocsp_urls=[])
    p.make_leaf("nourl", ocsp_urls=[])
    p.make_leaf("short", not_after=timedelta(hours=30))
    return p


@pytest.fixture(scope="module")
def _sresp(spki):
    with pkimod.Responder(spki) as r:
        yield r


@pytest.fixture
def sresp(_sresp):
    """This module's responder (1-day responses), running at the start of every test."""
    _sresp.ensure_running()
    yield _sresp
    _sresp.ensure_running()


class Clock:
    """Real UTC time plus an offset the test moves (the Stapler's injected clock)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return system_clock() + self.offset


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_stapler(clock):
    made = []

    def make(cache_dir=None, **kw):
        kw.setdefault("schedule", NOJITTER)
        kw.setdefault("clock", clock)
        kw.setdefault("timeout", 3.0)
        s = Stapler(cache_dir, **kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def fullchain(spki, name) -> str:
    return str(spki.leaves[name].fullchain)


def der_of(spki, name) -> bytes:
    text = spki.leaves[name].cert.read_text()
    body = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END", text, re.S).group(1)
    return base64.b64decode("".join(body.split()))


def verified(spki, name, der: bytes, now=None) -> Staple:
    """Verify DER for leaf NAME the way ocsptools does; assert its times are acceptable."""
    leaf = OSSL.parse_certificates([der_of(spki, name)])[0]
    issuer = OSSL.parse_certificates(
        OSSL.certificate_ders(spki.inter_cert.read_bytes()))[0]
    staple = verify.verify(der, leaf, issuer, OSSL)
    assert staple.cert_status == "good"
    assert not life.errors(life.problems(staple.life, now or system_clock()))
    return staple


# --------------------------------------------------------------------------
# a pyOpenSSL TLS server on 127.0.0.1 and openssl s_client
# --------------------------------------------------------------------------

class TLSServer:
    """Serves TLS on 127.0.0.1 with one pyOpenSSL context per SNI name (the first is the default);
    every context has the Stapler attached."""

    def __init__(self, stapler: Stapler, spki, names) -> None:
        self.contexts = {}
        for name in names:
            ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
            ctx.use_certificate_chain_file(str(spki.leaves[name].fullchain))
            ctx.use_privatekey_file(str(spki.leaves[name].key))
            stapler.attach(ctx)
            self.contexts[name] = ctx
        default = self.contexts[names[0]]

        def on_sni(conn):
            wanted = (conn.get_servername() or b"").decode()
            if wanted in self.contexts:
                conn.set_context(self.contexts[wanted])
        default.set_tlsext_servername_callback(on_sni)
        self.default = default
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            raw.setblocking(True)           # pyOpenSSL wants blocking sockets
            threading.Thread(target=self._handle, args=(raw,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        conn = SSL.Connection(self.default, raw)
        conn.set_accept_state()
        try:
            conn.do_handshake()
            try:
                conn.recv(1)                # until the client closes
            except SSL.Error:
                pass
        except Exception as exc:            # the client's business, but recorded
            self.errors.append(exc)
        finally:
            raw.close()

    def __enter__(self) -> "TLSServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def s_client(spki, port: int, servername: str) -> dict:
    """``openssl s_client -status``: the stapled response's fields, or {} when none was sent."""
    res = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", servername,
         "-status", "-CAfile", str(spki.root_cert), "-no-CApath", "-no-CAstore"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20,
        env=pkimod.openssl_env())
    out = res.stdout
    assert "BEGIN CERTIFICATE" in out or "Server certificate" in out, out + res.stderr
    if "OCSP response: no response sent" in out:
        return {}
    assert "OCSP Response Status: successful" in out, out
    fields = {}
    for key in ("Cert Status", "This Update", "Next Update", "Serial Number"):
        m = re.search(rf"^\s*{key}: (.*)$", out, re.M)
        fields[key] = m.group(1).strip() if m else None
    m = re.search(r"^subject=.*CN\s*=\s*(\S+)", out, re.M)
    fields["subject_cn"] = m.group(1) if m else None
    return fields


def stapled_der(port: int, servername: str) -> bytes:
    """The raw stapled bytes as a pyOpenSSL client receives them (b"" when none)."""
    got = []
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)

    def on_ocsp(conn, der, data):
        got.append(der)
        return True
    ctx.set_ocsp_client_callback(on_ocsp)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw.setblocking(True)                   # pyOpenSSL wants blocking sockets
    try:
        conn = SSL.Connection(ctx, raw)
        conn.set_tlsext_host_name(servername.encode())
        conn.request_ocsp()
        conn.set_connect_state()
        conn.do_handshake()
        conn.shutdown()
    finally:
        raw.close()
    return got[0] if got else b""


def openssl_time(dt: datetime) -> str:
    return dt.strftime("%b %e %H:%M:%S %Y GMT")


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def status_of(stapler: Stapler, name: str):
    return next(s for s in stapler.status() if s.name == name)


# --------------------------------------------------------------------------
# the schedule (pure)
# --------------------------------------------------------------------------

def _staple(this_update, next_update, *, status="good", serial=5, signer_not_after=None,
            verified_=True):
    single = SingleResponse("sha1", "AA", "BB", serial, status, this_update, next_update)
    info = ResponseInfo("successful", produced_at=this_update, responses=(single,))
    return Staple(b"\x30\x03\x0a\x01\x00", info, single, verified=verified_,
                  signer_not_after=signer_not_after)


@pytest.fixture(scope="module")
def leaf5(spki):
    """A Certificate value with serial 5 valid around T0 (from a real leaf, fields replaced)."""
    import dataclasses
    leaf = OSSL.parse_certificates([der_of(spki, "good1")])[0]
    return dataclasses.replace(leaf, serial=5, not_before=T0 - timedelta(days=30),
                               not_after=T0 + timedelta(days=30))


def test_servable_only_good_verified_current_staples(leaf5):
    good = _staple(T0, T0 + timedelta(days=4))
    assert servable(good, leaf5, T0 + timedelta(days=1))
    assert not servable(None, leaf5, T0)
    assert not servable(good, leaf5, T0 + timedelta(days=4))                # expired at nextUpdate
    assert not servable(_staple(T0, T0 + timedelta(days=4), status="revoked"), leaf5, T0)
    assert not servable(_staple(T0, T0 + timedelta(days=4), status="unknown"), leaf5, T0)
    assert not servable(_staple(T0, T0 + timedelta(days=4), verified_=False), leaf5, T0)
    assert not servable(_staple(T0, T0 + timedelta(days=4), serial=6), leaf5, T0)
    assert not servable(_staple(T0, None), leaf5, T0)                       # no nextUpdate
    early = _staple(T0, T0 + timedelta(days=4), signer_not_after=T0 + timedelta(days=1))
    assert servable(early, leaf5, T0 + timedelta(hours=23))
    assert not servable(early, leaf5, T0 + timedelta(days=1))               # signer expired
    future = _staple(T0 + timedelta(minutes=10), T0 + timedelta(days=4))
    assert not servable(future, leaf5, T0)                                  # beyond the skew
    assert servable(future, leaf5, T0 + timedelta(minutes=6))
    import dataclasses
    gone = dataclasses.replace(leaf5, not_after=T0 + timedelta(hours=1))
    assert not servable(good, gone, T0 + timedelta(hours=1))                # certificate expired
    # the window the handshake path checks is the same rule, precomputed
    assert serve_window(good, leaf5) == (T0 - timedelta(minutes=5), T0 + timedelta(days=4))
    assert serve_window(good, gone) == (T0 - timedelta(minutes=5), T0 + timedelta(hours=1))
    assert serve_window(early, leaf5)[1] == T0 + timedelta(days=1)
    assert serve_window(_staple(T0, None), leaf5) is None
    assert serve_window(_staple(T0, T0 + timedelta(days=4), status="revoked"), leaf5) is None


def test_the_schedule_is_lifes_rule_with_the_staplers_settings():
    """The rules are ocsptools.life's (tests/test_life.py); here: the Stapler's settings of them."""
    s = _staple(T0, T0 + timedelta(days=4))
    assert next_refresh(s, T0, NOJITTER, 0.0) == T0 + timedelta(days=2)
    early = _staple(T0, T0 + timedelta(days=4), signer_not_after=T0 + timedelta(days=1))
    assert next_refresh(early, T0, NOJITTER, 0.0) == T0 + timedelta(hours=12)
    # jitter only ever makes it earlier, by at most jitter x the time left until then
    jit = Schedule(jitter=0.1)
    assert next_refresh(s, T0, jit, 1.0) == T0 + timedelta(days=2) * 0.9
    # a pre-produced answer already past its half-life: not asked again before min_interval...
    now = T0 + timedelta(days=3)
    assert next_refresh(s, now, NOJITTER, 0.0) == now + timedelta(minutes=1)
    assert next_refresh(s, T0, Schedule(refresh_at=0.8, jitter=0), 0.0) == T0 + timedelta(days=3.2)
    # backoff: backoff_first doubling to backoff_max, Retry-After within the cap, never past
    # the end of the staple being served
    got = [retry_at(T0, n, NOJITTER) - T0 for n in range(1, 10)]
    assert got == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 60, 60, 60)]
    assert retry_at(T0, 1, NOJITTER, retry_after=600) == T0 + timedelta(minutes=10)
    until = T0 + timedelta(minutes=20)
    assert retry_at(T0, 7, NOJITTER, valid_until=until) == T0 + timedelta(minutes=5)
    custom = Schedule(jitter=0, backoff_first=timedelta(seconds=10), backoff_max=timedelta(minutes=5))
    assert [retry_at(T0, n, custom) - T0 for n in (1, 2, 6, 7)] == \
        [timedelta(seconds=s) for s in (10, 20, 300, 300)]


@pytest.mark.parametrize("kw", [dict(refresh_at=0), dict(refresh_at=1.0), dict(jitter=1.1),
                                dict(jitter=-0.1), dict(min_interval=timedelta(0)),
                                dict(backoff_first=timedelta(hours=2))])
def test_bad_schedules_refused(kw):
    with pytest.raises(UsageError):
        Schedule(**kw)


def test_bad_options_refused(tmp_path):
    with pytest.raises(UsageError):
        Stapler(method="put")
    with pytest.raises(UsageError):
        Stapler(hash_alg="md5")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create the staple directory|not a directory"):
        Stapler(tmp_path / "file")


# --------------------------------------------------------------------------
# the service with the real responder (no TLS server; injected clock)
# --------------------------------------------------------------------------

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


def test_outage_keeps_valid_staple_with_backoff(spki, sresp, make_stapler, clock):
    st = make_stapler()
    st.add(fullchain(spki, "good1"), name="good1")
    st.prestaple()
    first = status_of(st, "good1")
    sresp.stop()
    clock.offset = timedelta(hours=13)                       # past the half-life
    expected = [1, 2, 4, 8]
    for n, minutes in enumerate(expected, start=1):
        assert st.refresh_due() == 1
        s = status_of(st, "good1")
        now = clock()
        assert s.failures == n and "connection refused" in s.last_error
        assert abs((s.next_refresh - now) - timedelta(minutes=minutes)) <= timedelta(seconds=2)
        assert s.state == STAPLED and s.this_update == first.this_update
        assert st.staple_for(der_of(spki, "good1"))            # still served
        assert st.refresh_due() == 0                          # nothing due before the backoff ends
        clock.offset += timedelta(minutes=minutes)
    # the responder comes back: next attempt succeeds, the failure count resets
    sresp.start()
    time.sleep(1.05)                                          # a new thisUpdate (1 s resolution)
    assert st.refresh_due() == 1
    s = status_of(st, "good1")
    assert s.failures == 0 and s.last_error == "" and s.this_update > first.this_update


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


def test_revoked_is_not_served_and_remembered(spki, sresp, make_stapler, tmp_path, caplog):
    d = tmp_path / "staples"
    st = make_stapler(d)
    st.add(fullchain(spki, "revoked1"), name="r")
    with caplog.at_level(logging.ERROR, logger="ocsptools.stapler"):
        with pytest.raises(Revoked, match="REVOKED"):
            st.prestaple(require_all=True, timeout=5)
    assert any("REVOKED" in r.getMessage() for r in caplog.records)
    s = status_of(st, "r")
    assert s.state == REVOKED and st.staple_for(der_of(spki, "revoked1")) == b""
    assert s.next_refresh - system_clock() > timedelta(minutes=59)    # re-checked hourly
    # the verified revoked answer is persisted, so a restart does not serve an older "good" one
    again = make_stapler(d)
    assert again.add(fullchain(spki, "revoked1"), name="r").state == REVOKED
    assert again.staple_for(der_of(spki, "revoked1")) == b""


def test_unknown_certificate_and_broken_connections(spki, make_stapler, caplog):
    st = make_stapler()

    class Broken:
        def get_certificate(self):
            raise RuntimeError("boom")

    class NoCert:
        def get_certificate(self):
            return None

    with caplog.at_level(logging.WARNING, logger="ocsptools.stapler"):
        assert st.ocsp_callback(Broken(), None) == b""
        assert st.ocsp_callback(Broken(), None) == b""         # counted; logged once a minute
        assert st.ocsp_callback(NoCert(), None) == b""
        assert st.staple_for(der_of(spki, "good2")) == b""
        assert st.staple_for(der_of(spki, "good2")) == b""
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("OCSP callback failed (RuntimeError: boom)" in m for m in msgs) == 1
    assert sum("does not manage" in m for m in msgs) == 1
    counts = st.counters()["requests"]
    assert counts["error"] == 2 and counts["unknown_certificate"] == 3


def _two_answers(spki, sresp, tmp_path):
    """Two real responses for good1, the second one newer (thisUpdate 1 s later)."""
    a, b = tmp_path / "older.der", tmp_path / "newer.der"
    pkimod.ocsp_query(spki, "good1", sresp.url, out=a)
    time.sleep(1.05)
    pkimod.ocsp_query(spki, "good1", sresp.url, out=b)
    return a.read_bytes(), b.read_bytes()


def test_older_response_never_replaces_the_staple(spki, sresp, make_stapler, tmp_path, clock):
    older, newer = _two_answers(spki, sresp, tmp_path)
    d = tmp_path / "staples"
    with FakeResponder() as fake:
        fake.set(body=newer)
        st = make_stapler(d)
        info = st.add(fullchain(spki, "good1"), name="good1", urls=[fake.url])
        st.prestaple()
        assert st.staple_for(der_of(spki, "good1")) == newer
        fake.set(body=older)
        clock.offset = timedelta(hours=13)
        st.refresh_due()
        s = status_of(st, "good1")
        assert s.failures == 1 and "older response" in s.last_error
        assert st.staple_for(der_of(spki, "good1")) == newer
        assert Path(info.staple_file).read_bytes() == newer
        # the same answer again: unchanged, not a failure, asked again after a backoff
        fake.set(body=newer)
        clock.offset += timedelta(minutes=2)
        st.refresh_due()
        s = status_of(st, "good1")
        assert s.failures == 0 and st.counters()["refreshes"]["unchanged"] == 1
        assert s.next_refresh > clock()


def test_answer_for_another_certificate_is_refused(spki, sresp, make_stapler, tmp_path, clock):
    other = tmp_path / "good2.der"
    pkimod.ocsp_query(spki, "good2", sresp.url, out=other)
    with FakeResponder() as fake:
        fake.set(body=other.read_bytes())
        st = make_stapler()
        st.add(fullchain(spki, "good1"), name="good1", urls=[fake.url])
        with pytest.raises(FetchError, match="not a response for this certificate"):
            st.prestaple(require_all=True, timeout=0.5)
        assert st.staple_for(der_of(spki, "good1")) == b""


def test_processes_sharing_a_directory_adopt_each_others_staples(spki, sresp, make_stapler,
                                                                 tmp_path, clock):
    d = tmp_path / "shared"
    a = make_stapler(d)
    a.add(fullchain(spki, "good1"), name="good1")
    a.prestaple()
    first = status_of(a, "good1").this_update
    with FakeResponder() as fake:
        fake.set(status=500)
        b = make_stapler(d)                                  # starts from A's staple
        b.add(fullchain(spki, "good1"), name="good1", urls=[fake.url])
        assert status_of(b, "good1").state == STAPLED
        time.sleep(1.05)
        clock.offset = timedelta(hours=13)
        a.refresh_due()                                      # A renews and writes it
        assert status_of(a, "good1").this_update > first
        b.refresh_due()                                      # B takes A's from the disk
        assert fake.requests == []
        assert status_of(b, "good1").this_update == status_of(a, "good1").this_update
        assert b.counters()["refreshes"]["from_disk"] == 1


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


def test_metrics_bounded_labels(spki, sresp, make_stapler):
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    st = make_stapler()
    st.add(fullchain(spki, "good1"), name="good1")
    st.add(fullchain(spki, "good2"), name="good2")
    st.add(fullchain(spki, "nourl"), name="nourl")
    st.prestaple(require_all=True)
    st.register_metrics(registry, max_certificates=2)
    for _ in range(3):
        st.staple_for(der_of(spki, "good1"))
    for n in range(50):                                      # clients cannot add label values
        st.staple_for(b"\x30\x03" + bytes([n]))
    text = prometheus_client.generate_latest(registry).decode()
    assert 'ocsp_stapler_status_requests_total{result="stapled"} 3.0' in text
    assert 'ocsp_stapler_status_requests_total{result="unknown_certificate"} 50.0' in text
    assert 'ocsp_stapler_refreshes_total{result="ok"} 2.0' in text
    assert 'ocsp_stapler_certificates{state="stapled"} 2.0' in text
    assert 'ocsp_stapler_certificates{state="not-applicable"} 1.0' in text
    assert "ocsp_stapler_earliest_expiry_timestamp_seconds " in text
    cert_labels = set(re.findall(r'certificate="([^"]*)"', text))
    assert cert_labels == {"good1", "good2"}                 # capped at max_certificates=2
    series = [l for l in text.splitlines() if l and not l.startswith("#")]
    assert len(series) < 40
    with pytest.raises(UsageError, match="one Stapler per registry"):
        st.register_metrics(registry)


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


# --------------------------------------------------------------------------
# the example server and the API reference
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
