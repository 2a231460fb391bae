"""Asking an allowed responder, and verifying its answer for one CertID before it is cached.

Blocking functions (HTTP through ``transport``, openssl through
``verify``/``OpenSSL``); the server runs them in worker threads.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional, Sequence, Tuple

from .. import policy, transport, verify
from ..errors import FetchError, ResponderStatusError, ResponseError
from ..openssl import OpenSSL, Scratch
from ..staple import Certificate, Staple
from . import der, rules
from .cache import Entry


class Unverifiable(ResponseError):
    """The upstream answer arrived but may not be cached (passed through instead)."""

    def __init__(self, message: str, body: bytes, kind: str) -> None:
        super().__init__(message)
        self.body = body
        self.kind = kind


def error_kind(exc: BaseException) -> str:
    """A short label for /metrics: connect, timeout, http, responder_status, verify, times, other."""
    if isinstance(exc, Unverifiable):
        return exc.kind
    if isinstance(exc, ResponderStatusError):
        return "responder_status"
    if isinstance(exc, ResponseError):
        return "verify"
    text = str(exc)
    if "refused" in text or "reset" in text or "resolve" in text:
        return "connect"
    if "within" in text or "timed out" in text:
        return "timeout"
    if "HTTP " in text:
        return "http"
    return "other"


def ask(url: str, request: bytes, http: transport.HttpOptions) -> bytes:
    """One exchange with the responder (GET when it fits in 255 bytes, else POST)."""
    body, _ = transport.ocsp_query(url, request, method="auto", opts=http)
    return body


def ask_first(urls: Sequence[str], request: bytes, http: transport.HttpOptions) -> Tuple[str, bytes]:
    """Try each responder in turn; FetchError naming all of them when none answers."""
    failures = []
    for url in urls:
        try:
            return url, ask(url, request, http)
        except FetchError as exc:
            failures.append(str(exc))
    raise FetchError(" | ".join(failures) or "no responder to ask")


def forward(url: str, request: bytes, http: transport.HttpOptions) -> transport.Response:
    """Pass-through: POST the client's exact bytes, return whatever came back (size-capped)."""
    return transport.request("POST", url, body=request,
                             headers={"Content-Type": "application/ocsp-request"}, opts=http)


def _verify_serial(body: bytes, cid: der.CertID, issuer: Certificate, ossl: OpenSSL,
                   label: str) -> Staple:
    """verify.verify for a CertID whose leaf certificate the proxy has never seen."""
    with Scratch() as scratch:
        resp_file = scratch.file(body, "response.der")
        issuer_file = scratch.file(issuer.pem.encode(), "issuer.pem")
        try:
            info, verdict = ossl.examine_response_serial(resp_file, issuer_file, cid.serial,
                                                          hash_alg=cid.hash_alg or "sha1")
        except ValueError as exc:
            raise ResponseError(f"{label}: {exc}") from None
    verify._require_successful(info, label)
    if not verdict.signature_ok:
        raise ResponseError(f"{label}: {verify._signature_message(verdict.verify_errors, info)}")
    if verdict.no_status_found or verdict.cert_status is None:
        raise ResponseError(f"{label}: not a response for serial {cid.serial_hex} of {issuer.subject}")
    matches = [r for r in info.find(cid.serial)
               if r.cert_status == verdict.cert_status and r.this_update == verdict.this_update]
    if not matches:
        raise ResponseError(f"{label}: openssl's status line matches no SingleResponse for serial "
                            f"{cid.serial_hex}; refusing it")
    return Staple(der=body, info=info, single=matches[0], verified=True,
                  signer_not_after=verify._signer_not_after(info, issuer))  # type: ignore[arg-type]


def check(body: bytes, cid: der.CertID, issuer: Certificate, leaf: Optional[Certificate],
          ossl: OpenSSL, now: datetime, label: str) -> Staple:
    """Verify BODY for CID (signature, delegation, CertID, times) or raise Unverifiable."""
    try:
        if leaf is not None:
            staple = verify.verify(body, leaf, issuer, ossl, hash_alg=cid.hash_alg, label=label)
        else:
            staple = _verify_serial(body, cid, issuer, ossl, label)
    except ResponderStatusError as exc:
        raise Unverifiable(str(exc), body, "responder_status") from None
    except ResponseError as exc:
        raise Unverifiable(str(exc), body, "verify") from None
    single = staple.single
    if (single.issuer_name_hash.upper() != cid.name_hash.hex().upper()
            or single.issuer_key_hash.upper() != cid.key_hash.hex().upper()):
        raise Unverifiable(f"{label}: the answer's CertID hashes differ from the request's", body, "verify")
    errs = policy.errors(policy.time_problems(staple, now))
    if errs:
        raise Unverifiable(f"{label}: " + "; ".join(p.message for p in errs), body, "times")
    if staple.cert_status == "unknown":
        raise Unverifiable(f"{label}: the responder says unknown for serial {cid.serial_hex}",
                           body, "unknown")
    return staple


def _ts(dt: Optional[datetime]) -> Optional[float]:
    return dt.timestamp() if dt is not None else None


def make_entry(staple: Staple, cid: der.CertID, url: str, issuer: Certificate,
               leaf: Optional[Certificate], now: datetime, refresh_pct: float) -> Entry:
    assert staple.next_update is not None
    this_update = staple.this_update.timestamp()
    next_update = staple.next_update.timestamp()
    return Entry(key=cid.key, url=url, hash_alg=cid.hash_alg or "sha1",
                 name_hash=cid.name_hash.hex(), key_hash=cid.key_hash.hex(), serial=cid.serial_hex,
                 request=der.encode_request(cid), response=staple.der,
                 cert_status=staple.cert_status, this_update=this_update, next_update=next_update,
                 produced_at=_ts(staple.produced_at), fetched_at=now.timestamp(),
                 issuer=issuer.der, leaf=leaf.der if leaf is not None else None,
                 due=rules.refresh_at(this_update, next_update, refresh_pct), failures=0)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)
