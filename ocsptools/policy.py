"""Pure decisions about staples: are its times acceptable, is it newer, renew now?

Nothing here reads the clock or touches a file: the caller passes ``now``
(timezone-aware UTC).  That keeps every rule testable with any instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import List, Optional

from .staple import CLOCK_SKEW, Staple, iso

# Problem severities.
ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    code: str          # future | expired | no-next-update | signer-expires-early | signer-expired
    severity: str      # error | warning
    message: str


def time_problems(staple: Staple, now: datetime, *, skew: timedelta = CLOCK_SKEW) -> List[Problem]:
    """What is wrong with a staple's times at ``now``, allowing ``skew`` for clock differences.

    * thisUpdate more than ``skew`` in the future: error;
    * nextUpdate absent: error for a staple (servers such as Exim and HAProxy
      ignore such responses; callers may downgrade it);
    * nextUpdate at or before now: error (expired);
    * responder certificate expiring before nextUpdate: warning naming the instant.
    """
    problems: List[Problem] = []
    if staple.this_update > now + skew:
        problems.append(Problem("future", ERROR,
                                f"thisUpdate {iso(staple.this_update)} is in the future "
                                f"(more than {int(skew.total_seconds() // 60)} minutes ahead of this clock)"))
    if staple.next_update is None:
        problems.append(Problem("no-next-update", ERROR,
                                "the response has no nextUpdate (servers will not staple it)"))
    elif staple.next_update <= now:
        problems.append(Problem("expired", ERROR, f"expired at nextUpdate {iso(staple.next_update)}"))
    if staple.signer_not_after is not None:
        if staple.signer_not_after <= now:
            problems.append(Problem("signer-expired", ERROR,
                                    f"the responder certificate expired at {iso(staple.signer_not_after)}"))
        elif staple.signer_expires_early:
            problems.append(Problem("signer-expires-early", WARNING,
                                    f"the responder certificate expires at {iso(staple.signer_not_after)}, "
                                    f"before nextUpdate {iso(staple.next_update)}: the staple becomes "
                                    f"unverifiable then"))
    return problems


def errors(problems: List[Problem]) -> List[Problem]:
    return [p for p in problems if p.severity == ERROR]


def newer_than(candidate: Staple, installed: Optional[Staple]) -> Optional[bool]:
    """True if CANDIDATE is newer than INSTALLED, False if older, None if as new (or nothing installed).

    "Newer" compares thisUpdate; producedAt breaks a tie."""
    if installed is None:
        return True
    if candidate.this_update != installed.this_update:
        return candidate.this_update > installed.this_update
    a, b = candidate.produced_at, installed.produced_at
    if a is not None and b is not None and a != b:
        return a > b
    return None
