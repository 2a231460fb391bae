"""ocsptools.transport: what went wrong is a type (connection, time, HTTP status, size), so that no
caller reads message text; ocsp-proxy's /metrics labels come from those types.  Loopback only."""

from __future__ import annotations

import pytest

import pki as pkimod
from fake_responder import Answer
from ocsptools import transport
from ocsptools.errors import (ConnectFailed, FetchError, HttpStatusError, ResponseError,
                              ResponseTooLarge, TransportError, TransportTimeout)
from ocsptools.proxy.upstream import ask_first, error_kind

FAST = transport.HttpOptions(timeout=1.0, max_size=1000)


@pytest.mark.parametrize("answer, kind, words", [
    (Answer(status=503, body=b"busy", headers={"Retry-After": "7"}), HttpStatusError, "HTTP 503"),
    (Answer(reset=True), ConnectFailed, "connection reset by the responder"),
    (Answer(delay=3), TransportTimeout, "no answer within 1 s"),
    (Answer(body=b"\x30" * 2000), ResponseTooLarge, "exceeds the 1000-byte limit"),
    (Answer(body=b"\x30" * 2000, framing="close"), ResponseTooLarge, "exceeds the 1000-byte limit"),
    (Answer(body=b""), TransportError, "empty response body"),
])
def test_failures_are_typed(fake, answer, kind, words):
    fake.set(**vars(answer))
    with pytest.raises(kind, match=words) as info:
        transport.ocsp_query(fake.url, b"\x30\x00", method="post", opts=FAST)
    assert isinstance(info.value, FetchError) and str(info.value).startswith(fake.url)
    if kind is HttpStatusError:
        assert info.value.status == 503 and info.value.retry_after == 7.0


def test_refused_connection():
    url = f"http://127.0.0.1:{pkimod.free_port()}/"
    with pytest.raises(ConnectFailed, match="connection refused"):
        transport.ocsp_query(url, b"\x30\x00", opts=FAST)


@pytest.mark.parametrize("failure, kind", [
    (ConnectFailed("http://refused.example/: connection refused"), "connect"),
    (TransportTimeout("u: no answer within 1 s"), "timeout"),
    (HttpStatusError("u: HTTP 503", 503), "http"),
    (ResponseTooLarge("u: too large"), "other"),
    (TransportError("u: TLS error"), "other"),
    (FetchError("u: not a usable URL"), "other"),
    (ResponseError("u: HTTP 503 said the signature"), "verify"),     # the text never decides
])
def test_error_kind_maps_types(failure, kind):
    assert error_kind(failure) == kind


def test_error_kind_of_every_responder_failing(fake):
    """The most telling failure among the responders names the whole: connect, timeout, http."""
    refused = f"http://127.0.0.1:{pkimod.free_port()}/"
    fake.set(status=500, body=b"oops")
    with pytest.raises(FetchError) as info:
        ask_first([fake.url, refused], b"\x30\x00", FAST)
    assert [type(c) for c in info.value.causes] == [HttpStatusError, ConnectFailed]
    assert error_kind(info.value) == "connect" and " | " in str(info.value)
    with pytest.raises(FetchError) as info:
        ask_first([fake.url], b"\x30\x00", FAST)
    assert error_kind(info.value) == "http"
    with pytest.raises(FetchError) as info:
        ask_first([], b"\x30\x00", FAST)
    assert error_kind(info.value) == "other" and str(info.value) == "no responder to ask"
