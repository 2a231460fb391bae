"""The proxy's answers other than a cached entry, as values and bytes (pure): refusals, tryLater and
responder answers relayed uncached.  A cached entry's answer is ``hot.Hot``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from . import rules
from .server import render

#: OCSPResponse { responseStatus tryLater }: what a client gets when no valid answer can be had.
TRY_LATER = bytes.fromhex("3003 0a01 03".replace(" ", ""))
OCSP_TYPE = "application/ocsp-response"
NO_STORE = (("Cache-Control", "no-store"),)
#: Responder statuses relayed as they are; any other becomes 502.
RELAYED_STATUSES = (200, 400, 403, 404, 500, 502, 503)


@dataclass(frozen=True)
class Refusal:
    """A request answered with an HTTP error (400, 401, 403, 404, 405, 503), and what to log."""

    status: int
    body: bytes
    keep_alive: bool
    headers: Tuple[Tuple[str, str], ...] = ()
    warning: str = ""                  # logged as a warning when not empty

    def render(self) -> bytes:
        return render(self.status, self.body, keep_alive=self.keep_alive, headers=self.headers)


@dataclass(frozen=True)
class Relay:
    """A responder's answer passed to the client uncached (``Cache-Control: no-store``)."""

    status: int
    body: bytes
    content_type: str = OCSP_TYPE

    def render(self, keep_alive: bool, head: bool) -> bytes:
        return render(self.status, self.body, content_type=self.content_type, keep_alive=keep_alive,
                      head=head, headers=NO_STORE)


def relayed_status(status: int) -> int:
    """The status a client gets for a responder's STATUS."""
    return status if status in RELAYED_STATUSES else 502


def try_later(now: float, keep_alive: bool, head: bool = False) -> bytes:
    """tryLater, never to be cached, dated NOW."""
    return render(200, TRY_LATER, content_type=OCSP_TYPE, keep_alive=keep_alive, head=head,
                  headers=NO_STORE, date=rules.http_date(now))
