"""ocsp-check on files and pipes, end to end: the installed console script, real responses built
by `openssl ocsp` (offline, -reqin/-respout), and a frozen clock (faketime) so every first line,
perfdata item and exit status is asserted exactly."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import pki as pkimod
from conftest import assert_one_line_error, command, unprivileged
from fake_responder import status_only

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "check"))
import build  # noqa: E402

# Only what builds or judges staples at a frozen instant needs faketime (the `world` fixture and
# the tests using it); usage, UNKNOWN, --help, timeout and permission tests run without it.
NO_FAKETIME = "faketime not installed (Debian package faketime)"

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
# defaults -w 25% -c 10% of a 7-day staple
WARN7, CRIT7, LIFE7 = 151200, 60480, 604800


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class World:
    pki: object
    dir: Path
    t0: dt.datetime
    certs: dict
    staples: dict

    def cert(self, name: str) -> Path:
        return self.certs[name]

    def staple(self, name: str) -> Path:
        return self.staples[name]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    """A private PKI and one staple file per case, all dated relative to T0 (a minute boundary)."""
    if shutil.which("faketime") is None:
        pytest.skip(NO_FAKETIME)
    d = tmp_path_factory.mktemp("check")
    p = pkimod.build_pki(d / "pki")
    t0 = build.floor_minute(dt.datetime.now(dt.timezone.utc)) + 10 * dt.timedelta(minutes=1)
    p.make_leaf("unknown1")
    p.make_leaf("muststaple", must_staple=True)
    p.make_leaf("nourl", ocsp_urls=[])
    p.revoke(p.leaves["revoked1"], "keyCompromise", when=t0 - DAY)
    early = p.make_signer("early-signer", not_after=t0 + 2 * DAY)
    expired = p.make_signer("expired-signer", not_before=t0 - 10 * DAY, not_after=t0 - HOUR)
    unknown_index = build.index_without(p, p.leaves["unknown1"].serial, d / "index-unknown.txt")
    certs = {}
    for name in ("good1", "good2", "revoked1", "unknown1", "muststaple", "nourl"):
        certs[name] = d / f"{name}.pem"                          # leaf + chain, as servers keep it
        shutil.copy(p.leaves[name].fullchain, certs[name])
    certs["good1-leaf-only"] = d / "good1-leaf-only.pem"
    shutil.copy(p.leaves["good1"].cert, certs["good1-leaf-only"])
    s = d / "staples"
    s.mkdir()
    c1 = p.leaves["good1"].cert
    staples = {
        "good": build.respond(p, c1, s / "good.der", at=t0),
        "good_issuer_signed": build.respond(p, c1, s / "good_issuer_signed.der", at=t0, signer="issuer"),
        "good_sha256": build.respond(p, c1, s / "good_sha256.der", at=t0, hash_alg="sha256"),
        "good2": build.respond(p, p.leaves["good2"].cert, s / "good2.der", at=t0),
        "hour": build.respond(p, c1, s / "hour.der", at=t0, nmin=60),
        "day": build.respond(p, c1, s / "day.der", at=t0, ndays=1),
        "expired": build.respond(p, c1, s / "expired.der", at=t0 - 8 * DAY),
        "future": build.respond(p, c1, s / "future.der", at=t0 + HOUR),
        "revoked": build.respond(p, p.leaves["revoked1"].cert, s / "revoked.der", at=t0),
        "unknown": build.respond(p, p.leaves["unknown1"].cert, s / "unknown.der", at=t0,
                                 index=unknown_index),
        "no_next_update": build.respond(p, c1, s / "no_next_update.der", at=t0, ndays=None),
        "badsig": build.respond(p, c1, s / "badsig.der", at=t0, badsig=True),
        "not_embedded": build.respond(p, c1, s / "not_embedded.der", at=t0, no_certs=True),
        "nosign": build.respond(p, c1, s / "nosign.der", at=t0,
                                signer=(p.nosign_cert, p.nosign_key)),
        "early_signer": build.respond(p, c1, s / "early_signer.der", at=t0, signer=early),
        "expired_signer": build.respond(p, c1, s / "expired_signer.der", at=t0 - 2 * DAY,
                                        signer=expired),
        "muststaple": build.respond(p, p.leaves["muststaple"].cert, s / "muststaple.der", at=t0 - 8 * DAY),
        "muststaple_good": build.respond(p, p.leaves["muststaple"].cert, s / "muststaple_good.der", at=t0),
        "muststaple_badsig": build.respond(p, p.leaves["muststaple"].cert, s / "muststaple_badsig.der",
                                           at=t0, badsig=True),
    }
    paths = {name: s / f"{name}.der" for name in staples}
    for status in ("tryLater", "unauthorized", "internalError"):
        paths[status] = s / f"{status}.der"
        paths[status].write_bytes(status_only(status))
    paths["garbage"] = s / "garbage.der"
    paths["garbage"].write_bytes(b"this is not an OCSP response\n")
    paths["empty"] = s / "empty.der"
    paths["empty"].write_bytes(b"")
    paths["pem"] = s / "good.pem"
    paths["pem"].write_text("-----BEGIN OCSP RESPONSE-----\n"
                            + base64.encodebytes(staples["good"]).decode()
                            + "-----END OCSP RESPONSE-----\n")
    paths["base64"] = s / "good.b64"
    paths["base64"].write_bytes(base64.b64encode(staples["good"]) + b"\n")
    return World(p, d, t0, certs, paths)


def check(*args, at=None, input=None, env=None):
    """Run the installed ocsp-check under a frozen clock; return (rc, stdout lines, stderr)."""
    res = build.run_at(at, [command("ocsp-check"), *map(str, args)], input=input, env=env)
    assert b"Traceback" not in res.stdout + res.stderr, res.stderr.decode()
    return res.returncode, res.stdout.decode().splitlines(), res.stderr.decode()


def perf(path, value, warn=WARN7, crit=CRIT7, life=LIFE7) -> str:
    return f"'{path}'={value}s;{warn}:;{crit}:;0;{life}"


# --------------------------------------------------------------------------- OK and thresholds

def test_good_verified_with_cert(world):
    w = world
    p = w.staple("good")
    rc, out, err = check("--cert", w.cert("good1"), p, at=w.t0)
    assert out == [f"OCSP OK - {p}: good, 7d left (next update {iso(w.t0 + 7 * DAY)}) | {perf(p, LIFE7)}"]
    assert rc == 0 and err == ""


def test_good_without_certificate_says_not_verified(world):
    w = world
    p = w.staple("good")
    rc, out, _ = check(p, at=w.t0)
    assert rc == 0
    assert out[0] == (f"OCSP OK - {p}: good, 7d left (next update {iso(w.t0 + 7 * DAY)}) "
                      f"(signature and CertID not verified) | {perf(p, LIFE7)}")
    assert out[1] == ("signature and CertID NOT verified: no certificate found beside the staple; "
                      "give --cert FILE")


@pytest.mark.parametrize("case", ["good_issuer_signed", "good_sha256", "pem", "base64"])
def test_good_variants_verify(world, case):
    w = world
    p = w.staple(case)
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0 + HOUR)
    assert rc == 0, out
    assert out == [f"OCSP OK - {p}: good, 6d23h left (next update {iso(w.t0 + 7 * DAY)}) "
                   f"| {perf(p, LIFE7 - 3600)}"]


def test_warning_below_default_percentage(world):
    w = world
    p = w.staple("good")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0 + 6 * DAY)
    assert rc == 1
    assert out == [f"OCSP WARNING - {p}: good, 1d left (next update {iso(w.t0 + 7 * DAY)}), "
                   f"below the warning threshold 1d18h (25% of 7d) | {perf(p, 86400)}"]


def test_critical_below_default_percentage(world):
    w = world
    p = w.staple("good")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0 + 6 * DAY + 12 * HOUR)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - {p}: good, 12h left (next update {iso(w.t0 + 7 * DAY)}), "
                   f"below the critical threshold 16h48m (10% of 7d) | {perf(p, 43200)}"]


@pytest.mark.parametrize("thresholds", [["-w", "3d", "--critical", "1 day"],
                                        ["-w", "259200", "-c", "86400"]])      # bare seconds
@pytest.mark.parametrize("after, rc, state, suffix", [
    (4 * DAY, 0, "OK", ""),
    (5 * DAY, 1, "WARNING", ", below the warning threshold 3d"),
    (6 * DAY + dt.timedelta(seconds=1), 2, "CRITICAL", ", below the critical threshold 1d"),
])
def test_duration_thresholds(world, thresholds, after, rc, state, suffix):
    """Perfdata ranges ;259200:;86400: however the thresholds are spelled."""
    w = world
    p = w.staple("good")
    left = int((7 * DAY - after).total_seconds())
    code, out, _ = check(*thresholds, "--cert", w.cert("good1"), p, at=w.t0 + after)
    assert code == rc
    human = {259200: "3d", 172800: "2d", 86399: "23h59m"}[left]
    assert out == [f"OCSP {state} - {p}: good, {human} left (next update {iso(w.t0 + 7 * DAY)}){suffix} "
                   f"| {perf(p, left, 259200, 86400)}"]


def test_fractional_threshold_is_rounded_up_everywhere(world):
    """33.33% of 7d is 201579.84 s: with 201579 s left the check warns, so the perfdata range must
    be 201580: (201579: would say OK for the very value that made the check warn)."""
    w = world
    p = w.staple("good")
    at = w.t0 + dt.timedelta(seconds=LIFE7 - 201579)
    rc, out, _ = check("-w", "33.33%", "--cert", w.cert("good1"), p, at=at)
    assert rc == 1
    assert out == [f"OCSP WARNING - {p}: good, 2d7h59m left (next update {iso(w.t0 + 7 * DAY)}), below the "
                   f"warning threshold 2d7h59m (33.33% of 7d) | {perf(p, 201579, 201580)}"]
    rc, out, _ = check("--json", "-w", "33.33%", "--cert", w.cert("good1"), p, at=at)
    assert json.loads(out[0])["warning_seconds"] == 201580
    rc, out, _ = check("-w", "33.33%", "--cert", w.cert("good1"), p, at=at - dt.timedelta(seconds=1))
    assert rc == 0 and out[0].endswith(f" | {perf(p, 201580, 201580)}")


@pytest.mark.parametrize("left, rc, text", [
    (89, 1, "WARNING - {p}: good, 1m29s left (next update {nu}), below the warning threshold 1m30s"),
    (29, 2, "CRITICAL - {p}: good, 29s left (next update {nu}), below the critical threshold 30s"),
])
def test_bare_seconds_thresholds(world, left, rc, text):
    """-w 90 -c 30 are seconds, on a 1-hour staple."""
    w = world
    p = w.staple("hour")
    nu = w.t0 + HOUR
    code, out, _ = check("-w", "90", "-c", "30", "--cert", w.cert("good1"), p,
                         at=nu - dt.timedelta(seconds=left))
    assert code == rc
    assert out == [f"OCSP {text.format(p=p, nu=iso(nu))} | {perf(p, left, 90, 30, 3600)}"]


def test_critical_is_tested_before_warning(world):
    """-c a duration above -w a percentage (10% of 7d = 16h48m): critical wins although warning
    matches too.  (Two durations or two percentages in that order are a usage error.)"""
    w = world
    p = w.staple("good")
    rc, out, _ = check("-w", "10%", "-c", "3d", "--cert", w.cert("good1"), p, at=w.t0 + 6 * DAY + HOUR)
    assert rc == 2 and out[0].startswith(f"OCSP CRITICAL - {p}: good, 23h left")
    assert "below the critical threshold 3d" in out[0]


@pytest.mark.parametrize("warning, critical, refused", [
    ("1d", "3d", True),
    ("86400", "3d", True),                  # bare seconds are durations too
    ("12h", "1 day", True),
    ("5%", "10%", True),
    ("9.5%", "10%", True),
    ("3d", "1d", False),
    ("3d", "3d", False),                    # equal: no WARNING band, on purpose
    ("72h", "3d", False),                   # equal, spelled differently
    ("25%", "10%", False),
    ("10%", "10%", False),
    ("1s", "50%", False),                   # a duration and a percentage: not comparable
    ("10%", "3d", False),
    ("0", "0%", False),
])
def test_warning_below_critical_is_a_usage_error(tmp_path, warning, critical, refused):
    """-w below -c, when both are durations or both percentages: UNKNOWN, one line, before any
    staple is looked at (an accepted pair goes on to judge the missing file: CRITICAL)."""
    missing = tmp_path / "site.ocsp"
    res = build.run_at(None, [command("ocsp-check"), "-w", warning, "-c", critical, str(missing)])
    out = res.stdout.decode().splitlines()
    if refused:
        want = (f"-w {warning} is below -c {critical}: the warning threshold must be at least the "
                f"critical one (see --help)")
        assert res.returncode == 3 and out == [f"OCSP UNKNOWN - {want}"]
        assert assert_one_line_error(res.stderr) == f"ocsp-check: {want}"
    else:
        assert res.returncode == 2 and out == [f"OCSP CRITICAL - {missing}: no such file | '{missing}'=U"]
        assert res.stderr == b""


@pytest.mark.parametrize("case, lifetime, human", [("hour", 3600, "1h"), ("day", 86400, "1d")])
def test_default_thresholds_fit_short_lived_staples(world, case, lifetime, human):
    """A 1-hour or 1-day staple that was just fetched is OK with the defaults (25%/10%)."""
    w = world
    p = w.staple(case)
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0)
    assert rc == 0
    warn, crit = int(lifetime * 0.25), int(lifetime * 0.10)
    assert out == [f"OCSP OK - {p}: good, {human} left (next update {iso(w.t0 + dt.timedelta(seconds=lifetime))}) "
                   f"| {perf(p, lifetime, warn, crit, lifetime)}"]


# --------------------------------------------------------------------------- CRITICAL states

def test_expired(world):
    w = world
    p = w.staple("expired")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - {p}: expired at nextUpdate {iso(w.t0 - DAY)}, 1d ago "
                   f"| {perf(p, -86400)}"]


def test_this_update_in_the_future(world):
    w = world
    p = w.staple("future")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0)
    assert rc == 2
    assert out[0] == (f"OCSP CRITICAL - {p}: thisUpdate {iso(w.t0 + HOUR)} is in the future (more than "
                      f"5 minutes ahead of this clock) | {perf(p, LIFE7 + 3600)}")
    assert out[1] == f"good, 7d1h left (next update {iso(w.t0 + 7 * DAY + HOUR)})"


def test_this_update_within_the_skew_is_fine(world):
    w = world
    p = w.staple("future")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0 + HOUR - 4 * dt.timedelta(minutes=1))
    assert rc == 0, out


def test_revoked(world):
    w = world
    p = w.staple("revoked")
    rc, out, _ = check("--cert", w.cert("revoked1"), p, at=w.t0)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - {p}: REVOKED at {iso(w.t0 - DAY)} (keyCompromise) | {perf(p, LIFE7)}"]


def test_unknown(world):
    w = world
    p = w.staple("unknown")
    rc, out, _ = check("--cert", w.cert("unknown1"), p, at=w.t0)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - {p}: certificate status unknown: the responder does not know this "
                   f"certificate (wrong issuer or responder?) | {perf(p, LIFE7)}"]


@pytest.mark.parametrize("status, text", [
    ("tryLater", "the responder says try later (OCSP status tryLater)"),
    ("unauthorized", "the responder is not authorised for this certificate (wrong responder URL, "
                     "or wrong issuer) (OCSP status unauthorized)"),
    ("internalError", "the responder reports an internal error (OCSP status internalError)"),
])
@pytest.mark.parametrize("with_cert", [True, False])
def test_unsuccessful_response_status(world, status, text, with_cert):
    w = world
    p = w.staple(status)
    args = ["--cert", w.cert("good1")] if with_cert else []
    rc, out, _ = check(*args, p, at=w.t0)
    assert rc == 2
    assert out[0] == f"OCSP CRITICAL - {p}: {text} | '{p}'=U"


def test_not_an_ocsp_response(world):
    w = world
    p = w.staple("garbage")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - {p}: not a DER OCSP response (not enough data) | '{p}'=U"]


def test_empty_file(world):
    w = world
    p = w.staple("empty")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - {p}: empty: no staple in it (HAProxy's placeholder?) | '{p}'=U"]


def test_missing_file(world):
    w = world
    p = w.dir / "nope.ocsp"
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - {p}: no such file | '{p}'=U"]


@pytest.mark.parametrize("kind", ["directory", "not-a-directory"])
def test_unreadable_file(world, kind):
    w = world
    if kind == "directory":
        p, text = w.dir, "is a directory, not a staple file"
    else:
        p, text = w.staple("good") / "child", "cannot read: Not a directory"
    rc, out, _ = check(p, at=w.t0)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - {p}: {text} | '{p}'=U"]


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


def test_bad_signature(world):
    w = world
    p = w.staple("badsig")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - {p}: the signature does not verify | '{p}'=U"]


def test_signed_by_a_certificate_without_ocsp_signing(world):
    w = world
    p = w.staple("nosign")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - {p}: signed by a certificate that is neither the issuer nor a "
                   f"delegated responder with id-kp-OCSPSigning | '{p}'=U"]


def test_delegated_responder_not_embedded(world):
    w = world
    p = w.staple("not_embedded")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - {p}: signed by a responder that is not the issuer and whose "
                   f"certificate is not embedded in the "
                   f"response (TLS clients cannot verify such a staple) | '{p}'=U"]


def test_not_for_this_certificate(world):
    w = world
    p = w.staple("good2")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0)
    leaf = w.pki.leaves
    assert rc == 2
    assert out == [f"OCSP CRITICAL - {p}: not a response for this certificate (serial "
                   f"{leaf['good1'].serial.lstrip('0')}, issuer O=ocsptools test, CN=ocsptools Test "
                   f"Intermediate CA); it covers serial(s) {leaf['good2'].serial.lstrip('0')} | '{p}'=U"]


def test_responder_certificate_expired(world):
    w = world
    p = w.staple("expired_signer")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0)
    assert rc == 2
    assert out == [f"OCSP CRITICAL - {p}: the responder certificate is expired or not yet valid | '{p}'=U"]


# --------------------------------------------------------------------------- WARNING states

def test_no_next_update(world):
    w = world
    p = w.staple("no_next_update")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0)
    assert rc == 1
    assert out == [f"OCSP WARNING - {p}: good, no nextUpdate: HAProxy and Exim refuse to staple such a "
                   f"response | '{p}'=U"]


# a responder certificate expiring at t0 + 2d, before nextUpdate (t0 + 7d): the staple's effective
# life is those 2 days, and the thresholds are shares of them (the window ocsp-renew-dir renews in)
LIFE2 = 172800
WARN2, CRIT2 = LIFE2 // 4, LIFE2 // 10


def test_responder_certificate_expires_before_next_update(world):
    w = world
    p = w.staple("early_signer")
    rc, out, _ = check("--cert", w.cert("good1"), p, at=w.t0)
    assert rc == 0
    assert out == [
        f"OCSP OK - {p}: good, 2d left (until the responder certificate's notAfter "
        f"{iso(w.t0 + 2 * DAY)}, before next update {iso(w.t0 + 7 * DAY)}) "
        f"| {perf(p, LIFE2, WARN2, CRIT2, LIFE2)}"]


@pytest.mark.parametrize("after, rc, state, left", [(42 * HOUR, 1, "WARNING", "6h"),
                                                      (44 * HOUR, 2, "CRITICAL", "4h")])
def test_responder_certificate_expiring_soon_alerts(world, after, rc, state, left):
    """The thresholds apply to the instant the staple becomes unverifiable."""
    w = world
    p = w.staple("early_signer")
    got, out, _ = check("--cert", w.cert("good1"), p, at=w.t0 + after)
    assert got == rc
    assert out[0].startswith(f"OCSP {state} - {p}: good, {left} left (until the responder "
                             f"certificate's notAfter {iso(w.t0 + 2 * DAY)}")


# --------------------------------------------------------------------------- certificates

def test_certificate_found_by_convention(world, tmp_path):
    """HAProxy's layout: site.pem.ocsp beside site.pem (leaf + chain)."""
    w = world
    shutil.copy(w.cert("good1"), tmp_path / "site.pem")
    shutil.copy(w.staple("good"), tmp_path / "site.pem.ocsp")
    # run in tmp_path so the label is the relative path the user typed
    res = build.run_at(w.t0, [command("ocsp-check"), "site.pem.ocsp"], cwd=tmp_path)
    assert res.returncode == 0
    assert res.stdout.decode().splitlines() == [
        f"OCSP OK - site.pem.ocsp: good, 7d left (next update {iso(w.t0 + 7 * DAY)}) "
        f"| {perf('site.pem.ocsp', LIFE7)}"]


@pytest.mark.parametrize("staple_name, cert_name", [("site.ocsp", "site.pem"), ("site.ocsp", "site.crt"),
                                                    ("site.ocsp-resp", "site.pem")])
def test_other_conventional_names(world, tmp_path, staple_name, cert_name):
    w = world
    shutil.copy(w.cert("good1"), tmp_path / cert_name)
    shutil.copy(w.staple("good"), tmp_path / staple_name)
    res = build.run_at(w.t0, [command("ocsp-check"), "--json", staple_name], cwd=tmp_path)
    obj = json.loads(res.stdout)
    assert res.returncode == 0 and obj["verified"] is True and obj["certificate"] == cert_name


def test_conventional_certificate_of_another_staple_is_critical(world, tmp_path):
    """A staple left beside a certificate it does not belong to (a re-issued certificate)."""
    w = world
    shutil.copy(w.cert("good1"), tmp_path / "site.pem")
    shutil.copy(w.staple("good2"), tmp_path / "site.pem.ocsp")
    res = build.run_at(w.t0, [command("ocsp-check"), "site.pem.ocsp"], cwd=tmp_path)
    assert res.returncode == 2
    assert res.stdout.decode().startswith("OCSP CRITICAL - site.pem.ocsp: not a response for this certificate")


def test_conventional_certificate_without_issuer_is_only_inspected(world, tmp_path):
    w = world
    shutil.copy(w.cert("good1-leaf-only"), tmp_path / "site.pem")
    shutil.copy(w.staple("good"), tmp_path / "site.pem.ocsp")
    res = build.run_at(w.t0, [command("ocsp-check"), "site.pem.ocsp"], cwd=tmp_path)
    lines = res.stdout.decode().splitlines()
    assert res.returncode == 0
    assert lines[0].endswith(f"(signature and CertID not verified) | {perf('site.pem.ocsp', LIFE7)}")
    assert lines[1].startswith("signature and CertID NOT verified: ") and "give -i FILE" in lines[1]
    # ... and with -i the same staple verifies
    res = build.run_at(w.t0, [command("ocsp-check"), "-i", str(w.pki.inter_cert), "--json",
                              "site.pem.ocsp"], cwd=tmp_path)
    assert json.loads(res.stdout)["verified"] is True


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


def test_missing_staple_for_certificate_without_ocsp_url_is_not_applicable(world, tmp_path):
    w = world
    shutil.copy(w.cert("nourl"), tmp_path / "site.pem")
    res = build.run_at(w.t0, [command("ocsp-check"), "site.pem.ocsp"], cwd=tmp_path)
    assert res.returncode == 0
    assert res.stdout.decode().splitlines() == [
        "OCSP OK - site.pem.ocsp: no such file; not applicable: the certificate names no OCSP responder"]
    res = build.run_at(w.t0, [command("ocsp-check"), "--require-staple", "site.pem.ocsp"], cwd=tmp_path)
    assert res.returncode == 2
    assert res.stdout.decode().splitlines() == [
        "OCSP CRITICAL - site.pem.ocsp: no such file (--require-staple) | 'site.pem.ocsp'=U"]


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
    res = build.run_at(w.t0, [command("ocsp-check"), "site.pem.ocsp"], cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stdout.decode().splitlines()
    assert lines[:2] == [
        f"OCSP CRITICAL - site.pem.ocsp: cannot verify the staple of a Must-Staple certificate; give -i "
        f"ISSUER (signature and CertID not verified) | {perf('site.pem.ocsp', LIFE7)}",
        f"good, 7d left (next update {iso(w.t0 + 7 * DAY)})"]
    assert lines[2].startswith("signature and CertID NOT verified: ") and len(lines) == 3
    res = build.run_at(w.t0, [command("ocsp-check"), "-i", str(w.pki.inter_cert), "site.pem.ocsp"],
                       cwd=tmp_path)
    assert res.stdout.decode().splitlines() == (
        [f"OCSP OK - site.pem.ocsp: good, 7d left (next update {iso(w.t0 + 7 * DAY)}) "
         f"| {perf('site.pem.ocsp', LIFE7)}"] if case == "muststaple_good" else
        ["OCSP CRITICAL - site.pem.ocsp: the signature does not verify | 'site.pem.ocsp'=U"])


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


# --------------------------------------------------------------------------- several staples, stdin

def test_mix_of_files_worst_state_wins(world, tmp_path):
    w = world
    good, expired, noupd = w.staple("good"), w.staple("expired"), w.staple("no_next_update")
    missing = tmp_path / "missing.ocsp"
    at = w.t0 + 5 * DAY + 12 * HOUR          # good: 1d12h left, below the 25% warning
    rc, out, err = check("--cert", w.cert("good1"), good, expired, noupd, missing, at=at)
    assert rc == 2 and err == ""
    assert out == [
        f"OCSP CRITICAL - 4 staples: 2 CRITICAL ({expired}, {missing}), 2 WARNING ({good}, {noupd}) "
        f"| {perf(good, 129600)} {perf(expired, -561600)} '{noupd}'=U '{missing}'=U",
        f"WARNING: {good}: good, 1d12h left (next update {iso(w.t0 + 7 * DAY)}), below the warning "
        f"threshold 1d18h (25% of 7d)",
        f"CRITICAL: {expired}: expired at nextUpdate {iso(w.t0 - DAY)}, 6d12h ago",
        f"WARNING: {noupd}: good, no nextUpdate: HAProxy and Exim refuse to staple such a response",
        f"CRITICAL: {missing}: no such file",
    ]


def test_mix_ok_and_warning(world):
    w = world
    good, early = w.staple("good"), w.staple("early_signer")
    now = w.t0 + 42 * HOUR
    rc, out, _ = check("--cert", w.cert("good1"), good, early, at=now)
    assert rc == 1
    left7, left2 = LIFE7 - 42 * 3600, LIFE2 - 42 * 3600
    assert out[0] == (f"OCSP WARNING - 2 staples: 1 WARNING ({early}), 1 OK | {perf(good, left7)} "
                      f"{perf(early, left2, WARN2, CRIT2, LIFE2)}")
    assert out[1] == f"OK: {good}: good, 5d6h left (next update {iso(w.t0 + 7 * DAY)})"
    assert out[2].startswith(f"WARNING: {early}: good, 6h left (until the responder certificate")


def test_all_ok_summary_and_verbose(world):
    w = world
    a, b = w.staple("good"), w.staple("good_issuer_signed")
    rc, out, _ = check("-v", "--cert", w.cert("good1"), a, b, at=w.t0)
    assert rc == 0
    assert out[0] == f"OCSP OK - 2 staples: 2 OK | {perf(a, LIFE7)} {perf(b, LIFE7)}"
    text = "\n".join(out)
    assert "responder id O = ocsptools test, CN = ocsptools Test OCSP Responder" in text
    assert "signer O=ocsptools test, CN=ocsptools Test OCSP Responder, valid" in text
    assert "signer O=ocsptools test, CN=ocsptools Test Intermediate CA, valid" in text
    assert f"serial {w.pki.leaves['good1'].serial.lstrip('0')}" in text


def test_many_names_are_abbreviated(world, tmp_path):
    w = world
    names = [tmp_path / f"m{i}.ocsp" for i in range(5)]
    rc, out, _ = check(*names, at=w.t0)
    assert rc == 2
    assert out[0].startswith(f"OCSP CRITICAL - 5 staples: 5 CRITICAL ({names[0]}, {names[1]}, {names[2]}, "
                             f"+2 more) | ")


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


def test_labels_are_sanitised(world, tmp_path):
    w = world
    odd = tmp_path / "we'ird=na|me.ocsp"
    shutil.copy(w.staple("good"), odd)
    rc, out, _ = check(odd, at=w.t0)
    first = out[0]
    text, perfdata = first.split(" | ")
    assert "|" not in text and first.count("|") == 1
    assert perfdata == perf(str(odd).replace("'", "_").replace("=", "_").replace("|", "_"), LIFE7)


# --------------------------------------------------------------------------- output formats

def test_json_lines(world, tmp_path):
    w = world
    good, revoked = w.staple("good"), w.staple("revoked")
    rc, out, _ = check("--json", "--cert", w.cert("good1"), good, tmp_path / "gone", at=w.t0 + DAY)
    assert rc == 2
    objs = [json.loads(line) for line in out]
    assert len(objs) == 2
    a, b = objs
    assert a["path"] == str(good) and a["state"] == "OK" and a["cert_status"] == "good"
    assert a["this_update"] == iso(w.t0) and a["next_update"] == iso(w.t0 + 7 * DAY)
    assert a["produced_at"] == iso(w.t0)
    assert a["remaining_seconds"] == 6 * 86400 and a["lifetime_seconds"] == LIFE7
    assert a["serial"] == w.pki.leaves["good1"].serial.lstrip("0")
    assert a["verified"] is True and a["signer_not_after"].endswith("Z")
    assert a["messages"] == [f"good, 6d left (next update {iso(w.t0 + 7 * DAY)})"]
    assert b["state"] == "CRITICAL" and b["cert_status"] is None and b["this_update"] is None
    assert b["remaining_seconds"] is None and b["verified"] is False and b["messages"] == ["no such file"]
    for key in ("path", "state", "cert_status", "this_update", "next_update", "produced_at",
                "remaining_seconds", "lifetime_seconds", "serial", "verified", "signer_not_after",
                "messages"):
        assert key in a and key in b
    rc, out, _ = check("--json", "--cert", w.cert("revoked1"), revoked, at=w.t0)
    obj = json.loads(out[0])
    assert rc == 2 and obj["cert_status"] == "revoked" and obj["revocation_time"] == iso(w.t0 - DAY)
    assert obj["revocation_reason"] == "keyCompromise"


def test_prometheus_text_parses(world, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families
    w = world
    good, unverified = w.staple("good"), w.staple("revoked")
    odd = tmp_path / 'odd"name\\x.ocsp'
    rc, out, _ = check("--prometheus", good, unverified, odd, at=w.t0 + DAY)
    assert rc == 2
    families = {f.name: f for f in text_string_to_metric_families("\n".join(out) + "\n")}
    samples = {(f.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    g = (("path", str(good)),)
    assert samples[("ocsp_staple_state", g)] == 0
    assert samples[("ocsp_staple_state", (("path", str(unverified)),))] == 2
    assert samples[("ocsp_staple_state", (("path", str(odd)),))] == 2
    assert samples[("ocsp_staple_next_update_timestamp_seconds", g)] == (w.t0 + 7 * DAY).timestamp()
    assert samples[("ocsp_staple_this_update_timestamp_seconds", g)] == w.t0.timestamp()
    assert samples[("ocsp_staple_remaining_seconds", g)] == 6 * 86400
    assert samples[("ocsp_staple_verified", g)] == 0
    assert samples[("ocsp_staple_cert_status", (("path", str(good)), ("status", "good")))] == 1
    assert samples[("ocsp_staple_cert_status", (("path", str(unverified)), ("status", "revoked")))] == 1
    assert samples[("ocsp_staple_cert_status", (("path", str(odd)), ("status", "good")))] == 0
    assert ("ocsp_staple_remaining_seconds", (("path", str(odd)),)) not in samples
    assert samples[("ocsp_check_timestamp_seconds", ())] == (w.t0 + DAY).timestamp()
    for name in ("ocsp_staple_state", "ocsp_staple_next_update_timestamp_seconds",
                 "ocsp_staple_remaining_seconds", "ocsp_staple_cert_status"):
        assert families[name].type == "gauge" and families[name].documentation


def test_prometheus_same_path_twice_gives_no_duplicate_series(world):
    """node_exporter rejects a whole .prom file with a duplicate series: a repeated path gets #2."""
    from prometheus_client.parser import text_string_to_metric_families
    w = world
    good, expired = w.staple("good"), w.staple("expired")
    rc, out, _ = check("--prometheus", good, expired, good, at=w.t0)
    assert rc == 2
    samples = [s for f in text_string_to_metric_families("\n".join(out) + "\n") for s in f.samples]
    series = [(s.name, tuple(sorted(s.labels.items()))) for s in samples]
    assert len(series) == len(set(series))
    states = {s.labels["path"]: s.value for s in samples if s.name == "ocsp_staple_state"}
    assert states == {str(good): 0, str(expired): 2, f"{good}#2": 0}


ROOT = Path(__file__).resolve().parent.parent
PROM_DIR = "/var/lib/node_exporter/"
PROM_STAPLES = "/etc/haproxy/certs/*.ocsp"


def documented_prometheus_cron() -> str:
    """The node_exporter cron command of the README (schedule removed), checked against the man page."""
    lines = [line for line in (ROOT / "README.md").read_text().splitlines()
             if "ocsp-check --prometheus" in line and " mv " in line]
    assert len(lines) == 1, lines
    command_ = lines[0].split(None, 5)[5]
    man = [line for line in (ROOT / "man" / "ocsp-check.1").read_text().replace("\\-", "-").splitlines()
           if "ocsp-check --prometheus" in line and " mv " in line]
    assert len(man) == 1 and man[0].split(None, 5)[5] == command_, man
    return command_


def test_documented_prometheus_cron_updates_the_file_on_critical(world, tmp_path):
    """exit 2 is when the metrics matter: the documented snippet must still rename the .prom file."""
    w = world
    script = documented_prometheus_cron()
    assert PROM_DIR in script and PROM_STAPLES in script
    out = tmp_path / "textfile"
    out.mkdir()
    (out / "ocsp.prom").write_text('ocsp_staple_state{path="stale"} 0\n')
    script = script.replace(PROM_DIR, f"{out}/").replace(PROM_STAPLES, str(w.staple("expired")))
    env = dict(build.ENV, PATH=f"{Path(command('ocsp-check')).parent}:/usr/bin:/bin")
    res = subprocess.run(["sh", "-c", script], capture_output=True, env=env, timeout=60)
    assert res.stderr == b""
    assert sorted(p.name for p in out.iterdir()) == ["ocsp.prom"]       # no temp file left
    text = (out / "ocsp.prom").read_text()
    from prometheus_client.parser import text_string_to_metric_families
    states = {s.labels["path"]: s.value for f in text_string_to_metric_families(text)
              for s in f.samples if s.name == "ocsp_staple_state"}
    assert states == {str(w.staple("expired")): 2}
    assert "stale" not in text


def test_print_fields(world, tmp_path):
    w = world
    good, expired = w.staple("good"), w.staple("expired")
    for field, want in (("state", ["OK", "CRITICAL", "CRITICAL"]),
                        ("status", ["good", "good", ""]),
                        ("this-update", [iso(w.t0), iso(w.t0 - 8 * DAY), ""]),
                        ("next-update", [iso(w.t0 + 7 * DAY), iso(w.t0 - DAY), ""]),
                        ("produced-at", [iso(w.t0), iso(w.t0 - 8 * DAY), ""]),
                        ("remaining", [str(LIFE7), "-86400", ""])):
        rc, out, _ = check("--print", field, good, expired, tmp_path / "x", at=w.t0)
        assert rc == 2 and out == want, field
    rc, out, _ = check("--print", "state,remaining,path", "-w", "7d", good, at=w.t0 + HOUR)
    assert rc == 1 and out == [f"WARNING\t{LIFE7 - 3600}\t{good}"]
    rc, out, err = check("--print", "bogus", good, at=w.t0)
    assert rc == 3 and out == [] and "unknown --print field 'bogus'" in err


def test_quiet_prints_nothing_and_keeps_the_status(world):
    w = world
    good = w.staple("good")
    for at, rc in ((w.t0, 0), (w.t0 + 6 * DAY, 1), (w.t0 + 8 * DAY, 2)):
        code, out, err = check("-q", "--cert", w.cert("good1"), good, at=at)
        assert (code, out, err) == (rc, [], "")
    code, out, err = check("-q", "-w", "3d", "-c", "1d", "-w", "8d", good, at=w.t0)
    assert (code, out) == (1, [])


# --------------------------------------------------------------------------- UNKNOWN

@pytest.mark.parametrize("args, fragment", [
    ([], "give STAPLE file(s) or -H HOST"),
    (["--bogus", "x"], "unrecognized arguments: --bogus"),
    (["-w", "3 fortnights", "x"], "unknown unit 'fortnights'"),
    (["-w", "120%", "x"], "percentage out of range"),
    (["-t", "0", "x"], "must be positive"),
    (["-p", "443", "x"], "-p/--port needs -H/--hostname"),
    (["-H", "127.0.0.1", "-p", "99999"], "port out of range"),
    (["--starttls", "gopher", "-H", "127.0.0.1"], "invalid choice: 'gopher'"),
    (["x", "-c"], "expected one argument"),
    (["-", "-"], "standard input (-) can be read only once"),
    (["--quie", "x"], "unrecognized arguments: --quie"),
])
def test_usage_errors_are_unknown_never_argparse_2(args, fragment):
    res = build.run_at(None, [command("ocsp-check"), *args])
    assert res.returncode == 3
    out = res.stdout.decode().splitlines()
    assert len(out) == 1 and out[0].startswith("OCSP UNKNOWN - ") and fragment in out[0], out
    assert fragment in assert_one_line_error(res.stderr)


def test_output_modes_exclude_each_other():
    res = build.run_at(None, [command("ocsp-check"), "--json", "--prometheus", "x"])
    assert res.returncode == 3 and res.stdout == b""
    assert "not allowed with argument" in assert_one_line_error(res.stderr)


def test_help_and_version_exit_unknown():
    res = build.run_at(None, [command("ocsp-check"), "--help"])
    assert res.returncode == 3 and b"usage: ocsp-check" in res.stdout
    res = build.run_at(None, [command("ocsp-check"), "-V"])
    assert res.returncode == 3 and res.stdout.startswith(b"ocsp-check (ocsptools) ")


def test_openssl_missing_is_unknown(tmp_path):
    staple = tmp_path / "site.der"
    staple.write_bytes(b"\x30\x03\x0a\x01\x00")
    res = build.run_at(None, [command("ocsp-check"), "--openssl", "/nonexistent/openssl", str(staple)])
    assert res.returncode == 3
    assert res.stdout.decode().startswith("OCSP UNKNOWN - openssl not found ('/nonexistent/openssl')")
    assert_one_line_error(res.stderr)


@pytest.mark.parametrize("mode", [["-q"], ["--json"], ["--prometheus"], ["--print", "state"]])
def test_usage_error_in_machine_modes_prints_only_the_stderr_line(mode):
    """stdout stays parseable (JSON, .prom file, $(...)) or empty (-q); stderr says why."""
    res = build.run_at(None, [command("ocsp-check"), *mode, "-w", "nonsense", "x"])
    assert res.returncode == 3 and res.stdout == b""
    assert "not a duration" in assert_one_line_error(res.stderr)


def test_hung_stdin_ends_with_the_timeout():
    """A pipe that never closes cannot hold the check beyond -t."""
    import os
    import subprocess
    import time
    r, w = os.pipe()
    start = time.monotonic()
    try:
        proc = subprocess.Popen([command("ocsp-check"), "-t", "1", "-"], stdin=r,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(r)
        out, err = proc.communicate(timeout=20)
    finally:
        os.close(w)
    assert time.monotonic() - start < 5
    assert proc.returncode == 3
    assert out.decode() == "OCSP UNKNOWN - no result within the 1 s timeout (-t)\n"
    assert_one_line_error(err)


def test_bin_shim_runs_the_command(world):
    shim = Path(__file__).resolve().parent.parent / "bin" / "ocsp-check"
    res = build.run_at(world.t0, [sys.executable, str(shim), "--cert", str(world.cert("good1")),
                                  str(world.staple("good"))])
    assert res.returncode == 0 and res.stdout.startswith(b"OCSP OK - ")


def test_pipe_from_ocsp_fetch_with_the_network_responder(pki, responder):
    """The README pipeline, against the real `openssl ocsp` responder on 127.0.0.1."""
    import re
    import subprocess
    leaf = pki.leaves["good1"]
    fetch = subprocess.Popen([command("ocsp-fetch"), str(leaf.fullchain)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    res = subprocess.run([command("ocsp-check"), "--cert", str(leaf.fullchain), "-"],
                         stdin=fetch.stdout, capture_output=True, timeout=60)
    fetch.stdout.close()
    assert fetch.wait(30) == 0, fetch.stderr.read()
    assert res.returncode == 0, res.stdout
    line = res.stdout.decode().splitlines()[0]
    # ocsp-check reads its clock once, as it starts: the answer fetched meanwhile may be dated a
    # second or two later (within the skew), so a little more than the lifetime may be left
    assert re.fullmatch(r"OCSP OK - standard input: good, (1d|23h59m) left \(next update \S+Z\) "
                        r"\| 'standard input'=(8640[0-5]|8639\d|8638\d)s;21600:;8640:;0;86400", line), line
