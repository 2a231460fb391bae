"""Quick checks that tests/pki.py builds a sane PKI and drives real responders."""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pki  # noqa: E402


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    t0 = time.monotonic()
    p = pki.build_pki(tmp_path_factory.mktemp("pki"))
    return p, time.monotonic() - t0


@pytest.fixture(scope="module")
def p(built):
    return built[0]


@pytest.fixture(scope="module")
def responder(p):
    with pki.Responder(p) as r:
        yield r


@pytest.fixture
def live(responder):
    responder.ensure_running()
    return responder


def status(out: str, cert) -> str | None:
    """Status word from the summary line `<cert path>: good|revoked|unknown`."""
    prefix = f"{cert}: "
    for line in out.splitlines():
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return None


def x509(*args) -> str:
    return pki.openssl("x509", *args).stdout


def respin(p, der, cert, *trust) -> subprocess.CompletedProcess:
    """Re-verify a stored response offline."""
    return pki.openssl("ocsp", "-respin", der, "-issuer", p.inter_cert, "-cert", cert,
                       "-no_nonce", *trust, "-no-CApath", "-no-CAstore", check=False)


# --------------------------------------------------------------------------- building

def test_build_is_fast_and_complete(built):
    p, seconds = built
    assert seconds < 2.0
    for f in (p.root_cert, p.root_key, p.inter_cert, p.inter_key, p.ocsp_cert, p.ocsp_key,
              p.nosign_cert, p.nosign_key, p.other_inter_cert, p.other_inter_key, p.index):
        assert f.is_file() and f.stat().st_size > 0, f
        assert p.dir in f.parents
    assert {"good1", "good2", "revoked1"} <= set(p.leaves)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", p.ocsp_url)
    assert p.port == int(p.ocsp_url.rsplit(":", 1)[1].strip("/"))


def test_index_format(p):
    rows = [line.split("\t") for line in p.index.read_text().splitlines()]
    assert rows and all(len(r) == 6 for r in rows)
    serials = [r[3] for r in rows]
    assert len(set(serials)) == len(serials)
    for st, exp, rev, serial, fname, dn in rows:
        assert st in ("V", "R")
        assert re.fullmatch(r"\d{12}Z", exp)
        assert re.fullmatch(r"(?:[0-9A-F]{2})+", serial)
        assert fname == "unknown"
        assert dn.startswith("/O=ocsptools test/CN=")
        if st == "V":
            assert rev == ""
        else:
            assert re.fullmatch(r"\d{12}Z(,[A-Za-z]+)?", rev)
    by_serial = {r[3]: r for r in rows}
    for name in ("good1", "good2", "revoked1"):
        leaf = p.leaves[name]
        # random serials: positive, 63 bits with bit 62 set -> 16 hex digits
        assert re.fullmatch(r"[4-7][0-9A-F]{15}", leaf.serial)
        row = by_serial[leaf.serial]
        assert row[0] == ("R" if name == "revoked1" else "V")
        if name == "revoked1":
            assert re.fullmatch(r"\d{12}Z,keyCompromise", row[2])
        assert row[5] == f"/O=ocsptools test/CN={name}"
        # serial and expiry match the certificate itself
        out = x509("-in", leaf.cert, "-noout", "-serial", "-enddate")
        assert f"serial={leaf.serial}" in out
        exp = dt.datetime.strptime(row[1], "%y%m%d%H%M%SZ").strftime("%b %e %H:%M:%S %Y GMT")
        assert f"notAfter={exp}" in out
    assert "unique_subject = no" in (p.dir / "index.txt.attr").read_text()


def test_chains_and_files(p):
    def verify(*args):
        return pki.openssl("verify", "-no-CApath", "-no-CAstore", *args, check=False)
    leaf = p.leaves["good1"]
    assert leaf.chain.read_text() == p.inter_cert.read_text()
    assert leaf.fullchain.read_text() == leaf.cert.read_text() + p.inter_cert.read_text()
    cp = verify("-CAfile", p.root_cert, "-untrusted", p.inter_cert, leaf.cert)
    assert cp.returncode == 0, cp.stderr
    cp = verify("-CAfile", p.root_cert, "-untrusted", p.other_inter_cert, leaf.cert)
    assert cp.returncode != 0                       # other_inter is a wrong issuer
    cp = verify("-CAfile", p.root_cert, p.other_inter_cert)
    assert cp.returncode == 0, cp.stderr
    for key in (p.root_key, leaf.key, p.ocsp_key):
        assert "EC" in key.read_text().splitlines()[0] or "PRIVATE KEY" in key.read_text()
    assert "ASN1 OID: prime256v1" in x509("-in", leaf.cert, "-noout", "-text")


def test_signer_profiles(p):
    ocsp = x509("-in", p.ocsp_cert, "-noout", "-ext", "extendedKeyUsage,noCheck,basicConstraints")
    assert "OCSP Signing" in ocsp and "OCSP No Check" in ocsp and "CA:FALSE" in ocsp
    nosign = x509("-in", p.nosign_cert, "-noout", "-ext", "extendedKeyUsage,noCheck")
    assert "OCSP Signing" not in nosign and "OCSP No Check" not in nosign
    for c in (p.ocsp_cert, p.nosign_cert):
        assert x509("-in", c, "-noout", "-issuer").strip().endswith("Intermediate CA")


def test_leaf_options(p):
    a = p.make_leaf("opt-a", ocsp_urls=["http://127.0.0.1:1/a", "http://127.0.0.1:2/b"],
                    ca_issuers="http://127.0.0.1:3/inter.der", must_staple=True, days=10)
    text = x509("-in", a.cert, "-noout", "-text")
    assert "TLS Feature" in text and "status_request" in text
    assert "CA Issuers - URI:http://127.0.0.1:3/inter.der" in text
    assert x509("-in", a.cert, "-noout", "-ocsp_uri").split() == a.ocsp_urls
    b = p.make_leaf("opt-b", ocsp_urls=[])
    text = x509("-in", b.cert, "-noout", "-text")
    assert "Authority Information Access" not in text and "TLS Feature" not in text
    assert x509("-in", b.cert, "-noout", "-ocsp_uri") == ""
    c = p.make_leaf("opt-c", serial="0x0abc", not_after=dt.timedelta(hours=1))
    assert c.serial == "0ABC"
    assert "serial=0ABC" in x509("-in", c.cert, "-noout", "-serial")
    assert pki.openssl("x509", "-in", c.cert, "-noout", "-checkend", "7200",
                       check=False).returncode == 1
    assert f"\t{a.serial}\t" in p.index.read_text()
    o = p.make_leaf("opt-other", issuer="other")
    assert o.chain.read_text() == p.other_inter_cert.read_text()
    assert f"\t{o.serial}\t" not in p.index.read_text()   # not the inter CA's index


def test_load_roundtrip(p):
    q = pki.PKI.load(p.dir)
    assert q.ocsp_url == p.ocsp_url and q.inter_cert == p.inter_cert
    assert q.leaves.keys() == p.leaves.keys()
    assert q.leaves["good1"] == p.leaves["good1"]
    assert {s: r.line() for s, r in q._rows.items()} == {s: r.line() for s, r in p._rows.items()}


# --------------------------------------------------------------------------- responder

def test_ready_line_and_url(live, p):
    assert live.url == p.ocsp_url
    assert pki.READY_LINE in live.output
    assert f"ACCEPT [::]:{live.port} PID={live.proc.pid}" in live.output


def test_good_and_revoked(live, p, tmp_path):
    good, rev = p.leaves["good1"], p.leaves["revoked1"]
    rc, out, err = pki.ocsp_query(p, good, live.url, out=tmp_path / "g.der")
    assert rc == 0 and status(out, good.cert) == "good"
    assert "Response verify OK" in err
    assert "Next Update:" in out
    der = (tmp_path / "g.der").read_bytes()
    assert der[:1] == b"\x30"
    cp = respin(p, tmp_path / "g.der", good.cert, "-CAfile", p.root_cert)
    assert cp.returncode == 0 and status(cp.stdout, good.cert) == "good", cp.stderr
    rc, out, err = pki.ocsp_query(p, rev, live.url)
    assert rc == 0 and status(out, rev.cert) == "revoked"
    assert "Reason: keyCompromise" in out and "Response verify OK" in err


def test_many_requests_served(live, p):
    for _ in range(20):
        rc, out, err = pki.ocsp_query(p, "good2", live.url)
        assert rc == 0 and status(out, p.leaves["good2"].cert) == "good", (out, err)
    assert live.alive()
    assert live.output.count("Received request") >= 20


def test_other_issuer_leaf_is_unknown(live, p):
    leaf = p.make_leaf("wrong-issuer", issuer="other")
    rc, out, err = pki.ocsp_query(p, leaf, live.url)
    assert status(out, leaf.cert) == "unknown"


def test_revoke_while_running(live, p):
    leaf = p.make_leaf("to-revoke")
    live.restart()                       # make sure the new leaf is known
    assert status(pki.ocsp_query(p, leaf, live.url)[1], leaf.cert) == "good"
    time.sleep(0.05)   # let the responder loop back to its index check + accept()
    p.revoke(leaf, "superseded")
    assert re.search(rf"^R\t\d{{12}}Z\t\d{{12}}Z,superseded\t{leaf.serial}\t", p.index.read_text(), re.M)
    # OpenSSL 3.0 checks index.txt before accept(): the first request after a
    # change is still answered from the old index, the next one sees it.
    assert status(pki.ocsp_query(p, leaf, live.url)[1], leaf.cert) == "good"
    out = pki.ocsp_query(p, leaf, live.url)[1]
    assert status(out, leaf.cert) == "revoked" and "Reason: superseded" in out
    p.unrevoke(leaf)
    live.resync()
    assert status(pki.ocsp_query(p, leaf, live.url)[1], leaf.cert) == "good"
    p.revoke(leaf.name, None)            # by name, no reason
    live.restart()
    out = pki.ocsp_query(p, leaf, live.url)[1]
    assert status(out, leaf.cert) == "revoked" and "Reason:" not in out


def test_issuer_signed(p):
    with pki.Responder(p, port=0, signer="issuer") as r:
        rc, out, err = pki.ocsp_query(p, "good1", r.url, extra=["-resp_text"])
    assert rc == 0 and "Response verify OK" in err
    assert "Responder Id: O = ocsptools test, CN = ocsptools Test Intermediate CA" in out


def test_nosign_signer_fails(p, tmp_path):
    leaf = p.leaves["good1"]
    with pki.Responder(p, port=0, signer="nosign") as r:
        rc, out, err = pki.ocsp_query(p, leaf, r.url, out=tmp_path / "n.der")
    assert rc == 1 and "Response Verify Failure" in err
    assert status(out, leaf.cert) == "good"          # the summary still says good!
    assert (tmp_path / "n.der").stat().st_size > 0     # -respout written anyway
    cp = respin(p, tmp_path / "n.der", leaf.cert, "-CAfile", p.inter_cert, "-partial_chain")
    assert cp.returncode == 1 and "missing ocspsigning usage" in cp.stderr


def test_signer_validity_control(p):
    exp_c, exp_k = p.make_signer("expired", not_before=dt.timedelta(days=-10),
                                 not_after=dt.timedelta(days=-1))
    assert pki.openssl("x509", "-in", exp_c, "-noout", "-checkend", "0", check=False).returncode == 1
    assert "OCSP Signing" in x509("-in", exp_c, "-noout", "-ext", "extendedKeyUsage")
    soon_c, soon_k = p.make_signer("soon", not_after=dt.timedelta(hours=2))
    checkend = lambda s: pki.openssl("x509", "-in", soon_c, "-noout", "-checkend", str(s),  # noqa: E731
                                     check=False).returncode
    assert checkend(3600) == 0 and checkend(7300) == 1
    with pki.Responder(p, port=0, signer=(exp_c, exp_k)) as r:
        rc, out, err = pki.ocsp_query(p, "good1", r.url)
        assert rc == 1 and "certificate has expired" in err
    with pki.Responder(p, port=0, signer=(soon_c, soon_k), nmin=5) as r:
        rc, out, err = pki.ocsp_query(p, "good1", r.url)
        assert rc == 0 and "Response verify OK" in err
    plain_c, _ = p.make_signer("plain", ocsp_signing=False)
    assert "OCSP Signing" not in x509("-in", plain_c, "-noout", "-ext", "extendedKeyUsage")


def _update_times(out: str) -> tuple[dt.datetime, dt.datetime | None]:
    def get(label):
        m = re.search(rf"{label}: (\w{{3}} +\d+ \d\d:\d\d:\d\d \d{{4}}) GMT", out)
        return dt.datetime.strptime(m.group(1), "%b %d %H:%M:%S %Y") if m else None
    return get("This Update"), get("Next Update")


def test_nmin_and_no_next_update(p, tmp_path):
    with pki.Responder(p, port=0, nmin=7) as r:
        this, nxt = _update_times(pki.ocsp_query(p, "good1", r.url)[1])
        assert nxt - this == dt.timedelta(minutes=7)
        assert "-nmin" in r.args() and "-ndays" not in r.args()
    # without embedded certs the client needs signer AND intermediate in
    # -verify_other (the retry with the -issuer certs does not combine them)
    other = tmp_path / "signer+inter.pem"
    other.write_text(p.ocsp_cert.read_text() + p.inter_cert.read_text())
    with pki.Responder(p, port=0, ndays=None, embed_certs=False, key_id=True) as r:
        rc, out, err = pki.ocsp_query(p, "good1", r.url,
                                      extra=["-verify_other", str(other), "-resp_text"])
        this, nxt = _update_times(out)
        assert this and nxt is None
        assert "Responder Id: " in out and "Certificate:" not in out
        assert rc == 0 and "Response verify OK" in err


def test_start_failure_is_reported(p, tmp_path):
    r = pki.Responder(p, port=0, index=tmp_path / "missing-index.txt")
    with pytest.raises(RuntimeError) as ei:
        r.start()
    msg = str(ei.value)
    assert "exited with rc=" in msg and "missing-index.txt" in msg
    assert not r.alive() and r not in pki._LIVE


def test_stop_restart_same_port(p):
    log = []

    class Sink:
        def write(self, s):
            log.append(s)

        def flush(self):
            pass

    r = pki.Responder(p, port=0, log=Sink()).start()
    port, pid = r.port, r.proc.pid
    assert port != 0 and r in pki._LIVE
    r.restart()
    assert r.port == port and r.proc.pid != pid
    assert status(pki.ocsp_query(p, "good1", r.url)[1], p.leaves["good1"].cert) == "good"
    r.stop()
    r.stop()                                   # idempotent
    assert r.proc.returncode is not None and r not in pki._LIVE
    assert not os.path.exists(f"/proc/{pid}")  # reaped, not a zombie
    assert any(pki.READY_LINE in s for s in log)


def test_malformed_request_kills_single_responder(p):
    # Documented OpenSSL 3.0 behaviour; a *complete* bad request, never a bare
    # connect (that would wedge the responder at 100% CPU).
    with pki.Responder(p, port=0) as r:
        with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
            s.sendall(b"GET /garbage HTTP/1.0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.0 400")
        r.proc.wait(5)
        deadline = time.monotonic() + 5          # its last line may still be on the way to us
        while "malformedrequest" not in r.output and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not r.alive() and "malformedrequest" in r.output
        r.ensure_running()
        assert status(pki.ocsp_query(p, "good1", r.url)[1], p.leaves["good1"].cert) == "good"


def _group_members(pgid: int) -> list[str]:
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(d)
    return found


def test_multi_mode_and_group_kill(p):
    r = pki.Responder(p, port=0, multi=2).start()
    try:
        pgid = r.proc.pid
        assert os.getpgid(pgid) == pgid != os.getpgrp()
        for _ in range(5):
            assert status(pki.ocsp_query(p, "good1", r.url)[1], p.leaves["good1"].cert) == "good"
        assert len(_group_members(pgid)) == 3
    finally:
        r.stop()
    deadline = time.monotonic() + 2
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _group_members(pgid) == []


def test_cli(tmp_path):
    cp = subprocess.run([sys.executable, str(Path(pki.__file__)), str(tmp_path / "demo")],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    kv = dict(line.split("=", 1) for line in cp.stdout.splitlines())
    assert Path(kv["root_cert"]).is_file() and kv["ocsp_url"].startswith("http://127.0.0.1:")
    assert kv["leaf.revoked1.serial"].endswith("(revoked)")
