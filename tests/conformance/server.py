"""A loopback OCSP responder for the corpus: /case/<name>[/...] answers GET and POST with that case's DER."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Tuple

CONTENT_TYPE = "application/ocsp-response"


class CaseServer:
    """Bound to 127.0.0.1 on a free port at construction (so leaves can name it); serves once
    ``cases`` (name -> DER) is set and ``start()`` was called.  Unknown paths get 404."""

    def __init__(self) -> None:
        self.cases: Dict[str, bytes] = {}
        self.requests: List[Tuple[str, str]] = []   # (method, path), in arrival order
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append((self.command, self.path))
                parts = self.path.split("?", 1)[0].split("/")
                body = outer.cases.get(parts[2]) if len(parts) > 2 and parts[1] == "case" else None
                self.send_response(404 if body is None else 200)
                self.send_header("Content-Type", "text/plain" if body is None else CONTENT_TYPE)
                body = b"no such case\n" if body is None else body
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            do_GET = do_POST = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="conformance-responder",
                                        daemon=True)

    def start(self) -> "CaseServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "CaseServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
