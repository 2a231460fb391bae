"""Every hostile responder scenario against `ocsp-fetch -o`: right exit status, one clear line,
the installed staple byte-identical (or correctly replaced when the scenario is benign), no temp
files left, and the whole matrix in bounded time."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

import hostile_responder as hostile
import reliability
from conftest import assert_one_line_error, run_cmd

pytestmark = pytest.mark.skipif(shutil.which("faketime") is None,
                                reason="needs faketime (Debian package faketime) to date responses")

EXIT = {"reject": 1, "revoked": 4, "replace": 0}
TIMEOUT = 2          # --timeout for the fetch; the slow scenarios must end near it


@pytest.fixture(scope="module")
def matrix(pki, tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile")
    leaf, other, revoked = pki.leaves["good1"], pki.leaves["good2"], pki.leaves["revoked1"]
    installed = hostile.installed_staple(pki, leaf, work)
    return {s.name: s for s in hostile.scenarios(pki, leaf, other, revoked, work)}, installed


def scenario_names():
    # names only (the matrix itself needs the PKI): keep in step with hostile_responder.scenarios
    return ["http-500", "http-404", "http-301", "connection-reset", "hang", "drip-1-byte-per-second",
            "50MB-body", "50MB-body-no-length", "50MB-body-chunked", "wrong-content-type-html",
            "valid-response-as-text-html", "empty-body", "random-bytes", "truncated-der",
            "tryLater", "unauthorized", "malformedRequest", "internalError", "sigRequired",
            "another-serial", "right-serial-other-issuer", "right-serial-other-issuer-legit-signer", "several-responses-ours-last", "bad-signature",
            "delegated-without-ocspsigning", "delegated-not-embedded", "delegated-signer-expired",
            "signer-expires-before-nextupdate", "no-nextupdate", "older-than-installed",
            "thisupdate-one-hour-ahead", "nextupdate-already-past", "revoked", "unknown"]


def private_tmpdir(tmp_path):
    """A TMPDIR of the run's own (openssl's scratch inputs go there): it must end empty."""
    d = tmp_path / "tmpdir"
    d.mkdir()
    return d


def test_scenario_list_complete(matrix):
    assert sorted(matrix[0]) == sorted(scenario_names())


@pytest.mark.parametrize("name, signer", [("right-serial-other-issuer", "Other Intermediate CA"),
                                          ("right-serial-other-issuer-legit-signer", "Test OCSP Responder")])
def test_other_issuer_scenarios_are_good_for_our_serial(name, signer, matrix, pki, tmp_path):
    """These scenarios differ from a valid answer only in the CertID's issuer (and the signer):
    status good, our serial, both issuer hashes those of the other intermediate."""
    body = tmp_path / "r.der"
    body.write_bytes(matrix[0][name].answer().body)
    text = subprocess.run(["openssl", "ocsp", "-respin", str(body), "-resp_text", "-noverify"],
                          capture_output=True, text=True, env=hostile.ENV).stdout
    ids = {}
    for issuer, cert in (("inter", pki.inter_cert), ("other", pki.other_inter_cert)):
        req = subprocess.run(["openssl", "ocsp", "-issuer", str(cert), "-serial", "0x1", "-no_nonce", "-req_text"],
                             capture_output=True, text=True, env=hostile.ENV).stdout
        ids[issuer] = re.findall(r"Issuer (?:Name|Key) Hash: (\w+)", req)
    assert re.findall(r"Issuer (?:Name|Key) Hash: (\w+)", text) == ids["other"] != ids["inter"]
    assert f"Serial Number: {pki.leaves['good1'].serial}" in text and "Cert Status: good" in text
    assert f"Responder Id: O = ocsptools test, CN = ocsptools {signer}" in text


@pytest.mark.parametrize("name", scenario_names())
def test_ocsp_fetch_against_hostile_responder(name, matrix, pki, fake, tmp_path):
    scenarios, installed = matrix
    sc = scenarios[name]
    staple = tmp_path / "site.pem.ocsp"
    staple.write_bytes(installed)
    fake.set(handler=lambda req: sc.answer())
    scratch = private_tmpdir(tmp_path)
    start = time.monotonic()
    res = run_cmd("ocsp-fetch", "--timeout", TIMEOUT, "-u", fake.url, "-o", staple,
                  pki.leaves["good1"].fullchain, env={"TMPDIR": str(scratch)})
    elapsed = time.monotonic() - start
    assert os.listdir(scratch) == [], "scratch files left in TMPDIR"
    assert elapsed < TIMEOUT + 6, f"{name} took {elapsed:.1f} s"
    assert res.returncode == EXIT[sc.expect], (name, res.stderr)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in (staple.name, scratch.name)]
    assert leftovers == [], leftovers
    if sc.expect == "replace":
        assert staple.read_bytes() != installed
        check = subprocess.run(["openssl", "ocsp", "-respin", str(staple), "-issuer", str(pki.inter_cert),
                                "-cert", str(pki.leaves["good1"].cert), "-CAfile", str(pki.root_cert),
                                "-no_nonce"], capture_output=True, text=True, env=hostile.ENV)
        assert "Response verify OK" in check.stderr and ": good" in check.stdout
        assert "Traceback" not in res.stderr.decode()
        warning = f"the responder certificate expires at {not_after(sc.signer)}, before nextUpdate" \
            if sc.signer else None
        assert (warning is not None and warning in res.stderr.decode()) == ("warning:" in res.stderr.decode()), \
            res.stderr
    else:
        line = assert_one_line_error(res.stderr)
        assert sc.needle.lower() in line.lower(), line
        assert staple.read_bytes() == installed
    said = res.stderr.decode().strip().splitlines()[-1] if res.stderr.strip() else ""
    reliability.record("hostile", name, "ocsp-fetch -o",
                       f"exit {EXIT[sc.expect]}, "
                       + ("a warning naming the signer's notAfter, then the summary" if sc.signer else "one line")
                       + ("" if sc.expect == "replace" else f" naming '{sc.needle}'")
                       + ", " + ("staple replaced" if sc.expect == "replace" else "staple kept"),
                       f"exit {res.returncode} in {elapsed:.1f} s: {_short(said, fake.url)}; "
                       + ("warned that the responder certificate expires before nextUpdate; " if sc.signer else "")
                       + ("replaced by the verified newer response" if sc.expect == "replace"
                          else "staple byte-identical") + "; no temp files, TMPDIR empty", lost=0)


# ---------------------------------------------------------------------------
# the same matrix against ocsp-renew-dir: a TSV line per certificate, never a traceback

RENEW_EXIT = {"reject": 1, "revoked": 1, "replace": 0}
RENEW_ACTION = {"reject": "failed", "revoked": "revoked", "replace": "renewed"}
# a few scenarios also go through a configuration file's per-certificate `url` (the same code path
# as -u after loading; this proves the configuration route reaches the same gate)
VIA_CONFIG = {"http-500", "bad-signature", "revoked", "older-than-installed",
              "several-responses-ours-last", "tryLater"}


def _verifies_good(staple, pki) -> bool:
    check = subprocess.run(["openssl", "ocsp", "-respin", str(staple), "-issuer", str(pki.inter_cert),
                            "-cert", str(pki.leaves["good1"].cert), "-CAfile", str(pki.root_cert),
                            "-no_nonce"], capture_output=True, text=True, env=hostile.ENV)
    return "Response verify OK" in check.stderr and f"{pki.leaves['good1'].cert}: good" in check.stdout


@pytest.mark.parametrize("name, route", [(n, "url-option") for n in scenario_names()]
                         + [(n, "config") for n in scenario_names() if n in VIA_CONFIG])
def test_ocsp_renew_dir_against_hostile_responder(name, route, matrix, pki, fake, tmp_path):
    scenarios, installed = matrix
    sc = scenarios[name]
    tree = tmp_path / "tree"
    tree.mkdir()
    cert = tree / "site.pem"
    cert.write_bytes(open(pki.leaves["good1"].fullchain, "rb").read())
    staple = tree / "site.pem.ocsp"
    staple.write_bytes(installed)
    state = tmp_path / "state" / "s.json"
    fake.set(handler=lambda req: sc.answer())
    if route == "config":
        cfg = tmp_path / "ocsptools.yaml"
        cfg.write_text(f"timeout: {TIMEOUT}\nalways-renew: true\ncertificates:\n"
                       f"  - cert: {cert}\n    url: {fake.url}\n")
        args = ("--config", cfg)
    else:
        args = ("--timeout", TIMEOUT, "-B", "-u", fake.url, tree)
    scratch = private_tmpdir(tmp_path)
    start = time.monotonic()
    res = run_cmd("ocsp-renew-dir", "--state", state, *args, env={"TMPDIR": str(scratch)})
    elapsed = time.monotonic() - start
    assert os.listdir(scratch) == [], "scratch files left in TMPDIR"
    assert elapsed < TIMEOUT + 6, f"{name} took {elapsed:.1f} s"
    out, err = res.stdout.decode(), res.stderr.decode()
    assert "Traceback" not in out + err and "internal error:" not in out + err, err
    assert err == "", err                        # per-certificate outcomes go to the TSV only
    assert res.returncode == RENEW_EXIT[sc.expect], (name, out, err)
    rows = [l.split("\t") for l in out.splitlines()]
    assert len(rows) == 1 and len(rows[0]) == 4, out
    action, c, s, detail = rows[0]
    assert (action, c, s) == (RENEW_ACTION[sc.expect], str(cert), str(staple)), rows
    leftovers = sorted(p.name for p in tree.iterdir())
    assert leftovers == ["site.pem", "site.pem.ocsp"], leftovers
    assert [p.name for p in state.parent.iterdir() if "tmp" in p.name] == []
    if sc.expect == "replace":
        assert staple.read_bytes() != installed
        assert _verifies_good(staple, pki)
        assert detail.startswith("good until ")
        if sc.signer:           # usable only until the signer's notAfter, renewed before it
            until, due = re.match(r"good until (\S+), renewal due at (\S+); warning: the responder "
                                  r"certificate expires at (?:\S+), before nextUpdate", detail).groups()
            assert until == not_after(sc.signer) and due <= until, detail
        else:
            assert "warning" not in detail, detail
        kept = "replaced by the verified newer response"
    else:
        assert sc.needle.lower() in detail.lower(), detail
        assert "the installed staple was kept, valid until" in detail, detail
        assert staple.read_bytes() == installed
        kept = "staple byte-identical"
    how = "ocsp-renew-dir -u" if route == "url-option" else "ocsp-renew-dir --config (url:)"
    reliability.record("hostile", name, how,
                       f"exit {RENEW_EXIT[sc.expect]}, TSV `{RENEW_ACTION[sc.expect]}`"
                       + ("" if sc.expect == "replace" else f" naming '{sc.needle}'")
                       + ", " + ("staple replaced" if sc.expect == "replace" else "staple kept")
                       + ("; good until the signer's notAfter, renewal due no later" if sc.signer else ""),
                       f"exit {res.returncode} in {elapsed:.1f} s; `{action}`: {_short(detail, fake.url, 160)}; "
                       f"{kept}; no temp files, TMPDIR empty", lost=0)


def not_after(cert) -> str:
    """CERT's notAfter as ocsptools prints times (ISO 8601 UTC with Z)."""
    from datetime import datetime
    out = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-enddate"], capture_output=True,
                         text=True, env=hostile.ENV, check=True).stdout.strip().split("=", 1)[1]
    return datetime.strptime(" ".join(out.split()), "%b %d %H:%M:%S %Y GMT").strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(text: str, url: str, limit: int = 100) -> str:
    """TEXT for the reliability table: the test responder's URL (a random port) as URL, cut."""
    text = text.replace(url, "URL").replace(url.rstrip("/"), "URL")
    text = re.sub(r"^ocsp-fetch: ", "", text)
    text = re.sub(r"(?<![\w:/])/\S*/([^/\s:]+)", r"\1", text)  # temp paths: the file name only
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "T", text)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


# ---------------------------------------------------------------------------
# hostile certificates: URLs no HTTP client can use fail that certificate alone

def test_certificates_with_unusable_urls_fail_alone(pki, responder, fake, tmp_path):
    """An OCSP URL such as ldap://, a broken IPv6 literal or a port out of range (AD CS and odd
    CAs write such things) is a failure of that certificate, named; the rest of the tree renews.
    A caIssuers list starting with ldap:// still reaches its http:// entry."""
    import secrets
    from fake_responder import serve_files
    tree = tmp_path / "tree"
    tree.mkdir()
    bad = {}
    for tag, url in (("ldap", "ldap://ca.example/ocsp"), ("v6", "http://[::1/"),
                     ("port", "http://127.0.0.1:99999/")):
        leaf = pki.make_leaf(f"u{tag}{secrets.token_hex(3)}", ocsp_urls=[url, responder.url])
        (tree / f"{tag}.pem").write_bytes(open(leaf.fullchain, "rb").read())
        bad[tag] = url
    inter_der = subprocess.run(["openssl", "x509", "-in", str(pki.inter_cert), "-outform", "DER"],
                               capture_output=True, check=True, env=hostile.ENV).stdout
    fake.set(handler=serve_files({"/inter.der": (inter_der, "application/pkix-cert")}))
    aia = pki.make_leaf(f"uaia{secrets.token_hex(3)}",
                        ca_issuers=f"ldap://ca.example/inter,caIssuers;URI:{fake.url}inter.der")
    (tree / "aia.pem").write_bytes(open(aia.cert, "rb").read())         # no chain: AIA it is
    (tree / "good.pem").write_bytes(open(pki.leaves["good1"].fullchain, "rb").read())
    responder.restart()
    res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", tree)
    assert "Traceback" not in res.stderr.decode() and res.stderr == b"", res.stderr
    rows = {r.split("\t")[1].rsplit("/", 1)[-1]: r.split("\t") for r in res.stdout.decode().splitlines()}
    # each bad URL is named in the detail, and the certificate's second (good) URL was used
    for tag, url in bad.items():
        assert rows[f"{tag}.pem"][0] == "renewed", rows[f"{tag}.pem"]
    assert rows["aia.pem"][0] == "renewed" and rows["good.pem"][0] == "renewed", rows
    assert res.returncode == 0
    # with only the bad URL: a named failure, exit 1, one line (ocsp-fetch) / a TSV line (renew-dir)
    for tag, url in bad.items():
        leaf = pki.make_leaf(f"o{tag}{secrets.token_hex(3)}", ocsp_urls=[url])
        r = run_cmd("ocsp-fetch", "-o", tmp_path / f"{tag}.ocsp", leaf.fullchain)
        line = assert_one_line_error(r.stderr)
        assert r.returncode == 1 and url.rstrip("/") in line and "internal error" not in line, line
        reliability.record("hostile", f"certificate whose only OCSP URL is {url}", "ocsp-fetch -o",
                           "exit 1, one line naming the URL", f"exit 1: {_short(line, fake.url)}", lost=0)
        one = tmp_path / f"one-{tag}"
        one.mkdir()
        (one / "c.pem").write_bytes(open(leaf.fullchain, "rb").read())
        r = run_cmd("ocsp-renew-dir", "--state", tmp_path / f"s-{tag}.json", one)
        (action, _, _, detail), = [l.split("\t") for l in r.stdout.decode().splitlines()]
        assert r.returncode == 1 and action == "failed" and url.rstrip("/") in detail, detail
        assert r.stderr == b""
        reliability.record("hostile", f"certificate whose only OCSP URL is {url}", "ocsp-renew-dir",
                           "TSV `failed` naming the URL, exit 1; the other certificates renew",
                           f"exit 1; `failed`: {_short(detail, fake.url)}", lost=0)


@pytest.mark.parametrize("args", [("-u", "http://[::1"), ("-u", "http://127.0.0.1:99999/"),
                                  ("--proxy", "http://[x", "-u", "http://127.0.0.1:9/"),
                                  ("--timeout", "nan"), ("--timeout", "inf")])
@pytest.mark.parametrize("cmd", ["ocsp-fetch", "ocsp-renew-dir"])
def test_unusable_option_values_are_usage_errors(cmd, args, pki, tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "c.pem").write_bytes(open(pki.leaves["good1"].fullchain, "rb").read())
    where = ("-o", tmp_path / "x.ocsp", tree / "c.pem") if cmd == "ocsp-fetch" else \
        ("--state", tmp_path / "s.json", tree)
    res = run_cmd(cmd, *args, *where)
    line = assert_one_line_error(res.stderr)
    assert res.returncode == 2 and "internal error" not in line, line
    assert not (tmp_path / "x.ocsp").exists() and not (tree / "c.pem.ocsp").exists()
