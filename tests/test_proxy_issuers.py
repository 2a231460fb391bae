"""proxy/issuers.py: what --allow and --allow-from permit.  Prefixes cover whole path segments in
RFC 3986 normal form (pure); certificates without an OCSP URL under --allow-from are not
applicable: loaded quietly, with no issuer search."""

from __future__ import annotations

import os
import shutil

import pytest

from ocsptools.errors import UsageError
from ocsptools.openssl import OpenSSL
from ocsptools.proxy import issuers
from ocsptools.proxy.issuers import split_url
from ocsptools.staple import Certificate
from test_proxy_support import ProxyProc, check_response, request_der

#: (URL, its normal form, why it may not be contacted or "")
URLS = [
    ("http://Example.TEST./ocsp", "http://example.test/ocsp", ""),
    ("http://example.test:80/%6Fcsp/", "http://example.test/ocsp/", ""),
    ("https://example.test:443", "https://example.test/", ""),
    ("https://example.test:8443/a?q=1", "https://example.test:8443/a", ""),
    ("http://[::1]:8080/", "http://[::1]:8080/", ""),
    ("http://example.test/ocsp/../admin/", "http://example.test/admin/", "a dot segment"),
    ("http://example.test/ocsp%2fadmin", "http://example.test/ocsp%2Fadmin", "an encoded slash or a backslash"),
]


@pytest.mark.parametrize("url, normal, unsafe", URLS)
def test_split_url(url, normal, unsafe):
    prefix = split_url(url)
    assert prefix is not None and prefix.url == normal and prefix.unsafe == unsafe


@pytest.mark.parametrize("url", ["ftp://example.test/", "http://user:pw@example.test/", "http:///x",
                                 "http://example.test:99999/", "/ocsp/"])
def test_split_url_refuses(url):
    assert split_url(url) is None


#: (URL asked for, allowed under --allow http://127.0.0.1:9/ocsp)
SEGMENTS = [
    ("http://127.0.0.1:9/ocsp", True),
    ("http://127.0.0.1:9/ocsp/", True),
    ("http://127.0.0.1:9/ocsp/sub/", True),
    ("http://127.0.0.1:9/%6Fcsp/sub/", True),
    ("http://127.0.0.1:9/ocsp-admin/", False),
    ("http://127.0.0.1:9/ocspx", False),
    ("http://127.0.0.1:9/OCSP/", False),
    ("http://127.0.0.1:9/ocsp/../admin/", False),
    ("https://127.0.0.1:9/ocsp/", False),
    ("http://127.0.0.1:10/ocsp/", False),
    ("http://127.0.0.2:9/ocsp/", False),
]


@pytest.mark.parametrize("url, allowed", SEGMENTS)
def test_a_prefix_covers_whole_segments(url, allowed):
    known = issuers.load(["http://127.0.0.1:9/ocsp"], [], OpenSSL("openssl"))    # no openssl run
    assert known.allowed(url) is allowed


@pytest.mark.parametrize("allow, why", [("ftp://x/", "not an http:// or https:// URL prefix"),
                                        ("http://x/ocsp/../admin/", "a dot segment in the path")])
def test_unusable_allow_prefixes(allow, why):
    with pytest.raises(UsageError, match=why):
        issuers.load([allow], [], OpenSSL("openssl"))


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
