"""The one model of a staple's life: its effective validity, when to renew it, how to back off, which answer is newer.

Every consumer (``ocsp-fetch``, ``ocsp-check``, ``ocsp-renew-dir`` and its
``--watch`` scheduler, ``ocsp-proxy``, the ``Stapler``) asks this module and
nothing else.  Pure: no I/O, and the clock is always an argument.

* **Life.** A verified answer is usable from thisUpdate (less the clock skew
  allowance) until the earliest of its nextUpdate, its signer's notAfter and
  the certificate's notAfter: after that instant a TLS client rejects it.
  An answer without nextUpdate has no end (``end`` is None): servers will not
  staple it.
* **Renewal.** Due once ``share`` of the window [thisUpdate, end] has elapsed,
  or ``min_validity`` before the end if that comes first.  A scheduler may
  move it *earlier* at random (``jitter``, a fraction of the time left until
  it falls due), never later; never later than a safety margin before the end.
* **Backoff.** After a failure: ``base`` doubling up to ``cap``; tryLater
  waits a few bases and a Retry-After at least as long as asked (within the
  cap); while an answer is still usable never more than a quarter of its time
  left, never past its end.
* **Newer.** thisUpdate decides; producedAt breaks a tie.

With the defaults (renewal at half-life, ``ocsp-check`` warning at 25% and
critical at 10% of the same window left), renewal is always due strictly
before monitoring leaves OK.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import List, Optional, Tuple, TypeVar

#: How far ahead of our clock a thisUpdate may lie before we call it "in the future".
CLOCK_SKEW = timedelta(minutes=5)

#: What ended a window (``Life.ended_by``).
NEXT_UPDATE = "nextUpdate"
SIGNER = "the responder certificate's notAfter"
CERTIFICATE = "the certificate's notAfter"

#: The default renewal point: this share of the window elapsed (half-life).
RENEW_SHARE = 0.5
#: Renewals are planned at least this long before the end (less for short-lived staples: a
#: quarter of the time left).
SAFETY_MARGIN = timedelta(minutes=5)
#: Schedulers move a renewal earlier by up to this fraction of the time left until it is due.
JITTER = 0.10

# Problem severities.
ERROR = "error"
WARNING = "warning"


def iso(dt: Optional[datetime]) -> Optional[str]:
    """ISO 8601 UTC with a Z, to the second (``2026-11-28T12:00:00Z``)."""
    if dt is None:
        return None
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: Optional[str]) -> Optional[datetime]:
    """The inverse of ``iso`` (None for None or an empty text)."""
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Life:
    """The times that bound one answer's usefulness (all timezone-aware UTC)."""

    this_update: datetime
    next_update: Optional[datetime]
    signer_not_after: Optional[datetime] = None   # a delegated signer's, or the issuer's
    cert_not_after: Optional[datetime] = None     # the certificate's, when known

    def _ends(self) -> List[Tuple[datetime, str]]:
        if self.next_update is None:
            return []
        ends = [(self.next_update, NEXT_UPDATE)]
        if self.signer_not_after is not None:
            ends.append((self.signer_not_after, SIGNER))
        if self.cert_not_after is not None:
            ends.append((self.cert_not_after, CERTIFICATE))
        return ends

    @property
    def end(self) -> Optional[datetime]:
        """When the answer stops verifying: the earliest of nextUpdate, the signer's notAfter and
        the certificate's notAfter.  None without nextUpdate (never stapleable)."""
        ends = self._ends()
        return min(ends, key=lambda e: e[0])[0] if ends else None

    @property
    def ended_by(self) -> Optional[str]:
        """Which of NEXT_UPDATE, SIGNER, CERTIFICATE sets ``end`` (nextUpdate wins a tie)."""
        ends = self._ends()
        return min(ends, key=lambda e: e[0])[1] if ends else None

    @property
    def span(self) -> Optional[timedelta]:
        """The window's length, [thisUpdate, end] (never negative)."""
        end = self.end
        return None if end is None else max(end - self.this_update, timedelta(0))

    def left(self, now: datetime) -> Optional[timedelta]:
        """Time until ``end`` (negative once it has passed)."""
        end = self.end
        return None if end is None else end - now

    def valid_at(self, now: datetime, skew: timedelta = CLOCK_SKEW) -> bool:
        """May the answer be served or trusted at NOW?  thisUpdate no more than SKEW ahead,
        and NOW before ``end``."""
        end = self.end
        return end is not None and self.this_update - skew <= now < end


# --------------------------------------------------------------------------
# What is wrong with an answer's times
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    code: str          # future | no-next-update | expired | signer-expired | cert-expired | signer-expires-early
    severity: str      # error | warning
    message: str


def problems(life: Life, now: datetime, *, skew: timedelta = CLOCK_SKEW) -> List[Problem]:
    """What is wrong with LIFE's times at NOW, allowing SKEW for clock differences.

    Errors (the answer must not be used): thisUpdate more than SKEW ahead; no
    nextUpdate (servers will not staple it); nextUpdate, the signer's notAfter or
    the certificate's notAfter passed.  Warning: the signer expires before
    nextUpdate (the answer's life ends then)."""
    out: List[Problem] = []
    if life.this_update > now + skew:
        out.append(Problem("future", ERROR,
                           f"thisUpdate {iso(life.this_update)} is in the future "
                           f"(more than {int(skew.total_seconds() // 60)} minutes ahead of this clock)"))
    if life.next_update is None:
        out.append(Problem("no-next-update", ERROR,
                           "the response has no nextUpdate (servers will not staple it)"))
    elif life.next_update <= now:
        out.append(Problem("expired", ERROR, f"expired at nextUpdate {iso(life.next_update)}"))
    if life.signer_not_after is not None:
        if life.signer_not_after <= now:
            out.append(Problem("signer-expired", ERROR,
                               f"the responder certificate expired at {iso(life.signer_not_after)}"))
        elif life.next_update is not None and life.signer_not_after < life.next_update:
            out.append(Problem("signer-expires-early", WARNING,
                               f"the responder certificate expires at {iso(life.signer_not_after)}, "
                               f"before nextUpdate {iso(life.next_update)}: the staple becomes "
                               f"unverifiable then"))
    if life.cert_not_after is not None and life.cert_not_after <= now:
        out.append(Problem("cert-expired", ERROR,
                           f"the certificate expired at {iso(life.cert_not_after)}"))
    return out


def errors(found: List[Problem]) -> List[Problem]:
    return [p for p in found if p.severity == ERROR]


# --------------------------------------------------------------------------
# Renewal
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class RenewalRule:
    """When an answer falls due: SHARE of its window elapsed, or MIN_VALIDITY before its end."""

    share: float = RENEW_SHARE
    min_validity: Optional[timedelta] = None

    def key(self) -> str:
        """A stable text naming what the due instant depends on (for caches of it)."""
        mv = "" if self.min_validity is None else str(int(self.min_validity.total_seconds()))
        return f"{self.share * 100:g}/{mv}"


def renewal_due(life: Life, rule: RenewalRule = RenewalRule()) -> Tuple[datetime, str]:
    """(due, why): when LIFE's answer should be replaced.  Never after its end.

    LIFE must have an end (an answer without nextUpdate is due at once; callers decide that)."""
    end, span = life.end, life.span
    assert end is not None and span is not None, "an answer without nextUpdate has no renewal time"
    due = life.this_update + span * rule.share
    why = f"{rule.share * 100:g}% of its lifetime elapsed at {iso(due)}"
    if rule.min_validity is not None and end - rule.min_validity < due:
        due = end - rule.min_validity
        why = f"less than {_format(rule.min_validity)} before {life.ended_by} {iso(end)}"
    if due >= end:
        due = end
        why = f"{life.ended_by} {iso(end)} reached"
    return due, why


def margin_for(left: timedelta) -> timedelta:
    """How long before an answer's end its renewal must be planned: SAFETY_MARGIN, or a
    quarter of the time left for short-lived answers."""
    return min(SAFETY_MARGIN, max(left, timedelta(0)) / 4)


def renewal_instant(now: datetime, due: datetime, end: Optional[datetime], *, rand: float = 0.0,
                    jitter: float = 0.0, floor: timedelta = timedelta(0)) -> datetime:
    """When a scheduler renews an answer due at DUE that ends at END.

    DUE moved *earlier* by JITTER x (time left until DUE) x RAND, RAND in [0, 1]
    (never later: a one-shot check at any moment agrees that the scheduler's answers
    are current); never later than ``margin_for`` before END; never sooner than FLOOR
    from NOW."""
    remaining = max((due - now).total_seconds(), 0.0)
    r = min(max(rand, 0.0), 1.0)
    at = due - timedelta(seconds=remaining * jitter * r)
    if end is not None:
        at = min(at, end - margin_for(end - now))
    return max(at, now + floor)


# --------------------------------------------------------------------------
# Backoff
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Backoff:
    """Retry delays after failures: BASE seconds doubling per failure up to CAP; tryLater
    waits at least TRY_LATER bases."""

    base: float = 60.0
    cap: float = 3600.0
    try_later: float = 5.0


def retry_delay(failures: int, backoff: Backoff = Backoff(), *, retry_after: Optional[float] = None,
                try_later: bool = False, left: Optional[float] = None) -> float:
    """Seconds to wait after FAILURES consecutive failures (1 = the first).

    ``base`` doubling per failure up to ``cap``; a tryLater answer waits at
    least ``try_later`` bases, and a Retry-After at least as long as asked (both
    within the cap).  While the current answer is still usable (LEFT seconds),
    never more than a quarter of LEFT (at least base/4) and never past its end;
    once it has lapsed (LEFT <= 0), at most ``try_later`` bases."""
    base, cap = backoff.base, backoff.cap
    delay = min(base * (2.0 ** min(max(failures, 1) - 1, 62)), cap)
    if try_later:
        delay = max(delay, min(backoff.try_later * base, cap))
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, cap)
    if left is not None:
        if left > 0:
            delay = min(delay, max(left / 4.0, base / 4.0), max(left, base / 60.0))
        else:
            delay = min(delay, backoff.try_later * base)
    return delay


# --------------------------------------------------------------------------
# Newer
# --------------------------------------------------------------------------

T = TypeVar("T", datetime, float)


def newer(candidate: Tuple[T, Optional[T]], installed: Optional[Tuple[Optional[T], Optional[T]]]) -> Optional[bool]:
    """Is CANDIDATE (thisUpdate, producedAt) newer than INSTALLED?  True, False, or None when
    as new (same thisUpdate, producedAt equal or unknown).  Nothing installed: True."""
    if installed is None or installed[0] is None:
        return True
    if candidate[0] != installed[0]:
        return candidate[0] > installed[0]
    a, b = candidate[1], installed[1]
    if a is not None and b is not None and a != b:
        return a > b
    return None


def _format(delta: timedelta) -> str:
    from .durations import format_duration
    return format_duration(delta)
