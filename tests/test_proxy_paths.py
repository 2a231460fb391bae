"""proxy/paths.py (pure): the GET form's base64 split off in linear time (against the naive
splitter), RFC 3986 dot-segment removal (against the RFC's own algorithm) and normal form."""

from __future__ import annotations

import base64
import urllib.parse

import pytest
from hypothesis import given, settings, strategies as st

from ocsptools.codec import der
from ocsptools.proxy import paths
from ocsptools.proxy.paths import split_get_path
from test_proxy_support import request_der


def test_split_get_path(pki, tmp_path):
    data = request_der(pki, pki.leaves["good1"], tmp=tmp_path)
    b64 = base64.b64encode(data).decode()
    assert split_get_path("/" + urllib.parse.quote(b64, safe=""))[:2] == ("/", data)
    assert split_get_path("/ocsp/sub/" + urllib.parse.quote(b64, safe=""))[:2] == ("/ocsp/sub/", data)
    assert split_get_path("/ocsp/" + b64)[:2] == ("/ocsp/", data)           # '/' and '+' unencoded
    assert split_get_path("/ocsp/" + b64[:-4]) is None
    assert split_get_path("/metrics") is None


def naive_split(path):
    """The splitter before issue 15: every '/' from the left, its whole suffix decoded (quadratic);
    now also refusing more than two '=' (b64decode took ``AAAA=====``)."""
    for i, ch in enumerate(path):
        if ch != "/":
            continue
        candidate = urllib.parse.unquote(path[i + 1:])
        if len(candidate) < 8 or candidate.endswith("==="):
            continue
        try:
            data = base64.b64decode(candidate, validate=True)
            parsed = der.parse_request(data)
        except ValueError:
            continue
        return path[:i + 1], data, parsed
    return None


_PIECES = st.sampled_from(["/", "/", "%2F", "%2f", "%3D", "=", "==", "+", "%2B", "A", "M", "MEIw", "ocsp",
                           "AAA/", "%", "%4", "%zz", "-", ".", "%C3%A9", "%41", "\u00e9", "?"])


@st.composite
def get_paths(draw):
    prefix = "".join(draw(st.lists(_PIECES, max_size=12)))
    cid = der.CertID(draw(st.sampled_from(["sha1", "sha256"])), draw(st.binary(min_size=20, max_size=32)),
                     draw(st.binary(min_size=20, max_size=32)), draw(st.integers(1, 2 ** 128)))
    b64 = base64.b64encode(der.encode_request(cid)).decode()
    suffix = draw(st.sampled_from([b64, urllib.parse.quote(b64, safe=""), urllib.parse.quote(b64, safe="/"),
                                   b64[:-4], b64 + "/", ""]))
    tail = "".join(draw(st.lists(_PIECES, max_size=3))) if draw(st.booleans()) else ""
    return "/" + prefix + ("/" if draw(st.booleans()) else "") + suffix + tail


@settings(max_examples=600, deadline=None)
@given(get_paths())
def test_split_get_path_agrees_with_the_naive_splitter(path):
    assert split_get_path(path) == naive_split(path)


#: (pathological GET path of about N characters): the old splitter decoded every suffix.
PATHOLOGICAL = [
    ("slashes", lambda n: "/" * n),
    ("base64 groups between slashes", lambda n: "/" + "AAA/" * (n // 4)),
    ("SEQUENCE headers between slashes", lambda n: "/" + "MAAA/" * (n // 5)),
    ("encoded slashes", lambda n: "/" + "%2F/" * (n // 4)),
    ("slashes, then a real request", lambda n: "/" * n + "MAMwATA="),
]


@pytest.mark.parametrize("name, make", PATHOLOGICAL, ids=[p[0] for p in PATHOLOGICAL])
def test_split_get_path_work_is_bounded(name, make, monkeypatch):
    """At most three base64 decodes (one per padding class) of at most MAX_GET_TAIL characters and
    MAX_SPLIT_PARSES DER parses, whatever the path's length (the old splitter: one of each per '/')."""
    decoded, parses = [], []
    real_decode, real_parse = base64.b64decode, der.parse_request

    def decode(text, *args, **kw):
        decoded.append(len(text))
        return real_decode(text, *args, **kw)

    def parse(data):
        parses.append(len(data))
        return real_parse(data)
    monkeypatch.setattr(paths.base64, "b64decode", decode)
    monkeypatch.setattr(paths.der, "parse_request", parse)
    for n in (1600, 16000):
        path = make(n)
        assert split_get_path(path) is None
        assert len(decoded) <= 3 and max(decoded, default=0) <= paths.MAX_GET_TAIL, (n, decoded)
        assert len(parses) <= paths.MAX_SPLIT_PARSES, (n, parses)
        del decoded[:], parses[:]


def rfc_remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 as written (string buffers, quadratic): the oracle."""
    inp, out = path, ""
    while inp:
        if inp.startswith("../"):
            inp = inp[3:]
        elif inp.startswith("./"):
            inp = inp[2:]
        elif inp.startswith("/./"):
            inp = inp[2:]
        elif inp == "/.":
            inp = "/"
        elif inp.startswith("/../"):
            inp, out = inp[3:], out[:max(out.rfind("/"), 0)]
        elif inp == "/..":
            inp, out = "/", out[:max(out.rfind("/"), 0)]
        elif inp in (".", ".."):
            inp = ""
        else:
            end = inp.find("/", 1 if inp.startswith("/") else 0)
            end = len(inp) if end < 0 else end
            inp, out = inp[end:], out + inp[:end]
    return out


#: RFC 3986 5.2.4's and 5.4's examples, and the shapes of the escapes above.
DOT_SEGMENTS = [
    ("/a/b/c/./../../g", "/a/g"), ("mid/content=5/../6", "mid/6"), ("/a/b/c/../../../../", "/"),
    ("/..", "/"), ("/.", "/"), (".", ""), ("..", ""), ("../a", "a"), ("/ocsp/../admin/", "/admin/"),
    ("/ocsp/./../admin/", "/admin/"), ("/ocsp/./", "/ocsp/"), ("/a/...", "/a/..."), ("/a/..b/", "/a/..b/"),
]


@pytest.mark.parametrize("path, expected", DOT_SEGMENTS)
def test_remove_dot_segments(path, expected):
    assert paths.remove_dot_segments(path) == expected == rfc_remove_dot_segments(path)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["/", ".", "..", "a", "b/", "./", "../", "/."]), max_size=16).map("".join))
def test_remove_dot_segments_is_the_rfc_algorithm(path):
    assert paths.remove_dot_segments(path) == rfc_remove_dot_segments(path)


#: (request path, its normal form, why it is refused or None)
NORMAL = [
    ("/ocsp/", "/ocsp/", None),
    ("/%6Fcsp/%7e%41", "/ocsp/~A", None),
    ("/ocsp/a%3ab", "/ocsp/a%3Ab", None),
    ("/ocsp/..%2e/", "/ocsp/.../", None),
    ("/ocsp/%2e%2E/admin/", "/admin/", "a dot segment"),
    ("/ocsp/./", "/ocsp/", "a dot segment"),
    ("/ocsp/..;jsessionid=1/admin/", "/ocsp/..;jsessionid=1/admin/", "a dot segment"),
    ("/ocsp/..%2Fadmin/", "/ocsp/..%2Fadmin/", "an encoded slash or a backslash"),
    ("/ocsp/a%5cb", "/ocsp/a%5Cb", "an encoded slash or a backslash"),
    ("/ocsp/a\\b", "/ocsp/a\\b", "an encoded slash or a backslash"),
]


@pytest.mark.parametrize("path, normal, why", NORMAL)
def test_normal_form_and_refusal(path, normal, why):
    assert paths.normalise(path) == normal
    assert paths.unsafe(path) == why
