"""ocsp-check -H (ocsptools/check/live.py): the pure helpers and what s_client said (recorded runs in
tests/fixtures/check/s_client_*.json, made by record.py), then the staple a real TLS server on 127.0.0.1
sends (`openssl s_server -status_file`), TLS 1.3 and 1.2, no staple, expired/revoked/foreign staples,
STARTTLS smtp through a minimal SMTP front that relays to s_server, refused/non-TLS/silent servers and
the -t bound."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

import pki as pkimod
from conftest import command
from ocsptools.check import live as livemod
from ocsptools.openssl import interpret_s_client

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "check"))
import build  # noqa: E402
from tls_servers import PlainServer, SServer, SilentServer, SmtpStartTls  # noqa: E402

needs_faketime = pytest.mark.skipif(shutil.which("faketime") is None,
                                    reason="faketime not installed (Debian package faketime)")
DAY = dt.timedelta(days=1)
UTC = dt.timezone.utc
FIX = Path(__file__).resolve().parent / "fixtures" / "check"


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def human(seconds: int) -> str:
    """The command's duration style: to the minute above an hour, units that are zero left out."""
    seconds = abs(int(seconds))
    if seconds >= 3600:
        seconds -= seconds % 60
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not out):
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out)


def recorded(name: str) -> dict:
    return json.loads((FIX / f"s_client_{name}.json").read_text())


# --------------------------------------------------------------------------- pure helpers

@pytest.mark.parametrize("starttls, port", [(None, 443), ("smtp", 25), ("imap", 143), ("postgres", 5432)])
def test_default_port(starttls, port):
    assert livemod.default_port(starttls) == port


@pytest.mark.parametrize("host, sni", [("127.0.0.1", None), ("::1", None), ("[::1]", None),
                                       ("mail.example.org", "mail.example.org")])
def test_default_servername(host, sni):
    assert livemod.default_servername(host) == sni


@pytest.mark.parametrize("host, label", [("::1", "[::1]:443"), ("[::1]", "[::1]:443"),
                                         ("127.0.0.1", "127.0.0.1:443"), ("a.example", "a.example:443")])
def test_live_label(host, label):
    assert livemod.live_label(host, 443) == label


@pytest.mark.parametrize("name, problem", [
    ("tls13_staple", None),
    ("not_tls", "TLS handshake failed: wrong version number"),
    ("smtp_no_starttls", "TLS handshake failed: Didn't find STARTTLS in server response, trying "
                         "anyway... (wrong version number)"),
])
def test_handshake_problem(name, problem):
    rec = recorded(name)
    hs = interpret_s_client(rec["stdout"], rec["stderr"], rec["msg"])
    assert livemod.handshake_problem(hs) == problem


def test_handshake_problem_after_the_timeout():
    rec = recorded("not_tls")
    hs = interpret_s_client(rec["stdout"], rec["stderr"], rec["msg"], timed_out=True, budget=1.5)
    assert livemod.handshake_problem(hs) == "no complete TLS handshake within 1.5 s"


# The recorded s_client runs and the TLS decoding: tests/test_openssl_s_client.py,
# tests/test_codec_tls.py.


# --------------------------------------------------------------------------- real servers

class Live:
    def __init__(self, d: Path, p, at: dt.datetime, staples: dict) -> None:
        self.dir, self.pki, self.at, self.staples = d, p, at, staples

    def leaf(self, name: str):
        return self.pki.leaves[name]

    def server(self, leaf: str, staple: str | None = None, *, chain: bool = True, extra=()) -> SServer:
        lf = self.leaf(leaf)
        return SServer(lf.cert, lf.key, chain=self.pki.inter_cert if chain else None,
                       status_file=self.staples[staple] if staple else None, extra=extra)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Live:
    d = tmp_path_factory.mktemp("live")
    p = pkimod.build_pki(d / "pki")
    p.make_leaf("muststaple", must_staple=True)
    p.make_leaf("nourl", ocsp_urls=[])
    # a minute boundary just passed: staples are never "in the future" and times are predictable
    at = build.floor_minute(dt.datetime.now(UTC)) - dt.timedelta(minutes=1)
    s = d / "staples"
    s.mkdir()
    staples = {}
    for name, leaf, when in (("good", "good1", at), ("expired", "good1", at - 8 * DAY),
                             ("revoked", "revoked1", at), ("good2", "good2", at),
                             ("muststaple_expired", "muststaple", at - 8 * DAY),
                             ("muststaple", "muststaple", at)):
        staples[name] = s / f"{name}.der"
        build.respond(p, p.leaves[leaf].cert, staples[name],
                      at=when if shutil.which("faketime") else None)
    return Live(d, p, at, staples)


def run_check(*args, timeout=60):
    """Run ocsp-check on the real clock; return (rc, stdout lines, stderr, [start, end] seconds)."""
    start = dt.datetime.now(UTC).replace(microsecond=0)
    res = build.run_at(None, [command("ocsp-check"), *map(str, args)], timeout=timeout)
    end = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
    text = res.stdout.decode()
    assert "Traceback" not in text + res.stderr.decode(), res.stderr.decode()
    nows = [start + dt.timedelta(seconds=i) for i in range(int((end - start).total_seconds()) + 1)]
    return res.returncode, text.splitlines(), res.stderr.decode(), nows


def good_lines(label: str, at: dt.datetime, nows) -> list:
    nu = at + 7 * DAY
    lines = []
    for now in nows:
        left = int((nu - now).total_seconds())
        lines.append(f"OCSP OK - {label}: good, {human(left)} left (next update {iso(nu)}) "
                     f"| '{label}'={left}s;151200:;60480:;0;604800")
    return lines


# --------------------------------------------------------------------------- stapling servers

def test_good_staple_tls13(live):
    with live.server("good1", "good") as srv:
        label = f"127.0.0.1:{srv.port}"
        rc, out, err, nows = run_check("-H", "127.0.0.1", "-p", srv.port)
        assert rc == 0, out
        assert out[0] in good_lines(label, live.at, nows)
        assert len(out) == 1 and err == ""
        rc, out, _, _ = run_check("--json", "-H", "127.0.0.1", "-p", srv.port)
    obj = json.loads(out[0])
    assert obj["verified"] is True and obj["protocol"] == "TLSv1.3" and obj["source"] == "live"
    assert obj["path"] == label and obj["host"] == "127.0.0.1" and obj["port"] == srv.port
    assert obj["issuer"] == "the presented chain"
    assert obj["this_update"] == iso(live.at)


def test_good_staple_tls12(live):
    with live.server("good1", "good", extra=["-no_tls1_3"]) as srv:
        rc, out, _, _ = run_check("--json", "-v", "-H", "127.0.0.1", "-p", srv.port,
                                  "--servername", "good1")
    obj = json.loads(out[0])
    assert rc == 0 and obj["protocol"] == "TLSv1.2" and obj["verified"] is True
    assert obj["serial"] == live.leaf("good1").serial.lstrip("0")


def test_the_staple_checked_is_exactly_the_file_served(live):
    """Same bytes, same verdict: the live check and the file check agree to the field."""
    with live.server("good1", "good") as srv:
        _, out, _, _ = run_check("--json", "-H", "127.0.0.1", "-p", srv.port)
    _, fout, _, _ = run_check("--json", "--cert", live.leaf("good1").fullchain, live.staples["good"])
    a, b = json.loads(out[0]), json.loads(fout[0])
    for key in ("cert_status", "this_update", "next_update", "produced_at", "serial", "verified",
                "signer_not_after", "responder_id"):
        assert a[key] == b[key], key


@pytest.mark.parametrize("leaf, args, rc, line", [
    ("good1", (), 2, "CRITICAL - {label}: no staple sent, although the certificate names an OCSP "
                     "responder: turn stapling on (or check why the server has no valid staple) | '{label}'=U"),
    ("nourl", (), 0, "OK - {label}: no staple sent; not applicable: the certificate names no OCSP "
                     "responder"),
    ("nourl", ("--require-staple",), 2, "CRITICAL - {label}: no staple sent (--require-staple) | '{label}'=U"),
    ("muststaple", (), 2, "CRITICAL - {label}: no staple sent, but the certificate is Must-Staple (TLS "
                          "Feature status_request): clients will refuse the connection | '{label}'=U"),
], ids=["ocsp-url", "no-ocsp-url", "no-ocsp-url-required", "must-staple"])
def test_no_staple_sent(live, leaf, args, rc, line):
    with live.server(leaf) as srv:
        got, out, _, _ = run_check(*args, "-H", "127.0.0.1", "-p", srv.port)
    assert (got, out) == (rc, ["OCSP " + line.format(label=f"127.0.0.1:{srv.port}")])


@pytest.mark.parametrize("staple", [None, "good"])
def test_no_ocsp_url_is_decided_before_any_issuer_search(live, staple):
    """A presented leaf without OCSP URL is not applicable before anything else: its issuer is not
    looked for, not even with --aia at its caIssuers URL (a loopback server recording requests),
    although the server presents no chain.  A staple it sends anyway is judged without the issuer:
    one for another serial is left over."""
    from fake_responder import FakeResponder
    with FakeResponder() as ca_server:
        ca_server.set(status=404, body=b"no issuer here")
        leaf = live.pki.make_leaf(f"nourlaia{staple or ''}", ocsp_urls=[],
                                  ca_issuers=ca_server.url + "inter.cer")
        with SServer(leaf.cert, leaf.key, status_file=live.staples[staple] if staple else None) as srv:
            label = f"127.0.0.1:{srv.port}"
            rc, out, err, _ = run_check("--aia", "-H", "127.0.0.1", "-p", srv.port)
        assert ca_server.requests == []
    assert err == ""
    if staple is None:
        assert rc == 0 and out == [f"OCSP OK - {label}: no staple sent; not applicable: the "
                                   f"certificate names no OCSP responder"]
    else:
        assert rc == 2
        assert out == [f"OCSP CRITICAL - {label}: not a response for this certificate (serial "
                       f"{leaf.serial.lstrip('0')}); it covers serial(s) "
                       f"{live.leaf('good1').serial.lstrip('0')}; the certificate names no OCSP "
                       f"responder, so this staple is left over from an earlier certificate: remove "
                       f"it and turn stapling off | '{label}'=U"]


@needs_faketime
def test_expired_staple(live):
    with live.server("good1", "expired") as srv:
        rc, out, _, nows = run_check("-H", "127.0.0.1", "-p", srv.port)
    label = f"127.0.0.1:{srv.port}"
    nu = live.at - DAY
    assert rc == 2
    assert out[0] in [f"OCSP CRITICAL - {label}: expired at nextUpdate {iso(nu)}, "
                      f"{human((now - nu).total_seconds())} ago | '{label}'={int((nu - now).total_seconds())}s;"
                      f"151200:;60480:;0;604800" for now in nows]


@needs_faketime
def test_must_staple_with_expired_staple(live):
    with live.server("muststaple", "muststaple_expired") as srv:
        rc, out, _, _ = run_check("-H", "127.0.0.1", "-p", srv.port)
    assert rc == 2
    assert out[1] == "the certificate is Must-Staple: clients refuse connections without a valid staple"


def test_revoked_staple(live):
    with live.server("revoked1", "revoked") as srv:
        rc, out, _, _ = run_check("-H", "127.0.0.1", "-p", srv.port)
    assert rc == 2
    assert out[0].startswith(f"OCSP CRITICAL - 127.0.0.1:{srv.port}: REVOKED at ")
    assert "(keyCompromise)" in out[0]


def test_staple_of_another_certificate(live):
    with live.server("good1", "good2") as srv:
        rc, out, _, _ = run_check("-H", "127.0.0.1", "-p", srv.port)
    assert rc == 2
    assert out[0].startswith(f"OCSP CRITICAL - 127.0.0.1:{srv.port}: not a response for this certificate "
                             f"(serial {live.leaf('good1').serial.lstrip('0')}")


def test_server_without_chain(live):
    """Only the leaf presented: the staple is inspected, and says so; -i restores verification."""
    with live.server("good1", "good", chain=False) as srv:
        rc, out, _, _ = run_check("-H", "127.0.0.1", "-p", srv.port)
        assert rc == 0
        assert out[0].endswith("(signature and CertID not verified) | " + out[0].split(" | ")[1])
        assert out[1].startswith("signature and CertID NOT verified: the server did not present the "
                                 "issuer of its certificate")
        rc, out, _, _ = run_check("--json", "-i", live.pki.inter_cert, "-H", "127.0.0.1", "-p", srv.port)
    obj = json.loads(out[0])
    assert rc == 0 and obj["verified"] is True and obj["issuer"] == str(live.pki.inter_cert)


def test_must_staple_server_without_chain(live):
    """A Must-Staple certificate whose staple cannot be verified (issuer not presented, no -i) is
    CRITICAL, never OK "not verified": the staple may be badly signed; -i restores the verdict."""
    with live.server("muststaple", "muststaple", chain=False) as srv:
        label = f"127.0.0.1:{srv.port}"
        rc, out, _, nows = run_check("-H", "127.0.0.1", "-p", srv.port)
        assert rc == 2
        perfs = [line.split(" | ")[1] for line in good_lines(label, live.at, nows)]
        assert out[0] in [f"OCSP CRITICAL - {label}: cannot verify the staple of a Must-Staple "
                          f"certificate; give -i ISSUER (signature and CertID not verified) | {p}"
                          for p in perfs]
        assert out[1].startswith("good, ")
        assert out[2].startswith("signature and CertID NOT verified: the server did not present the "
                                 "issuer of its certificate")
        rc, out, _, nows = run_check("-i", live.pki.inter_cert, "-H", "127.0.0.1", "-p", srv.port)
        assert rc == 0 and out[0] in good_lines(label, live.at, nows)


# --------------------------------------------------------------------------- STARTTLS

def test_starttls_smtp(live):
    with live.server("good1", "good") as backend, SmtpStartTls(backend.port) as smtp:
        label = f"127.0.0.1:{smtp.port}"
        rc, out, _, nows = run_check("-H", "127.0.0.1", "-p", smtp.port, "--starttls", "smtp")
    assert rc == 0
    assert out[0] in good_lines(label, live.at, nows)


def test_starttls_smtp_no_staple(live):
    with live.server("good1") as backend, SmtpStartTls(backend.port) as smtp:
        rc, out, _, _ = run_check("-H", "127.0.0.1", "-p", smtp.port, "--starttls", "smtp")
    assert rc == 2 and out[0].startswith(f"OCSP CRITICAL - 127.0.0.1:{smtp.port}: no staple sent")


def test_starttls_not_offered(live):
    with live.server("good1", "good") as backend, SmtpStartTls(backend.port, starttls=False) as smtp:
        rc, out, _, _ = run_check("-t", "5", "-H", "127.0.0.1", "-p", smtp.port, "--starttls", "smtp")
    assert rc == 2
    assert out[0].startswith(f"OCSP CRITICAL - 127.0.0.1:{smtp.port}: TLS handshake failed: ")
    assert "STARTTLS" in out[0]


# --------------------------------------------------------------------------- failures

def test_connection_refused():
    with socket.socket() as s:                 # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, out, _, _ = run_check("-H", "127.0.0.1", "-p", port)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - 127.0.0.1:{port}: cannot connect: Connection refused "
                   f"| '127.0.0.1:{port}'=U"]


def test_not_tls():
    with PlainServer() as srv:
        rc, out, _, _ = run_check("-H", "127.0.0.1", "-p", srv.port)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - 127.0.0.1:{srv.port}: TLS handshake failed: wrong version number "
                   f"| '127.0.0.1:{srv.port}'=U"]


def test_silent_server_is_bounded_by_the_timeout():
    with SilentServer() as srv:
        start = time.monotonic()
        rc, out, _, _ = run_check("-t", "2", "-H", "127.0.0.1", "-p", srv.port)
        took = time.monotonic() - start
    assert rc == 2
    assert out == [f"OCSP CRITICAL - 127.0.0.1:{srv.port}: no TLS handshake within 1.5 s "
                   f"| '127.0.0.1:{srv.port}'=U"]
    assert took < 3.5


def test_live_and_files_together(live, tmp_path):
    missing = tmp_path / "gone.ocsp"
    with live.server("good1", "good") as srv:
        rc, out, _, _ = run_check(missing, "-H", "127.0.0.1", "-p", srv.port)
    assert rc == 2
    assert out[0].startswith(f"OCSP CRITICAL - 2 staples: 1 CRITICAL ({missing}), 1 OK | '{missing}'=U "
                             f"'127.0.0.1:{srv.port}'=")
    assert out[2].startswith(f"OK: 127.0.0.1:{srv.port}: good, ")


def test_cert_option_is_for_files_only(live):
    rc, out, err, _ = run_check("-H", "127.0.0.1", "--cert", live.leaf("good1").cert)
    assert rc == 3 and out[0].startswith("OCSP UNKNOWN - --cert applies to STAPLE files")


def test_openssl_whose_s_client_lacks_options_is_unknown(tmp_path):
    """An old or stripped openssl (here: a wrapper refusing -msgfile) makes the check UNKNOWN."""
    fake = tmp_path / "openssl"
    fake.write_text("#!/bin/sh\n"
                    'if [ "$1" = s_client ]; then\n'
                    '  echo "s_client: Unknown option: -msgfile" >&2\n'
                    '  echo "s_client: Use -help for summary." >&2\n'
                    "  exit 1\n"
                    "fi\n"
                    f'exec {shutil.which("openssl")} "$@"\n')
    fake.chmod(0o755)
    rc, out, err, _ = run_check("--openssl", fake, "-H", "127.0.0.1", "-p", "1")
    assert rc == 3
    assert out == [f"OCSP UNKNOWN - {fake} s_client cannot do live checks here (s_client: Unknown option: "
                   f"-msgfile); use OpenSSL 1.1 or later, or name one with --openssl PATH"]
