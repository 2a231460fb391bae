"""The proxy's own endpoints: ``/metrics`` (Prometheus), ``/healthz`` (is the cache reachable) and
``/admin/purge`` (a bearer token; serials from ``?serial=HEX`` or PEM certificates in the body).

Who may purge and what is named (``authorise``, ``purge_serials``) are pure; ``answer`` acts.
"""

from __future__ import annotations

import hmac
import urllib.parse
from typing import TYPE_CHECKING, List, Optional, Union

from ..codec import der
from ..codec import serial as serial_text
from ..codec.pem import split_pem_certs
from .answers import Refusal
from .cache import CacheError
from .metrics import CONTENT_TYPE
from .server import Request, render

if TYPE_CHECKING:
    from .service import Proxy

PATHS = ("/metrics", "/healthz", "/admin/purge")


def wants(target: str) -> bool:
    """Is TARGET one of the special endpoints (any query)?"""
    return target.startswith("/") and target.split("?", 1)[0] in PATHS


def authorise(req: Request, token: Optional[str]) -> Optional[Refusal]:
    """Why REQ may not purge (TOKEN: the admin token, None when purging over HTTP is off), or None."""
    ka = req.keep_alive
    if token is None:
        return Refusal(404, b"purging over HTTP is off (start with --admin-token-file)\n", keep_alive=ka)
    if req.method != "POST":
        return Refusal(405, b"POST /admin/purge\n", keep_alive=ka, headers=(("Allow", "POST"),))
    auth = req.headers.get("authorization", "")
    if not auth.startswith("Bearer "):
        return Refusal(401, b"missing Authorization: Bearer TOKEN\n", keep_alive=ka,
                       headers=(("WWW-Authenticate", 'Bearer realm="ocsp-proxy"'),))
    if not hmac.compare_digest(auth[len("Bearer "):].strip().encode(), token.encode()):
        return Refusal(403, b"wrong admin token\n", keep_alive=ka,
                       warning=f"refused purge from {req.peer}: wrong admin token")
    return None


def purge_serials(req: Request) -> Union[List[str], Refusal]:
    """The serials (hex, upper case) a purge request names, or why it is malformed."""
    ka = req.keep_alive
    serials: List[str] = []
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(req.target).query)
    for value in query.get("serial", []):
        try:
            serials.append(serial_text.normal(value))
        except ValueError:
            return Refusal(400, f"not a hex serial: {value}\n".encode(), keep_alive=ka)
    for cert_der in split_pem_certs(req.body):
        try:
            serials.append(serial_text.to_hex(der.cert_serial(cert_der)))
        except der.DerError:
            return Refusal(400, b"unreadable certificate in the body\n", keep_alive=ka)
    if not serials:
        return Refusal(400, b"name what to purge: ?serial=HEX or PEM certificates in the body\n",
                       keep_alive=ka)
    return serials


async def answer(proxy: "Proxy", req: Request) -> bytes:
    """The answer to a request for one of ``PATHS``."""
    path = req.target.split("?", 1)[0]
    if path == "/metrics":
        return await metrics(proxy, req)
    if path == "/healthz":
        return await healthz(proxy, req)
    return await purge(proxy, req)


async def metrics(proxy: "Proxy", req: Request) -> bytes:
    try:
        gauges = dict(await proxy.io(proxy.cache.summary, proxy.clock()))
    except CacheError as exc:
        proxy.metrics.cache_errors += 1
        proxy.log.error(str(exc))
        gauges = {}
    gauges["issuers"] = proxy.known.issuer_count
    st = proxy.http_stats
    body = proxy.metrics.render(gauges, {"open": st.open, "timeouts": st.timeouts, "refused": st.refused})
    return render(200, body, content_type=CONTENT_TYPE, keep_alive=req.keep_alive,
                  head=req.method == "HEAD")


async def healthz(proxy: "Proxy", req: Request) -> bytes:
    try:
        await proxy.io(proxy.cache.ping)
    except CacheError as exc:
        return render(503, f"cache unreachable: {exc}\n".encode(), keep_alive=req.keep_alive)
    return render(200, b"ok\n", keep_alive=req.keep_alive, head=req.method == "HEAD")


async def purge(proxy: "Proxy", req: Request) -> bytes:
    refused = authorise(req, proxy.settings.admin_token)
    named = purge_serials(req) if refused is None else refused
    if isinstance(named, Refusal):
        if named.warning:
            proxy.log.warning(named.warning)
        return named.render()
    purged: List[str] = []
    try:
        for serial in named:
            purged.extend(await proxy.io(proxy.cache.purge_serial, serial))
    except CacheError as exc:
        return render(503, f"{exc}\n".encode(), keep_alive=req.keep_alive)
    for key in purged:
        proxy.hot.pop(key, None)
    proxy.log.info(f"purged {len(purged)} entr{'y' if len(purged) == 1 else 'ies'} for serial(s) "
                   f"{', '.join(named)} at the request of {req.peer}")
    return render(200, f"purged {len(purged)}\n".encode(), keep_alive=req.keep_alive)
