"""The evaluation of ocsp-check (pure): a staple, or its absence, and ``now`` -> findings.

Nothing here does I/O or reads the clock: ``now`` and the facts (the staple, the certificate,
the thresholds) are arguments, and each function returns findings (a Nagios state and one
message), most severe first where there are several.

* ``judge``: status, times (``life.problems``), and the time left before the staple stops
  verifying (its effective life, ``life.Life.end``) against the warning and critical
  thresholds, which take their percentages of the same window ``ocsp-renew-dir`` renews at
  half of;
* ``absent``: no staple at all (a missing or empty file, a server that sent none): "not
  applicable" for a certificate that names no OCSP responder, CRITICAL otherwise;
* ``leftover``: a staple of another serial beside a certificate without OCSP URL;
* ``must_staple``: a Must-Staple certificate without a valid, verified staple.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import List, Optional, Tuple

from .. import life, nagios
from ..durations import Threshold, format_duration
from ..nagios import CRITICAL, OK, WARNING
from ..staple import CLOCK_SKEW, Certificate, Staple, iso
from .model import Finding

#: Problems after which a staple has no time left to judge.
ENDED = frozenset(("expired", "signer-expired", "cert-expired"))


def human(seconds: float) -> str:
    """``3d12h``, ``5h20m``, ``42m``, ``59s``: to the minute above an hour, to the second below."""
    seconds = abs(seconds)
    if seconds >= 3600:
        seconds -= seconds % 60
    return format_duration(timedelta(seconds=int(seconds)))


def describe_threshold(threshold: Threshold, seconds: Optional[float],
                       lifetime: Optional[timedelta]) -> str:
    if threshold.percent is not None and seconds is not None and lifetime is not None:
        return f"{human(seconds)} ({threshold.percent:g}% of {human(lifetime.total_seconds())})"
    return human(seconds) if seconds is not None else threshold.text


def thresholds_inverted(warning: Threshold, critical: Threshold) -> bool:
    """Is the warning threshold below the critical one, where the two can be compared?

    Both are "time left" minimums: the warning must be at least the critical, or the WARNING
    band is empty.  A duration and a percentage compare only for a given staple's lifetime, so
    such a pair is never refused; equal thresholds are allowed (no WARNING band, on purpose)."""
    if warning.duration is not None and critical.duration is not None:
        return warning.duration < critical.duration
    if warning.percent is not None and critical.percent is not None:
        return warning.percent < critical.percent
    return False


@dataclass(frozen=True)
class Judgement:
    findings: Tuple[Finding, ...]
    warning_seconds: Optional[float]
    critical_seconds: Optional[float]


def judge(staple: Staple, now: datetime, warning: Threshold, critical: Threshold, *,
          skew: timedelta = CLOCK_SKEW) -> Judgement:
    """The findings about one staple at NOW.

    The time left is measured to the staple's effective end (``life``: the
    earliest of nextUpdate, the signer's notAfter and the certificate's
    notAfter) and percentage thresholds are shares of the same window, so
    monitoring and renewal judge one span.  CRITICAL: revoked, unknown,
    expired, thisUpdate in the future, responder or certificate expired, time
    left below the critical threshold.  WARNING: below the warning threshold,
    no nextUpdate.  Critical is tested before warning."""
    lf = staple.life
    span = lf.span
    # whole seconds, rounded up, so that the verdict, the perfdata ranges and the JSON agree
    warn_s = nagios.whole_seconds(warning.seconds(span))
    crit_s = nagios.whole_seconds(critical.seconds(span))
    findings: List[Finding] = []
    single = staple.single
    status = staple.cert_status
    if status == "revoked":
        reason = f" ({single.revocation_reason})" if single.revocation_reason else ""
        findings.append((CRITICAL, f"REVOKED at {iso(single.revocation_time)}{reason}"))
    elif status == "unknown":
        findings.append((CRITICAL, "certificate status unknown: the responder does not know "
                                   "this certificate (wrong issuer or responder?)"))
    elif status != "good":
        findings.append((CRITICAL, f"unexpected certificate status {status!r}"))
    problems = life.problems(lf, now, skew=skew)
    codes = {p.code for p in problems}
    for p in problems:
        if p.code == "expired":
            ago = human((now - staple.next_update).total_seconds())  # type: ignore[operator]
            findings.append((CRITICAL, f"expired at nextUpdate {iso(staple.next_update)}, {ago} ago"))
        elif p.code == "no-next-update":
            findings.append((WARNING, f"{status}, no nextUpdate: HAProxy and Exim refuse to staple "
                                      f"such a response"))
        elif p.code == "signer-expires-early":
            continue            # the time left below is measured to that instant
        else:
            findings.append((CRITICAL if p.severity == life.ERROR else WARNING, p.message))
    end = lf.end
    if status == "good" and end is not None and not codes & ENDED:
        left = (end - now).total_seconds()
        state = nagios.below(left, warn_s, crit_s)
        if lf.ended_by == life.NEXT_UPDATE:
            text = f"good, {human(left)} left (next update {iso(end)})"
        else:
            text = (f"good, {human(left)} left (until {lf.ended_by} {iso(end)}, before next "
                    f"update {iso(staple.next_update)})")
        if state == CRITICAL:
            text += f", below the critical threshold {describe_threshold(critical, crit_s, span)}"
        elif state == WARNING:
            text += f", below the warning threshold {describe_threshold(warning, warn_s, span)}"
        findings.append((state, text))
    return Judgement(tuple(nagios.by_severity(findings)), warn_s, crit_s)


@dataclass(frozen=True)
class Absence:
    """The finding about a staple that is not there, and whether stapling does not apply."""

    finding: Finding
    not_applicable: bool = False


def absent(what: str, cert: Optional[Certificate], *, require_staple: bool,
           live: bool) -> Absence:
    """No staple at all: WHAT says which (``no such file``, ``no staple sent``...).

    A Must-Staple certificate makes it CRITICAL whatever else; ``--require-staple`` too; a
    certificate that names no OCSP responder makes it "not applicable" (OK); a live server
    that staples nothing for a certificate with a responder is told to turn stapling on."""
    if cert is not None and cert.must_staple:
        extra = "" if cert.ocsp_urls else " and it names no OCSP responder"
        return Absence((CRITICAL, f"{what}, but the certificate is Must-Staple (TLS Feature "
                                  f"status_request){extra}: clients will refuse the connection"))
    if require_staple:
        return Absence((CRITICAL, f"{what} (--require-staple)"))
    if cert is not None and not cert.ocsp_urls:
        return Absence((OK, f"{what}; not applicable: the certificate names no OCSP responder"),
                       not_applicable=True)
    if live:
        return Absence((CRITICAL, f"{what}, although the certificate names an OCSP responder: "
                                  f"turn stapling on (or check why the server has no valid staple)"))
    return Absence((CRITICAL, what))


def leftover(cert: Certificate, staple: Staple) -> Finding:
    """A staple that holds no response for CERT (which names no OCSP responder): one of an
    earlier certificate, to remove along with the stapling."""
    serials = ", ".join(format(r.serial, "X") for r in staple.info.responses) or "none"
    return (CRITICAL, f"not a response for this certificate (serial {cert.serial_hex}); it covers "
                      f"serial(s) {serials}; the certificate names no OCSP responder, so this "
                      f"staple is left over from an earlier certificate: remove it and turn "
                      f"stapling off")


def must_staple(cert: Optional[Certificate], state: int, verified: bool) -> Optional[Finding]:
    """A Must-Staple certificate without a VALID staple is always CRITICAL: STATE is the worst
    finding so far; a staple that was only inspected (issuer unknown) may be badly signed, and
    clients would refuse it.  None when CERT is not Must-Staple or its staple is fine."""
    if cert is None or not cert.must_staple:
        return None
    if state == CRITICAL:
        return (CRITICAL, "the certificate is Must-Staple: clients refuse connections without a "
                          "valid staple")
    if not verified:
        return (CRITICAL, "cannot verify the staple of a Must-Staple certificate; "
                + ("give -i ISSUER" if cert.ocsp_urls else "it names no OCSP responder"))
    return None
