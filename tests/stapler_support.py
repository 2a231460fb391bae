"""Fixtures and helpers of the Stapler's tests (tests/test_stapler*.py), with real parts.

A PKI of the test module's own (so its responder can be stopped and started
freely), the real ``openssl ocsp`` responder on 127.0.0.1, pyOpenSSL TLS
servers on 127.0.0.1 and ``openssl s_client -status`` as the client.  The
Stapler's clock is injected (real time plus an offset the test moves), so
half-lives and expiry are reached without waiting.  A test module uses the
fixtures by importing them (``from stapler_support import spki, sresp, ...``).
"""

from __future__ import annotations

import base64
import re
import socket
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("OpenSSL", reason="pyOpenSSL is not installed (pip install -e '.[test]')")
from OpenSSL import SSL  # noqa: E402

import pki as pkimod  # noqa: E402
from ocsptools import life, verify  # noqa: E402
from ocsptools.openssl import OpenSSL  # noqa: E402
from ocsptools.staple import Staple  # noqa: E402
from ocsptools.stapler import Schedule, Stapler, system_clock  # noqa: E402

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
def stapler_responder(spki):
    with pkimod.Responder(spki) as r:
        yield r


@pytest.fixture
def sresp(stapler_responder):
    """The module's responder (1-day responses), running at the start of every test."""
    stapler_responder.ensure_running()
    yield stapler_responder
    stapler_responder.ensure_running()


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
