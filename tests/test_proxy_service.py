"""proxy/service.py: the Proxy's request flow.

In process, on a clock the test moves (no sleeping): the fast path and how long the in-memory
copy is trusted, an expired answer never served, the cache failing.  Then end to end: the real
openssl responder behind a real `ocsp-proxy serve` (sqlite cache).
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import threading
import urllib.parse
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Dict, List

import pytest

import pki as pkimod
from ocsptools.codec import der
from ocsptools.proxy import rules

from ocsptools.proxy.hot import MEMO_TTL
from ocsptools.proxy.issuers import Known, split_url
from test_proxy_support import (TRY_LATER, BrokenCache, FakeClock, allow_dir, answer, check_response, dead_url,  # noqa: F401
                                entry_for, faketime_lib, http_request, in_process, issuer_dir,
                                openssl_via, parse_http, received, request_der, start_proxy, wait_for)

CID = der.CertID("sha1", b"\x01" * 20, b"\x02" * 20, 0x1234)
REQUEST = der.encode_request(CID)


def allowing(*urls: str) -> Known:
    return Known(prefixes=[split_url(u) for u in urls])


# -- in process -----------------------------------------------------------------------------------

def test_a_cached_answer_takes_the_fast_path_for_memo_ttl(tmp_path):
    """After one cache read, the same request is answered without a task (bytes, not a coroutine)
    until MEMO_TTL passes on the monotonic clock: a purge is seen then, not before."""
    clock = FakeClock()
    entry = entry_for(CID, now=clock.now)
    with in_process(tmp_path, clock=clock) as proxy:
        proxy.cache.put(entry)
        req = http_request("POST", "/", REQUEST)

        async def scenario() -> None:
            first = proxy.handle(req)
            assert not isinstance(first, bytes)                   # the cache is read
            status, _, body = parse_http(await first)
            assert (status, body) == (200, entry.response)
            for _ in range(2):
                fast = proxy.handle(req)
                assert isinstance(fast, bytes) and parse_http(fast)[2] == entry.response
            proxy.cache.purge_serial(CID.serial_hex)
            clock.advance(MEMO_TTL - 0.1)
            assert isinstance(proxy.handle(req), bytes)           # still trusted
            clock.advance(0.1)
            status, _, _ = parse_http(await answer(proxy, req))   # read again: purged, nowhere to ask
            assert status == 403
        asyncio.run(scenario())
        assert proxy.metrics.hits == 4 and proxy.metrics.forbidden == 1 and proxy.metrics.misses == 0


def test_an_answer_is_never_served_at_or_past_its_end(tmp_path):
    """At the instant the answer stops verifying the fast path declines, the responder it came from
    is asked (refused here) and the client gets tryLater, uncached."""
    clock = FakeClock()
    url = dead_url()
    entry = entry_for(CID, now=clock.now, valid_until=clock.now + 60, url=url)
    with in_process(tmp_path, clock=clock, known=allowing(url), http=_quick()) as proxy:
        proxy.cache.put(entry)
        req = http_request("POST", "/", REQUEST)

        async def scenario() -> None:
            assert parse_http(await answer(proxy, req))[2] == entry.response
            clock.advance(59)
            assert parse_http(await answer(proxy, req))[2] == entry.response
            clock.advance(1)
            status, headers, body = parse_http(await answer(proxy, req))
            assert (status, body) == (200, TRY_LATER) and headers["cache-control"] == "no-store"
            assert headers["date"] == rules.http_date(clock.now)
        asyncio.run(scenario())
        assert proxy.metrics.expired == 1 and proxy.metrics.misses == 1


def test_the_answer_follows_the_wall_clock(tmp_path):
    clock = FakeClock()
    entry = entry_for(CID, now=clock.now)
    with in_process(tmp_path, clock=clock) as proxy:
        proxy.cache.put(entry)
        req = http_request("POST", "/", REQUEST)

        async def scenario() -> List[Dict[str, str]]:
            seen = []
            for step in (0, 10.5, 600):
                clock.advance(step)
                seen.append(parse_http(await answer(proxy, req))[1])
            return seen
        for headers, now in zip(asyncio.run(scenario()), (clock.now - 610.5, clock.now - 600, clock.now)):
            assert headers["date"] == rules.http_date(now)
            assert headers["cache-control"].startswith(f"max-age={int(entry.valid_until - now)}, ")


def test_a_failing_cache_falls_back_to_the_copy_in_memory(tmp_path):
    clock = FakeClock()
    entry = entry_for(CID, now=clock.now)
    with in_process(tmp_path, clock=clock) as proxy:
        proxy.install(entry)
        proxy.cache = BrokenCache()
        req = http_request("POST", "/", REQUEST)

        async def scenario() -> None:
            clock.advance(MEMO_TTL)                            # the copy must be checked again
            assert parse_http(await answer(proxy, req))[2] == entry.response
        asyncio.run(scenario())
        assert proxy.metrics.cache_errors == 1 and proxy.metrics.hits == 1


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS"])
def test_other_methods_are_405(tmp_path, method):
    with in_process(tmp_path) as proxy:
        status, headers, _ = parse_http(proxy.handle(http_request(method, "/")))
    assert status == 405 and headers["allow"] == "GET, POST, HEAD"


def _quick():
    from ocsptools import transport
    return transport.HttpOptions(timeout=5)


# -- end to end -----------------------------------------------------------------------------------

def test_openssl_client_through_proxy_verifies_then_hits(pki, responder, allow_dir, start_proxy):
    proxy = start_proxy("--allow-from", str(allow_dir))
    leaf = pki.leaves["good1"]
    before = received(responder)
    first = openssl_via(pki, leaf, proxy.url, "-no_nonce")
    second = openssl_via(pki, leaf, proxy.url, "-no_nonce")
    for cp in (first, second):
        assert "Response verify OK" in cp.stderr, cp.stderr
        assert f"{leaf.cert}: good" in cp.stdout
    assert received(responder) - before == 1            # the second came from the cache
    m = proxy.metrics()
    assert m["ocsp_proxy_cache_misses_total"] == 1
    assert m["ocsp_proxy_cache_hits_total"] == 1
    assert m["ocsp_proxy_cache_entries"] == 1
    revoked = openssl_via(pki, pki.leaves["revoked1"], proxy.url, "-no_nonce")
    assert "Response verify OK" in revoked.stderr and ": revoked" in revoked.stdout


def test_get_forms_and_absolute_uri(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir))
    leaf = pki.leaves["good1"]
    req = request_der(pki, leaf, tmp=tmp_path)
    status, headers, body = proxy.get(req)
    assert status == 200 and headers["content-type"] == "application/ocsp-response"
    assert "good" in check_response(pki, leaf, body, tmp_path)
    # Apache SSLOCSPProxyURL: absolute URI in the request line, POST
    status, _, body2 = proxy.post(req, target=responder.url)
    assert status == 200 and body2 == body
    # absolute URI with a GET path under the responder
    b64 = urllib.parse.quote(base64.b64encode(req).decode(), safe="")
    status, _, body3 = proxy.request("GET", responder.url + b64)
    assert status == 200 and body3 == body
    # base64 with '/' left unencoded, as some clients send it
    leaves = [l for l in pki.leaves.values() if l.issuer == "inter"]
    n = 0
    while True:
        found = [(l, a) for l in leaves for a in ("sha1", "sha256")
                 if "/" in base64.b64encode(request_der(pki, l, hash_alg=a, tmp=tmp_path)).decode()]
        if found:
            break
        n += 1
        leaves.append(pki.make_leaf(f"slash{n}"))
    slash_leaf, alg = found[0]
    raw = request_der(pki, slash_leaf, hash_alg=alg, tmp=tmp_path)
    shutil.copy(slash_leaf.fullchain, tmp_path / "allow" / "slash.pem")
    status, _, body4 = proxy.get(raw, encode=False)
    assert status == 200, body4
    verdict = check_response(pki, slash_leaf, body4, tmp_path, extra=[f"-{alg}"] if alg != "sha1" else [])
    assert "Response verify OK" in verdict


def test_caching_headers_and_etag(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir))
    req = request_der(pki, pki.leaves["good1"], tmp=tmp_path)
    proxy.get(req)
    status, h, body = proxy.get(req)
    assert status == 200
    for name in ("date", "expires", "last-modified"):
        assert h[name].endswith(" GMT"), h[name]
    now = parsedate_to_datetime(h["date"])
    expires = parsedate_to_datetime(h["expires"])
    assert expires - now > timedelta(hours=23)      # nextUpdate = +1 day
    max_age = int(h["cache-control"].split("max-age=")[1].split(",")[0])
    assert abs(max_age - (expires - now).total_seconds()) <= 2
    assert "public" in h["cache-control"] and "no-transform" in h["cache-control"]
    assert h["etag"].startswith('"')
    status, h2, body2 = proxy.get(req, headers={"If-None-Match": h["etag"]})
    assert status == 304 and body2 == b""


def test_expired_entry_gives_try_later(pki, issuer_dir, start_proxy, tmp_path):
    lib = faketime_lib()
    leaf = pki.leaves["good1"]
    req = request_der(pki, leaf, tmp=tmp_path)
    upstream = pkimod.Responder(pki, port=0, nmin=1).start()     # nextUpdate = +1 minute
    try:
        proxy = start_proxy("--allow", upstream.url, "--allow-from", str(issuer_dir), "--timeout", "2")
        status, _, body = proxy.post(req, target=upstream.url)
        assert status == 200 and body[:1] == b"\x30" and body != TRY_LATER
        proxy.stop()
    finally:
        upstream.stop()
    later = start_proxy("--allow", upstream.url, "--allow-from", str(issuer_dir), "--timeout", "2",
                        env={"LD_PRELOAD": lib, "FAKETIME": "+3m"})   # no wrapper process
    status, headers, body = later.post(req, target=upstream.url)
    assert status == 200 and body == TRY_LATER
    assert "no-store" in headers["cache-control"]
    assert later.metrics()["ocsp_proxy_expired_total"] == 1
    assert wait_for(lambda: "expired" in later.log and "tryLater" in later.log), later.log


def test_nonce_and_multi_certificate_requests_pass_through(pki, responder, allow_dir, start_proxy):
    proxy = start_proxy("--allow-from", str(allow_dir))
    leaf = pki.leaves["good1"]
    before = received(responder)
    for _ in range(2):
        cp = openssl_via(pki, leaf, proxy.url, "-nonce")
        assert "Response verify OK" in cp.stderr and "WARNING: no nonce" not in cp.stderr, cp.stderr
    assert received(responder) - before == 2
    for _ in range(2):
        cp = pkimod.openssl("ocsp", "-issuer", pki.inter_cert, "-cert", leaf.cert, "-cert",
                            pki.leaves["revoked1"].cert, "-url", proxy.url, "-no_nonce",
                            "-CAfile", pki.root_cert, "-no-CApath", "-no-CAstore", check=False)
        assert f"{leaf.cert}: good" in cp.stdout and ": revoked" in cp.stdout
    assert received(responder) - before == 4
    m = proxy.metrics()
    assert m["ocsp_proxy_cache_entries"] == 0
    assert m["ocsp_proxy_passthrough_total{reason=nonce}"] == 2
    assert m["ocsp_proxy_passthrough_total{reason=several certificates}"] == 2


def test_unknown_leaf_of_known_issuer_is_verified_and_cached(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir))       # good2 itself is not under allow_dir
    leaf = pki.leaves["good2"]
    for alg in ("sha1", "sha256"):
        req = request_der(pki, leaf, hash_alg=alg, tmp=tmp_path)
        before = received(responder)
        s1, _, b1 = proxy.post(req)
        s2, _, b2 = proxy.post(req)
        assert s1 == s2 == 200 and b1 == b2
        assert received(responder) - before == 1
    assert proxy.metrics()["ocsp_proxy_cache_entries"] == 2


def test_unverifiable_answer_is_passed_through_uncached(pki, issuer_dir, start_proxy, tmp_path):
    bad = pkimod.Responder(pki, port=0, signer="nosign").start()    # signer lacks OCSPSigning
    try:
        proxy = start_proxy("--allow", bad.url, "--allow-from", str(issuer_dir))
        req = request_der(pki, pki.leaves["good1"], tmp=tmp_path)
        for _ in range(2):
            status, headers, body = proxy.post(req, target=bad.url)
            assert status == 200 and body[:1] == b"\x30" and "no-store" in headers["cache-control"]
        assert received(bad) == 2
        m = proxy.metrics()
        assert m["ocsp_proxy_cache_entries"] == 0
        assert m["ocsp_proxy_passthrough_total{reason=unverifiable}"] == 2
        assert m["ocsp_proxy_upstream_errors_total{kind=verify}"] == 2
    finally:
        bad.stop()


def test_concurrent_misses_share_one_upstream_fetch(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir))
    req = request_der(pki, pki.leaves["revoked1"], hash_alg="sha256", tmp=tmp_path)
    barrier = threading.Barrier(12)
    results = []

    def client():
        barrier.wait()
        results.append(proxy.post(req))
    before = received(responder)
    threads = [threading.Thread(target=client) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert received(responder) - before == 1
    assert len({b for _, _, b in results}) == 1 and all(s == 200 for s, _, _ in results)
    m = proxy.metrics()
    assert m["ocsp_proxy_cache_misses_total"] + m["ocsp_proxy_cache_hits_total"] == 12


def test_host_header_naming_the_responder(pki, responder, issuer_dir, start_proxy, tmp_path):
    """DNS pointing the CA's responder name at the proxy: POST / with `Host: <responder>`."""
    proxy = start_proxy("--allow", responder.url, "--allow-from", str(issuer_dir))
    leaf = pki.leaves["good1"]
    req = request_der(pki, leaf, tmp=tmp_path)
    host = {"Host": f"127.0.0.1:{responder.port}"}
    before = received(responder)
    status, headers, body = proxy.post(req, headers=host)
    assert status == 200 and "no-store" not in headers["cache-control"]
    assert "Response verify OK" in check_response(pki, leaf, body, tmp_path)
    assert proxy.post(req, headers=host)[2] == body
    assert received(responder) - before == 1
    m = proxy.metrics()
    assert m["ocsp_proxy_cache_misses_total"] == 1 and m["ocsp_proxy_cache_hits_total"] == 1
    # a Host the allow-list does not name: the cached answer is served, a miss is refused
    assert proxy.post(req, headers={"Host": f"127.0.0.2:{responder.port}"})[2] == body
    other = request_der(pki, pki.leaves["revoked1"], tmp=tmp_path)
    assert proxy.post(other, headers={"Host": f"127.0.0.2:{responder.port}"})[0] == 403
    assert received(responder) - before == 1


def test_nginx_style_get_with_a_host_without_port(pki, responder, allow_dir, start_proxy, tmp_path):
    """nginx's ssl_stapling_responder sends `GET /<base64> HTTP/1.0` and `Host: NAME` without the
    port: port 80 is neither the proxy nor an allowed responder, so the CertID routes it."""
    proxy = start_proxy("--allow-from", str(allow_dir))
    leaf = pki.leaves["good1"]
    path = "/" + urllib.parse.quote(base64.b64encode(request_der(pki, leaf, tmp=tmp_path)).decode(), safe="")
    before = received(responder)
    answers = []
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head, head
        answers.append(body)
    assert answers[0] == answers[1]
    assert "Response verify OK" in check_response(pki, leaf, answers[0], tmp_path)
    assert received(responder) - before == 1
    assert proxy.metrics()["ocsp_proxy_cache_hits_total"] == 1
