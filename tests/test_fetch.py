"""ocsp-fetch end to end: the real console script against a real `openssl ocsp` responder on 127.0.0.1."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

import pki as pkimod
from conftest import ROOT, assert_one_line_error, run_cmd, unprivileged
from fake_responder import Answer, serve_files, status_only
from test_security import NOBODY, needs_root

ENV = dict(os.environ, LC_ALL="C", SSL_CERT_FILE=os.devnull)


def openssl_verifies(pki, staple: Path, cert: Path, issuer=None) -> str:
    """Independent check with the openssl CLI, trusting the root (as a TLS client would)."""
    res = subprocess.run(["openssl", "ocsp", "-respin", str(staple), "-issuer", str(issuer or pki.inter_cert),
                          "-cert", str(cert), "-CAfile", str(pki.root_cert), "-no_nonce"],
                         capture_output=True, text=True, env=ENV)
    assert "Response verify OK" in res.stderr, res.stderr
    return res.stdout


def fetch(*args, **kw):
    return run_cmd("ocsp-fetch", *args, **kw)


@pytest.fixture
def installed(tmp_path, pki, responder):
    """A good staple for good1 already installed at tmp/staple.der (mode 0640)."""
    out = tmp_path / "staple.der"
    res = fetch("-i", pki.inter_cert, "-o", out, pki.leaves["good1"].cert)
    assert res.returncode == 0, res.stderr
    os.chmod(out, 0o640)
    return out


def assert_untouched(path: Path, before: bytes):
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if "ocsptools-tmp" in p.name]


# --- success paths -----------------------------------------------------------

def test_fetch_writes_a_staple_openssl_verifies(tmp_path, pki, responder):
    out = tmp_path / "s.der"
    res = fetch(pki.leaves["good1"].fullchain, "-o", out)
    assert res.returncode == 0, res.stderr
    line = res.stderr.decode().strip()
    assert line.startswith(f"{pki.leaves['good1'].fullchain}: good, this update 20")
    assert line.endswith("Z") and "next update 20" in line
    assert "good1.pem: good" in openssl_verifies(pki, out, pki.leaves["good1"].cert).replace(
        str(pki.leaves["good1"].cert), "good1.pem")
    assert oct(out.stat().st_mode & 0o777) == "0o644"


def test_stdout_der_pipes_into_openssl(pki, responder):
    res = fetch("-q", pki.leaves["good1"].fullchain)
    assert res.returncode == 0 and res.stderr == b""
    assert res.stdout[:1] == b"\x30"
    check = subprocess.run(["openssl", "ocsp", "-respin", "/dev/stdin", "-issuer", str(pki.inter_cert),
                            "-cert", str(pki.leaves["good1"].cert), "-CAfile", str(pki.root_cert), "-no_nonce"],
                           input=res.stdout, capture_output=True, env=ENV)
    assert b"Response verify OK" in check.stderr and b": good" in check.stdout


def test_stdin_certificate_and_base64_format(pki, responder):
    res = fetch("-", "--format", "base64", input=pki.leaves["good1"].fullchain.read_bytes())
    assert res.returncode == 0, res.stderr
    assert res.stderr.decode().startswith("standard input: good")
    der = base64.b64decode(res.stdout.strip(), validate=True)
    assert der[:1] == b"\x30" and res.stdout.endswith(b"\n") and res.stdout.count(b"\n") == 1


def test_pem_format(tmp_path, pki, responder):
    out = tmp_path / "s.pem"
    assert fetch(pki.leaves["good1"].fullchain, "-o", out, "--format", "pem").returncode == 0
    assert out.read_text().startswith("-----BEGIN OCSP RESPONSE-----")


def test_refuses_binary_to_a_terminal(pki):
    import pty
    master, slave = pty.openpty()
    try:
        res = subprocess.run([shutil.which("ocsp-fetch") or str(Path(os.sys.executable).parent / "ocsp-fetch"),
                              str(pki.leaves["good1"].fullchain)], stdout=slave, stderr=subprocess.PIPE,
                             timeout=30)
    finally:
        os.close(master)
        os.close(slave)
    assert res.returncode == 2
    assert "terminal" in assert_one_line_error(res.stderr)


def test_get_and_post(tmp_path, pki, responder):
    leaf = pki.leaves["good1"].fullchain
    before = responder.output.count("POST /")
    res = fetch(leaf, "-o", tmp_path / "a.der", "-v", "--method", "get")
    assert res.returncode == 0 and b"by GET" in res.stderr
    res = fetch(leaf, "-o", tmp_path / "b.der", "-v", "--method", "post")
    assert res.returncode == 0 and b"by POST" in res.stderr
    deadline = time.monotonic() + 2
    while responder.output.count("POST /") <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert responder.output.count("POST /") > before
    assert "GET /" in responder.output
    res = fetch(leaf, "-o", tmp_path / "c.der", "-v")       # auto: short request -> GET
    assert b"by GET" in res.stderr


def test_refused_get_falls_back_to_post(tmp_path, pki, fake, responder):
    good = tmp_path / "good.der"
    assert fetch(pki.leaves["good1"].fullchain, "-o", good).returncode == 0
    fake.set(handler=lambda req: Answer(status=405, body=b"no GET", content_type="text/plain")
             if req.method == "GET" else Answer(body=good.read_bytes()))
    res = fetch(pki.leaves["good1"].fullchain, "-u", fake.url, "-v", "-o", tmp_path / "x.der")
    assert res.returncode == 0, res.stderr
    assert fake.methods() == ["GET", "POST"]
    assert fake.requests[1].headers["content-type"] == "application/ocsp-request"


def test_failover_from_dead_first_url(tmp_path, pki, responder):
    dead = f"http://127.0.0.1:{pkimod.free_port()}/"
    leaf = pki.make_leaf("failover", ocsp_urls=[dead, pki.ocsp_url])
    responder.resync()
    res = fetch(leaf.fullchain, "-o", tmp_path / "s.der", "-v")
    assert res.returncode == 0, res.stderr
    assert f"answer from {pki.ocsp_url}".encode() in res.stderr


def test_failover_when_openssl_fails_on_one_answer(tmp_path, pki, fake, responder):
    # an --openssl wrapper that hangs (until the timeout kills it) on the first URL's answer only
    marker = tmp_path / "marker.der"
    marker.write_bytes(status_only("tryLater"))
    wrapper = tmp_path / "openssl-wrapper"
    wrapper.write_text(f"""#!/bin/sh
for a in "$@"; do
  if [ -f "$a" ] && cmp -s "$a" '{marker}'; then exec sleep 30; fi
done
exec '{shutil.which("openssl")}' "$@"
""")
    wrapper.chmod(0o755)
    fake.set(body=marker.read_bytes())
    leaf = pki.leaves["good1"].fullchain
    res = fetch(leaf, "-u", fake.url, "-u", pki.ocsp_url, "--openssl", wrapper, "--timeout", "2",
                "-v", "-o", tmp_path / "s.der")
    assert res.returncode == 0, res.stderr
    assert fake.requests and f"answer from {pki.ocsp_url}".encode() in res.stderr
    # alone, that URL's failure is one line naming it and what openssl did
    res = fetch(leaf, "-u", fake.url, "--openssl", wrapper, "--timeout", "2", "-o", tmp_path / "t.der")
    assert res.returncode == 1
    line = assert_one_line_error(res.stderr)
    assert fake.url in line and "timed out" in line
    assert not (tmp_path / "t.der").exists()


def test_sha256_certid(tmp_path, pki, responder):
    out = tmp_path / "s.der"
    assert fetch(pki.leaves["good1"].fullchain, "--hash", "sha256", "-o", out).returncode == 0
    text = subprocess.run(["openssl", "ocsp", "-respin", str(out), "-resp_text", "-noverify"],
                          capture_output=True, text=True, env=ENV).stdout
    assert "Hash Algorithm: sha256" in text


# --- issuer discovery ----------------------------------------------------------

@pytest.mark.parametrize("layout", ["fullchain", "issuer", "certbot"])
def test_issuer_discovery(layout, leaf_dir, pki, responder):
    cert = leaf_dir("good1", layout=layout)
    res = fetch(cert, "-o", cert.parent / "s.der", "-v")
    assert res.returncode == 0, res.stderr
    expected = {"fullchain": "(bundle)", "issuer": "cert.pem.issuer", "certbot": "chain.pem"}[layout]
    assert expected in res.stderr.decode()


@pytest.mark.parametrize("bundle,dot_issuer,chain,expected", [
    ("right", "right", "right", "(bundle)"),         # the bundle beats CERT.issuer and chain.pem
    (None, "right", "right", "cert.pem.issuer"),      # CERT.issuer beats chain.pem
    (None, "wrong", "right", "chain.pem"),            # a wrong CERT.issuer is skipped (signature)
    ("wrong", "right", None, "cert.pem.issuer"),      # so is a wrong certificate in the bundle
])
def test_issuer_discovery_order(bundle, dot_issuer, chain, expected, tmp_path, pki, responder):
    files = {"right": pki.inter_cert.read_bytes(), "wrong": pki.other_inter_cert.read_bytes()}
    cert = tmp_path / "cert.pem"
    cert.write_bytes(pki.leaves["good1"].cert.read_bytes() + (files[bundle] if bundle else b""))
    if dot_issuer:
        (tmp_path / "cert.pem.issuer").write_bytes(files[dot_issuer])
    if chain:
        (tmp_path / "chain.pem").write_bytes(files[chain])
    res = fetch(cert, "--no-aia", "-v", "-o", tmp_path / "s.der")
    assert res.returncode == 0, res.stderr
    used = [l for l in res.stderr.decode().splitlines() if " from " in l]
    assert len(used) == 1 and used[0].split(" from ")[1].split(";")[0].endswith(expected), used


def test_issuer_from_ca_dir(tmp_path, leaf_dir, pki, responder):
    cert = leaf_dir("good1")
    cadir = tmp_path / "cas"
    cadir.mkdir()
    shutil.copy(pki.other_inter_cert, cadir / "a-other.pem")    # same root, wrong issuer: skipped
    shutil.copy(pki.inter_cert, cadir / "b-inter.crt")
    (cadir / "c-key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    res = fetch(cert, "--ca-dir", cadir, "-o", cert.parent / "s.der", "-v")
    assert res.returncode == 0, res.stderr
    assert "b-inter.crt" in res.stderr.decode()


@pytest.mark.parametrize("encoding", ["der", "pem", "pkcs7"])
def test_issuer_from_aia_ca_issuers(encoding, tmp_path, pki, fake, responder):
    inter_pem = pki.inter_cert.read_bytes()
    if encoding == "der":
        body = subprocess.run(["openssl", "x509", "-in", str(pki.inter_cert), "-outform", "DER"],
                              capture_output=True, env=ENV).stdout
    elif encoding == "pkcs7":
        body = subprocess.run(["openssl", "crl2pkcs7", "-nocrl", "-certfile", str(pki.inter_cert),
                               "-outform", "DER"], capture_output=True, env=ENV).stdout
    else:
        body = inter_pem
    fake.set(handler=serve_files({"/inter.cer": (body, "application/pkix-cert")}))
    leaf = pki.make_leaf(f"aia{encoding}", ca_issuers=fake.url + "inter.cer")
    responder.resync()
    res = fetch(leaf.cert, "-o", tmp_path / "s.der", "-v")
    assert res.returncode == 0, res.stderr
    assert "inter.cer" in res.stderr.decode()


CAP = 1024 * 1024                                   # transport.MAX_RESPONSE_SIZE


@pytest.mark.parametrize("answer,needle", [
    (dict(delay=30), "no answer within 1 s"),
    (dict(body=b"0" * 2000, drip=0.2), "no complete answer within 1 s"),
    (dict(body=b"0" * (CAP + 1), content_type="application/pkix-cert"), f"exceeds the {CAP}-byte limit"),
    (dict(body=b"0" * (CAP + 1), content_type="application/pkix-cert", framing="close"),
     f"exceeds the {CAP}-byte limit"),
], ids=["hang", "drip", "too-large", "too-large-unannounced"])
def test_aia_ca_issuers_download_is_bounded(answer, needle, request, tmp_path, pki, fake):
    fake.set(**answer)
    url = fake.url + "inter.cer"
    leaf = pki.make_leaf(f"aialimit-{request.node.callspec.id}", ca_issuers=url)
    cert = tmp_path / "cert.pem"
    shutil.copy(leaf.cert, cert)                    # alone: the issuer can only come from AIA
    start = time.monotonic()
    res = fetch(cert, "--timeout", "1", "-o", tmp_path / "s.der")
    elapsed = time.monotonic() - start
    assert len(fake.requests) == 1
    assert res.returncode == 2
    line = assert_one_line_error(res.stderr)
    assert url in line and needle in line and "AIA caIssuers" in line and "-i FILE" in line
    assert elapsed < 8, elapsed
    assert not (tmp_path / "s.der").exists()


def test_issuer_must_really_verify(tmp_path, pki, responder):
    # the other intermediate has the same root and a plausible name, but did not sign the leaf
    res = fetch(pki.leaves["good1"].cert, "-i", pki.other_inter_cert, "-o", tmp_path / "s.der")
    assert res.returncode == 2
    assert "did not issue" in assert_one_line_error(res.stderr)
    assert not (tmp_path / "s.der").exists()


def test_issuer_not_found(tmp_path, leaf_dir, pki):
    cert = leaf_dir("good1")
    res = fetch(cert, "--no-aia", "-o", cert.parent / "s.der")
    assert res.returncode == 2
    assert "issuer not found" in assert_one_line_error(res.stderr)


# --- exit statuses and refusals -------------------------------------------------

def test_revoked_exit_4_writes_nothing(installed, pki, responder):
    target = installed.parent / "revoked.der"
    res = fetch(pki.leaves["revoked1"].fullchain, "-o", target)
    assert res.returncode == 4
    assert "REVOKED" in assert_one_line_error(res.stderr)
    assert not target.exists()
    res = fetch(pki.leaves["revoked1"].fullchain, "-o", target, "--allow-revoked")
    assert res.returncode == 4 and target.exists()
    assert "revoked" in openssl_verifies(pki, target, pki.leaves["revoked1"].cert)


def test_no_ocsp_url_is_not_applicable(tmp_path, pki):
    leaf = pki.make_leaf("nourl", ocsp_urls=[])
    res = fetch(leaf.fullchain, "-o", tmp_path / "s.der")
    assert res.returncode == 3
    line = assert_one_line_error(res.stderr)
    assert "no OCSP responder" in line and "turn stapling off" in line


@pytest.fixture(scope="module")
def nourl_aia(pki):
    """A leaf with no OCSP URL whose AIA caIssuers points at a loopback server (set per test)."""
    from fake_responder import FakeResponder
    with FakeResponder() as ca_server:
        leaf = pki.make_leaf("nourlaia", ocsp_urls=[], ca_issuers=ca_server.url + "inter.cer")
        yield leaf, ca_server


@pytest.mark.parametrize("extra", [[], ["--no-aia"]])
def test_no_ocsp_url_decided_before_any_issuer_search(extra, tmp_path, pki, nourl_aia):
    leaf, ca_server = nourl_aia
    ca_server.requests.clear()
    ca_server.set(handler=serve_files({"/inter.cer": (pki.inter_cert.read_bytes(), "application/pkix-cert")}))
    bare = tmp_path / "cert.pem"                     # no bundle, no .issuer, no chain.pem beside it
    shutil.copy(leaf.cert, bare)
    res = fetch(bare, *extra, "-o", tmp_path / "s.der")
    assert res.returncode == 3, res.stderr
    line = assert_one_line_error(res.stderr)
    assert "no longer offers OCSP" in line and "turn stapling off" in line and "-u URL" in line
    assert ca_server.requests == []                 # the caIssuers URL was never contacted
    assert not (tmp_path / "s.der").exists()


@pytest.mark.parametrize("args,needle", [
    (["/nonexistent/cert.pem"], "no such file"),
    (["--bogus-option", "x.pem"], "unrecognized arguments"),
    (["--method", "put", "x.pem"], "invalid choice"),
    (["-u", "ftp://127.0.0.1/", "x.pem"], "not an http"),
    (["--timeout", "-1", "x.pem"], "must be positive"),
])
def test_usage_and_input_errors_exit_2(args, needle):
    res = fetch(*args)
    assert res.returncode == 2
    assert needle in assert_one_line_error(res.stderr)


@pytest.mark.parametrize("content,needle", [
    (b"", "empty"),
    (b"hello, I am not a certificate\n", "no certificate"),
    (b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n", "private key"),
    (b"-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n",
     "the CERTIFICATE block at line 1 is damaged (its base64 is not valid)"),
    (b"-----BEGIN CERTIFICATE-----\nMIIBIjAN\n-----END CERTIFICATE-----\n",
     "the CERTIFICATE block at line 1 is damaged (its DER is broken: "),
])
def test_garbage_certificate_files(tmp_path, content, needle):
    bad = tmp_path / "bad.pem"
    bad.write_bytes(content)
    res = fetch(bad, "-o", tmp_path / "s.der")
    assert res.returncode == 2
    line = assert_one_line_error(res.stderr)
    assert str(bad) in line and needle in line


def test_ca_certificate_is_not_a_leaf(tmp_path, pki):
    res = fetch(pki.inter_cert, "-o", tmp_path / "s.der")
    assert res.returncode == 2
    assert "CA certificate" in assert_one_line_error(res.stderr)


@pytest.mark.parametrize("status", ["tryLater", "unauthorized", "malformedRequest", "internalError"])
def test_responder_error_statuses_rejected(status, installed, pki, fake):
    before = installed.read_bytes()
    fake.set(body=status_only(status))
    res = fetch(pki.leaves["good1"].fullchain, "-u", fake.url, "-o", installed)
    assert res.returncode == 1
    assert status in assert_one_line_error(res.stderr)
    assert_untouched(installed, before)


def test_response_for_another_serial_rejected(installed, pki, fake, responder, tmp_path):
    other = tmp_path / "other.der"
    assert fetch(pki.leaves["good2"].fullchain, "-o", other).returncode == 0
    before = installed.read_bytes()
    fake.set(body=other.read_bytes())
    res = fetch(pki.leaves["good1"].fullchain, "-u", fake.url, "-o", installed)
    assert res.returncode == 1
    assert "not a response for this certificate" in assert_one_line_error(res.stderr)
    assert_untouched(installed, before)


def test_delegated_signer_without_ocsp_signing_rejected(installed, pki):
    before = installed.read_bytes()
    with pkimod.Responder(pki, port=pkimod.free_port(), signer="nosign") as bad:
        res = fetch(pki.leaves["good1"].fullchain, "-u", bad.url, "-o", installed)
    assert res.returncode == 1
    assert "OCSPSigning" in assert_one_line_error(res.stderr)
    assert_untouched(installed, before)


def test_delegated_signer_not_embedded_rejected(installed, pki):
    before = installed.read_bytes()
    with pkimod.Responder(pki, port=pkimod.free_port(), embed_certs=False) as bad:
        res = fetch(pki.leaves["good1"].fullchain, "-u", bad.url, "-o", installed)
    assert res.returncode == 1
    assert "not embedded" in assert_one_line_error(res.stderr)
    assert_untouched(installed, before)


def test_issuer_signed_response_accepted(tmp_path, pki):
    with pkimod.Responder(pki, port=pkimod.free_port(), signer="issuer") as r:
        res = fetch(pki.leaves["good1"].fullchain, "-u", r.url, "-o", tmp_path / "s.der")
    assert res.returncode == 0, res.stderr


def test_bad_signature_rejected(installed, pki):
    before = installed.read_bytes()
    with pkimod.Responder(pki, port=pkimod.free_port(), extra=["-badsig"]) as bad:
        res = fetch(pki.leaves["good1"].fullchain, "-u", bad.url, "-o", installed)
    assert res.returncode == 1
    assert "signature does not verify" in assert_one_line_error(res.stderr)
    assert_untouched(installed, before)


def test_expired_signer_rejected_and_early_expiry_warned(installed, pki, tmp_path):
    before = installed.read_bytes()
    expired = pki.make_signer("expired", not_before=timedelta(days=-10), not_after=timedelta(days=-1))
    with pkimod.Responder(pki, port=pkimod.free_port(), signer=expired) as bad:
        res = fetch(pki.leaves["good1"].fullchain, "-u", bad.url, "-o", installed)
    assert res.returncode == 1
    assert "expired" in assert_one_line_error(res.stderr)
    assert_untouched(installed, before)
    short = pki.make_signer("short", not_after=timedelta(hours=2))
    with pkimod.Responder(pki, port=pkimod.free_port(), signer=short) as r:
        res = fetch(pki.leaves["good1"].fullchain, "-u", r.url, "-o", tmp_path / "s.der")
        assert res.returncode == 0
        err = res.stderr.decode()
        assert "warning" in err and "before nextUpdate" in err
        # -q silences the summary line, never a warning a cron user must see
        res = fetch(pki.leaves["good1"].fullchain, "-u", r.url, "-q", "-o", tmp_path / "q.der")
    assert res.returncode == 0
    line = assert_one_line_error(res.stderr)
    assert line.startswith("ocsp-fetch: warning:") and "before nextUpdate" in line
    assert "good, this update" not in res.stderr.decode()


def test_no_next_update_rejected(installed, pki):
    before = installed.read_bytes()
    with pkimod.Responder(pki, port=pkimod.free_port(), ndays=None) as r:
        res = fetch(pki.leaves["good1"].fullchain, "-u", r.url, "-o", installed)
    assert res.returncode == 1
    assert "no nextUpdate" in assert_one_line_error(res.stderr)
    assert_untouched(installed, before)


def test_unknown_status_exit_1(installed, pki):
    leaf = pki.make_leaf("stranger", issuer="other")          # not in the index: unknown
    res = fetch(leaf.fullchain, "-u", pki.ocsp_url, "-o", installed.parent / "u.der")
    # the other intermediate's CertID is not the responder's CA: openssl says unknown or unauthorized
    assert res.returncode == 1
    assert_one_line_error(res.stderr)
    assert not (installed.parent / "u.der").exists()


@pytest.mark.parametrize("answer,needle", [
    (dict(status=500, body=b"oops", content_type="text/plain"), "HTTP 500"),
    (dict(status=404, body=b"nope", content_type="text/plain"), "HTTP 404"),
    (dict(status=301, body=b"", headers={"Location": "http://127.0.0.1:1/x"}), "redirects are not followed"),
    (dict(body=b""), "empty"),
    (dict(body=b"<html>hello</html>", content_type="text/html"), "not a DER OCSP response"),
    (dict(reset=True), "connection"),
])
def test_http_faults_leave_staple_untouched(answer, needle, installed, pki, fake):
    before = installed.read_bytes()
    fake.set(**answer)
    res = fetch(pki.leaves["good1"].fullchain, "-u", fake.url, "-o", installed, "--method", "post")
    assert res.returncode == 1
    assert needle in assert_one_line_error(res.stderr)
    assert_untouched(installed, before)


def test_hung_responder_times_out(installed, pki, fake):
    before = installed.read_bytes()
    fake.set(delay=30, body=b"")
    start = time.monotonic()
    res = fetch(pki.leaves["good1"].fullchain, "-u", fake.url, "-o", installed, "--timeout", "1")
    assert time.monotonic() - start < 8
    assert res.returncode == 1
    assert "within 1 s" in assert_one_line_error(res.stderr)
    assert_untouched(installed, before)


def test_older_response_refused_then_forced(installed, pki, fake, tmp_path, responder):
    older = tmp_path / "older.der"
    shutil.copy(installed, older)
    time.sleep(1.1)                                 # thisUpdate has one-second resolution
    newer_res = fetch(pki.leaves["good1"].fullchain, "-o", installed)
    assert newer_res.returncode == 0
    newest = installed.read_bytes()
    assert newest != older.read_bytes()
    fake.set(body=older.read_bytes())
    res = fetch(pki.leaves["good1"].fullchain, "-u", fake.url, "-o", installed)
    assert res.returncode == 1
    assert "older than the installed staple" in assert_one_line_error(res.stderr)
    assert_untouched(installed, newest)
    res = fetch(pki.leaves["good1"].fullchain, "-u", fake.url, "-o", installed, "--force")
    assert res.returncode == 0
    assert installed.read_bytes() == older.read_bytes()


def test_same_response_changes_nothing(installed, pki, fake):
    st = installed.stat()
    fake.set(body=installed.read_bytes())
    res = fetch(pki.leaves["good1"].fullchain, "-u", fake.url, "-o", installed)
    assert res.returncode == 0 and b"unchanged" in res.stderr
    assert installed.stat().st_ino == st.st_ino


def test_replacement_keeps_mode(installed, pki, responder):
    time.sleep(1.1)
    assert oct(installed.stat().st_mode & 0o777) == "0o640"
    ino = installed.stat().st_ino
    assert fetch(pki.leaves["good1"].fullchain, "-o", installed).returncode == 0
    assert installed.stat().st_ino != ino                  # replaced by rename, not rewritten
    assert oct(installed.stat().st_mode & 0o777) == "0o640"


@needs_root
def test_replacement_keeps_owner_and_mode(installed, pki, responder):
    os.chown(installed, NOBODY, NOBODY)
    os.chmod(installed, 0o640)
    before = installed.read_bytes()
    time.sleep(1.1)                                 # a newer thisUpdate, so it is replaced
    assert fetch(pki.leaves["good1"].fullchain, "-o", installed).returncode == 0
    st = installed.stat()
    assert installed.read_bytes() != before
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o777)) == (NOBODY, NOBODY, "0o640")


def test_write_failure_leaves_old_file(installed, pki, responder):
    before = installed.read_bytes()
    prefix = unprivileged()            # root: without the capabilities that override modes
    os.chmod(installed.parent, 0o555)
    try:
        time.sleep(1.1)
        res = fetch(pki.leaves["good1"].fullchain, "-o", installed, prefix=prefix)
    finally:
        os.chmod(installed.parent, 0o755)
    assert res.returncode == 1
    assert "cannot write" in assert_one_line_error(res.stderr)
    assert_untouched(installed, before)


@pytest.mark.parametrize("name", ["ocsp-fetch", "ocsp-check", "ocsp-renew-dir", "ocsp-proxy"])
def test_bin_shim_finds_the_package_from_its_own_location(name, tmp_path):
    """bin/ shims work from a checkout where ocsptools is not installed for that python.

    Simulated honestly: the venv's python without site (-S), so the editable install's
    .pth hook is not processed, and only the dependencies reachable through PYTHONPATH
    (entries there get no .pth processing), run from / so the cwd does not help either."""
    import sys
    import sysconfig
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C", "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    py = [sys.executable, "-S"]
    bare = subprocess.run([*py, "-c", "import ocsptools"], capture_output=True, text=True, env=env, cwd="/")
    assert "No module named 'ocsptools'" in bare.stderr        # the premise: not importable here
    deps = subprocess.run([*py, "-c", "import plumbum, yaml, dateutil"], capture_output=True, env=env, cwd="/")
    assert deps.returncode == 0, deps.stderr
    link = tmp_path / name                                    # e.g. a symlink in ~/bin to the checkout
    link.symlink_to(ROOT / "bin" / name)
    res = subprocess.run([*py, str(link), "--version"], capture_output=True, text=True, env=env, cwd="/")
    installed = run_cmd(name, "--version")
    assert "Traceback" not in res.stderr, res.stderr
    assert (res.returncode, res.stdout) == (installed.returncode, installed.stdout.decode())
    assert res.stdout.startswith(f"{name} (ocsptools) ")


def test_status_unknown_exit_1_untouched(tmp_path, pki, installed):
    leaf = pki.leaves["good1"]
    idx = tmp_path / "index.txt"
    idx.write_text("".join(l + "\n" for l in pki.index_lines() if leaf.serial not in l))
    (tmp_path / "index.txt.attr").write_text("unique_subject = no\n")
    before = installed.read_bytes()
    with pkimod.Responder(pki, port=pkimod.free_port(), index=idx) as r:
        res = fetch(leaf.fullchain, "-u", r.url, "-o", installed)
    assert res.returncode == 1
    assert "status is unknown" in assert_one_line_error(res.stderr)
    assert_untouched(installed, before)


def test_nonce_echo_checked(tmp_path, pki, responder, fake):
    # openssl's responder echoes the nonce: accepted without warning
    res = fetch(pki.leaves["good1"].fullchain, "--nonce", "-o", tmp_path / "n.der", "--method", "post")
    assert res.returncode == 0, res.stderr
    assert b"nonce" not in res.stderr
    # a replayed response (with the nonce of an earlier request) is refused
    fake.set(body=(tmp_path / "n.der").read_bytes())
    res = fetch(pki.leaves["good1"].fullchain, "--nonce", "-u", fake.url, "-o", tmp_path / "m.der")
    assert res.returncode == 1
    assert "another nonce" in assert_one_line_error(res.stderr)
    # a response without nonce: accepted with a warning
    plain = tmp_path / "plain.der"
    assert fetch(pki.leaves["good1"].fullchain, "-o", plain).returncode == 0
    fake.set(body=plain.read_bytes())
    res = fetch(pki.leaves["good1"].fullchain, "--nonce", "-u", fake.url, "-o", tmp_path / "p.der")
    assert res.returncode == 0 and b"did not echo the nonce" in res.stderr


# --- transport: HTTPS responders and proxies --------------------------------------

def test_https_responder(tmp_path, pki, installed):
    from fake_responder import FakeResponder
    server = pki.make_leaf("ocsp-https", dns_names=["localhost"])
    body = installed.read_bytes()
    with FakeResponder(tls=(str(server.fullchain), str(server.key))) as https:
        https.set(body=body)
        # trusted through SSL_CERT_FILE (the private root), as an admin of a private PKI would
        res = fetch(pki.leaves["good1"].fullchain, "-u", https.url, "-o", tmp_path / "s.der",
                    env={"SSL_CERT_FILE": str(pki.root_cert)})
        assert res.returncode == 0, res.stderr
        assert https.requests and https.requests[0].method == "GET"
        # an untrusted TLS certificate is a clear failure
        res = fetch(pki.leaves["good1"].fullchain, "-u", https.url, "-o", tmp_path / "t.der",
                    env={"SSL_CERT_FILE": str(pki.other_inter_cert)})
        assert res.returncode == 1
        assert "TLS error" in assert_one_line_error(res.stderr)


def test_proxy_option_and_environment(tmp_path, pki, installed, fake):
    fake.set(body=installed.read_bytes())
    unreachable = "http://127.0.0.1:9/ocsp"          # only the proxy can "reach" it
    res = fetch(pki.leaves["good1"].fullchain, "-u", unreachable, "--proxy", fake.url,
                "-o", tmp_path / "a.der", "--method", "post")
    assert res.returncode == 0, res.stderr
    req = fake.requests[-1]
    assert req.path == unreachable and req.headers["host"] == "127.0.0.1:9"
    res = fetch(pki.leaves["good1"].fullchain, "-u", unreachable, "-o", tmp_path / "b.der",
                env={"http_proxy": fake.url})
    assert res.returncode == 0, res.stderr
    assert fake.requests[-1].path.startswith("http://127.0.0.1:9/ocsp/")    # GET through the proxy
    count = len(fake.requests)
    res = fetch(pki.leaves["good1"].fullchain, "-u", unreachable, "-o", tmp_path / "c.der",
                env={"http_proxy": fake.url, "no_proxy": "127.0.0.1"})
    assert res.returncode == 1 and len(fake.requests) == count            # bypassed: direct, refused
    assert "connection refused" in assert_one_line_error(res.stderr)


@pytest.mark.parametrize("url,expected", [
    ("http://r.example/", "http://r.example/{}"),
    ("http://r.example", "http://r.example/{}"),
    ("http://r.example/ocsp", "http://r.example/ocsp/{}"),
    ("http://r.example/ocsp/", "http://r.example/ocsp/{}"),
    ("http://r.example:8080/a/b", "http://r.example:8080/a/b/{}"),
])
def test_get_url_joins_paths_and_percent_encodes(url, expected):
    from ocsptools.transport import get_url
    der = b"\xfb\xef\xff" * 20                        # base64 of this holds + and /
    got = get_url(url, der)
    enc = base64.b64encode(der).decode()
    assert "+" in enc and "/" in enc
    from urllib.parse import quote
    assert got == expected.format(quote(enc, safe=""))
    assert get_url(url, bytes(300)) is None          # too long: POST
    assert get_url(url + "?x=1", der) is None        # a query string cannot take a path
