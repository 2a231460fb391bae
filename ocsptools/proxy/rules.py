"""Pure decisions of the proxy: when to refresh, how long to back off, which answer is newer,
what caching headers say.  Times are POSIX seconds (UTC); ``now`` is always an argument."""

from __future__ import annotations

import email.utils
from datetime import datetime, timezone
from typing import Optional, Tuple

#: Entries stay in the cache this long past nextUpdate (never served then: tryLater), so the
#: refresher keeps trying and the expiry is reported as such.
KEEP_EXPIRED = 86400.0
#: First retry after a failed refresh, doubled per failure up to BACKOFF_MAX.
BACKOFF_BASE = 30.0
BACKOFF_MAX = 3600.0


def refresh_at(this_update: float, next_update: float, pct: float) -> float:
    """The instant PCT percent of the way from thisUpdate to nextUpdate."""
    return this_update + (next_update - this_update) * pct / 100.0


def keep_until(next_update: float) -> float:
    """When the cache may forget the entry (Redis TTL / sqlite sweep)."""
    return next_update + KEEP_EXPIRED


def backoff(failures: int, now: float, next_update: float) -> float:
    """When to try again after FAILURES consecutive failed refreshes.

    Exponential from BACKOFF_BASE, capped at BACKOFF_MAX and at half the time
    left before nextUpdate (so several attempts still happen before expiry);
    never sooner than 5 seconds."""
    delay = min(BACKOFF_BASE * (2 ** max(0, min(failures - 1, 20))), BACKOFF_MAX)
    left = next_update - now
    if left > 0:
        delay = min(delay, left / 2)
    return now + max(5.0, delay)


def is_newer(candidate: Tuple[float, Optional[float]], current: Optional[Tuple[float, Optional[float]]]) -> bool:
    """(thisUpdate, producedAt) strictly newer than CURRENT (thisUpdate first, producedAt breaks ties)."""
    if current is None:
        return True
    if candidate[0] != current[0]:
        return candidate[0] > current[0]
    return (candidate[1] or 0.0) > (current[1] or 0.0)


def http_date(ts: float) -> str:
    """An RFC 9110 IMF-fixdate, always GMT."""
    return email.utils.format_datetime(datetime.fromtimestamp(int(ts), timezone.utc), usegmt=True)


def max_age(next_update: float, now: float) -> int:
    """RFC 5019/9919: max-age no later than nextUpdate."""
    return max(0, int(next_update - now))


def usable(next_update: float, now: float) -> bool:
    """May an entry with this nextUpdate be served at NOW?  Never at or after nextUpdate."""
    return now < next_update
