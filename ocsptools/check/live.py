"""ocsp-check's live mode: the staple a TLS server actually sends (``OpenSSL.s_client``), judged like a file.

``check_live`` connects (STARTTLS first where asked), takes the staple and the certificate
chain the server presented, and runs the same checks on them as on a file: verified against
the presented leaf and its issuer (from the presented chain, ``-i``, ``--ca-dir`` or, with
``--aia``, the caIssuers URL).  A leaf that names no OCSP responder is not applicable before
anything else: its issuer is never looked for.  ``handshake_problem`` (pure) says what went
wrong with a handshake; the other helpers are the pure defaults of the command line.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Optional

from ..certs import IssuerFinder
from ..errors import IssuerNotFound, OpensslError, without_label
from ..fetch import Target
from ..nagios import CRITICAL, UNKNOWN
from ..openssl import LiveHandshake, OpenSSL
from . import evaluate
from .acquire import NO_URL_UNVERIFIED
from .model import CheckOptions, Result
from .verdict import check_der

#: Usual ports of the STARTTLS protocols (s_client's -starttls names).
STARTTLS_PORTS = {"smtp": 25, "lmtp": 24, "imap": 143, "pop3": 110, "ftp": 21, "xmpp": 5222,
                  "xmpp-server": 5269, "sieve": 4190, "nntp": 119, "ldap": 389,
                  "postgres": 5432, "mysql": 3306, "irc": 6667}
HTTPS_PORT = 443


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


def handshake_problem(hs: LiveHandshake) -> Optional[str]:
    """What went wrong with the handshake of HS (``openssl.interpret_s_client``), or None."""
    report = hs.report
    if report.handshake_ok:
        return None
    if hs.timed_out:
        return f"no complete TLS handshake within {hs.budget:g} s"
    reason = report.errors[0] if report.errors else None
    if report.starttls_error:
        detail = report.starttls_error + (f" ({reason})" if reason else "")
    else:
        detail = reason or "no detail from openssl"
    return f"TLS handshake failed: {detail}"


def check_live(host: str, port: int, opts: CheckOptions, ossl: OpenSSL, now: datetime, *,
               servername: Optional[str] = None, starttls: Optional[str] = None,
               timeout: Optional[float] = None) -> Result:
    """Connect to HOST:PORT, take the staple the server sends, and judge it."""
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
    problem = handshake_problem(hs)
    chain = hs.chain
    if not chain:
        result.add(CRITICAL, problem or "the server presented no certificate")
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
            # found in the presented chain: never -i, and one of the certificates it sent
            presented = opts.issuer_file is None and any(c.der == match.issuer.der for c in certs[1:])
            target = Target(leaf=leaf, issuer=match.issuer, label=result.label,
                            issuer_source="the presented chain" if presented else match.source)
            result.issuer_source = target.issuer_source
        except IssuerNotFound as exc:
            if opts.issuer_file is not None:
                raise
            result.unverified_reason = ("the server did not present the issuer of its certificate "
                                        f"({without_label(str(exc), 'certificate')}); give -i FILE")
    if hs.staple is None:
        if problem:
            result.add(CRITICAL, problem)
            return result
        absence = evaluate.absent("no staple sent", leaf, require_staple=opts.require_staple,
                                  live=True)
        result.not_applicable = absence.not_applicable
        result.add(*absence.finding)
        return result
    check_der(result, hs.staple, target, opts, ossl)
    if problem:
        result.add(CRITICAL, problem)
    return result
