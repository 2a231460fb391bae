"""Where a request wants to go and what it asks (pure): a ``Route`` or a ``Refusal``.

* the destination: an absolute URI in the request line (Apache's
  SSLOCSPProxyURL) or Host + path (nginx's ssl_stapling_responder); a Host
  header that could change a URL's path is malformed (400);
* the OCSPRequest: a POST body (``application/ocsp-request``) or a GET path's
  base64 (``paths.split_get_path``); malformed: 400;
* the responder path: one with a dot segment or an encoded slash is refused
  (403); only its normal form is matched against the allow-list and
  forwarded; an absolute URI outside the allow-list is refused (403); the
  proxy's own addresses are never a destination;
* without an explicit, allowed destination, the issuer the CertID names routes
  the request to the responders its leaves name (``issuers.Known.routes_for``).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

from ..codec import der
from ..staple import Certificate
from . import paths
from .answers import Refusal
from .issuers import Known, Prefix, split_url
from .server import Request


@dataclass(frozen=True)
class Route:
    """A well-formed OCSP request and where it may be sent."""

    data: bytes                       # the OCSPRequest DER, as the client sent it
    parsed: der.ParsedRequest
    urls: List[str]                   # allowed responders to ask, in order (empty: none)
    issuer: Optional[Certificate]     # the trusted issuer the first CertID names (--allow-from)

    @property
    def cid(self) -> der.CertID:
        return self.parsed.cert_ids[0]


def destination(target: str, host: str) -> Union[Tuple[str, str, bool], Refusal]:
    """(origin, path, explicit) a request TARGET (with its HOST header) names: explicit for an
    absolute URI; origin "" when neither names one."""
    if target.startswith("http://") or target.startswith("https://"):
        parts = urllib.parse.urlsplit(target)
        return f"{parts.scheme}://{parts.netloc}", parts.path or "/", True
    if target.startswith("/"):
        if host and not paths.HOST.fullmatch(host):
            return Refusal(400, b"malformed Host header\n", keep_alive=False)
        return (f"http://{host}" if host else ""), target.split("?", 1)[0], False
    return Refusal(400, b"request target must be a path or an absolute http URI\n", keep_alive=False)


def ocsp_request(req: Request, path: str) -> Union[Tuple[str, bytes, der.ParsedRequest], Refusal]:
    """(responder path, request DER, parsed) from a POST body or the end of a GET PATH."""
    ka = req.keep_alive
    if req.method == "POST":
        ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and ctype != "application/ocsp-request":
            return Refusal(400, b"POST needs Content-Type: application/ocsp-request\n", keep_alive=ka)
        try:
            return path, req.body, der.parse_request(req.body)
        except der.DerError as exc:
            return Refusal(400, f"malformed OCSP request: {exc}\n".encode(), keep_alive=ka)
    split = paths.split_get_path(path.split("?", 1)[0])
    if split is None:
        return Refusal(400, b"malformed request: expected GET /<url-encoded base64 OCSP "
                            b"request> (RFC 6960 A.1)\n", keep_alive=ka)
    return split


def is_own(url: str, own: Sequence[Tuple[str, int]]) -> bool:
    """Does URL name one of the proxy's OWN listening addresses (never forwarded to)?"""
    target = split_url(url)
    return target is not None and owns(target, own)


def owns(target: Prefix, own: Sequence[Tuple[str, int]]) -> bool:
    """``is_own`` for a URL already split (``split_url``)."""
    for host, port in own:
        if port == target.port and (host in ("", "0.0.0.0", "::") or host.lower() == target.host
                                    or target.host in ("localhost", "127.0.0.1", "::1")):
            return True
    return False


def route(req: Request, known: Known, own: Sequence[Tuple[str, int]]) -> Union[Route, Refusal]:
    """Where REQ may go under the allow-list KNOWN, or why it is refused."""
    where = destination(req.target, req.headers.get("host", ""))
    if isinstance(where, Refusal):
        return where
    base, path, explicit = where
    asked = ocsp_request(req, path)
    if isinstance(asked, Refusal):
        return asked
    responder_path, data, parsed = asked
    ka = req.keep_alive
    # -- only a normal path under an allowed prefix is matched and forwarded ------------------
    dest = split_url(base + responder_path) if base else None
    why = paths.unsafe(responder_path) or (dest.unsafe if dest is not None else None)
    if why:
        return Refusal(403, f"{responder_path}: {why} in the path\n".encode(), keep_alive=ka,
                       warning=f"refused {req.peer}: {why} in the responder path {responder_path}")
    url = dest.url if dest is not None else (base + responder_path if base else "")
    allowed = dest is not None and known.allows(dest)       # the URL parsed once, judged once
    urls: List[str] = []
    if url and not (dest is not None and owns(dest, own)) and (explicit or allowed):
        if not allowed:
            return Refusal(403, f"{url}: responder not allowed by this proxy\n".encode(), keep_alive=ka,
                           warning=f"refused {req.peer}: responder {url} is not allowed "
                                   f"(--allow / --allow-from)")
        urls = [url]
    cid = parsed.cert_ids[0]
    issuer = known.issuer_for(cid)
    if not urls and issuer is not None:
        urls = known.routes_for(issuer, cid.serial)
    return Route(data, parsed, urls, issuer)


def no_responder(req: Request, cid: der.CertID) -> Refusal:
    """The refusal of a request no allowed responder can answer."""
    return Refusal(403, b"no allowed responder for this certificate\n", keep_alive=req.keep_alive,
                   warning=f"refused {req.peer}: no allowed responder for serial {cid.serial_hex} "
                           f"(issuer not under --allow-from, and no allowed absolute URL or Host)")


def fallback(route: Route, stored_url: Optional[str], known: Known) -> List[str]:
    """Where a cacheable miss is sent: the route's responders, else the URL the expired entry was
    fetched from (STORED_URL) if the allow-list still has it."""
    if not route.urls and stored_url is not None and known.allowed(stored_url):
        return [stored_url]
    return route.urls
