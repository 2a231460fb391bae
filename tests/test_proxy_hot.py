"""proxy/hot.py: a cached answer ready to be written; its headers follow the clock it is given and
are rebuilt at most once per second."""

from __future__ import annotations

import pytest

from ocsptools.proxy import rules
from ocsptools.proxy.hot import Hot
from test_proxy_support import make_entry, parse_http

NOW = 1_800_000_000.0
ENTRY = make_entry(now=NOW)                       # valid for an hour, thisUpdate a minute ago


@pytest.fixture
def hot():
    return Hot(ENTRY, recheck=100.0)


def test_a_cached_answer_and_its_headers(hot):
    status, headers, body = parse_http(hot.render(NOW + 0.25, keep_alive=True, head=False))
    assert (status, body) == (200, ENTRY.response)
    assert headers == {
        "server": "ocsp-proxy", "date": rules.http_date(NOW), "content-type": "application/ocsp-response",
        "content-length": str(len(ENTRY.response)),
        "cache-control": "max-age=3599, public, no-transform, must-revalidate",
        "expires": rules.http_date(ENTRY.valid_until), "last-modified": rules.http_date(NOW - 60),
        "etag": hot.etag, "connection": "keep-alive"}
    assert hot.etag.startswith('"') and len(hot.etag) == 34


@pytest.mark.parametrize("keep_alive, head", [(True, False), (False, False), (True, True), (False, True)])
def test_connection_and_head(hot, keep_alive, head):
    status, headers, body = parse_http(hot.render(NOW, keep_alive, head))
    assert headers["connection"] == ("keep-alive" if keep_alive else "close")
    assert headers["content-length"] == str(len(ENTRY.response))
    assert body == (b"" if head else ENTRY.response)


def test_headers_are_rebuilt_once_per_second(hot):
    first = hot.render(NOW, True, True)
    assert hot.render(NOW + 0.99, True, True) is first
    later = hot.render(NOW + 1, True, True)
    assert later is not first and parse_http(later)[1]["date"] == rules.http_date(NOW + 1)
    assert parse_http(later)[1]["cache-control"].startswith("max-age=3599,")


@pytest.mark.parametrize("if_none_match, status", [
    (None, 200), ('"other"', 200), ("{etag}", 304), ('"other", {etag}', 304)])
def test_if_none_match(hot, if_none_match, status):
    inm = None if if_none_match is None else if_none_match.format(etag=hot.etag)
    got, headers, body = parse_http(hot.answer(NOW, True, False, inm))
    assert got == status
    if status == 304:
        assert body == b"" and "content-type" not in headers and headers["etag"] == hot.etag


#: (wall clock, monotonic clock, servable from memory)
FRESH = [
    (NOW, 99.9, True),
    (NOW, 100.0, False),                          # checked too long ago
    (ENTRY.valid_until - 0.001, 0.0, True),
    (ENTRY.valid_until, 0.0, False),              # never at or past the end
]


@pytest.mark.parametrize("now, mono, fresh", FRESH)
def test_fresh(hot, now, mono, fresh):
    assert hot.fresh(now, mono) is fresh
