"""The Stapler's policy: which staple may be served when, when to refresh it and how to back off (pure, takes ``now``).

Thin uses of ``ocsptools.life``, the one model of a staple's life: the rules
are there (``life.renewal_due``, ``life.renewal_instant``, ``life.retry_delay``,
``Life.end``); a ``Schedule`` holds the Stapler's settings of them.  Nothing
here reads the clock, the disk or the network.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Optional, Tuple

from .. import life
from ..errors import UsageError
from ..staple import CLOCK_SKEW, Certificate, Staple


@dataclass(frozen=True)
class Schedule:
    """When to refresh and how to back off (the rules are ``ocsptools.life``'s; these are the
    Stapler's settings of them).

    ``refresh_at``: share of the staple's effective life after which it is
    refreshed (0.5: half-life).  ``jitter``: refresh earlier by up to this
    fraction of the time left until then, at random, so workers sharing a
    responder spread out (0 in tests).  ``min_interval``: never ask again
    sooner than this after an answer.  ``backoff_first`` doubling up to
    ``backoff_max`` after failures."""

    refresh_at: float = life.RENEW_SHARE
    jitter: float = life.JITTER
    min_interval: timedelta = timedelta(minutes=1)
    backoff_first: timedelta = timedelta(minutes=1)
    backoff_max: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not 0.0 < self.refresh_at < 1.0:
            raise UsageError(f"refresh_at must lie between 0 and 1, not {self.refresh_at!r}")
        if not 0.0 <= self.jitter <= 1.0:
            raise UsageError(f"jitter must lie in [0, 1], not {self.jitter!r}")
        for name in ("min_interval", "backoff_first", "backoff_max"):
            if getattr(self, name) <= timedelta(0):
                raise UsageError(f"{name} must be a positive duration")
        if self.backoff_first > self.backoff_max:
            raise UsageError("backoff_first must not exceed backoff_max")

    @property
    def rule(self) -> life.RenewalRule:
        return life.RenewalRule(share=self.refresh_at)

    @property
    def backoff(self) -> life.Backoff:
        return life.Backoff(base=self.backoff_first.total_seconds(),
                            cap=self.backoff_max.total_seconds())


def serve_window(staple: Optional[Staple], leaf: Certificate, *,
                 skew: timedelta = CLOCK_SKEW) -> Optional[Tuple[datetime, datetime]]:
    """The instants [start, end) during which STAPLE may be stapled to LEAF's handshakes, or None.

    Only a verified ``good`` response for LEAF's serial, with a nextUpdate,
    qualifies; it may be served from SKEW before its thisUpdate until its
    effective end (``life``: the earliest of its nextUpdate, its responder
    certificate's notAfter and LEAF's notAfter)."""
    if staple is None or not staple.verified or staple.cert_status != "good":
        return None
    if staple.serial != leaf.serial:
        return None
    lf = replace(staple.life, cert_not_after=leaf.not_after)
    if lf.end is None:
        return None
    return lf.this_update - skew, lf.end


def servable(staple: Optional[Staple], leaf: Certificate, now: datetime, *,
             skew: timedelta = CLOCK_SKEW) -> bool:
    """May STAPLE be stapled to LEAF's handshakes at NOW?  (NOW inside ``serve_window``.)"""
    window = serve_window(staple, leaf, skew=skew)
    return window is not None and window[0] <= now < window[1]


def next_refresh(staple: Staple, now: datetime, schedule: Schedule, rand: float) -> datetime:
    """When the Stapler refreshes STAPLE: ``life.renewal_instant`` with the schedule's settings."""
    due, _ = life.renewal_due(staple.life, schedule.rule)
    return life.renewal_instant(now, due, staple.valid_until, rand=rand, jitter=schedule.jitter,
                                floor=schedule.min_interval)


def retry_at(now: datetime, failures: int, schedule: Schedule, *,
             retry_after: Optional[float] = None, valid_until: Optional[datetime] = None) -> datetime:
    """When the Stapler tries again after FAILURES failures: ``life.retry_delay`` from NOW."""
    left = None if valid_until is None else (valid_until - now).total_seconds()
    return now + timedelta(seconds=life.retry_delay(failures, schedule.backoff,
                                                    retry_after=retry_after, left=left))
