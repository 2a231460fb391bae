"""The one model of a staple's life (``ocsptools.life``): window, problems, renewal, jitter, backoff, newer.

Pure functions tested directly, every instant passed in.  The last tests state
the invariant README promises: with default settings a staple is due for
renewal strictly before ``ocsp-check``'s default thresholds leave OK.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocsptools import check, life, nagios, policy
from ocsptools.durations import parse_threshold
from ocsptools.life import (CERTIFICATE, NEXT_UPDATE, SIGNER, Backoff, Life, RenewalRule,
                            margin_for, newer, problems, renewal_due, renewal_instant, retry_delay)
from ocsptools.staple import ResponseInfo, SingleResponse, Staple

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# ---------------------------------------------------------------------------
# the window

@pytest.mark.parametrize("next_update, signer, cert, end, by", [
    (7 * DAY, None, None, 7 * DAY, NEXT_UPDATE),
    (7 * DAY, 2 * DAY, None, 2 * DAY, SIGNER),
    (7 * DAY, None, 3 * DAY, 3 * DAY, CERTIFICATE),
    (7 * DAY, 2 * DAY, 1 * DAY, 1 * DAY, CERTIFICATE),
    (7 * DAY, 9 * DAY, 8 * DAY, 7 * DAY, NEXT_UPDATE),
    (7 * DAY, 7 * DAY, 7 * DAY, 7 * DAY, NEXT_UPDATE),          # a tie: nextUpdate names it
    (None, 2 * DAY, 1 * DAY, None, None),                       # no nextUpdate: no window
])
def test_the_window_ends_at_the_earliest_of_next_update_signer_and_certificate(next_update, signer,
                                                                              cert, end, by):
    lf = Life(T0, at(next_update) if next_update is not None else None,
              at(signer) if signer is not None else None, at(cert) if cert is not None else None)
    assert lf.end == (at(end) if end is not None else None)
    assert lf.ended_by == by
    if end is not None:
        assert lf.span == timedelta(seconds=end)
        assert lf.left(at(HOUR)) == timedelta(seconds=end - HOUR)
        assert lf.valid_at(at(end - 1)) and not lf.valid_at(at(end))
        assert lf.valid_at(at(-299)) and not lf.valid_at(at(-301))   # the 5-minute skew


@pytest.mark.parametrize("this, next_update, signer, cert, now, codes", [
    (0, 7 * DAY, None, None, HOUR, []),
    (10 * MIN, 7 * DAY, None, None, 0, ["future"]),
    (4 * MIN, 7 * DAY, None, None, 0, []),
    (0, None, None, None, HOUR, ["no-next-update"]),
    (0, 7 * DAY, None, None, 7 * DAY, ["expired"]),
    (0, 7 * DAY, 2 * DAY, None, HOUR, ["signer-expires-early"]),
    (0, 7 * DAY, 90, None, 60, ["signer-expires-early"]),
    (0, 7 * DAY, 2 * DAY, None, 2 * DAY, ["signer-expired"]),
    (0, 7 * DAY, None, 3 * DAY, 3 * DAY, ["cert-expired"]),
])
def test_problems(this, next_update, signer, cert, now, codes):
    lf = Life(at(this), at(next_update) if next_update is not None else None,
              at(signer) if signer is not None else None, at(cert) if cert is not None else None)
    found = problems(lf, at(now))
    assert [p.code for p in found] == codes
    assert all(p.severity == (life.WARNING if p.code == "signer-expires-early" else life.ERROR)
               for p in found)


# ---------------------------------------------------------------------------
# renewal

@pytest.mark.parametrize("signer, cert, rule, due, why", [
    (None, None, RenewalRule(), 3.5 * DAY, "50% of its lifetime"),
    (2 * DAY, None, RenewalRule(), 1 * DAY, "50% of its lifetime"),
    (None, 1 * DAY, RenewalRule(), 12 * HOUR, "50% of its lifetime"),
    (None, None, RenewalRule(share=0.8), 5.6 * DAY, "80% of its lifetime"),
    (None, None, RenewalRule(share=0.8, min_validity=timedelta(days=3)), 4 * DAY, "less than 3d"),
    (2 * DAY, None, RenewalRule(share=1.0), 2 * DAY, "notAfter"),
    (None, 1 * DAY, RenewalRule(min_validity=timedelta(hours=6)), 12 * HOUR, "50%"),
    (None, None, RenewalRule(share=0.0), 0, "0% of its lifetime"),
])
def test_renewal_due(signer, cert, rule, due, why):
    lf = Life(T0, at(7 * DAY), at(signer) if signer else None, at(cert) if cert else None)
    got, reason = renewal_due(lf, rule)
    assert got == at(due) and why in reason


def test_the_renewal_rule_key_names_what_the_due_instant_depends_on():
    assert RenewalRule().key() == "50/"
    assert RenewalRule(share=0.8, min_validity=timedelta(days=3)).key() == "80/259200"
    assert policy.RenewOptions(renew_at=80).key() == RenewalRule(share=0.8).key()


def test_jitter_is_a_band_before_the_due_instant_never_after():
    due = at(12 * HOUR)                     # a 1-day staple, due at half-life
    rng = random.Random(1)
    seen = []
    for _ in range(2000):
        t = renewal_instant(T0, due, at(24 * HOUR), rand=rng.random(), jitter=life.JITTER)
        off = (t - due).total_seconds()
        # never after the due instant (a cron `-q` at any moment agrees with the daemon), at most
        # 10 % of the time left earlier
        assert -0.1 * 12 * HOUR <= off <= 0
        seen.append(off)
    assert min(seen) < -0.09 * 12 * HOUR and max(seen) > -0.01 * 12 * HOUR
    for r, off in ((0.0, 0), (1.0, 1.2), (0.5, 0.6)):
        assert renewal_instant(T0, due, at(24 * HOUR), rand=r, jitter=0.1) == due - timedelta(hours=off)


def test_the_instant_is_relative_to_the_time_left_and_bounded_by_margin_and_floor():
    for r in (0.0, 0.3, 0.7, 1.0):          # 10 s left: at most 1 s earlier
        t = renewal_instant(T0, at(10), at(3600), rand=r, jitter=0.1)
        assert -1.0 <= (t - at(10)).total_seconds() <= 0.0
    until = at(24 * HOUR)                   # due 2 min before the end: the 5-min margin first
    assert renewal_instant(T0, until - timedelta(minutes=2), until) == until - timedelta(minutes=5)
    assert margin_for(until - T0) == timedelta(minutes=5)
    assert renewal_instant(at(0), at(50), at(60)) == at(45)      # a quarter of a short life left
    assert renewal_instant(at(100), at(50), at(200), floor=timedelta(seconds=1)) == at(101)
    assert renewal_instant(at(100), at(50), at(200), floor=timedelta(minutes=1)) == at(160)


# ---------------------------------------------------------------------------
# backoff

def test_backoff_is_base_doubling_capped():
    assert [retry_delay(n) for n in range(1, 10)] == [MIN, 2 * MIN, 4 * MIN, 8 * MIN, 16 * MIN,
                                                      32 * MIN, HOUR, HOUR, HOUR]
    assert retry_delay(500) == HOUR
    b = Backoff(base=1.0, cap=60.0)
    assert [retry_delay(n, b) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert retry_delay(1, b, try_later=True) == 5
    proxy = Backoff(base=30.0, cap=3600.0)
    assert [retry_delay(n, proxy) for n in (1, 2, 8)] == [30, 60, 3600]


@pytest.mark.parametrize("failures, left, delay", [
    (6, 3 * DAY, 32 * MIN),                 # plenty of time left: the plain schedule
    (6, 2 * HOUR, 30 * MIN),                # at most a quarter of the time left
    (9, 20 * MIN, 5 * MIN),
    (9, 40, 15),                            # a quarter, but not under base/4
    (9, 8, 8),                              # never past the lapse itself
    (9, -10, 5 * MIN),                      # lapsed already: at most 5 bases between tries
])
def test_backoff_tightens_as_the_answer_nears_its_end(failures, left, delay):
    assert retry_delay(failures, left=left) == delay


def test_a_retry_never_sleeps_past_the_end():
    for n in range(1, 12):
        for left in (5, 30, 90, 600, 3600, 7200, 86400):
            assert retry_delay(n, left=left) <= left


@pytest.mark.parametrize("failures, kw, delay", [
    (1, dict(retry_after=300), 300),        # longer than the first minute
    (5, dict(retry_after=30), 16 * MIN),    # never shorter than the backoff
    (1, dict(retry_after=86400), HOUR),     # but within the cap
    (1, dict(retry_after=86400, left=2 * HOUR), 30 * MIN),   # and the lapse wins
    (1, dict(try_later=True), 5 * MIN),
    (7, dict(try_later=True), HOUR),
])
def test_retry_after_and_try_later(failures, kw, delay):
    assert retry_delay(failures, **kw) == delay


# ---------------------------------------------------------------------------
# newer

@pytest.mark.parametrize("a, b, expect", [
    ((at(HOUR), at(HOUR)), (at(0), at(0)), True),
    ((at(0), at(0)), (at(HOUR), at(HOUR)), False),
    ((at(0), at(5)), (at(0), at(0)), True),         # producedAt breaks a tie
    ((at(0), at(0)), (at(0), at(5)), False),
    ((at(0), at(0)), (at(0), at(0)), None),         # as new
    ((at(0), None), (at(0), at(5)), None),          # a tie with an unknown producedAt
    ((at(0), at(0)), None, True),                   # nothing installed
    ((at(0), at(0)), (None, None), True),           # an unusable staple installed
    ((2.0, None), (1.0, 5.0), True),                # the proxy's POSIX seconds
    ((1.0, 5.0), (1.0, 5.0), None),
])
def test_newer(a, b, expect):
    assert newer(a, b) is expect


# ---------------------------------------------------------------------------
# the invariant: renewal is due strictly before monitoring leaves OK

def staple(this: datetime, next_update: datetime, signer=None, cert=None) -> Staple:
    single = SingleResponse("sha1", "AA", "BB", 1, "good", this, next_update)
    return Staple(der=b"0", info=ResponseInfo("successful", produced_at=this, responses=(single,)),
                  single=single, verified=True, signer_not_after=signer, cert_not_after=cert)


def check_state(s: Staple, now: datetime) -> int:
    warning = parse_threshold(check.DEFAULT_WARNING)
    critical = parse_threshold(check.DEFAULT_CRITICAL)
    return nagios.worst(state for state, _ in check.judge(s, now, warning, critical).findings)


def renew_action(s: Staple, now: datetime, cert_not_after: datetime) -> str:
    cert = policy.CertFacts(1, T0 - timedelta(days=90), cert_not_after, ("http://127.0.0.1/",))
    return policy.renewal_decision(cert, policy.StapleFacts.of(s), now).action


@settings(max_examples=300, deadline=None)
@given(span=st.integers(min_value=60, max_value=30 * 86400),
       signer=st.one_of(st.none(), st.floats(min_value=0.05, max_value=2.0)),
       cert=st.one_of(st.none(), st.floats(min_value=0.05, max_value=2.0)))
def test_renewal_is_due_strictly_before_ocsp_check_leaves_ok(span, signer, cert):
    next_update = at(span)
    signer_na = at(span * signer) if signer is not None else None
    cert_na = at(span * cert) if cert is not None else at(400 * DAY)
    s = staple(T0, next_update, signer_na, cert_na)
    due, _ = renewal_due(s.life)
    # at the due instant renewal says renew while monitoring still says OK ...
    assert renew_action(s, due, cert_na) == policy.RENEW
    assert check_state(s, due) == nagios.OK
    # ... and one second earlier both are content
    assert renew_action(s, due - timedelta(seconds=1), cert_na) == policy.FRESH
    # the first instant monitoring is not OK comes strictly later
    end = s.life.end
    assert end is not None
    warn_s = nagios.whole_seconds(0.25 * s.life.span.total_seconds())
    first_warning = end - timedelta(seconds=warn_s - 1)   # alerts when fewer than warn_s are left
    assert check_state(s, first_warning - timedelta(seconds=1)) == nagios.OK
    assert check_state(s, first_warning) != nagios.OK
    assert due < first_warning


def test_the_issue_example_a_signer_dying_in_20_minutes_under_a_7_day_staple():
    """ocsp-check said CRITICAL while ocsp-renew-dir -n said fresh for ten more minutes: both now
    measure the same 30-minute window [thisUpdate, the signer's notAfter]."""
    s = staple(T0, at(7 * DAY), signer=at(30 * MIN), cert=at(90 * DAY))
    assert s.valid_until == at(30 * MIN)
    for minute, action, state in ((10, policy.FRESH, nagios.OK), (15, policy.RENEW, nagios.OK),
                                  (25, policy.RENEW, nagios.WARNING),
                                  (28, policy.RENEW, nagios.CRITICAL)):
        now = at(minute * MIN)
        assert (renew_action(s, now, at(90 * DAY)), check_state(s, now)) == (action, state), minute
