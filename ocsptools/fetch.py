"""Fetching one staple: load the certificate, find its issuer, ask each responder, verify.

This is the service ``ocsp-fetch`` (and ``ocsp-renew-dir``) stands on.
Deciding is kept apart from doing: ``fetch_staple`` only obtains and
verifies a response; ``ocsptools.install`` decides whether it may replace the
installed file and writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, List, Optional, Sequence, Tuple

from . import life, transport, verify
from .certs import IssuerFinder, load_file
from .errors import CertStatusError, FetchError, InputError, NotApplicable, OpensslError, Revoked
from .openssl import OpenSSL
from .staple import Certificate, Staple, iso

__all__ = ["FetchOptions", "Target", "FetchResult", "load_target", "load_leaf", "find_issuer",
           "responder_urls", "fetch_staple", "require_good"]

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class FetchOptions:
    urls: Tuple[str, ...] = ()            # -u: override the certificate's AIA OCSP URLs
    method: str = "auto"
    hash_alg: str = "sha1"
    nonce: bool = False
    http: transport.HttpOptions = transport.HttpOptions()


@dataclass(frozen=True)
class Target:
    """A leaf certificate with its verified issuer."""

    leaf: Certificate
    issuer: Certificate
    label: str                            # how the user named it (a path, or "standard input")
    issuer_source: str = ""


@dataclass
class FetchResult:
    staple: Staple
    url: str
    method: str
    warnings: List[str] = field(default_factory=list)


def load_target(cert_path: str, ossl: OpenSSL, *, issuer_file: Optional[str] = None,
                ca_dirs: Sequence[str] = (), http: transport.HttpOptions = transport.HttpOptions(),
                use_aia: bool = True, urls: Optional[Sequence[str]] = None) -> Target:
    """The leaf of CERT_PATH with the certificate that really issued it.

    URLS, when not None, says the caller is about to ask a responder (the
    ``-u`` list, possibly empty): a certificate naming no OCSP responder, with
    none given, then raises NotApplicable right after loading, before the
    issuer search (which may read files, download caIssuers or fail)."""
    certs, label = load_leaf(cert_path, ossl)
    if urls is not None:
        _urls_or_not_applicable(certs[0], label, urls)
    return find_issuer(certs, cert_path, label, ossl, issuer_file=issuer_file, ca_dirs=ca_dirs,
                       http=http, use_aia=use_aia)


def load_leaf(cert_path: str, ossl: OpenSSL) -> Tuple[List[Certificate], str]:
    """The certificates of CERT_PATH (``-``: stdin), leaf first, and its label; InputError if it
    holds no usable leaf (a lone CA certificate).  The first half of ``load_target``."""
    certs = load_file(cert_path, ossl)
    leaf = certs[0]
    label = "standard input" if cert_path == "-" else cert_path
    if leaf.is_ca and len(certs) == 1:
        raise InputError(f"{label}: holds a CA certificate ({leaf.subject}), not a leaf", path=label)
    return certs, label


def find_issuer(certs: Sequence[Certificate], cert_path: str, label: str, ossl: OpenSSL, *,
                issuer_file: Optional[str] = None, ca_dirs: Sequence[str] = (),
                http: transport.HttpOptions = transport.HttpOptions(),
                use_aia: bool = True) -> Target:
    """The Target of a loaded leaf (CERTS[0], its bundle after it): the issuer search of
    ``load_target`` (``certs.IssuerFinder``)."""
    finder = IssuerFinder(ossl, http=http, use_aia=use_aia)
    match = finder.find(certs[0], cert_path=None if cert_path == "-" else cert_path,
                        bundle=certs[1:], issuer_file=issuer_file, ca_dirs=ca_dirs)
    return Target(leaf=certs[0], issuer=match.issuer, label=label, issuer_source=match.source)


def responder_urls(target: Target, opts: FetchOptions) -> Tuple[str, ...]:
    return _urls_or_not_applicable(target.leaf, target.label, opts.urls)


def _urls_or_not_applicable(leaf: Certificate, label: str, override: Sequence[str]) -> Tuple[str, ...]:
    urls = tuple(override) or tuple(leaf.ocsp_urls)
    if not urls:
        raise NotApplicable(
            f"{label}: the certificate names no OCSP responder; its CA no longer offers "
            f"OCSP, so turn stapling off for it (or give a responder with -u URL)", path=label)
    return urls


def fetch_staple(target: Target, opts: FetchOptions, ossl: OpenSSL, now: Clock, *,
                 request: Optional[bytes] = None,
                 http_for: Optional[Callable[[str], transport.HttpOptions]] = None) -> FetchResult:
    """Ask each responder in turn until one gives a response that verifies for TARGET.

    A response whose status is good, revoked or unknown ends the search (it
    is an answer); transport errors, responder error statuses, bad
    signatures, wrong CertIDs and unacceptable times move on to the next
    URL.  Raises FetchError naming every URL's failure when none answers.

    Batch callers may pass REQUEST (a prebuilt nonce-less request for this
    target; ignored when ``opts.nonce``) and HTTP_FOR (the HTTP options for a
    URL, e.g. with the proxy choice made once per host).  The request and every URL's
    verification share openssl's input files (``ossl.batch()``, the caller's if it holds one)."""
    urls = responder_urls(target, opts)
    with ossl.batch():
        return _ask(target, opts, ossl, now, urls, request, http_for)


def _ask(target: Target, opts: FetchOptions, ossl: OpenSSL, now: Clock, urls: Tuple[str, ...],
         request: Optional[bytes], http_for: Optional[Callable[[str], transport.HttpOptions]]
         ) -> FetchResult:
    nonce = None
    if request is None or opts.nonce:
        if opts.nonce:
            request, nonce = ossl.build_request_with_nonce(target.leaf, target.issuer,
                                                           hash_alg=opts.hash_alg)
        else:
            request = ossl.build_request(target.leaf, target.issuer, hash_alg=opts.hash_alg)
    failures: List[str] = []
    causes: List[FetchError] = []
    for url in urls:
        try:
            transport.check_remote_url(url)     # the certificate's own URL may be anything
            http = http_for(url) if http_for is not None else opts.http
            body, method = transport.ocsp_query(url, request, method=opts.method, opts=http)
            staple = verify.verify(body, target.leaf, target.issuer, ossl,
                                   hash_alg=opts.hash_alg, label=url)
        except FetchError as exc:
            failures.append(str(exc))
            causes.append(exc)
            continue
        except OpensslError as exc:     # e.g. openssl timed out on this answer: try the next URL
            failures.append(f"{url}: checking the answer failed: {exc}")
            continue
        problems = life.problems(staple.life, now())
        errs = life.errors(problems)
        if errs:
            failures.append(f"{url}: " + "; ".join(p.message for p in errs))
            continue
        warnings = [p.message for p in problems if p.severity == life.WARNING]
        if nonce is not None:
            if staple.info.nonce is None:
                warnings.append("the responder did not echo the nonce (many do not; "
                                "the answer may be a pre-produced one)")
            elif staple.info.nonce != nonce:
                failures.append(f"{url}: the response carries another nonce than the request "
                                f"(a replayed response?)")
                continue
        return FetchResult(staple, url, method, warnings)
    raise FetchError(f"{target.label}: " + " | ".join(failures), path=target.label, causes=causes)


def require_good(result: FetchResult, target: Target) -> None:
    """Raise Revoked or CertStatusError unless the staple says good."""
    staple = result.staple
    if staple.cert_status == "revoked":
        when = iso(staple.single.revocation_time)
        reason = staple.single.revocation_reason
        raise Revoked(f"{target.label}: REVOKED at {when}" + (f" ({reason})" if reason else "")
                      + f" according to {result.url}", path=target.label, staple=staple)
    if staple.cert_status != "good":
        raise CertStatusError(f"{target.label}: the responder {result.url} says the certificate "
                              f"status is {staple.cert_status}; check the issuer and responder URL",
                              staple.cert_status, path=target.label, staple=staple)
