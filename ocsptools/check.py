"""The check service: staple bytes (with their certificate, when known) -> a Nagios state.

``ocsp-check`` stands on this module.  Deciding is kept apart from doing:

* ``judge`` is pure: a Staple, ``now`` and the thresholds give the findings
  (each a state and one message) -- status, times (``life.problems``),
  time left before the staple stops verifying (its effective life:
  ``life.Life.end``) against the warning and critical thresholds, which take
  their percentages of the same window ``ocsp-renew-dir`` renews at half of;
* ``check_file`` reads a staple file (or stdin), finds its certificate
  (``--cert``, or by convention ``X.ocsp`` beside ``X``) and issuer, verifies
  the response (``verify.verify``) or, without a certificate, only inspects
  it (``verify.inspect``) and says so.  A certificate that names no OCSP
  responder is "not applicable" before anything else: its issuer is never
  looked for (no files, no AIA download), and a staple found for it is only
  inspected (``load_certificate``);
* ``check_live`` takes the staple a TLS server actually sends
  (``OpenSSL.s_client``) and runs the same checks on it against the
  certificate chain the server presented.

A problem with one staple (missing file, garbage, bad signature, expired...)
is a finding in that staple's Result, never an exception: several staples
are checked together and the worst state wins (``nagios.worst``).
Exceptions escape only for what makes the whole run meaningless (openssl
missing, an explicit ``--cert`` that cannot be used): the command maps them
to UNKNOWN.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO, List, Optional, Sequence, Tuple

from . import life, nagios, renewstatus, transport, verify
from .certs import IssuerFinder
from .codec import der as der_codec
from .durations import Threshold, format_duration, parse_threshold
from .errors import (InputError, IssuerNotFound, OcspToolsError, OpensslError,
                     ResponderStatusError, ResponseError)
from .fetch import Target, find_issuer, load_leaf
from .nagios import CRITICAL, OK, UNKNOWN, WARNING
from .openssl import OpenSSL
from .staple import CLOCK_SKEW, Certificate, Staple, decode_staple, iso

#: Defaults for staples that live 1 to 10 days: a share of the lifetime, so that a 1-day staple
#: is not WARNING all its life (as a fixed 3d would make it) and a 10-day one still warns days
#: ahead.  A renewer that refreshes at half-life keeps every staple above 50%.
DEFAULT_WARNING = "25%"
DEFAULT_CRITICAL = "10%"
#: Staple file names whose certificate can be found by convention (X.ocsp beside X).
STAPLE_SUFFIXES = (".ocsp", ".ocsp-resp")
CERT_CANDIDATE_SUFFIXES = ("", ".pem", ".crt")
MAX_STAPLE_SIZE = transport.MAX_RESPONSE_SIZE
#: Usual ports of the STARTTLS protocols (s_client's -starttls names).
STARTTLS_PORTS = {"smtp": 25, "lmtp": 24, "imap": 143, "pop3": 110, "ftp": 21, "xmpp": 5222,
                  "xmpp-server": 5269, "sieve": 4190, "nntp": 119, "ldap": 389,
                  "postgres": 5432, "mysql": 3306, "irc": 6667}
HTTPS_PORT = 443
#: The PEM labels openssl reads as certificates.
PEM_CERTIFICATE = re.compile(rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----")

Finding = Tuple[int, str]
#: Why a staple of a certificate without OCSP URL is only inspected.
NO_URL_UNVERIFIED = "the certificate names no OCSP responder, so its issuer was not looked for"


class CheckTimeout(OcspToolsError):
    """The whole run overstayed -t/--timeout (a hung stdin, a wedged child)."""


@dataclass(frozen=True)
class CheckOptions:
    warning: Threshold = parse_threshold(DEFAULT_WARNING)
    critical: Threshold = parse_threshold(DEFAULT_CRITICAL)
    require_staple: bool = False
    issuer_file: Optional[str] = None
    ca_dirs: Tuple[str, ...] = ()
    use_aia: bool = False
    http: transport.HttpOptions = transport.HttpOptions()
    skew: timedelta = CLOCK_SKEW
    renew_state: Optional[str] = None        # ocsp-renew-dir's status file (--renew-state)
    renew_failing: timedelta = timedelta(hours=6)


@dataclass
class Result:
    """The verdict on one staple (a file, stdin, or what a live server sent)."""

    label: str                               # the path as given, "standard input", or host:port
    source: str                              # file | stdin | live
    now: datetime
    findings: List[Finding] = field(default_factory=list)   # most severe first
    staple: Optional[Staple] = None
    verified: bool = False
    unverified_reason: Optional[str] = None  # why signature and CertID were not checked
    certificate: Optional[Certificate] = None
    certificate_source: Optional[str] = None  # the file, or "the server"
    issuer_source: Optional[str] = None
    warning_seconds: Optional[float] = None
    critical_seconds: Optional[float] = None
    not_applicable: bool = False
    response_status: Optional[str] = None
    host: Optional[str] = None
    port: Optional[int] = None
    protocol: Optional[str] = None
    renewal: Optional[renewstatus.StapleStatus] = None   # what ocsp-renew-dir recorded of it

    @property
    def state(self) -> int:
        return nagios.worst(s for s, _ in self.findings)

    @property
    def messages(self) -> List[str]:
        return [m for _, m in self.findings]

    @property
    def valid_until(self) -> Optional[datetime]:
        """When the staple stops verifying (``life.Life.end``)."""
        return self.staple.valid_until if self.staple is not None else None

    @property
    def renewal_due(self) -> Optional[datetime]:
        """When ``ocsp-renew-dir`` (default settings) renews a good staple."""
        s = self.staple
        if s is None or s.cert_status != "good" or s.valid_until is None:
            return None
        return life.renewal_due(s.life)[0]

    @property
    def remaining_seconds(self) -> Optional[int]:
        """Seconds before the staple stops verifying (negative once it has)."""
        end = self.valid_until
        return None if end is None else int((end - self.now).total_seconds() // 1)

    @property
    def lifetime_seconds(self) -> Optional[int]:
        """The length of its effective window [thisUpdate, valid_until]."""
        span = self.staple.life.span if self.staple is not None else None
        return None if span is None else int(span.total_seconds())

    def add(self, state: int, message: str) -> None:
        self.findings.append((state, message))
        self.findings[:] = nagios.by_severity(self.findings)


# --------------------------------------------------------------------------
# Pure decisions
# --------------------------------------------------------------------------

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
    """Is the warning threshold below the critical one, where the two can be compared (pure)?

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
    """The findings about one staple at NOW (pure).

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


#: Problems after which a staple has no time left to judge.
ENDED = frozenset(("expired", "signer-expired", "cert-expired"))


def certificate_candidates(staple_path: str) -> List[str]:
    """Where the certificate of STAPLE_PATH lives by convention: ``X.ocsp`` -> ``X``, ``X.pem``,
    ``X.crt`` (HAProxy's ``site.pem.ocsp`` beside ``site.pem``; ``.ocsp-resp`` too)."""
    for suffix in STAPLE_SUFFIXES:
        if staple_path.lower().endswith(suffix) and len(staple_path) > len(suffix):
            base = staple_path[:-len(suffix)]
            if base.endswith(os.sep):
                return []
            return [base + s for s in CERT_CANDIDATE_SUFFIXES]
    return []


def holds_certificate(data: bytes, der: bytes) -> bool:
    """Is a would-be staple a certificate (PEM, or DER/base64 of an X.509 structure)?  Pure: a
    certificate passed as STAPLE gets its own message instead of openssl's "wrong tag"."""
    return bool(PEM_CERTIFICATE.search(data)) or der_codec.is_certificate(der)


def default_port(starttls: Optional[str]) -> int:
    return STARTTLS_PORTS[starttls] if starttls else HTTPS_PORT


def default_servername(host: str) -> Optional[str]:
    """SNI is a DNS name: none for an IP address literal."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    return None


def live_label(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


# --------------------------------------------------------------------------
# Doing: files, stdin, live servers
# --------------------------------------------------------------------------

def _strip_label(message: str, label: str) -> str:
    prefix = label + ": "
    return message[len(prefix):] if message.startswith(prefix) else message


class _Missing(InputError):
    """The staple file does not exist (or is empty): no staple at all."""


def read_staple(path: str, stdin: Optional[BinaryIO] = None) -> bytes:
    """The bytes of a staple file (``-``: stdin), size-capped; InputError naming the problem."""
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        data = stream.read(MAX_STAPLE_SIZE + 1)
        label = "standard input"
    else:
        label = path
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_STAPLE_SIZE + 1)
        except FileNotFoundError:
            raise _Missing("no such file", path=path) from None
        except IsADirectoryError:
            raise InputError("is a directory, not a staple file", path=path) from None
        except PermissionError:
            raise InputError("permission denied (run the check as a user that can read the "
                             "staple, e.g. the server's)", path=path) from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if len(data) > MAX_STAPLE_SIZE:
        raise InputError(f"larger than {MAX_STAPLE_SIZE} bytes: not an OCSP response", path=label)
    if not data.strip():
        raise _Missing("empty: no staple in it" + (" (HAProxy's placeholder?)" if path != "-" else ""),
                       path=label)
    return data


def _no_staple(result: Result, what: str, cert: Optional[Certificate], opts: CheckOptions,
               *, live: bool) -> Result:
    """No staple at all (missing/empty file, or a server that sent none)."""
    if cert is not None and cert.must_staple:
        extra = "" if cert.ocsp_urls else " and it names no OCSP responder"
        result.add(CRITICAL, f"{what}, but the certificate is Must-Staple (TLS Feature "
                             f"status_request){extra}: clients will refuse the connection")
    elif opts.require_staple:
        result.add(CRITICAL, f"{what} (--require-staple)")
    elif cert is not None and not cert.ocsp_urls:
        result.not_applicable = True
        result.add(OK, f"{what}; not applicable: the certificate names no OCSP responder")
    elif live:
        result.add(CRITICAL, f"{what}, although the certificate names an OCSP responder: "
                             f"turn stapling on (or check why the server has no valid staple)")
    else:
        result.add(CRITICAL, what)
    return result


def check_der(result: Result, der: bytes, target: Optional[Target], opts: CheckOptions,
              ossl: OpenSSL) -> Result:
    """Verify (or, without a target, inspect) DER and judge it; findings go into RESULT."""
    label = result.label
    try:
        if target is not None:
            staple = verify.verify(der, target.leaf, target.issuer, ossl, label=label)
        else:
            staple = verify.inspect(der, ossl, label=label)
    except ResponderStatusError as exc:
        result.response_status = exc.status
        result.add(CRITICAL, _strip_label(str(exc), label))
        return result
    except ResponseError as exc:
        result.add(CRITICAL, _strip_label(str(exc), label))
        return result
    cert = target.leaf if target is not None else result.certificate
    if target is None and cert is not None and not cert.ocsp_urls:
        mine = staple.info.find(cert.serial)
        if not mine:
            serials = ", ".join(format(r.serial, "X") for r in staple.info.responses) or "none"
            result.add(CRITICAL, f"not a response for this certificate (serial {cert.serial_hex}); "
                                 f"it covers serial(s) {serials}; the certificate names no OCSP "
                                 f"responder, so this staple is left over from an earlier "
                                 f"certificate: remove it and turn stapling off")
            return result
        staple = dataclasses.replace(staple, single=mine[0])
    result.staple = staple
    result.verified = staple.verified
    result.response_status = staple.info.response_status
    judgement = judge(staple, result.now, opts.warning, opts.critical, skew=opts.skew)
    result.warning_seconds = judgement.warning_seconds
    result.critical_seconds = judgement.critical_seconds
    for state, message in judgement.findings:
        result.add(state, message)
    if cert is not None and cert.must_staple:
        # a Must-Staple certificate without a VALID staple is always CRITICAL: a staple that was
        # only inspected (issuer unknown) may be badly signed, and clients would refuse it
        if result.state == CRITICAL:
            result.add(CRITICAL, "the certificate is Must-Staple: clients refuse connections "
                                 "without a valid staple")
        elif not result.verified:
            result.add(CRITICAL, "cannot verify the staple of a Must-Staple certificate; "
                       + ("give -i ISSUER" if cert.ocsp_urls else "it names no OCSP responder"))
    return result


@dataclass(frozen=True)
class CertificateFor:
    """The certificate staples are checked against, and its issuer when one was looked for and
    found (``target``); otherwise why the staples are only inspected."""

    leaf: Certificate
    label: str
    target: Optional[Target] = None
    unverified_reason: Optional[str] = None


def load_certificate(cert_path: str, opts: CheckOptions, ossl: OpenSSL) -> CertificateFor:
    """``--cert FILE`` (or X beside X.ocsp): the leaf and, only when it names an OCSP responder,
    its issuer.  InputError if the certificate or the issuer cannot be had."""
    certs, label = load_leaf(cert_path, ossl)
    if not certs[0].ocsp_urls:                  # not applicable: no issuer search at all
        return CertificateFor(certs[0], label, unverified_reason=NO_URL_UNVERIFIED)
    target = find_issuer(certs, cert_path, label, ossl, issuer_file=opts.issuer_file,
                         ca_dirs=opts.ca_dirs, http=opts.http, use_aia=opts.use_aia)
    return CertificateFor(certs[0], label, target)


def check_file(path: str, opts: CheckOptions, ossl: OpenSSL, now: datetime, *,
               cert: Optional[CertificateFor] = None, stdin: Optional[BinaryIO] = None) -> Result:
    """Check one staple file (``-``: stdin) against CERT, or its certificate by convention."""
    result = Result(label="standard input" if path == "-" else path,
                    source="stdin" if path == "-" else "file", now=now)
    if cert is None:
        if path == "-":
            result.unverified_reason = "no --cert given for standard input"
        else:
            cert = _conventional_certificate(path, result, opts, ossl)
    target = cert.target if cert is not None else None
    if cert is not None:
        result.certificate = cert.leaf
        result.certificate_source = cert.label
        result.unverified_reason = cert.unverified_reason
        if target is not None:
            result.issuer_source = target.issuer_source
    try:
        data = read_staple(path, stdin)
    except _Missing as exc:
        return _no_staple(result, str(exc), result.certificate, opts, live=False)
    except InputError as exc:
        result.add(CRITICAL, str(exc))
        return result
    der = decode_staple(data)
    if holds_certificate(data, der):
        arg = "FILE" if path == "-" else path
        result.add(CRITICAL, f"holds a certificate, not an OCSP response: pass it with --cert {arg} "
                             f"and give its staple file as STAPLE")
        return result
    return check_der(result, der, target, opts, ossl)


def _conventional_certificate(path: str, result: Result, opts: CheckOptions,
                              ossl: OpenSSL) -> Optional[CertificateFor]:
    """X beside X.ocsp; None (and the reason in RESULT) when there is none or it is unusable.
    The leaf is kept even when its issuer cannot be found (Must-Staple and no-URL rules)."""
    candidates = certificate_candidates(path)
    found = next((c for c in candidates if os.path.isfile(c)), None)
    if found is None:
        where = f" (looked for {', '.join(candidates)})" if candidates else ""
        result.unverified_reason = f"no certificate found beside the staple{where}; give --cert FILE"
        return None
    try:
        certs, label = load_leaf(found, ossl)
    except InputError as exc:                   # the certificate itself: damaged, a key, a CA
        result.unverified_reason = str(exc)
        return None
    if not certs[0].ocsp_urls:
        return CertificateFor(certs[0], label, unverified_reason=NO_URL_UNVERIFIED)
    try:
        target = find_issuer(certs, found, label, ossl, issuer_file=opts.issuer_file,
                             ca_dirs=opts.ca_dirs, http=opts.http, use_aia=opts.use_aia)
    except InputError as exc:
        return CertificateFor(certs[0], label, unverified_reason=(
            f"{_strip_label(str(exc), found)} (certificate {found}); give -i FILE"))
    return CertificateFor(certs[0], label, target)


def check_live(host: str, port: int, opts: CheckOptions, ossl: OpenSSL, now: datetime, *,
               servername: Optional[str] = None, starttls: Optional[str] = None,
               timeout: Optional[float] = None) -> Result:
    """Connect to HOST:PORT, take the staple the server sends, and judge it.

    The staple is verified against the leaf the server presented and its
    issuer (from the presented chain, ``-i``, ``--ca-dir`` or, with
    ``--aia``, the caIssuers URL)."""
    result = Result(label=live_label(host, port), source="live", now=now, host=host, port=port)
    hs = ossl.s_client(host, port, servername=servername, starttls=starttls, timeout=timeout)
    report = hs.report
    if report.usage_error:
        raise OpensslError(f"{ossl.binary} s_client cannot do live checks here ({report.usage_error}); "
                           f"use OpenSSL 1.1 or later, or name one with --openssl PATH")
    result.protocol = report.protocol
    if hs.disagreements:
        result.add(UNKNOWN, "openssl's output contradicts itself (" + "; ".join(hs.disagreements)
                   + "); not judging the server on it")
        return result
    if hs.timed_out and not report.handshake_ok and not hs.chain:
        # a killed s_client loses its buffered stdout: connected or not is unknown here
        result.add(CRITICAL, f"no TLS handshake within {hs.budget:g} s")
        return result
    if not report.connected:
        result.add(CRITICAL, f"cannot connect: {report.error_detail or 'connection failed'}")
        return result
    handshake_problem = None
    if not report.handshake_ok:
        if hs.timed_out:
            handshake_problem = f"no complete TLS handshake within {hs.budget:g} s"
        else:
            reason = report.errors[0] if report.errors else None
            if report.starttls_error:
                detail = report.starttls_error + (f" ({reason})" if reason else "")
            else:
                detail = reason or "no detail from openssl"
            handshake_problem = f"TLS handshake failed: {detail}"
    chain = hs.chain
    if not chain:
        result.add(CRITICAL, handshake_problem or "the server presented no certificate")
        return result
    try:
        certs = ossl.parse_certificates(chain)
    except ValueError as exc:
        result.add(CRITICAL, f"the server presented an unreadable certificate ({exc})")
        return result
    leaf = certs[0]
    result.certificate = leaf
    result.certificate_source = "the server"
    target: Optional[Target] = None
    if not leaf.ocsp_urls:                      # not applicable: no issuer search at all
        result.unverified_reason = NO_URL_UNVERIFIED
    else:
        try:
            match = IssuerFinder(ossl, http=opts.http, use_aia=opts.use_aia).find(
                leaf, bundle=certs[1:], issuer_file=opts.issuer_file, ca_dirs=opts.ca_dirs)
            target = Target(leaf=leaf, issuer=match.issuer, label=result.label,
                            issuer_source="the presented chain" if match.source.endswith("(bundle)")
                            else match.source)
            result.issuer_source = target.issuer_source
        except IssuerNotFound as exc:
            if opts.issuer_file is not None:
                raise
            result.unverified_reason = ("the server did not present the issuer of its certificate "
                                        f"({_strip_label(str(exc), 'certificate')}); give -i FILE")
    if hs.staple is None:
        if handshake_problem:
            result.add(CRITICAL, handshake_problem)
            return result
        return _no_staple(result, "no staple sent", leaf, opts, live=True)
    check_der(result, hs.staple, target, opts, ossl)
    if handshake_problem:
        result.add(CRITICAL, handshake_problem)
    return result


def run_checks(staples: Sequence[str], opts: CheckOptions, ossl: OpenSSL, now: datetime, *,
               cert_path: Optional[str] = None, live: Optional[dict] = None) -> List[Result]:
    """Check every staple file, then the live server if one is given."""
    cert = load_certificate(cert_path, opts, ossl) if cert_path is not None else None
    status = (renewstatus.StatusFile(renewstatus.path_for(opts.renew_state)).load(strict=True)
              if opts.renew_state else None)
    results = [check_file(path, opts, ossl, now, cert=cert) for path in staples]
    if status is not None:
        for path, result in zip(staples, results):
            if path == "-" or result.not_applicable:
                continue
            result.renewal = status.get(path)
            for state, message in renewstatus.judge(result.renewal, now, opts.renew_failing,
                                                    status.path):
                result.add(state, message)
    if live is not None:
        results.append(check_live(live["host"], live["port"], opts, ossl, now,
                                  servername=live.get("servername"), starttls=live.get("starttls"),
                                  timeout=live.get("timeout")))
    return results
