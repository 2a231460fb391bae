"""proxy/answers.py (pure): refusals, tryLater and answers relayed uncached, as bytes."""

from __future__ import annotations

import pytest

from ocsptools.proxy import rules
from ocsptools.proxy.answers import Refusal, Relay, relayed_status, try_later
from test_proxy_support import TRY_LATER, parse_http


@pytest.mark.parametrize("upstream, relayed", [(200, 200), (400, 400), (403, 403), (404, 404), (500, 500),
                                               (502, 502), (503, 503), (301, 502), (401, 502), (504, 502)])
def test_relayed_status(upstream, relayed):
    assert relayed_status(upstream) == relayed


@pytest.mark.parametrize("head", [False, True])
def test_try_later_is_dated_and_never_stored(head):
    status, headers, body = parse_http(try_later(1_800_000_000.0, keep_alive=False, head=head))
    assert status == 200 and body == (b"" if head else TRY_LATER)
    assert headers["cache-control"] == "no-store" and headers["connection"] == "close"
    assert headers["date"] == rules.http_date(1_800_000_000.0)
    assert headers["content-type"] == "application/ocsp-response"


def test_relay_keeps_the_responder_type_and_is_never_stored():
    status, headers, body = parse_http(Relay(503, b"busy", "text/plain").render(True, False))
    assert (status, body, headers["content-type"]) == (503, b"busy", "text/plain")
    assert headers["cache-control"] == "no-store" and "date" not in headers


def test_refusal_renders_its_headers():
    r = Refusal(401, b"who?\n", keep_alive=True, headers=(("WWW-Authenticate", "Bearer"),))
    status, headers, body = parse_http(r.render())
    assert (status, body, headers["www-authenticate"]) == (401, b"who?\n", "Bearer")
