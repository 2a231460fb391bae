"""The hot path's prepared answers: ``Hot``, a cached entry's response bytes with its HTTP headers
rebuilt at most once per second, and how long the proxy trusts its in-memory copy."""

from __future__ import annotations

import hashlib
from typing import Tuple

from . import rules
from .answers import OCSP_TYPE
from .entry import Entry

#: How long the in-memory copy of an entry is trusted before the shared cache is read again
#: (bounds how long a purge or another proxy's refresh takes to be seen here).
MEMO_TTL = 2.0
#: The in-memory maps are cleared when they grow past this many items.
MEMO_MAX = 50000


class Hot:
    """An entry ready to be written: headers rebuilt once per second."""

    __slots__ = ("entry", "valid_until", "recheck", "etag", "last_modified", "expires", "_sec",
                 "_ka", "_close", "_body")

    def __init__(self, entry: Entry, recheck: float) -> None:
        self.entry = entry
        self.valid_until = entry.valid_until
        self.recheck = recheck            # monotonic instant until which it is trusted
        self.etag = '"' + hashlib.sha256(entry.response).hexdigest()[:32] + '"'
        self.last_modified = rules.http_date(entry.this_update)
        self.expires = rules.http_date(entry.valid_until)
        self._sec = -1
        self._ka = b""
        self._close = b""
        self._body = entry.response

    def fresh(self, now: float, mono: float) -> bool:
        """Servable at NOW without reading the shared cache (valid, checked within MEMO_TTL)."""
        return rules.usable(self.valid_until, now) and mono < self.recheck

    def _headers(self, now: float, status: str = "200 OK", body: bool = True) -> Tuple[bytes, bytes]:
        common = (f"Server: ocsp-proxy\r\nDate: {rules.http_date(now)}\r\n"
                  + (f"Content-Type: {OCSP_TYPE}\r\nContent-Length: {len(self._body)}\r\n" if body else "")
                  + f"Cache-Control: max-age={rules.max_age(self.valid_until, now)}, public, "
                    f"no-transform, must-revalidate\r\n"
                  + f"Expires: {self.expires}\r\nLast-Modified: {self.last_modified}\r\n"
                  + f"ETag: {self.etag}\r\n")
        head = f"HTTP/1.1 {status}\r\n" + common
        return ((head + "Connection: keep-alive\r\n\r\n").encode("latin-1"),
                (head + "Connection: close\r\n\r\n").encode("latin-1"))

    def render(self, now: float, keep_alive: bool, head: bool) -> bytes:
        sec = int(now)
        if sec != self._sec:
            self._ka, self._close = self._headers(now)
            self._sec = sec
        hdr = self._ka if keep_alive else self._close
        return hdr if head else hdr + self._body

    def not_modified(self, now: float, keep_alive: bool) -> bytes:
        ka, close = self._headers(now, "304 Not Modified", body=False)
        return ka if keep_alive else close

    def answer(self, now: float, keep_alive: bool, head: bool, if_none_match) -> bytes:
        """The answer to a request bearing IF_NONE_MATCH (None: no such header)."""
        if if_none_match is not None and self.etag in if_none_match:
            return self.not_modified(now, keep_alive)
        return self.render(now, keep_alive, head)
