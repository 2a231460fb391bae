"""Asking an allowed responder, and verifying its answer for one CertID before it is cached.

Blocking functions (HTTP through ``transport``, openssl through
``verify``/``OpenSSL``); the server runs them in worker threads.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional, Sequence, Tuple

from .. import life, transport, verify
from ..errors import (ConnectFailed, FetchError, HttpStatusError, ResponderStatusError, ResponseError,
                      TransportTimeout)
from ..openssl import OpenSSL
from ..staple import Certificate, Staple
from ..codec import der
from . import rules
from .entry import Entry


class Unverifiable(ResponseError):
    """The upstream answer arrived but may not be cached (passed through instead)."""

    def __init__(self, message: str, body: bytes, kind: str) -> None:
        super().__init__(message)
        self.body = body
        self.kind = kind


#: The transport failures /metrics tells apart, most telling first: when every responder failed,
#: the first kind any of them met names the failure.
TRANSPORT_KINDS = ((ConnectFailed, "connect"), (TransportTimeout, "timeout"), (HttpStatusError, "http"))


def error_kind(exc: BaseException) -> str:
    """A short label for /metrics: connect, timeout, http, responder_status, verify, times, other."""
    if isinstance(exc, Unverifiable):
        return exc.kind
    if isinstance(exc, ResponderStatusError):
        return "responder_status"
    if isinstance(exc, ResponseError):
        return "verify"
    met = (exc.causes if isinstance(exc, FetchError) else ()) or (exc,)
    for cls, kind in TRANSPORT_KINDS:
        if any(isinstance(e, cls) for e in met):
            return kind
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
            failures.append(exc)
    raise FetchError(" | ".join(str(e) for e in failures) or "no responder to ask", causes=failures)


def forward(url: str, request: bytes, http: transport.HttpOptions) -> transport.Response:
    """Pass-through: POST the client's exact bytes, return whatever came back (size-capped)."""
    return transport.request("POST", url, body=request,
                             headers={"Content-Type": "application/ocsp-request"}, opts=http)


def check(body: bytes, cid: der.CertID, issuer: Certificate, leaf: Optional[Certificate],
          ossl: OpenSSL, now: datetime, label: str) -> Staple:
    """Verify BODY for CID (signature, delegation, CertID, times) or raise Unverifiable."""
    try:
        if leaf is not None:
            staple = verify.verify(body, leaf, issuer, ossl, hash_alg=cid.hash_alg, label=label)
        else:
            staple = verify.verify_serial(body, cid.serial, issuer, ossl, hash_alg=cid.hash_alg,
                                          label=label)
    except ResponderStatusError as exc:
        raise Unverifiable(str(exc), body, "responder_status") from None
    except ResponseError as exc:
        raise Unverifiable(str(exc), body, "verify") from None
    errs = life.errors(life.problems(staple.life, now))
    if errs:
        raise Unverifiable(f"{label}: " + "; ".join(p.message for p in errs), body, "times")
    if staple.cert_status == "unknown":
        raise Unverifiable(f"{label}: the responder says unknown for serial {cid.serial_hex}",
                           body, "unknown")
    return staple


def _ts(dt: Optional[datetime]) -> Optional[float]:
    return dt.timestamp() if dt is not None else None


def make_entry(staple: Staple, cid: der.CertID, url: str, now: datetime, refresh_pct: float) -> Entry:
    assert staple.next_update is not None
    return Entry(key=cid.key, url=url, hash_alg=cid.hash_alg or "sha1",
                 name_hash=cid.name_hash.hex(), key_hash=cid.key_hash.hex(), serial=cid.serial_hex,
                 request=der.encode_request(cid), response=staple.der,
                 cert_status=staple.cert_status, this_update=staple.this_update.timestamp(),
                 next_update=staple.next_update.timestamp(), valid_until=rules.valid_until(staple),
                 produced_at=_ts(staple.produced_at), fetched_at=now.timestamp(),
                 due=rules.refresh_due(staple, refresh_pct), failures=0)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)
