"""A small loopback HTTP server that answers OCSP requests with canned bytes.

For faults a real ``openssl ocsp`` responder will not produce (tryLater,
unauthorized, a response for another certificate, an older response, HTTP
errors, hangs).  Only ever binds 127.0.0.1.

    with FakeResponder() as fake:
        fake.set(body=der_bytes)                  # 200 application/ocsp-response
        fake.set(status=500)                      # HTTP error
        fake.set(handler=lambda req: ...)         # full control: return Answer
        ... fake.url ... fake.requests            # list of (method, path, body)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Tuple

# RFC 6960 OCSPResponse with only a responseStatus (no responseBytes).
STATUS_ONLY = {
    "malformedRequest": bytes.fromhex("3003 0a01 01".replace(" ", "")),
    "internalError": bytes.fromhex("3003 0a01 02".replace(" ", "")),
    "tryLater": bytes.fromhex("3003 0a01 03".replace(" ", "")),
    "sigRequired": bytes.fromhex("3003 0a01 05".replace(" ", "")),
    "unauthorized": bytes.fromhex("3003 0a01 06".replace(" ", "")),
}


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/ocsp-response"
    headers: Dict[str, str] = field(default_factory=dict)
    delay: float = 0.0          # seconds before answering
    drip: float = 0.0           # seconds between body bytes
    reset: bool = False         # close the connection without answering
    framing: str = "length"     # length: Content-Length; close: none, the body ends at close;
                                # chunked: Transfer-Encoding: chunked (64 KiB chunks)


@dataclass
class Request:
    method: str
    path: str
    body: bytes
    headers: Dict[str, str]


class FakeResponder:
    def __init__(self, *, tls: Optional[Tuple[str, str]] = None) -> None:
        """TLS=(certfile, keyfile) serves HTTPS instead of HTTP."""
        self.answer = Answer()
        self.handler: Optional[Callable[[Request], Answer]] = None
        self.requests: List[Request] = []
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, self.path, body, {k.lower(): v for k, v in self.headers.items()})
                outer.requests.append(req)
                ans = outer.handler(req) if outer.handler else outer.answer
                if ans.delay:
                    outer._stop.wait(ans.delay)
                if ans.reset:
                    self.close_connection = True
                    try:
                        import socket
                        import struct
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                   struct.pack("ii", 1, 0))
                    except OSError:
                        pass
                    return
                self.send_response(ans.status)
                self.send_header("Content-Type", ans.content_type)
                if ans.framing == "length":
                    self.send_header("Content-Length", str(len(ans.body)))
                elif ans.framing == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                for k, v in ans.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if ans.drip:
                    for i in range(len(ans.body)):
                        if outer._stop.is_set():
                            return
                        try:
                            self.wfile.write(ans.body[i:i + 1])
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(ans.drip)
                elif ans.framing == "chunked":
                    try:
                        for i in range(0, len(ans.body), 65536):
                            part = ans.body[i:i + 65536]
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                        self.wfile.write(b"0\r\n\r\n")
                    except OSError:
                        pass
                else:
                    try:
                        self.wfile.write(ans.body)
                    except OSError:
                        pass
                self.close_connection = True

            do_GET = _serve
            do_POST = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        if tls is not None:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://localhost:{self.port}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def set(self, **kwargs) -> "FakeResponder":
        handler = kwargs.pop("handler", None)
        self.handler = handler
        self.answer = Answer(**kwargs)
        return self

    def methods(self) -> List[str]:
        return [r.method for r in self.requests]

    def start(self) -> "FakeResponder":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "FakeResponder":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def status_only(status: str) -> bytes:
    return STATUS_ONLY[status]


def serve_files(files: Dict[str, Tuple[bytes, str]]) -> Callable[[Request], Answer]:
    """A handler serving PATH -> (body, content type), 404 otherwise."""
    def handler(req: Request) -> Answer:
        if req.path in files:
            body, ctype = files[req.path]
            return Answer(body=body, content_type=ctype)
        return Answer(status=404, body=b"not found", content_type="text/plain")
    return handler
