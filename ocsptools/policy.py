"""ocsp-renew-dir's pure renewal decision: from certificate and staple facts to fresh, renew or skip.

Nothing here reads the clock or touches a file: the caller passes ``now``
(timezone-aware UTC).  The times themselves (a staple's effective life, its
due instant) come from ``ocsptools.life``, the one model every consumer
shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timedelta
from typing import Optional, Tuple

from . import life
from .life import CLOCK_SKEW, Life, iso
from .staple import Staple


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

    def life(self, cert_not_after: Optional[datetime] = None) -> Optional[Life]:
        """The staple's effective validity, bounded by CERT_NOT_AFTER too (None when unusable)."""
        if self.this_update is None:
            return None
        return Life(self.this_update, self.next_update, self.signer_not_after, cert_not_after)

    @property
    def version(self) -> Tuple[Optional[datetime], Optional[datetime]]:
        """(thisUpdate, producedAt): what ``life.newer`` compares."""
        return (self.this_update, self.produced_at)


@dataclass(frozen=True)
class RenewOptions:
    renew_at: float = 50.0                   # percent of the staple's lifetime elapsed
    min_validity: Optional[timedelta] = None  # renew when less than this is left
    always: bool = False                     # -B
    skew: timedelta = CLOCK_SKEW

    @cached_property
    def rule(self) -> life.RenewalRule:
        return life.RenewalRule(share=self.renew_at / 100.0, min_validity=self.min_validity)

    @cached_property
    def _key(self) -> str:
        return self.rule.key()

    def key(self) -> str:
        """A stable text naming what the renewal instant depends on (for the state cache)."""
        return self._key


FRESH = "fresh"
RENEW = "renew"
CERT_EXPIRED = "cert-expired"
NOT_APPLICABLE = "not-applicable"
#: Decisions that leave nothing to renew until the files change.
IDLE = (NOT_APPLICABLE, CERT_EXPIRED)


@dataclass(frozen=True)
class Decision:
    action: str                             # fresh | renew | cert-expired | not-applicable
    reason: str
    renew_at: Optional[datetime] = None     # when a good staple falls due
    valid_until: Optional[datetime] = None  # the installed staple's effective end, if any


def renewal_decision(cert: CertFacts, staple: Optional[StapleFacts], now: datetime,
                     opts: RenewOptions = RenewOptions(), *, applicable: bool = True,
                     cert_newer: bool = False) -> Decision:
    """Renew now, or fresh until when?  Pure: facts, the clock, the options.

    Order: a certificate with no responder (``applicable`` false) is not
    applicable, whatever else is true of it; an expired certificate is skipped;
    then a missing, unusable, foreign (re-issued certificate) or non-good
    staple, one without nextUpdate or dated in the future, is renewed at once;
    a good one is renewed from its due instant (``life.renewal_due`` of its
    effective life), or at once with ``always`` or (make's rule) when the
    certificate file is newer than the staple file (``cert_newer``)."""
    if not applicable:
        return Decision(NOT_APPLICABLE, "no OCSP responder in the certificate (not applicable)")
    if now >= cert.not_after:
        return Decision(CERT_EXPIRED, f"certificate expired at {iso(cert.not_after)}; skipped")
    if staple is None:
        return Decision(RENEW, "no staple yet")
    lf = staple.life(cert.not_after)
    until = lf.end if lf is not None else None
    if staple.status is None and (staple.serial is None or staple.serial == cert.serial):
        return Decision(RENEW, f"unusable staple: {staple.problem}")
    if staple.serial != cert.serial:
        return Decision(RENEW, f"the staple is for serial {_hex(staple.serial)}, the certificate "
                               f"is serial {_hex(cert.serial)} (re-issued)")
    if staple.status != "good":
        return Decision(RENEW, f"the staple says {staple.status}", valid_until=until)
    if lf is None or until is None:
        return Decision(RENEW, "the staple has no nextUpdate (servers will not staple it)")
    wrong = {p.code for p in life.errors(life.problems(lf, now, skew=opts.skew))}
    if "future" in wrong:
        return Decision(RENEW, f"the staple's thisUpdate {iso(lf.this_update)} is in the future",
                        valid_until=until)
    if wrong:
        what = ("expired" if lf.ended_by == life.NEXT_UPDATE
                else "became unverifiable (responder certificate expired)")
        return Decision(RENEW, f"the staple {what} at {iso(until)}", valid_until=until)
    due, why = life.renewal_due(lf, opts.rule)
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
