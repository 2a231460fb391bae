"""proxy/special.py: /metrics, /healthz and /admin/purge.

Who may purge and what a purge names are pure and tested on tables; the endpoints in process
(a cache that fails, a purge dropping the copy in memory), then end to end.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import assert_one_line_error, run_cmd
from ocsptools.codec import der
from ocsptools.proxy import special
from ocsptools.proxy.answers import Refusal
from ocsptools.proxy.cache import RedisCache, open_cache
from test_proxy_support import (BrokenCache, FakeClock, ProxyProc, RedisServer, allow_dir,  # noqa: F401
                                answer, entries_around_keep, entry_for, http_request, in_process, parse_http, received,
                                request_der, start_proxy)

TOKEN = "0123456789abcdef0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("target, special_", [("/metrics", True), ("/healthz?x=1", True), ("/admin/purge?serial=1", True),
                                              ("/metrics/", False), ("/", False), ("http://h/metrics", False)])
def test_wants(target, special_):
    assert special.wants(target) is special_


#: (token, method, headers, the refusal's status and extra header, or None: allowed)
AUTH = [
    (None, "POST", BEARER, (404, None)),                               # purging over HTTP is off
    (TOKEN, "GET", BEARER, (405, ("Allow", "POST"))),
    (TOKEN, "POST", {}, (401, ("WWW-Authenticate", 'Bearer realm="ocsp-proxy"'))),
    (TOKEN, "POST", {"Authorization": f"Basic {TOKEN}"}, (401, ("WWW-Authenticate", 'Bearer realm="ocsp-proxy"'))),
    (TOKEN, "POST", {"Authorization": "Bearer wrong-token-wrong-token"}, (403, None)),
    (TOKEN, "POST", {"Authorization": f"Bearer  {TOKEN} "}, None),
    (TOKEN, "POST", BEARER, None),
]


@pytest.mark.parametrize("token, method, headers, refused", AUTH)
def test_authorise(token, method, headers, refused):
    got = special.authorise(http_request(method, "/admin/purge", headers=headers), token)
    if refused is None:
        assert got is None
    else:
        status, header = refused
        assert isinstance(got, Refusal) and got.status == status
        assert got.headers == ((header,) if header else ())
        assert bool(got.warning) == (status == 403)


CERT_ID = der.CertID("sha1", b"\x01" * 20, b"\x02" * 20, 0x0ABC)

#: (query, what the purge names: serials, or the refusal's body)
SERIALS = [
    ("serial=abc", ["ABC"]),
    ("serial=0x00ABC", ["ABC"]),
    ("serial=1&serial=FF", ["1", "FF"]),
    ("serial=-5", ["-5"]),
    ("serial=-01A", ["-1A"]),                       # the cache's spelling, as the CLI's purge
    ("serial=ab:cd", ["ABCD"]),
    ("serial=xyz", b"not a hex serial: xyz\n"),
    ("serial=-", b"not a hex serial: -\n"),
    ("serial=1_0", b"not a hex serial: 1_0\n"),
    ("serial=", b"name what to purge: ?serial=HEX or PEM certificates in the body\n"),
    ("", b"name what to purge: ?serial=HEX or PEM certificates in the body\n"),
]


@pytest.mark.parametrize("query, named", SERIALS)
def test_purge_serials(query, named):
    got = special.purge_serials(http_request("POST", "/admin/purge?" + query))
    if isinstance(named, list):
        assert got == named
    else:
        assert isinstance(got, Refusal) and (got.status, got.body) == (400, named)


def test_purge_serials_from_certificates(pki):
    body = open(pki.leaves["good1"].cert, "rb").read() + open(pki.leaves["good2"].cert, "rb").read()
    assert special.purge_serials(http_request("POST", "/admin/purge", body)) == \
        [pki.leaves["good1"].serial.upper().lstrip("0"), pki.leaves["good2"].serial.upper().lstrip("0")]
    broken = b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"
    got = special.purge_serials(http_request("POST", "/admin/purge", broken))
    assert isinstance(got, Refusal) and got.body == b"unreadable certificate in the body\n"


def test_a_purge_drops_the_copy_in_memory_at_once(tmp_path):
    clock = FakeClock()
    entry = entry_for(CERT_ID, now=clock.now)
    with in_process(tmp_path, clock=clock, admin_token=TOKEN) as proxy:
        proxy.cache.put(entry)
        proxy.install(entry)
        proxy.cache.put(entry_for(der.CertID("sha256", b"\x01" * 32, b"\x02" * 32, 0x0ABC), now=clock.now))
        purge = http_request("POST", "/admin/purge?serial=abc", headers=BEARER)
        status, _, body = parse_http(asyncio.run(answer(proxy, purge)))
        assert (status, body) == (200, b"purged 2\n")
        assert proxy.hot == {} and list(proxy.cache.entries()) == []
        proxy.cache.put(entry)
        proxy.settings.admin_token = None                       # purging over HTTP is off
        status, _, body = parse_http(asyncio.run(answer(proxy, purge)))
        assert status == 404 and b"--admin-token-file" in body
        assert list(proxy.cache.entries()) == [entry]           # nothing purged


def test_metrics_and_healthz_when_the_cache_fails(tmp_path):
    with in_process(tmp_path, cache=BrokenCache()) as proxy:
        async def scenario():
            return [parse_http(await answer(proxy, http_request("GET", path)))
                    for path in ("/healthz", "/metrics", "/admin/purge")]
        (hs, _, hbody), (ms, mheaders, mbody), (ps, _, _) = asyncio.run(scenario())
    assert hs == 503 and hbody.startswith(b"cache unreachable: broken://: cannot read")
    assert ms == 200 and mheaders["content-type"].startswith("text/plain; version=0.0.4")
    assert b"\nocsp_proxy_cache_errors_total 1.0\n" in mbody and b"\nocsp_proxy_cache_entries 0.0\n" in mbody
    assert ps == 404 and proxy.metrics.cache_errors == 1


# -- end to end -----------------------------------------------------------------------------------

def test_metrics_healthz_and_purge_over_http(pki, responder, allow_dir, start_proxy, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("0123456789abcdef0123456789abcdef\n")
    token_file.chmod(0o600)
    proxy = start_proxy("--allow-from", str(allow_dir), "--admin-token-file", str(token_file))
    leaf = pki.leaves["good1"]
    req = request_der(pki, leaf, tmp=tmp_path)
    proxy.post(req)
    status, _, body = proxy.request("GET", "/healthz")
    assert status == 200 and body == b"ok\n"
    m = proxy.metrics()
    assert m["ocsp_proxy_cache_entries"] == 1 and m["ocsp_proxy_known_issuers"] == 1
    assert 0 <= m["ocsp_proxy_oldest_entry_age_seconds"] < 120
    assert proxy.request("POST", f"/admin/purge?serial={leaf.serial}", b"")[0] == 401
    assert proxy.request("POST", f"/admin/purge?serial={leaf.serial}", b"",
                         headers={"Authorization": "Bearer wrong-token-wrong-token"})[0] == 403
    auth = {"Authorization": "Bearer 0123456789abcdef0123456789abcdef"}
    status, _, body = proxy.request("POST", f"/admin/purge?serial={leaf.serial}", b"", headers=auth)
    assert status == 200 and body == b"purged 1\n"
    before = received(responder)
    assert proxy.post(req)[0] == 200
    assert received(responder) - before == 1             # purged: asked the responder again
    # the CLI through the running proxy, by certificate
    res = run_cmd("ocsp-proxy", "purge", "--via", proxy.url, "--admin-token-file", token_file, leaf.cert)
    assert res.returncode == 0, res.stderr
    assert b"purged 1" in res.stdout
    res = run_cmd("ocsp-proxy", "purge", "--via", proxy.url, "--admin-token-file", tmp_path / "missing",
                  leaf.cert)
    assert res.returncode == 2
    assert "missing" in assert_one_line_error(res.stderr)


def test_redis_metrics_stats_and_healthz(tmp_path):
    """/metrics and `stats` on Redis count only what Redis still holds; /healthz is 503 (and
    /metrics still answers) once Redis is gone."""
    server = RedisServer(tmp_path)
    try:
        with ProxyProc("--allow", "http://127.0.0.1:9/", cache=server.url) as proxy:
            time.sleep(1.5)                   # its first sweep is done; the next one in 10 minutes
            c = open_cache(server.url)
            for e in entries_around_keep(time.time()):
                c.put(e)
            c.close()
            time.sleep(1.2)
            assert server.client.zcard(RedisCache.PREFIX + "this_update") == 3     # not swept
            m = proxy.metrics()
            assert m["ocsp_proxy_cache_entries"] == 2 and m["ocsp_proxy_cache_expired_entries"] == 1
            assert 7200 <= m["ocsp_proxy_oldest_entry_age_seconds"] < 7300
            stats = run_cmd("ocsp-proxy", "stats", "--cache", server.url).stdout.decode()
            assert "entries: 2" in stats and "valid: 1" in stats and "expired: 1" in stats
            assert proxy.request("GET", "/healthz")[0] == 200
            server.stop()
            status, _, body = proxy.request("GET", "/healthz")
            assert status == 503 and b"cache unreachable" in body and f"127.0.0.1:{server.port}".encode() in body
            m = proxy.metrics()
            assert m["ocsp_proxy_cache_errors_total"] >= 1 and m["ocsp_proxy_cache_entries"] == 0
            assert proxy.alive()
    finally:
        server.stop()
