"""ocsp-proxy's allow-list: no spelling of a path leaves an allowed prefix (RFC 3986 normalisation);
certificates without an OCSP URL under --allow-from are not applicable, quietly.

Against a running proxy, a fake upstream records every request that reaches it; the prefix is
``/ocsp/`` on it, given with ``--allow`` or learned from a certificate's AIA under ``--allow-from``.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import urllib.parse

import pytest
from hypothesis import given, settings, strategies as st

from fake_responder import FakeResponder, status_only
from ocsptools.openssl import OpenSSL
from ocsptools.proxy import issuers, paths
from ocsptools.staple import Certificate
from test_proxy_support import ProxyProc, check_response, request_der, wait_for


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


@pytest.mark.parametrize("path, reached", SEGMENTS, ids=[s[0] for s in SEGMENTS])
def test_a_prefix_without_a_trailing_slash_covers_whole_segments(upstream, pki, tmp_path, path, reached):
    der = request_der(pki, pki.leaves["good1"], tmp=tmp_path)
    with ProxyProc("--allow", upstream.url + "ocsp", cache=f"sqlite:///{tmp_path}/c.sqlite") as proxy:
        before = len(upstream.requests)
        status, _, _ = send(proxy, "absolute POST", upstream.port, path, der)
        got = [r.path for r in upstream.requests[before:]]
    if reached is None:
        assert status == 403 and got == []
    else:
        assert status == 200 and len(got) == 1 and got[0].startswith(reached)
        assert got[0][len(reached):].count("/") <= 1          # the GET's base64, nothing else


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


def certbot_tree(root, leaves):
    """A certbot config directory: live/NAME/* symlinks into archive/NAME/*1.pem, README, renewal/."""
    for name, leaf, with_chain in leaves:
        live, archive = root / "live" / name, root / "archive" / name
        live.mkdir(parents=True)
        archive.mkdir(parents=True)
        files = {"cert": leaf.cert, "privkey": leaf.key, "fullchain": leaf.fullchain, "chain": leaf.chain}
        for kind, src in files.items():
            if kind in ("fullchain", "chain") and not with_chain:
                continue
            shutil.copy(src, archive / f"{kind}1.pem")
            os.symlink(f"../../archive/{name}/{kind}1.pem", live / f"{kind}.pem")
        (live / "README").write_text("This directory contains your keys and certificates.\n")
    (root / "renewal").mkdir()
    (root / "renewal" / "x.conf").write_text("version = 2.11.0\n")
    return root


#: (tree, its certificates: (OCSP URL?, issuer in the tree?), what the proxy says at start besides
#: "listening", at the default level)
TREES = [
    ("some without an OCSP URL", [(True, True), (False, True), (False, False)], []),
    ("none with an OCSP URL", [(False, True), (False, False)],
     ["ocsp-proxy: no certificate under --allow-from has an OCSP URL (not applicable): only cached "
      "answers can be served, every other request gets 403"]),
]


@pytest.mark.parametrize("name, certs, said", TREES, ids=[t[0] for t in TREES])
def test_certificates_without_an_ocsp_url_load_quietly(pki, responder, tmp_path, name, certs, said):
    leaves = []
    for n, (ocsp, issuer_here) in enumerate(certs):
        leaf = pki.make_leaf(f"tree{n}{'o' if ocsp else 'n'}{'i' if issuer_here else 'x'}{os.getpid()}",
                             ocsp_urls=None if ocsp else [], issuer="inter" if issuer_here else "other")
        leaves.append((f"site{n}", leaf, issuer_here))
    responder.resync()                                 # the next answer knows the new serials
    tree = certbot_tree(tmp_path / "letsencrypt", leaves)
    with ProxyProc("--allow-from", str(tree), cache=f"sqlite:///{tmp_path}/c.sqlite") as proxy:
        for (_, leaf, _), (ocsp, _) in zip(leaves, certs):
            if ocsp:                                   # the applicable ones work
                status, _, body = proxy.post(request_der(pki, leaf, tmp=tmp_path))
                assert status == 200 and "Response verify OK" in check_response(pki, leaf, body, tmp_path)
        assert proxy.metrics()["ocsp_proxy_forbidden_total"] == 0
    lines = proxy.log.splitlines()
    assert sum(line.startswith("ocsp-proxy: listening on ") for line in lines) == 1, proxy.log
    assert [line for line in lines if not line.startswith("ocsp-proxy: listening on ")] \
        == said + ["ocsp-proxy: stopping"], proxy.log


def test_no_issuer_search_for_a_certificate_without_an_ocsp_url(pki, tmp_path, monkeypatch):
    """issuers.load skips it before anything else: no issuer looked for, no route, no leaf entry."""
    without = pki.make_leaf(f"noocspsearch{os.getpid()}", ocsp_urls=[])
    lost = pki.make_leaf(f"noocsplost{os.getpid()}", ocsp_urls=[], issuer="other")
    applicable = pki.leaves["good1"]
    tree = certbot_tree(tmp_path / "tree",
                        [("a", without, True), ("b", lost, False), ("c", applicable, True)])
    searched = []
    real = Certificate.may_have_issued

    def spy(self, leaf):
        searched.append(leaf.der)
        return real(self, leaf)
    monkeypatch.setattr(Certificate, "may_have_issued", spy)
    known = issuers.load([], [str(tree)], OpenSSL("openssl"))
    ders = {leaf.der for leaf in known.leaves.values()}
    assert len(ders) == 1 and set(searched) == ders          # only the applicable leaf
    assert known.not_applicable == 2 and known.warnings == []
    assert [p.url for p in known.prefixes] == [pki.ocsp_url]
