"""The proxy's settings of the one staple model (``ocsptools.life``) and its HTTP caching headers.

Times are POSIX seconds (UTC); ``now`` is always an argument.  When to
refresh, how to back off and which answer is newer are ``life``'s rules; this
module only converts them to the cache's float timestamps and says what the
headers say.
"""

from __future__ import annotations

import email.utils
from datetime import datetime, timezone

from .. import life
from ..staple import Staple

#: Entries stay in the cache this long past their end (never served then: tryLater), so the
#: refresher keeps trying and the expiry is reported as such.
KEEP_EXPIRED = 86400.0
#: Failed refreshes: 30 s doubling up to an hour (``life.retry_delay``).
BACKOFF = life.Backoff(base=30.0, cap=3600.0)


def valid_until(staple: Staple) -> float:
    """When the answer stops verifying (``life.Life.end``), as POSIX seconds."""
    end = staple.valid_until
    assert end is not None, "only answers with a nextUpdate are cached"
    return end.timestamp()


def refresh_due(staple: Staple, pct: float) -> float:
    """When the refresher renews STAPLE: PCT percent of its effective life elapsed."""
    return life.renewal_due(staple.life, life.RenewalRule(share=pct / 100.0))[0].timestamp()


def retry_at(failures: int, now: float, until: float) -> float:
    """When to try again after FAILURES consecutive failed refreshes of an answer valid UNTIL."""
    return now + life.retry_delay(failures, BACKOFF, left=until - now)


def keep_until(until: float) -> float:
    """When the cache may forget the entry (Redis TTL / sqlite sweep)."""
    return until + KEEP_EXPIRED


def http_date(ts: float) -> str:
    """An RFC 9110 IMF-fixdate, always GMT."""
    return email.utils.format_datetime(datetime.fromtimestamp(int(ts), timezone.utc), usegmt=True)


def max_age(until: float, now: float) -> int:
    """RFC 5019/9919: max-age no later than the instant the answer stops verifying."""
    return max(0, int(until - now))


def usable(until: float, now: float) -> bool:
    """May an entry valid UNTIL be served at NOW?  Never at or after that instant."""
    return now < until
