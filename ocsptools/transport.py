"""HTTP for OCSP (RFC 6960 Appendix A.1, RFC 5019/9919) and AIA caIssuers downloads.

Plain stdlib ``http.client``: openssl only builds requests and verifies
responses.  Every request has a connect/read timeout *and* an overall
deadline (a responder that drips one byte a second cannot hold a run), a
size cap, no redirects (openssl follows none either; a moved responder is
named in the error so the user can pass ``-u``), proxies from ``--proxy`` or
``http_proxy``/``https_proxy``/``no_proxy``.  Failures are ``TransportError`` subclasses
(``ocsptools.errors``) that say what went wrong: connection, time, HTTP status, size.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Dict, Optional, Tuple

from . import __version__
from .errors import (ConnectFailed, FetchError, HttpStatusError, ResponseTooLarge, TransportError,
                     TransportTimeout, UsageError)

#: RFC 5019 / 9919: use GET when the encoded request is at most this long.
GET_LIMIT = 255
#: Real OCSP responses are a few kB; anything this large is hostile or broken.
MAX_RESPONSE_SIZE = 1024 * 1024
USER_AGENT = f"ocsptools/{__version__}"
METHODS = ("auto", "get", "post")


@dataclass(frozen=True)
class HttpOptions:
    timeout: float = 10.0
    proxy: Optional[str] = None          # explicit proxy URL; None = from the environment
    max_size: int = MAX_RESPONSE_SIZE


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: Dict[str, str]
    body: bytes


def get_url(url: str, request_der: bytes) -> Optional[str]:
    """The RFC 6960 A.1 GET URL for a request, or None when it is too long or impossible.

    The request is base64-encoded, then percent-encoded (``+``, ``/`` and
    ``=`` included), and appended to the responder URL's path with exactly
    one slash between them."""
    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment:
        return None
    encoded = urllib.parse.quote(base64.b64encode(request_der).decode("ascii"), safe="")
    if len(encoded) > GET_LIMIT:
        return None
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path + encoded, "", ""))


def check_url(url: str) -> None:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port                      # a port out of range or not a number raises here
    except ValueError as exc:
        raise UsageError(f"{url}: not a usable URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{url}: not an http:// or https:// URL")


def check_remote_url(url: str) -> None:
    """``check_url`` for a URL that came from a certificate (OCSP, caIssuers) rather than from
    the user: an unusable one (ldap://, a broken IPv6 literal, a port out of range) is a
    FetchError for that URL, so the next URL or certificate is still tried."""
    try:
        check_url(url)
    except UsageError as exc:
        raise FetchError(str(exc)) from None


def _proxy_for(url: str, opts: HttpOptions) -> Optional[str]:
    parts = urllib.parse.urlsplit(url)
    if opts.proxy is not None:
        return opts.proxy or None
    host = parts.hostname or ""
    if urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]
        return None
    return urllib.request.getproxies_environment().get(parts.scheme)


class ProxyChoice:
    """BASE's options for each URL with the environment's proxy choice made once per
    scheme://host:port (http_proxy/no_proxy are read once, not on every request of a run)."""

    def __init__(self, base: HttpOptions) -> None:
        self.base = base
        self._chosen: Dict[str, HttpOptions] = {}
        self._lock = threading.Lock()

    def __call__(self, url: str) -> HttpOptions:
        if self.base.proxy is not None:
            return self.base
        parts = urllib.parse.urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            chosen = self._chosen.get(key)
            if chosen is None:
                chosen = self._chosen[key] = replace(self.base, proxy=_proxy_for(url, self.base) or "")
        return chosen


def request(method: str, url: str, *, body: Optional[bytes] = None,
            headers: Optional[Dict[str, str]] = None,
            opts: HttpOptions = HttpOptions(), label: Optional[str] = None) -> Response:
    """One HTTP exchange, bounded in time and size.  Raises a TransportError (FetchError) with one
    clear line naming LABEL (default: the URL)."""
    check_remote_url(url)
    name = label or url
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    deadline = time.monotonic() + opts.timeout
    target_port = parts.port or (443 if parts.scheme == "https" else 80)
    proxy = _proxy_for(url, opts)
    send_path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    try:
        if proxy:
            try:
                pp = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
                pp.port
            except ValueError as exc:
                raise UsageError(f"{proxy}: not a usable proxy URL ({exc})") from None
            if not pp.hostname:
                raise UsageError(f"{proxy}: not a usable proxy URL")
            if parts.scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    pp.hostname, pp.port or 3128, timeout=opts.timeout,
                    context=ssl.create_default_context())
                conn.set_tunnel(host, target_port)
            else:
                conn = http.client.HTTPConnection(pp.hostname, pp.port or 3128, timeout=opts.timeout)
                send_path = url
        elif parts.scheme == "https":
            conn = http.client.HTTPSConnection(host, target_port, timeout=opts.timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(host, target_port, timeout=opts.timeout)
        hdrs = {"User-Agent": USER_AGENT, "Accept": "application/ocsp-response, */*;q=0.1",
                "Connection": "close"}
        hdrs.update(headers or {})
        try:
            conn.request(method, send_path, body=body, headers=hdrs)
            if conn.sock is not None:
                conn.sock.settimeout(max(0.05, deadline - time.monotonic()))
            resp = conn.getresponse()
            length = resp.getheader("Content-Length")
            if length and length.isdigit() and int(length) > opts.max_size:
                raise ResponseTooLarge(f"{name}: response of {int(length)} bytes exceeds the "
                                       f"{opts.max_size}-byte limit")
            chunks = []
            total = 0
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TransportTimeout(f"{name}: no complete answer within {opts.timeout:g} s")
                if conn.sock is not None:
                    conn.sock.settimeout(remaining)
                chunk = resp.read1(65536)
                if not chunk:
                    break
                total += len(chunk)
                if total > opts.max_size:
                    raise ResponseTooLarge(f"{name}: response exceeds the {opts.max_size}-byte limit")
                chunks.append(chunk)
            return Response(resp.status, resp.reason,
                            {k.lower(): v for k, v in resp.getheaders()}, b"".join(chunks))
        finally:
            conn.close()
    except FetchError:
        raise
    except socket.timeout:
        raise TransportTimeout(f"{name}: no answer within {opts.timeout:g} s") from None
    except ssl.SSLError as exc:
        raise TransportError(f"{name}: TLS error: {exc.reason or exc}") from None
    except ConnectionRefusedError:
        raise ConnectFailed(f"{name}: connection refused") from None
    except ConnectionResetError:
        raise ConnectFailed(f"{name}: connection reset by the responder") from None
    except socket.gaierror as exc:
        raise ConnectFailed(f"{name}: cannot resolve {parts.hostname}: {exc.strerror}") from None
    except (http.client.HTTPException, OSError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise TransportError(f"{name}: {detail}") from None


def retry_after(resp: Response) -> Optional[float]:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _ok_body(url: str, resp: Response) -> bytes:
    if resp.status != 200:
        extra = ""
        if 300 <= resp.status < 400 and resp.headers.get("location"):
            extra = f" to {resp.headers['location']} (redirects are not followed; use -u with the new URL)"
        raise HttpStatusError(f"{url}: HTTP {resp.status} {resp.reason}{extra}".rstrip(),
                              resp.status, retry_after=retry_after(resp))
    if not resp.body:
        raise TransportError(f"{url}: empty response body")
    return resp.body


def ocsp_query(url: str, request_der: bytes, *, method: str = "auto",
               opts: HttpOptions = HttpOptions()) -> Tuple[bytes, str]:
    """Send one OCSP request; return (body, method used).

    ``auto`` uses GET when the encoded request fits in 255 bytes and falls
    back to POST when the GET is refused (HTTP 4xx/5xx); ``get`` and
    ``post`` force one method (``get`` fails if the request is too long)."""
    if method not in METHODS:
        raise UsageError(f"--method must be one of {', '.join(METHODS)}")
    check_remote_url(url)
    gurl = get_url(url, request_der) if method in ("auto", "get") else None
    if method == "get" and gurl is None:
        raise UsageError(f"{url}: request too long for GET ({GET_LIMIT} bytes encoded); use --method post")
    if gurl is not None:
        resp = request("GET", gurl, opts=opts, label=url)
        if resp.status == 200 or method == "get" or not (400 <= resp.status < 600):
            return _ok_body(url, resp), "GET"
    resp = request("POST", url, body=request_der,
                   headers={"Content-Type": "application/ocsp-request"}, opts=opts)
    return _ok_body(url, resp), "POST"


def download(url: str, *, opts: HttpOptions = HttpOptions()) -> bytes:
    """GET a small file (an AIA caIssuers certificate)."""
    return _ok_body(url, request("GET", url, opts=opts))
