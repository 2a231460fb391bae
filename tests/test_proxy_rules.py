"""proxy/rules.py (pure): the proxy's settings of ocsptools.life as POSIX seconds, and what the
caching headers say."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ocsptools.proxy import rules
from ocsptools.staple import ResponseInfo, SingleResponse, Staple

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
NOW = 10_000.0


@pytest.fixture
def staple():
    """Valid 4 days by nextUpdate, but its signer's certificate ends after one."""
    single = SingleResponse("sha1", "AA", "BB", 1, "good", T0, T0 + timedelta(days=4))
    return Staple(der=b"0", info=ResponseInfo("successful", responses=(single,)), single=single,
                  signer_not_after=T0 + timedelta(days=1))


def test_the_end_and_the_refresh_instant(staple):
    assert rules.valid_until(staple) == (T0 + timedelta(days=1)).timestamp()       # the signer's end
    assert rules.refresh_due(staple, 50) == (T0 + timedelta(hours=12)).timestamp()
    assert rules.refresh_due(staple, 100) == rules.valid_until(staple)


#: (failures, the answer's end, the next try)
RETRIES = [
    (1, NOW + 100_000, NOW + rules.BACKOFF.base),
    (2, NOW + 100_000, NOW + 2 * rules.BACKOFF.base),
    (30, NOW + 100_000, NOW + rules.BACKOFF.cap),
    (10, NOW + 600, NOW + 150),                        # a quarter of the time left
    (1, NOW - 5, NOW + rules.BACKOFF.base),            # expired: keep trying
]


@pytest.mark.parametrize("failures, until, expected", RETRIES)
def test_retry_at(failures, until, expected):
    assert rules.retry_at(failures, NOW, until) == expected


@pytest.mark.parametrize("until, max_age, usable", [
    (NOW + 90.5, 90, True), (NOW + 1, 1, True), (NOW, 0, False), (NOW - 1, 0, False)])
def test_max_age_and_usable(until, max_age, usable):
    assert rules.max_age(until, NOW) == max_age
    assert rules.usable(until, NOW) is usable


def test_keep_until_and_http_date():
    assert rules.keep_until(NOW) == NOW + rules.KEEP_EXPIRED
    assert rules.http_date(T0.timestamp() + 0.9) == "Sun, 01 Nov 2026 00:00:00 GMT"
