"""ocsptools.stapler.schedule: the Stapler's policy, pure (values in, instants out; no clock, no PKI).

The rules are ocsptools.life's (tests/test_life.py); here: the Stapler's settings of them and
which staple may be served when."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from ocsptools.errors import UsageError
from ocsptools.staple import Certificate, ResponseInfo, SingleResponse, Staple
from ocsptools.stapler.schedule import Schedule, next_refresh, retry_at, serve_window, servable

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
NOJITTER = Schedule(jitter=0.0)
DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)

#: A certificate with serial 5 valid around T0.
LEAF5 = Certificate(der=b"\x30\x03\x02\x01\x05", subject="CN=leaf5", issuer="CN=inter", serial=5,
                    not_before=T0 - 30 * DAY, not_after=T0 + 30 * DAY)
GONE = dataclasses.replace(LEAF5, not_after=T0 + HOUR)       # expires an hour after T0


def staple(this_update=T0, next_update=T0 + 4 * DAY, *, status="good", serial=5,
           signer_not_after=None, verified=True) -> Staple:
    single = SingleResponse("sha1", "AA", "BB", serial, status, this_update, next_update)
    info = ResponseInfo("successful", produced_at=this_update, responses=(single,))
    return Staple(b"\x30\x03\x0a\x01\x00", info, single, verified=verified,
                  signer_not_after=signer_not_after)


GOOD = staple()
EARLY = staple(signer_not_after=T0 + DAY)                     # its signer expires first
FUTURE = staple(T0 + 10 * MINUTE)                             # thisUpdate 10 minutes ahead


@pytest.mark.parametrize("what, s, leaf, now, ok", [
    ("valid", GOOD, LEAF5, T0 + DAY, True),
    ("nothing", None, LEAF5, T0, False),
    ("at nextUpdate", GOOD, LEAF5, T0 + 4 * DAY, False),
    ("revoked", staple(status="revoked"), LEAF5, T0, False),
    ("unknown", staple(status="unknown"), LEAF5, T0, False),
    ("not verified", staple(verified=False), LEAF5, T0, False),
    ("another serial", staple(serial=6), LEAF5, T0, False),
    ("no nextUpdate", staple(next_update=None), LEAF5, T0, False),
    ("signer valid", EARLY, LEAF5, T0 + 23 * HOUR, True),
    ("signer expired", EARLY, LEAF5, T0 + DAY, False),
    ("beyond the skew", FUTURE, LEAF5, T0, False),
    ("within the skew", FUTURE, LEAF5, T0 + 6 * MINUTE, True),
    ("certificate expired", GOOD, GONE, T0 + HOUR, False),
])
def test_servable_only_good_verified_current_staples(what, s, leaf, now, ok):
    assert servable(s, leaf, now) is ok, what


@pytest.mark.parametrize("s, leaf, window", [
    (GOOD, LEAF5, (T0 - 5 * MINUTE, T0 + 4 * DAY)),
    (GOOD, GONE, (T0 - 5 * MINUTE, T0 + HOUR)),               # the certificate's notAfter
    (EARLY, LEAF5, (T0 - 5 * MINUTE, T0 + DAY)),              # the signer's notAfter
    (staple(next_update=None), LEAF5, None),
    (staple(status="revoked"), LEAF5, None),
])
def test_the_window_the_handshake_path_checks_is_the_same_rule_precomputed(s, leaf, window):
    assert serve_window(s, leaf) == window


@pytest.mark.parametrize("s, now, schedule, rand, when", [
    (GOOD, T0, NOJITTER, 0.0, T0 + 2 * DAY),                                  # half-life
    (EARLY, T0, NOJITTER, 0.0, T0 + 12 * HOUR),                               # of the effective life
    (GOOD, T0, Schedule(jitter=0.1), 1.0, T0 + 2 * DAY * 0.9),                # jitter: only earlier
    (GOOD, T0 + 3 * DAY, NOJITTER, 0.0, T0 + 3 * DAY + MINUTE),               # past it: min_interval
    (GOOD, T0, Schedule(refresh_at=0.8, jitter=0), 0.0, T0 + timedelta(days=3.2)),
])
def test_next_refresh_is_lifes_renewal_instant_with_the_staplers_settings(s, now, schedule, rand,
                                                                          when):
    assert next_refresh(s, now, schedule, rand) == when


def test_backoff_doubles_to_the_cap_within_retry_after_and_the_staple_served():
    got = [retry_at(T0, n, NOJITTER) - T0 for n in range(1, 10)]
    assert got == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 60, 60, 60)]
    assert retry_at(T0, 1, NOJITTER, retry_after=600) == T0 + 10 * MINUTE
    assert retry_at(T0, 7, NOJITTER, valid_until=T0 + 20 * MINUTE) == T0 + 5 * MINUTE
    custom = Schedule(jitter=0, backoff_first=timedelta(seconds=10), backoff_max=5 * MINUTE)
    assert [retry_at(T0, n, custom) - T0 for n in (1, 2, 6, 7)] == \
        [timedelta(seconds=s) for s in (10, 20, 300, 300)]


@pytest.mark.parametrize("kw", [dict(refresh_at=0), dict(refresh_at=1.0), dict(jitter=1.1),
                                dict(jitter=-0.1), dict(min_interval=timedelta(0)),
                                dict(backoff_first=timedelta(hours=2))])
def test_bad_schedules_refused(kw):
    with pytest.raises(UsageError):
        Schedule(**kw)
