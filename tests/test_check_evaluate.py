"""The evaluation of ocsp-check (ocsptools/check/evaluate.py), pure: judge() on hand-built staples,
the thresholds, and the rules for an absent staple, a left-over one and Must-Staple."""

from __future__ import annotations

import datetime as dt

import pytest

from ocsptools.check import evaluate
from ocsptools.durations import parse_threshold
from ocsptools.nagios import CRITICAL, OK, WARNING
from ocsptools.staple import Certificate, ResponseInfo, SingleResponse, Staple

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
W25, C10 = parse_threshold("25%"), parse_threshold("10%")


def staple(*, status="good", this=T0, nxt=T0 + 7 * DAY, signer_not_after=None,
           revoked_at=None, reason=None, serials=(0x1234,)) -> Staple:
    singles = tuple(SingleResponse("sha1", "AA", "BB", serial, status, this, nxt, revoked_at, reason)
                    for serial in serials)
    info = ResponseInfo("successful", this, "CN=responder", singles)
    return Staple(b"\x30", info, singles[0], verified=True, signer_not_after=signer_not_after)


def cert(*, must_staple=False, ocsp_urls=("http://127.0.0.1:9/",), serial=0x1234) -> Certificate:
    return Certificate(b"\x30", "CN=leaf", "CN=inter", serial, T0 - 30 * DAY, T0 + 60 * DAY,
                       ocsp_urls=tuple(ocsp_urls), must_staple=must_staple)


def findings(s, now, w=W25, c=C10):
    return list(evaluate.judge(s, now, w, c).findings)


# --------------------------------------------------------------------------- judge()

@pytest.mark.parametrize("s, now, want", [
    (staple(), T0, [(OK, "good, 7d left (next update 2026-12-08T12:00:00Z)")]),
    (staple(), T0 + 6 * DAY, [(WARNING, "good, 1d left (next update 2026-12-08T12:00:00Z), below the "
                                        "warning threshold 1d18h (25% of 7d)")]),
    (staple(), T0 + 6 * DAY + 12 * HOUR, [(CRITICAL, "good, 12h left (next update 2026-12-08T12:00:00Z), "
                                                     "below the critical threshold 16h48m (10% of 7d)")]),
    (staple(), T0 + 8 * DAY, [(CRITICAL, "expired at nextUpdate 2026-12-08T12:00:00Z, 1d ago")]),
    (staple(nxt=None), T0, [(WARNING, "good, no nextUpdate: HAProxy and Exim refuse to staple such a "
                                      "response")]),
    (staple(status="revoked", revoked_at=T0 - DAY, reason="keyCompromise"), T0,
     [(CRITICAL, "REVOKED at 2026-11-30T12:00:00Z (keyCompromise)")]),
    (staple(status="revoked", revoked_at=T0 - DAY), T0, [(CRITICAL, "REVOKED at 2026-11-30T12:00:00Z")]),
    (staple(status="unknown"), T0, [(CRITICAL, "certificate status unknown: the responder does not know "
                                               "this certificate (wrong issuer or responder?)")]),
    (staple(this=T0 + 10 * MINUTE), T0,
     [(CRITICAL, "thisUpdate 2026-12-01T12:10:00Z is in the future (more than 5 minutes ahead of this "
                 "clock)"),
      (OK, "good, 7d left (next update 2026-12-08T12:00:00Z)")]),
    (staple(this=T0 + 4 * MINUTE), T0, [(OK, "good, 7d left (next update 2026-12-08T12:00:00Z)")]),
], ids=["ok", "warning", "critical", "expired", "no-next-update", "revoked", "revoked-no-reason",
        "unknown", "future", "within-skew"])
def test_judge(s, now, want):
    assert findings(s, now) == want


def test_judge_signer_expiry():
    """A signer expiring before nextUpdate ends the staple's life: time left and the percentage
    thresholds are measured on [thisUpdate, signer notAfter] (3 days here)."""
    s = staple(signer_not_after=T0 + 3 * DAY)
    assert findings(s, T0) == [(OK, "good, 3d left (until the responder certificate's notAfter "
                                    "2026-12-04T12:00:00Z, before next update 2026-12-08T12:00:00Z)")]
    assert findings(s, T0 + 2 * DAY + 12 * HOUR)[0][0] == WARNING    # 12h < 18h of 3d
    assert findings(s, T0 + 2 * DAY + 18 * HOUR)[0][0] == CRITICAL   # 6h < 7h12m
    assert findings(staple(signer_not_after=T0 - HOUR), T0) == [
        (CRITICAL, "the responder certificate expired at 2026-12-01T11:00:00Z")]


@pytest.mark.parametrize("s, warning, critical, seconds", [
    (staple(), "3d", "25%", (259200, 151200)),
    (staple(), "25%", "10%", (151200, 60480)),
    (staple(nxt=T0 + dt.timedelta(seconds=604799)), "25%", "10%", (151200, 60480)),   # rounded up
    (staple(nxt=None), "25%", "10%", (None, None)),
    (staple(nxt=None), "3d", "1d", (259200, 86400)),
])
def test_judge_thresholds_in_whole_seconds(s, warning, critical, seconds):
    j = evaluate.judge(s, T0, parse_threshold(warning), parse_threshold(critical))
    assert (j.warning_seconds, j.critical_seconds) == seconds


def test_critical_is_tested_before_warning():
    """-c a duration above -w a percentage: both match, CRITICAL is said."""
    got = findings(staple(), T0 + 6 * DAY + HOUR, parse_threshold("10%"), parse_threshold("3d"))
    assert got == [(CRITICAL, "good, 23h left (next update 2026-12-08T12:00:00Z), below the critical "
                              "threshold 3d")]


@pytest.mark.parametrize("seconds, text", [(7 * 86400, "7d"), (86400 + 3600 + 59, "1d1h"),
                                           (3599, "59m59s"), (-90, "1m30s"), (0, "0s")])
def test_human(seconds, text):
    assert evaluate.human(seconds) == text


@pytest.mark.parametrize("threshold, seconds, lifetime, text", [
    ("25%", 151200, 7 * DAY, "1d18h (25% of 7d)"),
    ("3d", 259200, 7 * DAY, "3d"),
    ("25%", None, None, "25%"),
])
def test_describe_threshold(threshold, seconds, lifetime, text):
    assert evaluate.describe_threshold(parse_threshold(threshold), seconds, lifetime) == text


@pytest.mark.parametrize("warning, critical, inverted", [
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
def test_thresholds_inverted(warning, critical, inverted):
    assert evaluate.thresholds_inverted(parse_threshold(warning), parse_threshold(critical)) is inverted


# --------------------------------------------------------------------------- no staple, left over, Must-Staple

MUST = "but the certificate is Must-Staple (TLS Feature status_request)"


@pytest.mark.parametrize("certificate, require, live, want, not_applicable", [
    (None, False, False, (CRITICAL, "no such file"), False),
    (cert(), False, False, (CRITICAL, "no such file"), False),
    (cert(), True, False, (CRITICAL, "no such file (--require-staple)"), False),
    (cert(ocsp_urls=()), False, False,
     (OK, "no such file; not applicable: the certificate names no OCSP responder"), True),
    (cert(ocsp_urls=()), True, False, (CRITICAL, "no such file (--require-staple)"), False),
    (cert(must_staple=True), False, False,
     (CRITICAL, f"no such file, {MUST}: clients will refuse the connection"), False),
    (cert(must_staple=True, ocsp_urls=()), False, False,
     (CRITICAL, f"no such file, {MUST} and it names no OCSP responder: clients will refuse the "
                f"connection"), False),
    (cert(), False, True,
     (CRITICAL, "no such file, although the certificate names an OCSP responder: turn stapling on (or "
                "check why the server has no valid staple)"), False),
    (cert(ocsp_urls=()), False, True,
     (OK, "no such file; not applicable: the certificate names no OCSP responder"), True),
], ids=["no-cert", "cert", "require", "no-url", "no-url-require", "must-staple", "must-staple-no-url",
        "live", "live-no-url"])
def test_absent(certificate, require, live, want, not_applicable):
    got = evaluate.absent("no such file", certificate, require_staple=require, live=live)
    assert (got.finding, got.not_applicable) == (want, not_applicable)


def test_leftover():
    assert evaluate.leftover(cert(serial=0xABC), staple(serials=(0x12, 0x34))) == (
        CRITICAL, "not a response for this certificate (serial ABC); it covers serial(s) 12, 34; the "
                  "certificate names no OCSP responder, so this staple is left over from an earlier "
                  "certificate: remove it and turn stapling off")


@pytest.mark.parametrize("certificate, state, verified, want", [
    (None, CRITICAL, False, None),
    (cert(), CRITICAL, False, None),
    (cert(must_staple=True), OK, True, None),
    (cert(must_staple=True), WARNING, True, None),
    (cert(must_staple=True), CRITICAL, True,
     (CRITICAL, "the certificate is Must-Staple: clients refuse connections without a valid staple")),
    (cert(must_staple=True), OK, False,
     (CRITICAL, "cannot verify the staple of a Must-Staple certificate; give -i ISSUER")),
    (cert(must_staple=True, ocsp_urls=()), OK, False,
     (CRITICAL, "cannot verify the staple of a Must-Staple certificate; it names no OCSP responder")),
])
def test_must_staple(certificate, state, verified, want):
    assert evaluate.must_staple(certificate, state, verified) == want
