"""Apache httpd (mod_ssl): no staple file exists, so Apache fetches through ocsp-proxy.

``SSLUseStapling on`` + ``SSLStaplingForceURL http://127.0.0.1:PORT/`` (the
proxy) instead of the CA's responder: Apache asks the proxy, which answers
from its verified cache.  Observed on Apache 2.4 (kept checked here): the
first handshake after a start waits for the fetch and carries the staple;
Apache keeps a staple in its own cache (``SSLStaplingCache``) for
``SSLStaplingStandardCacheTimeout`` seconds (default 3600), then asks
again; that cache is lost on restart, when the proxy's cache is what keeps
it stapling through a responder outage.
"""

from __future__ import annotations

import time

import pytest

import pki as pkimod

from .conftest import next_second
from .harness import (binary, Apache, assert_check_ok, probe, proxy_answer,
                      response_time, run_tool, verify_staple, wait_until)

pytestmark = pytest.mark.servers


@pytest.fixture(autouse=True)
def _installed():
    """Skip before any work when apache2 is not installed."""
    binary("apache2", "apache2")


@pytest.fixture
def stack(tmp_path, servers, make_site, responder, ocsp_proxy):
    """Start ocsp-proxy (allowed: the site's certificate) and then Apache pointing at it
    (SSLStaplingForceURL; with PROXY=True, SSLOCSPProxyURL)."""
    def start(site_names=("srv-a",), *, cache_timeout: int = 3600, proxy: bool = False):
        sites = [make_site(n) for n in site_names]
        ocsp = ocsp_proxy(sites)
        apache = servers.add(Apache(tmp_path / f"apache-{time.monotonic_ns()}", pkimod.free_port(), sites,
                                    responder_url=ocsp.url, cache_timeout=cache_timeout, proxy=proxy))
        apache.start()
        return sites, ocsp, apache
    yield start
    responder.ensure_running()          # a test stops it; the next one must find it up


def test_staples_through_ocsp_proxy(pki, stack, scratch, srv_leaves, responder):
    (a, b), proxy, apache = stack(("srv-a", "srv-b"))
    for site in (a, b):
        leaf = srv_leaves[site.name]
        served = probe(apache.port, site.name)
        assert served.ok and served.staple is not None, served.describe() + apache.log()
        verify_staple(pki, leaf.cert, served.staple, scratch)
        assert served.staple == proxy_answer(pki, proxy, leaf, scratch)      # the proxy's cached answer
        assert probe(apache.port, site.name, tls="tls1_2").staple == served.staple
    assert_check_ok(apache.port, "srv-a", pki.inter_cert)


def test_staples_through_ocsp_proxy_as_its_http_proxy(pki, stack, scratch, srv_leaves):
    """``SSLOCSPProxyURL``: mod_ssl sends the proxy an absolute-URI request for the certificate's
    own responder URL (the README's first Apache variant); the staple is the proxy's answer."""
    (site,), proxy, apache = stack(proxy=True)
    leaf = srv_leaves[site.name]
    assert proxy.asked() == 0
    served = probe(apache.port, site.name)
    assert served.ok and served.staple is not None, served.describe() + apache.log() + proxy.log()
    assert proxy.asked() == 1, "Apache did not ask through the proxy"
    verify_staple(pki, leaf.cert, served.staple, scratch)
    assert served.staple == proxy_answer(pki, proxy, leaf, scratch)
    assert_check_ok(apache.port, site.name, pki.inter_cert)


def test_still_staples_after_restart_while_the_responder_is_down(pki, stack, scratch, srv_leaves, responder):
    """ocsp-proxy warm fills the cache; the CA's responder goes away; Apache is restarted (its
    own stapling cache is gone) and still staples, from the proxy's cache."""
    leaf = srv_leaves["srv-a"]
    (site,), proxy, apache = stack()
    cp = run_tool("ocsp-proxy", "warm", "--cache", proxy.cache, site.fullchain)
    assert cp.returncode == 0, cp.stderr
    first = probe(apache.port, site.name)
    assert first.ok and first.staple is not None, first.describe() + apache.log()
    verify_staple(pki, leaf.cert, first.staple, scratch)

    responder.stop()
    try:
        hits = proxy.metric("ocsp_proxy_cache_hits_total")
        apache.restart()
        served = probe(apache.port, site.name)
        assert served.ok and served.staple == first.staple, served.describe() + apache.log()
        verify_staple(pki, leaf.cert, served.staple, scratch)
        assert proxy.metric("ocsp_proxy_cache_hits_total") == hits + 1            # the restarted Apache asked the proxy
    finally:
        responder.ensure_running()


def test_renewed_response_is_served_after_apache_cache_timeout(pki, stack, scratch, srv_leaves, responder):
    """The proxy's cache gets a newer response (here: purge, then the next request fetches one);
    Apache asks again when its own cache entry times out and sends the newer staple, without a
    restart or reload."""
    leaf = srv_leaves["srv-a"]
    (site,), proxy, apache = stack(cache_timeout=2)
    first = probe(apache.port, site.name)
    assert first.ok and first.staple is not None, first.describe() + apache.log()
    pid = apache.pid

    next_second()
    cp = run_tool("ocsp-proxy", "purge", "--via", proxy.url, "--admin-token-file", proxy.token, site.fullchain)
    assert cp.returncode == 0, cp.stderr
    newer = proxy_answer(pki, proxy, leaf, scratch)
    assert response_time(newer, scratch) > response_time(first.staple, scratch)

    served = wait_until(lambda: (lambda s: s if s.staple == newer else None)(probe(apache.port, site.name)),
                        timeout=20, step=0.5)
    assert served, apache.log()
    assert served.ok
    verify_staple(pki, leaf.cert, served.staple, scratch)
    assert apache.pid == pid and apache.alive()
