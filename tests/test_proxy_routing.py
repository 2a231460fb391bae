"""proxy/routing.py: where a request may go and what it asks.

``route`` and its parts are pure and tested directly on tables; then, against a running proxy, a
fake upstream records every request that reaches it: no spelling of a path leaves an allowed
prefix (RFC 3986 normalisation).  The prefix is ``/ocsp/`` on it, given with ``--allow`` or
learned from a certificate's AIA under ``--allow-from``.
"""

from __future__ import annotations

import base64
import shutil
import socket
import urllib.parse
from datetime import datetime, timezone

import pytest

import pki as pkimod
from fake_responder import FakeResponder, status_only
from ocsptools.codec import der as dercodec
from ocsptools.proxy import routing
from ocsptools.proxy.answers import Refusal
from ocsptools.proxy.issuers import Known, split_url
from ocsptools.staple import Certificate
from test_proxy_support import (ProxyProc, allow_dir, http_request, request_der, start_proxy,  # noqa: F401
                                wait_for)

# -- route(), pure ------------------------------------------------------------------------------

ORIGIN = "http://127.0.0.1:9"
ALLOWED = ORIGIN + "/ocsp/"
ROUTED = ALLOWED + "routed/"
OWN = (("127.0.0.1", 8008),)
CID = dercodec.CertID("sha1", b"\x01" * 20, b"\x02" * 20, 5)
STRANGER = dercodec.CertID("sha1", b"\x03" * 20, b"\x04" * 20, 6)        # its issuer is not known
DER = dercodec.encode_request(CID)
B64 = urllib.parse.quote(base64.b64encode(DER).decode(), safe="")
ISSUER = Certificate(der=b"issuer", subject="CN=I", issuer="CN=R", serial=1,
                     not_before=datetime(2026, 1, 1, tzinfo=timezone.utc),
                     not_after=datetime(2036, 1, 1, tzinfo=timezone.utc), is_ca=True)
KNOWN = Known(prefixes=[split_url(ALLOWED)], issuers={CID.issuer_ref: ISSUER}, routes={ISSUER.der: [ROUTED]})

#: (case, method, target, Host, body, headers, the responders the route names or the refusal's
#: (status, start of its body, keep-alive))
ROUTES = [
    ("POST /, no Host: the issuer routes it", "POST", "/", "", DER, {}, [ROUTED]),
    ("POST absolute URI", "POST", ALLOWED, "", DER, {}, [ALLOWED]),
    ("GET absolute URI", "GET", ALLOWED + B64, "", b"", {}, [ALLOWED]),
    ("POST Host + path", "POST", "/ocsp/", "127.0.0.1:9", DER, {}, [ALLOWED]),
    ("GET Host + path", "GET", "/ocsp/" + B64, "127.0.0.1:9", b"", {}, [ALLOWED]),
    ("HEAD Host + path", "HEAD", "/ocsp/" + B64, "127.0.0.1:9", b"", {}, [ALLOWED]),
    ("a Host not allowed: the issuer routes it", "POST", "/", "evil.example", DER, {}, [ROUTED]),
    ("the proxy's own Host: the issuer routes it", "POST", "/", "127.0.0.1:8008", DER, {}, [ROUTED]),
    ("the proxy's own absolute URI", "POST", "http://localhost:8008/", "", DER, {}, [ROUTED]),
    ("an unknown issuer and no destination", "POST", "/", "", dercodec.encode_request(STRANGER), {}, []),
    ("absolute URI not allowed", "POST", "http://127.0.0.2:9/ocsp/", "", DER, {},
     (403, b"http://127.0.0.2:9/ocsp/: responder not allowed", True)),
    ("a dot segment", "POST", "/ocsp/../admin/", "127.0.0.1:9", DER, {},
     (403, b"/ocsp/../admin/: a dot segment in the path", True)),
    ("a Host with a path", "POST", "/", "127.0.0.1:9/ocsp", DER, {}, (400, b"malformed Host header", False)),
    ("neither a path nor a URI", "POST", "*", "", DER, {}, (400, b"request target must be", False)),
    ("POST of another type", "POST", "/", "", DER, {"Content-Type": "text/plain"},
     (400, b"POST needs Content-Type: application/ocsp-request", True)),
    ("POST of garbage", "POST", "/", "", b"not DER at all", {}, (400, b"malformed OCSP request: ", True)),
    ("GET without a request", "GET", "/not-base64!", "", b"", {}, (400, b"malformed request: expected GET", True)),
]


@pytest.mark.parametrize("case, method, target, host, body, headers, expected", ROUTES,
                         ids=[r[0] for r in ROUTES])
def test_route(case, method, target, host, body, headers, expected):
    req = http_request(method, target, body, dict(headers, **({"Host": host} if host else {})))
    got = routing.route(req, KNOWN, OWN)
    if isinstance(expected, list):
        assert isinstance(got, routing.Route), got
        assert got.urls == expected and got.parsed.cert_ids[0] == got.cid
        assert got.data == dercodec.encode_request(got.cid) and got.parsed.cacheable
        assert got.issuer is (ISSUER if got.cid == CID else None)
    else:
        status, body_start, keep_alive = expected
        assert isinstance(got, Refusal), got
        assert (got.status, got.keep_alive) == (status, keep_alive)
        assert got.body.startswith(body_start), got.body
        assert bool(got.warning) == (status == 403)


#: (the proxy's listening address, URL, is it the proxy's own)
OWN_URLS = [
    (("0.0.0.0", 8008), "http://example.test:8008/", True),       # a wildcard: any name on its port
    (("::", 8008), "http://example.test:8008/", True),
    (("127.0.0.1", 8008), "http://localhost:8008/ocsp", True),
    (("10.0.0.1", 8008), "http://10.0.0.1:8008/", True),
    (("10.0.0.1", 8008), "http://10.0.0.2:8008/", False),
    (("10.0.0.1", 8008), "http://10.0.0.1:8009/", False),
    (("127.0.0.1", 80), "http://127.0.0.1/", True),                # the default port
    (("127.0.0.1", 8008), "ftp://127.0.0.1:8008/", False),
]


@pytest.mark.parametrize("own, url, expected", OWN_URLS)
def test_is_own(own, url, expected):
    assert routing.is_own(url, [own]) is expected


#: (the route's responders, the URL the expired entry came from, where the miss goes)
FALLBACKS = [
    ([ROUTED], ALLOWED, [ROUTED]),
    ([], ALLOWED, [ALLOWED]),
    ([], "http://127.0.0.2:9/", []),              # no longer allowed
    ([], None, []),                               # nothing cached
]


@pytest.mark.parametrize("urls, stored, expected", FALLBACKS)
def test_fallback(urls, stored, expected):
    where = routing.Route(DER, dercodec.parse_request(DER), urls, ISSUER)
    assert routing.fallback(where, stored, KNOWN) == expected


def test_no_responder_names_the_serial_and_the_peer():
    refusal = routing.no_responder(http_request(peer="127.0.0.1:5"), STRANGER)
    assert (refusal.status, refusal.body) == (403, b"no allowed responder for this certificate\n")
    assert refusal.warning.startswith("refused 127.0.0.1:5: no allowed responder for serial 6 ")


# -- against a running proxy -------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream():
    with FakeResponder() as fake:
        fake.set(body=status_only("tryLater"))
        yield fake


@pytest.fixture(scope="module")
def setup(pki, upstream, tmp_path_factory):
    """(proxies by where the prefix comes from, request DER)."""
    tmp = tmp_path_factory.mktemp("allow")
    leaf = pki.make_leaf(f"allowpath{upstream.port}", ocsp_urls=[upstream.url + "ocsp/"])
    tree = tmp / "tree"
    tree.mkdir()
    shutil.copy(leaf.fullchain, tree / "leaf.pem")
    proxies = {"--allow": ProxyProc("--allow", upstream.url + "ocsp/", cache=f"sqlite:///{tmp}/a.sqlite"),
               "--allow-from": ProxyProc("--allow-from", str(tree), cache=f"sqlite:///{tmp}/b.sqlite")}
    yield proxies, request_der(pki, leaf, tmp=tmp)
    for p in proxies.values():
        p.stop()


def send(proxy, form: str, port: int, path: str, der: bytes, host: str = ""):
    """One request for PATH on the upstream, in one of the forms Apache and nginx use."""
    b64 = urllib.parse.quote(base64.b64encode(der).decode(), safe="")
    origin = f"http://127.0.0.1:{port}"
    headers = {"Host": host or f"127.0.0.1:{port}"}
    if form == "absolute POST":
        return proxy.post(der, target=origin + path)
    if form == "absolute GET":
        return proxy.request("GET", origin + path + b64)
    if form == "Host + path POST":
        return proxy.post(der, target=path, headers=headers)
    return proxy.request("GET", path + b64, headers=headers)


FORMS = ["absolute POST", "absolute GET", "Host + path POST", "Host + path GET"]

#: (spelling, responder path on the upstream): each escapes /ocsp/ or hides a dot segment.
ESCAPES = [
    ("..", "/ocsp/../admin/"),
    ("%2e%2e", "/ocsp/%2e%2e/admin/"),
    ("%2E%2E", "/ocsp/%2E%2E/admin/"),
    ("./..", "/ocsp/./../admin/"),
    (".%2e", "/ocsp/.%2e/admin/"),
    ("..;", "/ocsp/..;/admin/"),
    ("../ back inside", "/ocsp/../ocsp/"),
    (".", "/ocsp/./"),
    ("%2f", "/ocsp/..%2fadmin/"),
    ("%2F", "/ocsp%2F..%2Fadmin/"),
    ("%5c", "/ocsp/..%5cadmin/"),
    ("%5C", "/ocsp/..%5Cadmin/"),
    ("backslash", "/ocsp/..\\admin/"),
]


@pytest.mark.parametrize("source", ["--allow", "--allow-from"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("spelling, path", ESCAPES, ids=[e[0] for e in ESCAPES])
def test_escaping_paths_are_refused_and_never_forwarded(setup, upstream, source, form, spelling, path):
    proxies, der = setup
    proxy = proxies[source]
    before, forbidden = len(upstream.requests), proxy.metrics()["ocsp_proxy_forbidden_total"]
    status, _, body = send(proxy, form, upstream.port, path, der)
    assert status == 403, body
    assert len(upstream.requests) == before, [r.path for r in upstream.requests[before:]]
    assert proxy.metrics()["ocsp_proxy_forbidden_total"] == forbidden + 1
    assert wait_for(lambda: f"in the responder path {path}" in proxy.log)


@pytest.mark.parametrize("source", ["--allow", "--allow-from"])
@pytest.mark.parametrize("form", FORMS)
def test_paths_under_the_prefix_reach_it_in_normal_form(setup, upstream, source, form):
    """The control: allowed paths are forwarded, as RFC 3986 normalises them (%6F is 'o')."""
    proxies, der = setup
    for path in ("/ocsp/", "/%6Fcsp/"):
        before = len(upstream.requests)
        status, _, body = send(proxies[source], form, upstream.port, path, der)
        assert status == 200 and body == status_only("tryLater")
        assert [r.path[:6] for r in upstream.requests[before:]] == ["/ocsp/"]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}/ocsp/..", "127.0.0.1:{port}/ocsp/%2e%2e",
                                  "127.0.0.1:{port}?", "127.0.0.1:{port}#", "x@127.0.0.1:{port}",
                                  "127.0.0.1:{port}\\ocsp\\.."])
@pytest.mark.parametrize("form", ["Host + path POST", "Host + path GET"])
def test_a_host_header_cannot_carry_a_path(setup, upstream, host, form):
    proxies, der = setup
    proxy = proxies["--allow"]
    before = len(upstream.requests)
    status, _, _ = send(proxy, form, upstream.port, "/admin/", der, host=host.format(port=upstream.port))
    assert status == 400
    assert len(upstream.requests) == before


@pytest.mark.parametrize("target", ["/ocsp/.\t./admin/", "http://127.0.0.1:{port}/ocsp/.\t./admin/",
                                    "/ocsp/\x00/", "/ocsp/\x7f/"])
def test_control_characters_in_the_target_are_refused(setup, upstream, target):
    """urlsplit() drops tabs: '.\t.' would become '..' on the way upstream."""
    proxies, der = setup
    before = len(upstream.requests)
    with socket.create_connection(("127.0.0.1", proxies["--allow"].port), timeout=10) as s:
        s.sendall(f"POST {target.format(port=upstream.port)} HTTP/1.1\r\nHost: 127.0.0.1:{upstream.port}\r\n"
                  f"Content-Type: application/ocsp-request\r\nContent-Length: {len(der)}\r\n\r\n"
                  .encode() + der)
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    assert len(upstream.requests) == before


#: (responder path, what reaches the upstream, or None: refused) with --allow http://H:P/ocsp
SEGMENTS = [
    ("/ocsp", "/ocsp"),
    ("/ocsp/", "/ocsp/"),
    ("/ocsp/sub/", "/ocsp/sub/"),
    ("/ocsp-admin/", None),
    ("/ocspx", None),
    ("/OCSP/", None),
]


@pytest.fixture(scope="module")
def no_slash_proxy(upstream, tmp_path_factory):
    """A proxy allowed ``http://H:P/ocsp``: a prefix without a trailing slash."""
    tmp = tmp_path_factory.mktemp("segments")
    with ProxyProc("--allow", upstream.url + "ocsp", cache=f"sqlite:///{tmp}/c.sqlite") as proxy:
        yield proxy


@pytest.mark.parametrize("path, reached", SEGMENTS, ids=[s[0] for s in SEGMENTS])
def test_a_prefix_without_a_trailing_slash_covers_whole_segments(upstream, setup, no_slash_proxy, path,
                                                                 reached):
    _, der = setup
    before = len(upstream.requests)
    status, _, _ = send(no_slash_proxy, "absolute POST", upstream.port, path, der)
    got = [r.path for r in upstream.requests[before:]]
    if reached is None:
        assert status == 403 and got == []
    else:
        assert status == 200 and len(got) == 1 and got[0].startswith(reached)
        assert got[0][len(reached):].count("/") <= 1          # the GET's base64, nothing else


def test_disallowed_upstream_is_403(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir))
    req = request_der(pki, pki.leaves["good1"], tmp=tmp_path)
    status, _, body = proxy.post(req, target="http://127.0.0.2:9/ocsp")
    assert status == 403 and b"not allowed" in body
    status, _, _ = proxy.request("GET", "http://127.0.0.2:9/" + urllib.parse.quote(
        base64.b64encode(req).decode(), safe=""))
    assert status == 403
    # a certificate whose issuer the proxy does not know, with a Host it does not allow
    stranger = pki.make_leaf("stranger", issuer="other", ocsp_urls=["http://127.0.0.2:9/"])
    out = tmp_path / "stranger.der"
    pkimod.openssl("ocsp", "-issuer", pki.other_inter_cert, "-cert", stranger.cert, "-no_nonce", "-reqout", out)
    status, _, _ = proxy.post(out.read_bytes(), headers={"Host": "evil.example"})
    assert status == 403
    assert proxy.metrics()["ocsp_proxy_forbidden_total"] == 3
