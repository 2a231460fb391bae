"""ocsp-check on files and pipes (ocsptools/check/acquire.py): the pure conventions directly, then the
installed command end to end on real responses built by `openssl ocsp` (offline) under a frozen
clock (faketime): one table of a staple -> its exact output and exit status, the certificate by
convention, "not applicable" before any issuer search, Must-Staple, stdin."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import assert_one_line_error, command, unprivileged
from ocsptools.check import acquire
from ocsptools.errors import InputError
from ocsptools.staple import decode_staple

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "check"))
import build  # noqa: E402
from world import (CRIT2, DAY, HOUR, LIFE2, LIFE7, MINUTE, WARN2, check, iso, perf,  # noqa: E402,F401
                   world)

SECOND = dt.timedelta(seconds=1)


# --------------------------------------------------------------------------- the pure conventions

@pytest.mark.parametrize("staple, candidates", [
    ("/etc/haproxy/site.pem.ocsp", ["/etc/haproxy/site.pem", "/etc/haproxy/site.pem.pem",
                                    "/etc/haproxy/site.pem.crt"]),
    ("x.ocsp-resp", ["x", "x.pem", "x.crt"]),
    ("SITE.OCSP", ["SITE", "SITE.pem", "SITE.crt"]),
    ("staple.der", []),
    (".ocsp", []),
    ("dir/.ocsp", []),
])
def test_certificate_candidates(staple, candidates):
    assert acquire.certificate_candidates(staple) == candidates


def test_holds_certificate(pki):
    pem = Path(pki.leaves["good1"].cert).read_bytes()
    der = decode_staple(pem)
    assert acquire.holds_certificate(pem, der)
    assert acquire.holds_certificate(der, der)                               # DER
    assert acquire.holds_certificate(base64.b64encode(der), der)             # base64 of DER
    assert not acquire.holds_certificate(b"garbage", decode_staple(b"garbage"))


@pytest.mark.parametrize("make, exc, message", [
    (lambda d: d / "gone.ocsp", acquire.MissingStaple, "no such file"),
    (lambda d: write(d / "empty.ocsp", b" \n"), acquire.MissingStaple,
     "empty: no staple in it (HAProxy's placeholder?)"),
    (lambda d: d, InputError, "is a directory, not a staple file"),
    (lambda d: write(d / "big.ocsp", b"x" * (acquire.MAX_STAPLE_SIZE + 1)), InputError,
     f"larger than {acquire.MAX_STAPLE_SIZE} bytes: not an OCSP response"),
])
def test_read_staple_refuses(tmp_path, make, exc, message):
    path = make(tmp_path)
    with pytest.raises(exc) as info:
        acquire.read_staple(str(path))
    assert str(info.value) == message and info.value.path == str(path)
    assert issubclass(acquire.MissingStaple, InputError)


def test_read_staple_from_stdin():
    assert acquire.read_staple("-", io.BytesIO(b"\x30\x03")) == b"\x30\x03"
    with pytest.raises(acquire.MissingStaple, match=r"^empty: no staple in it$"):
        acquire.read_staple("-", io.BytesIO(b""))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- one staple, end to end

@dataclass(frozen=True)
class Case:
    """One staple checked at T0 + AFTER: its exact output (the first line's perfdata from PERF:
    (value, warn, crit, life), "U" for none) and exit status."""

    staple: str                  # a world staple, or @dir, @child, @missing
    rc: int
    lines: tuple
    cert: str | None = "good1"   # --cert (None: none given)
    after: dt.timedelta = dt.timedelta(0)
    args: tuple = ()
    perf: tuple | str = (LIFE7,)


def case(id_, staple, rc, *lines, **kw):
    return pytest.param(Case(staple, rc, lines, **kw), id=id_)


OK_7D = "OCSP OK - {p}: good, 7d left (next update {d7})"
UNVERIFIED = " (signature and CertID not verified)"
THRESHOLDS = [("-w", "3d", "--critical", "1 day"), ("-w", "259200", "-c", "86400")]   # bare seconds

CASES = [
    # OK and thresholds
    case("good", "good", 0, OK_7D),
    case("good-without-cert", "good", 0, OK_7D + UNVERIFIED,
         "signature and CertID NOT verified: no certificate found beside the staple; give --cert FILE",
         cert=None),
    *[case(f"good-{v}", v, 0, "OCSP OK - {p}: good, 6d23h left (next update {d7})", after=HOUR,
           perf=(LIFE7 - 3600,)) for v in ("good_issuer_signed", "good_sha256", "pem", "base64")],
    case("warning-25%", "good", 1, "OCSP WARNING - {p}: good, 1d left (next update {d7}), below the "
         "warning threshold 1d18h (25% of 7d)", after=6 * DAY, perf=(86400,)),
    case("critical-10%", "good", 2, "OCSP CRITICAL - {p}: good, 12h left (next update {d7}), below the "
         "critical threshold 16h48m (10% of 7d)", after=6 * DAY + 12 * HOUR, perf=(43200,)),
    *[case(f"durations{n}-{state}", "good", rc, f"OCSP {state} - {{p}}: good, {left} left (next update "
           f"{{d7}}){suffix}", args=args, after=after, perf=(7 * 86400 - int(after.total_seconds()),
                                                            259200, 86400))
      for n, args in enumerate(THRESHOLDS)
      for after, rc, state, left, suffix in [
          (4 * DAY, 0, "OK", "3d", ""),
          (5 * DAY, 1, "WARNING", "2d", ", below the warning threshold 3d"),
          (6 * DAY + SECOND, 2, "CRITICAL", "23h59m", ", below the critical threshold 1d")]],
    case("seconds-warning", "hour", 1, "OCSP WARNING - {p}: good, 1m29s left (next update {h1}), below "
         "the warning threshold 1m30s", args=("-w", "90", "-c", "30"), after=HOUR - 89 * SECOND,
         perf=(89, 90, 30, 3600)),
    case("seconds-critical", "hour", 2, "OCSP CRITICAL - {p}: good, 29s left (next update {h1}), below "
         "the critical threshold 30s", args=("-w", "90", "-c", "30"), after=HOUR - 29 * SECOND,
         perf=(29, 90, 30, 3600)),
    case("1-hour-staple", "hour", 0, "OCSP OK - {p}: good, 1h left (next update {h1})",
         perf=(3600, 900, 360, 3600)),
    case("1-day-staple", "day", 0, "OCSP OK - {p}: good, 1d left (next update {d1})",
         perf=(86400, 21600, 8640, 86400)),
    # -c a duration above -w a percentage (10% of 7d = 16h48m): critical is tested first
    case("critical-before-warning", "good", 2, "OCSP CRITICAL - {p}: good, 23h left (next update "
         "{d7}), below the critical threshold 3d", args=("-w", "10%", "-c", "3d"),
         after=6 * DAY + HOUR, perf=(82800, 60480, 259200)),
    # CRITICAL
    case("expired", "expired", 2, "OCSP CRITICAL - {p}: expired at nextUpdate {dm1}, 1d ago",
         perf=(-86400,)),
    case("future", "future", 2, "OCSP CRITICAL - {p}: thisUpdate {h1} is in the future (more than 5 "
         "minutes ahead of this clock)", "good, 7d1h left (next update {d7h1})", perf=(LIFE7 + 3600,)),
    case("future-within-skew", "future", 0, "OCSP OK - {p}: good, 7d4m left (next update {d7h1})",
         after=HOUR - 4 * MINUTE, perf=(LIFE7 + 240,)),
    case("revoked", "revoked", 2, "OCSP CRITICAL - {p}: REVOKED at {dm1} (keyCompromise)",
         cert="revoked1"),
    case("unknown", "unknown", 2, "OCSP CRITICAL - {p}: certificate status unknown: the responder "
         "does not know this certificate (wrong issuer or responder?)", cert="unknown1"),
    *[case(f"{status}-{'cert' if cert else 'alone'}", status, 2, f"OCSP CRITICAL - {{p}}: {text}",
           cert=cert, perf="U")
      for status, text in [
          ("tryLater", "the responder says try later (OCSP status tryLater)"),
          ("unauthorized", "the responder is not authorised for this certificate (wrong responder "
                           "URL, or wrong issuer) (OCSP status unauthorized)"),
          ("internalError", "the responder reports an internal error (OCSP status internalError)")]
      for cert in ("good1", None)],
    case("garbage", "garbage", 2, "OCSP CRITICAL - {p}: not a DER OCSP response (not enough data)",
         perf="U"),
    case("empty", "empty", 2, "OCSP CRITICAL - {p}: empty: no staple in it (HAProxy's placeholder?)",
         perf="U"),
    case("missing", "@missing", 2, "OCSP CRITICAL - {p}: no such file", perf="U"),
    case("directory", "@dir", 2, "OCSP CRITICAL - {p}: is a directory, not a staple file", cert=None,
         perf="U"),
    case("not-a-directory", "@child", 2, "OCSP CRITICAL - {p}: cannot read: Not a directory",
         cert=None, perf="U"),
    case("bad-signature", "badsig", 2, "OCSP CRITICAL - {p}: the signature does not verify", perf="U"),
    case("no-ocsp-signing", "nosign", 2, "OCSP CRITICAL - {p}: signed by a certificate that is neither "
         "the issuer nor a delegated responder with id-kp-OCSPSigning", perf="U"),
    case("responder-not-embedded", "not_embedded", 2, "OCSP CRITICAL - {p}: signed by a responder that "
         "is not the issuer and whose certificate is not embedded in the response (TLS clients cannot "
         "verify such a staple)", perf="U"),
    case("another-certificate", "good2", 2, "OCSP CRITICAL - {p}: not a response for this certificate "
         "(serial {s1}, issuer O=ocsptools test, CN=ocsptools Test Intermediate CA); it covers "
         "serial(s) {s2}", perf="U"),
    case("responder-expired", "expired_signer", 2, "OCSP CRITICAL - {p}: the responder certificate is "
         "expired or not yet valid", perf="U"),
    # WARNING, and the responder certificate ending the staple's life before nextUpdate
    case("no-next-update", "no_next_update", 1, "OCSP WARNING - {p}: good, no nextUpdate: HAProxy and "
         "Exim refuse to staple such a response", perf="U"),
    case("responder-expires-first", "early_signer", 0, "OCSP OK - {p}: good, 2d left (until the "
         "responder certificate's notAfter {d2}, before next update {d7})",
         perf=(LIFE2, WARN2, CRIT2, LIFE2)),
    case("responder-expires-warning", "early_signer", 1, "OCSP WARNING - {p}: good, 6h left (until the "
         "responder certificate's notAfter {d2}, before next update {d7}), below the warning threshold "
         "12h (25% of 2d)", after=42 * HOUR, perf=(6 * 3600, WARN2, CRIT2, LIFE2)),
    case("responder-expires-critical", "early_signer", 2, "OCSP CRITICAL - {p}: good, 4h left (until "
         "the responder certificate's notAfter {d2}, before next update {d7}), below the critical "
         "threshold 4h48m (10% of 2d)", after=44 * HOUR, perf=(4 * 3600, WARN2, CRIT2, LIFE2)),
]


def staple_path(w, name: str) -> Path:
    return {"@dir": w.dir, "@child": w.staple("good") / "child",
            "@missing": w.dir / "nope.ocsp"}.get(name) or w.staple(name)


@pytest.mark.parametrize("c", CASES)
def test_one_staple(world, c: Case):
    w = world
    p = staple_path(w, c.staple)
    keys = dict(p=p, d1=iso(w.t0 + DAY), d2=iso(w.t0 + 2 * DAY), d7=iso(w.t0 + 7 * DAY),
                dm1=iso(w.t0 - DAY), h1=iso(w.t0 + HOUR), d7h1=iso(w.t0 + 7 * DAY + HOUR),
                s1=w.pki.leaves["good1"].serial.lstrip("0"), s2=w.pki.leaves["good2"].serial.lstrip("0"))
    perfdata = f"'{p}'=U" if c.perf == "U" else perf(p, *c.perf)
    want = [c.lines[0].format(**keys) + f" | {perfdata}"] + [line.format(**keys) for line in c.lines[1:]]
    cert = ("--cert", w.cert(c.cert)) if c.cert else ()
    rc, out, err = check(*c.args, *cert, p, at=w.t0 + c.after)
    assert (rc, out, err) == (c.rc, want, "")


def test_permission_denied(tmp_path):
    """A staple the monitoring user cannot read (mode 000): CRITICAL naming what to do.  Root reads
    anything, so as root the check runs without the capabilities that override file modes."""
    prefix = unprivileged()
    p = tmp_path / "site.der"
    p.write_bytes(b"\x30\x03\x0a\x01\x00")
    p.chmod(0)
    res = build.run_at(None, [*prefix, command("ocsp-check"), str(p)])
    assert res.returncode == 2, res.stderr
    assert res.stdout.decode().splitlines() == [
        f"OCSP CRITICAL - {p}: permission denied (run the check as a user that can read the staple, "
        f"e.g. the server's) | '{p}'=U"]
    assert res.stderr == b""


def test_explicit_cert_problems_are_unknown(world, tmp_path):
    w = world
    rc, out, err = check("--cert", tmp_path / "none.pem", w.staple("good"), at=w.t0)
    assert rc == 3
    assert out == [f"OCSP UNKNOWN - {tmp_path / 'none.pem'}: no such file"]
    assert assert_one_line_error(err.encode()) == f"ocsp-check: {tmp_path / 'none.pem'}: no such file"
    rc, out, _ = check("--cert", w.cert("good1-leaf-only"), w.staple("good"), at=w.t0)
    assert rc == 3 and out[0].startswith("OCSP UNKNOWN - ") and "issuer not found" in out[0]
    rc, out, _ = check("--cert", w.cert("good1"), "-i", w.pki.other_inter_cert, w.staple("good"), at=w.t0)
    assert rc == 3 and "did not issue the certificate" in out[0]


# --------------------------------------------------------------------------- certificate by convention

def test_certificate_found_by_convention(world, tmp_path):
    """HAProxy's layout: site.pem.ocsp beside site.pem (leaf + chain)."""
    w = world
    shutil.copy(w.cert("good1"), tmp_path / "site.pem")
    shutil.copy(w.staple("good"), tmp_path / "site.pem.ocsp")
    # run in tmp_path so the label is the relative path the user typed
    rc, out, _ = check("site.pem.ocsp", at=w.t0, cwd=tmp_path)
    assert rc == 0
    assert out == [f"OCSP OK - site.pem.ocsp: good, 7d left (next update {iso(w.t0 + 7 * DAY)}) "
                   f"| {perf('site.pem.ocsp', LIFE7)}"]


@pytest.mark.parametrize("staple_name, cert_name", [("site.ocsp", "site.pem"), ("site.ocsp", "site.crt"),
                                                    ("site.ocsp-resp", "site.pem")])
def test_other_conventional_names(world, tmp_path, staple_name, cert_name):
    w = world
    shutil.copy(w.cert("good1"), tmp_path / cert_name)
    shutil.copy(w.staple("good"), tmp_path / staple_name)
    rc, out, _ = check("--json", staple_name, at=w.t0, cwd=tmp_path)
    obj = json.loads(out[0])
    assert rc == 0 and obj["verified"] is True and obj["certificate"] == cert_name


def test_conventional_certificate_of_another_staple_is_critical(world, tmp_path):
    """A staple left beside a certificate it does not belong to (a re-issued certificate)."""
    w = world
    shutil.copy(w.cert("good1"), tmp_path / "site.pem")
    shutil.copy(w.staple("good2"), tmp_path / "site.pem.ocsp")
    rc, out, _ = check("site.pem.ocsp", at=w.t0, cwd=tmp_path)
    assert rc == 2
    assert out[0].startswith("OCSP CRITICAL - site.pem.ocsp: not a response for this certificate")


def test_conventional_certificate_without_issuer_is_only_inspected(world, tmp_path):
    w = world
    shutil.copy(w.cert("good1-leaf-only"), tmp_path / "site.pem")
    shutil.copy(w.staple("good"), tmp_path / "site.pem.ocsp")
    rc, lines, _ = check("site.pem.ocsp", at=w.t0, cwd=tmp_path)
    assert rc == 0
    assert lines[0].endswith(f"(signature and CertID not verified) | {perf('site.pem.ocsp', LIFE7)}")
    assert lines[1].startswith("signature and CertID NOT verified: ") and "give -i FILE" in lines[1]
    # ... and with -i the same staple verifies
    rc, out, _ = check("-i", w.pki.inter_cert, "--json", "site.pem.ocsp", at=w.t0, cwd=tmp_path)
    assert json.loads(out[0])["verified"] is True


def test_issuer_from_ca_dir(world, tmp_path):
    w = world
    cas = tmp_path / "cas"
    cas.mkdir()
    shutil.copy(w.pki.root_cert, cas / "root.pem")
    shutil.copy(w.pki.inter_cert, cas / "inter.pem")
    rc, out, _ = check("--json", "--cert", w.cert("good1-leaf-only"), "--ca-dir", cas,
                       w.staple("good"), at=w.t0)
    obj = json.loads(out[0])
    assert rc == 0 and obj["verified"] is True and obj["issuer"] == str(cas / "inter.pem")


# --------------------------------------------------------------------------- no OCSP URL: not applicable first

def test_missing_staple_for_certificate_without_ocsp_url_is_not_applicable(world, tmp_path):
    w = world
    shutil.copy(w.cert("nourl"), tmp_path / "site.pem")
    rc, out, _ = check("site.pem.ocsp", at=w.t0, cwd=tmp_path)
    assert (rc, out) == (0, ["OCSP OK - site.pem.ocsp: no such file; not applicable: the certificate "
                             "names no OCSP responder"])
    rc, out, _ = check("--require-staple", "site.pem.ocsp", at=w.t0, cwd=tmp_path)
    assert (rc, out) == (2, ["OCSP CRITICAL - site.pem.ocsp: no such file (--require-staple) "
                             "| 'site.pem.ocsp'=U"])


def test_leftover_staple_of_certificate_without_ocsp_url(world):
    """The CA dropped OCSP, the certificate was re-issued, the old staple stayed."""
    w = world
    p = w.staple("good")
    rc, out, _ = check("--cert", w.cert("nourl"), p, at=w.t0)
    assert rc == 2
    assert out[0].startswith(f"OCSP CRITICAL - {p}: not a response for this certificate")
    assert ("the certificate names no OCSP responder, so this staple is left over from an earlier "
            "certificate: remove it and turn stapling off") in out[0]


# A certificate without OCSP URL is "not applicable" before anything else: its issuer is never looked
# for.  The proof: its AIA caIssuers URL points at a loopback server that records every request, --aia
# allows downloads, and no issuer exists anywhere (no chain in the file, none beside it, no -i).

@dataclass
class NoUrl:
    cert: Path               # the leaf alone (no chain)
    serial: str
    ca_server: object        # records requests; the issuer is NOT served there either
    own: Path                # a staple for this very certificate
    other: Path              # a staple of another certificate (left over)


@pytest.fixture(scope="module")
def no_url(world, tmp_path_factory):
    from fake_responder import FakeResponder
    w = world
    d = tmp_path_factory.mktemp("nourl")
    with FakeResponder() as ca_server:
        ca_server.set(status=404, body=b"no issuer here")
        leaf = w.pki.make_leaf("nourlaia", ocsp_urls=[], ca_issuers=ca_server.url + "inter.cer")
        cert = d / "leaf.pem"
        shutil.copy(leaf.cert, cert)
        own = d / "own.der"
        build.respond(w.pki, leaf.cert, own, at=w.t0)
        yield NoUrl(cert, leaf.serial.lstrip("0"), ca_server, own, w.staple("good"))


def site(no_url: NoUrl, d: Path, staple: Path | None) -> Path:
    shutil.copy(no_url.cert, d / "site.pem")
    if staple is not None:
        shutil.copy(staple, d / "site.pem.ocsp")
    return d / "site.pem.ocsp"


@pytest.mark.parametrize("how", ["convention", "--cert"])
def test_no_url_missing_staple_is_not_applicable_without_issuer_search(world, no_url, tmp_path, how):
    no_url.ca_server.requests.clear()
    staple = site(no_url, tmp_path, None)
    args = ["--cert", tmp_path / "site.pem"] if how == "--cert" else []
    for verbose in ([], ["-v"]):
        rc, out, err = check("--aia", *verbose, *args, staple, at=world.t0)
        assert rc == 0 and err == "", out
        assert out[0] == f"OCSP OK - {staple}: no such file; not applicable: the certificate names no OCSP responder"
        assert not any("issuer" in line for line in out), out      # no issuer error, no source
    rc, out, _ = check("--aia", "--require-staple", *args, staple, at=world.t0)
    assert rc == 2 and out == [f"OCSP CRITICAL - {staple}: no such file (--require-staple) | '{staple}'=U"]
    assert no_url.ca_server.requests == []


@pytest.mark.parametrize("how", ["convention", "--cert"])
def test_no_url_leftover_staple_is_critical_without_issuer_search(world, no_url, tmp_path, how):
    no_url.ca_server.requests.clear()
    staple = site(no_url, tmp_path, no_url.other)
    args = ["--cert", tmp_path / "site.pem"] if how == "--cert" else []
    rc, out, err = check("--aia", *args, staple, at=world.t0)
    other = world.pki.leaves["good1"].serial.lstrip("0")
    assert rc == 2 and err == ""
    assert out == [f"OCSP CRITICAL - {staple}: not a response for this certificate (serial {no_url.serial}); "
                   f"it covers serial(s) {other}; the certificate names no OCSP responder, so this staple "
                   f"is left over from an earlier certificate: remove it and turn stapling off | '{staple}'=U"]
    assert no_url.ca_server.requests == []


@pytest.mark.parametrize("how", ["convention", "--cert"])
def test_no_url_own_staple_is_judged_unverified_without_issuer_search(world, no_url, tmp_path, how):
    no_url.ca_server.requests.clear()
    staple = site(no_url, tmp_path, no_url.own)
    args = ["--cert", tmp_path / "site.pem"] if how == "--cert" else []
    rc, out, err = check("--aia", "-i", world.pki.inter_cert, *args, staple, at=world.t0)
    assert rc == 0 and err == ""
    assert out == [f"OCSP OK - {staple}: good, 7d left (next update {iso(world.t0 + 7 * DAY)}) (signature and "
                   f"CertID not verified) | {perf(staple, LIFE7)}",
                   "signature and CertID NOT verified: the certificate names no OCSP responder, so its "
                   "issuer was not looked for"]
    assert no_url.ca_server.requests == []


# --------------------------------------------------------------------------- Must-Staple

def test_must_staple_without_valid_staple(world):
    w = world
    p = w.staple("muststaple")
    rc, out, _ = check("--cert", w.cert("muststaple"), p, w.dir / "missing.ocsp", at=w.t0)
    assert rc == 2
    assert out[1] == (f"CRITICAL: {p}: expired at nextUpdate {iso(w.t0 - DAY)}, 1d ago; the certificate "
                      f"is Must-Staple: clients refuse connections without a valid staple")
    assert out[2] == (f"CRITICAL: {w.dir / 'missing.ocsp'}: no such file, but the certificate is "
                      f"Must-Staple (TLS Feature status_request): clients will refuse the connection")


@pytest.mark.parametrize("case", ["muststaple_good", "muststaple_badsig"])
def test_must_staple_staple_that_cannot_be_verified_is_critical(world, tmp_path, case):
    """Leaf without its chain beside the staple: only inspected, so never OK for Must-Staple
    (a badly signed staple would be refused by every client); -i ISSUER gives the real verdict."""
    w = world
    shutil.copy(w.pki.leaves["muststaple"].cert, tmp_path / "site.pem")
    shutil.copy(w.staple(case), tmp_path / "site.pem.ocsp")
    rc, lines, _ = check("site.pem.ocsp", at=w.t0, cwd=tmp_path)
    assert rc == 2
    assert lines[:2] == [
        f"OCSP CRITICAL - site.pem.ocsp: cannot verify the staple of a Must-Staple certificate; give -i "
        f"ISSUER (signature and CertID not verified) | {perf('site.pem.ocsp', LIFE7)}",
        f"good, 7d left (next update {iso(w.t0 + 7 * DAY)})"]
    assert lines[2].startswith("signature and CertID NOT verified: ") and len(lines) == 3
    _, out, _ = check("-i", w.pki.inter_cert, "site.pem.ocsp", at=w.t0, cwd=tmp_path)
    assert out == (
        [f"OCSP OK - site.pem.ocsp: good, 7d left (next update {iso(w.t0 + 7 * DAY)}) "
         f"| {perf('site.pem.ocsp', LIFE7)}"] if case == "muststaple_good" else
        ["OCSP CRITICAL - site.pem.ocsp: the signature does not verify | 'site.pem.ocsp'=U"])


# --------------------------------------------------------------------------- standard input

def test_stdin_like_a_pipe_from_ocsp_fetch(world):
    w = world
    data = w.staple("good").read_bytes()
    rc, out, _ = check("--cert", w.cert("good1"), "-", at=w.t0, input=data)
    assert rc == 0
    assert out == [f"OCSP OK - standard input: good, 7d left (next update {iso(w.t0 + 7 * DAY)}) "
                   f"| {perf('standard input', LIFE7)}"]
    rc, out, _ = check("-", at=w.t0, input=data)
    assert rc == 0 and out[1] == "signature and CertID NOT verified: no --cert given for standard input"
    rc, out, _ = check("-", at=w.t0, input=b"")
    assert rc == 2 and out == ["OCSP CRITICAL - standard input: empty: no staple in it | 'standard input'=U"]


@pytest.mark.parametrize("stdin", [False, True])
def test_a_certificate_given_as_staple(world, stdin):
    w = world
    cert = w.cert("good1")
    args, data = (["-"], cert.read_bytes()) if stdin else ([cert], None)
    label, arg = ("standard input", "FILE") if stdin else (cert, cert)
    rc, out, _ = check(*args, at=w.t0, input=data)
    assert (rc, out) == (2, [f"OCSP CRITICAL - {label}: holds a certificate, not an OCSP response: pass "
                             f"it with --cert {arg} and give its staple file as STAPLE | '{label}'=U"])
