"""The HTTP/1.1 front end: asyncio.Protocol, a minimal strict parser, limits and timeouts.

* request head (request line + headers) at most ``MAX_HEAD`` bytes (431/414),
  at most ``MAX_HEADERS`` header lines, no obsolete line folding, one
  Content-Length, no Transfer-Encoding (501), POST needs Content-Length (411),
  a request target of visible ASCII only (400);
* body at most ``max_body`` bytes: 413 without reading it;
* a request must arrive completely within ``request_timeout`` seconds of its
  first byte (a client dripping bytes is cut off: the clock is not reset per
  byte); an idle keep-alive connection is closed after ``idle_timeout``;
* keep-alive (HTTP/1.1 default, HTTP/1.0 with ``Connection: keep-alive``),
  pipelined requests answered in order, back-pressure when a client does not
  read its answers;
* a client that connects and drops, resets, or sends garbage only ever
  affects its own connection.

The handler returns either the complete response bytes (the cached fast
path, no task, no allocation beyond the bytes) or an awaitable of them.
"""

from __future__ import annotations

import asyncio
import resource
import socket
from typing import Awaitable, Callable, Dict, Optional, Union

MAX_HEAD = 16384
MAX_HEADERS = 100
_VISIBLE = bytes(range(0x21, 0x7F))
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

REASONS = {200: "OK", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
           505: "HTTP Version Not Supported"}


class Request:
    __slots__ = ("method", "target", "version", "headers", "body", "keep_alive", "peer")

    def __init__(self, method: str, target: str, version: str, headers: Dict[str, str],
                 body: bytes, keep_alive: bool, peer: str) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.peer = peer


def render(status: int, body: bytes = b"", *, content_type: str = "text/plain; charset=utf-8",
           headers: tuple = (), keep_alive: bool = True, head: bool = False, date: str = "") -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", "Server: ocsp-proxy"]
    if date:
        lines.append(f"Date: {date}")
    if status != 304:
        lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
    lines.extend(f"{k}: {v}" for k, v in headers)
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return out if head or status == 304 else out + body


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[Request], Union[bytes, Awaitable[bytes]]]


class Limits:
    def __init__(self, max_body: int = 65536, request_timeout: float = 10.0,
                 idle_timeout: float = 30.0, max_connections: Optional[int] = None) -> None:
        self.max_body = max_body
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        if max_connections is None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            max_connections = max(16, min(16384, soft - 64)) if soft > 0 else 1024
        self.max_connections = max_connections


class Stats:
    def __init__(self) -> None:
        self.open = 0
        self.accepted = 0
        self.refused = 0
        self.timeouts = 0
        self.bad = 0


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("handler", "limits", "stats", "loop", "transport", "buf", "timer", "busy",
                 "closed", "paused", "peer", "log", "_continued", "_eof")

    def __init__(self, handler: Handler, limits: Limits, stats: Stats, log) -> None:
        self.handler = handler
        self.limits = limits
        self.stats = stats
        self.log = log
        self.loop = asyncio.get_running_loop()
        self.transport: Optional[asyncio.Transport] = None
        self.buf = bytearray()
        self.timer: Optional[asyncio.TimerHandle] = None
        self.busy = False
        self.closed = False
        self.paused = False
        self.peer = "?"
        self._continued = False
        self._eof = False

    # -- connection events ---------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.stats.accepted += 1
        if self.stats.open >= self.limits.max_connections:
            self.stats.refused += 1
            self.closed = True
            transport.abort()
            return
        self.stats.open += 1
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"
        self._arm(self.limits.idle_timeout)

    def connection_lost(self, exc) -> None:
        if not self.closed:
            self.closed = True
            self.stats.open -= 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def pause_writing(self) -> None:
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
            if not self.busy:
                self._process()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.buf and not self.busy:
            self._arm(self.limits.request_timeout)       # first byte of a request: start its clock
        self.buf += data
        if self.busy or self.paused:
            if len(self.buf) > MAX_HEAD + self.limits.max_body:
                if self.transport is not None:
                    self.transport.pause_reading()       # pipelining flood: wait for us
            return
        self._process()

    def eof_received(self) -> bool:
        """The client half-closed: answer what it already sent, then close."""
        if self.busy:
            self._eof = True
            return True          # keep the transport open to write the pending answer
        return False

    # -- timers ----------------------------------------------------------------
    def _arm(self, seconds: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(seconds, self._timed_out)

    def _timed_out(self) -> None:
        self.timer = None
        if self.closed or self.busy:
            return
        self.stats.timeouts += 1
        if self.buf:
            self._send(render(408, b"request not received in time\n", keep_alive=False), close=True)
        else:
            self._close()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self.stats.open -= 1
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            if self.transport is not None:
                self.transport.close()

    def _send(self, data: bytes, close: bool) -> None:
        if self.closed or self.transport is None:
            return
        self.transport.write(data)
        if close:
            self._close()

    # -- parsing ---------------------------------------------------------------
    def _process(self) -> None:
        while not self.closed and not self.busy and not self.paused and self.buf:
            buf = self.buf
            end = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
            if end < 0:
                if len(buf) > MAX_HEAD:
                    line_end = buf.find(b"\r\n", 0, MAX_HEAD)
                    self._fail(HttpError(414 if line_end < 0 else 431, "request head too large"))
                return
            try:
                req, need = self._parse_head(bytes(buf[:end]))
            except HttpError as exc:
                self._fail(exc)
                return
            total = end + 4 + need
            if len(buf) < total:
                if need and self._expects_continue(req) and not self._continued:
                    self._continued = True
                    if self.transport is not None:
                        self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            self._continued = False
            req.body = bytes(buf[end + 4:total])
            del buf[:total]
            try:
                result = self.handler(req)
            except HttpError as exc:
                self._fail(exc)
                return
            if isinstance(result, bytes):
                self._send(result, close=not req.keep_alive)
                if not self.closed:
                    self._arm(self.limits.request_timeout if self.buf else self.limits.idle_timeout)
                continue
            self.busy = True
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            self.loop.create_task(self._finish(result, req.keep_alive))
            return

    @staticmethod
    def _expects_continue(req: Request) -> bool:
        return req.headers.get("expect", "").lower() == "100-continue"

    async def _finish(self, pending, keep_alive: bool) -> None:
        try:
            data = await pending
        except HttpError as exc:
            data, keep_alive = render(exc.status, (str(exc) + "\n").encode(), keep_alive=False), False
        except Exception as exc:   # a bug must not take the server down
            self.log.error(f"internal error answering {self.peer}: {type(exc).__name__}: {exc}")
            data, keep_alive = render(500, b"internal error\n", keep_alive=False), False
        self.busy = False
        if self.closed:
            return
        self._send(data, close=not keep_alive or self._eof)
        if not self.closed:
            self._arm(self.limits.request_timeout if self.buf else self.limits.idle_timeout)
            if self.transport is not None and not self.paused:
                self.transport.resume_reading()
            self._process()

    def _fail(self, exc: HttpError) -> None:
        self.stats.bad += 1
        self.buf.clear()
        self._send(render(exc.status, (str(exc) + "\n").encode(), keep_alive=False), close=True)

    def _parse_head(self, head: bytes):
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise HttpError(400, "malformed request line")
        method, target, version = parts
        if not all(c in _TOKEN for c in method):
            raise HttpError(400, "malformed method")
        if version == b"HTTP/1.1":
            keep_alive = True
        elif version == b"HTTP/1.0":
            keep_alive = False
        elif version.startswith(b"HTTP/"):
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are spoken here")
        else:
            raise HttpError(400, "malformed request line")
        if len(lines) - 1 > MAX_HEADERS:
            raise HttpError(431, "too many header lines")
        headers: Dict[str, str] = {}
        for raw in lines[1:]:
            if not raw or raw[0] in (0x20, 0x09):
                raise HttpError(400, "obsolete header line folding")
            name, sep, value = raw.partition(b":")
            if not sep or not name or not all(c in _TOKEN for c in name):
                raise HttpError(400, "malformed header line")
            key = name.decode("ascii").lower()
            val = value.strip(b" \t").decode("latin-1")
            if key in headers:
                if key in ("content-length", "host"):
                    raise HttpError(400, f"duplicate {key} header")
                headers[key] += ", " + val
            else:
                headers[key] = val
        conn = headers.get("connection", "").lower()
        if "close" in conn:
            keep_alive = False
        elif "keep-alive" in conn:
            keep_alive = True
        if "transfer-encoding" in headers:
            raise HttpError(501, "Transfer-Encoding is not supported; send Content-Length")
        length = 0
        if "content-length" in headers:
            text = headers["content-length"]
            if not text.isdigit() or len(text) > 12:
                raise HttpError(400, "malformed Content-Length")
            length = int(text)
        elif method == b"POST":
            raise HttpError(411, "POST needs a Content-Length")
        if length > self.limits.max_body:
            raise HttpError(413, f"request body larger than {self.limits.max_body} bytes")
        if version == b"HTTP/1.1" and "host" not in headers:
            raise HttpError(400, "HTTP/1.1 request without Host")
        try:
            target_s = target.decode("ascii")
        except UnicodeDecodeError:
            raise HttpError(400, "non-ASCII request target") from None
        if target.translate(None, _VISIBLE):
            raise HttpError(400, "control character in the request target")
        return Request(method.decode("ascii"), target_s, version.decode("ascii"), headers, b"",
                       keep_alive, self.peer), length


async def start(handler: Handler, addresses, limits: Limits, stats: Stats, log):
    """Listen on every (host, port); return the asyncio servers."""
    loop = asyncio.get_running_loop()
    servers = []
    for host, port in addresses:
        srv = await loop.create_server(lambda: HttpProtocol(handler, limits, stats, log),
                                       host=host, port=port, reuse_address=True, backlog=1024)
        servers.append(srv)
    return servers
