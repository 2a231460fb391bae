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
    return newer_facts(StapleFacts.of(candidate), None if installed is None else StapleFacts.of(installed))


# --------------------------------------------------------------------------
# Renewal: the freshness rule of ocsp-renew-dir (pure)
# --------------------------------------------------------------------------

from typing import Tuple  # noqa: E402  (this section's own import)

@dataclass(frozen=True)
class CertFacts:
    """What the freshness rule needs to know about a certificate."""

    serial: int
    not_before: datetime
    not_after: datetime
    ocsp_urls: tuple = ()

    @classmethod
    def of(cls, cert) -> "CertFacts":
        return cls(cert.serial, cert.not_before, cert.not_after, tuple(cert.ocsp_urls))


@dataclass(frozen=True)
class StapleFacts:
    """What verification established about an installed staple, or why it is unusable.

    ``status`` is None when the file is no usable response for the
    certificate (unparsable, bad signature, another certificate); ``problem``
    says why."""

    status: Optional[str] = None
    serial: Optional[int] = None
    this_update: Optional[datetime] = None
    next_update: Optional[datetime] = None
    produced_at: Optional[datetime] = None
    signer_not_after: Optional[datetime] = None
    problem: str = ""

    @classmethod
    def of(cls, staple: Staple) -> "StapleFacts":
        return cls(staple.cert_status, staple.serial, staple.this_update, staple.next_update,
                   staple.produced_at, staple.signer_not_after)

    @classmethod
    def unusable(cls, problem: str) -> "StapleFacts":
        return cls(problem=problem)

    @property
    def usable_until(self) -> Optional[datetime]:
        candidates = [t for t in (self.next_update, self.signer_not_after) if t is not None]
        return min(candidates) if candidates else None


@dataclass(frozen=True)
class RenewOptions:
    renew_at: float = 50.0                   # percent of the staple's lifetime elapsed
    min_validity: Optional[timedelta] = None  # renew when less than this is left
    always: bool = False                     # -B
    skew: timedelta = CLOCK_SKEW

    def key(self) -> str:
        """A stable text naming what the renewal instant depends on (for the state cache)."""
        mv = "" if self.min_validity is None else str(int(self.min_validity.total_seconds()))
        return f"{self.renew_at:g}/{mv}"


FRESH = "fresh"
RENEW = "renew"
CERT_EXPIRED = "cert-expired"
NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True)
class Decision:
    action: str                             # fresh | renew | cert-expired | not-applicable
    reason: str
    renew_at: Optional[datetime] = None     # when a good staple falls due
    valid_until: Optional[datetime] = None  # the installed staple's usable_until, if any


def renewal_window(cert: CertFacts, staple: StapleFacts,
                   opts: RenewOptions) -> Tuple[datetime, datetime, str]:
    """(start, due, why) for a good staple: it counts as fresh from START (thisUpdate less
    the skew) until DUE.

    The staple's usable span runs from max(certificate notBefore, thisUpdate)
    to the earliest of nextUpdate, the responder certificate's notAfter and
    the certificate's notAfter; DUE is the earlier of the point where
    ``renew_at`` percent of that span has elapsed and ``min_validity`` before
    its end, so it never falls after either notAfter."""
    assert staple.this_update is not None and staple.next_update is not None
    begin = max(cert.not_before, staple.this_update)
    ends = [(staple.next_update, "nextUpdate"), (cert.not_after, "the certificate's notAfter")]
    if staple.signer_not_after is not None:
        ends.append((staple.signer_not_after, "the responder certificate's notAfter"))
    end, end_name = min(ends, key=lambda t: t[0])
    span = max(end - begin, timedelta(0))
    due = begin + span * (opts.renew_at / 100.0)
    why = f"{opts.renew_at:g}% of its lifetime elapsed at {iso(due)}"
    if opts.min_validity is not None and end - opts.min_validity < due:
        due = end - opts.min_validity
        why = f"less than {_fmt_delta(opts.min_validity)} before {end_name} {iso(end)}"
    if end_name != "nextUpdate" and due == end:
        why = f"{end_name} {iso(end)} reached"
    return staple.this_update - opts.skew, due, why


def _fmt_delta(delta: timedelta) -> str:
    from .durations import format_duration
    return format_duration(delta)


def renewal_decision(cert: CertFacts, staple: Optional[StapleFacts], now: datetime,
                     opts: RenewOptions = RenewOptions(), *, applicable: bool = True,
                     cert_newer: bool = False) -> Decision:
    """Renew now, or fresh until when?  Pure: facts, the clock, the options.

    Order: an expired certificate is skipped; a certificate with no
    responder (``applicable`` false) is not applicable; then a missing,
    unusable, foreign (re-issued certificate) or non-good staple, one
    without nextUpdate or dated in the future, is renewed at once; a good
    one is renewed from its due instant (``renewal_window``), or at once
    with ``always`` or (make's rule) when the certificate file is newer than
    the staple file (``cert_newer``)."""
    if now >= cert.not_after:
        return Decision(CERT_EXPIRED, f"certificate expired at {iso(cert.not_after)}; skipped")
    if not applicable:
        return Decision(NOT_APPLICABLE, "no OCSP responder in the certificate (not applicable)")
    if staple is None:
        return Decision(RENEW, "no staple yet")
    until = staple.usable_until
    if staple.status is None and (staple.serial is None or staple.serial == cert.serial):
        return Decision(RENEW, f"unusable staple: {staple.problem}")
    if staple.serial != cert.serial:
        return Decision(RENEW, f"the staple is for serial {_hex(staple.serial)}, the certificate "
                               f"is serial {_hex(cert.serial)} (re-issued)")
    if staple.status != "good":
        return Decision(RENEW, f"the staple says {staple.status}", valid_until=until)
    if staple.next_update is None:
        return Decision(RENEW, "the staple has no nextUpdate (servers will not staple it)")
    assert staple.this_update is not None
    if staple.this_update > now + opts.skew:
        return Decision(RENEW, f"the staple's thisUpdate {iso(staple.this_update)} is in the future",
                        valid_until=until)
    if until is not None and until <= now:
        what = "expired" if until == staple.next_update else "became unverifiable (responder certificate expired)"
        return Decision(RENEW, f"the staple {what} at {iso(until)}", valid_until=until)
    _, due, why = renewal_window(cert, staple, opts)
    if opts.always:
        return Decision(RENEW, "--always-renew", renew_at=due, valid_until=until)
    if cert_newer:
        return Decision(RENEW, "the certificate file is newer than its staple", renew_at=due,
                        valid_until=until)
    if now >= due:
        return Decision(RENEW, why, renew_at=due, valid_until=until)
    return Decision(FRESH, f"good until {iso(until)}, renewal due at {iso(due)}",
                    renew_at=due, valid_until=until)


def _hex(serial: Optional[int]) -> str:
    if serial is None:
        return "?"
    return format(serial, "X") if serial >= 0 else "-" + format(-serial, "X")


def newer_facts(candidate: StapleFacts, installed: Optional[StapleFacts]) -> Optional[bool]:
    """``newer_than`` for facts: thisUpdate decides, producedAt breaks a tie."""
    if installed is None or installed.this_update is None:
        return True
    assert candidate.this_update is not None
    if candidate.this_update != installed.this_update:
        return candidate.this_update > installed.this_update
    a, b = candidate.produced_at, installed.produced_at
    if a is not None and b is not None and a != b:
        return a > b
    return None
