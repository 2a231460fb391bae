"""proxy/refresher.py: each cached answer renewed at --refresh-at of its life, under the cache's
lock, with backoff; the allow-list decides where it may go.

``plan`` is pure and tested on a table; ``Refresher`` in process on a clock the test moves (no
sleeping); then end to end against real responders, and two proxies sharing Redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import threading
import time
import urllib.request
from datetime import datetime, timezone

import pytest

import pki as pkimod
from conftest import run_cmd
from fake_responder import Answer, FakeResponder
from ocsptools.codec import der
from ocsptools.openssl import OpenSSL
from ocsptools.proxy import issuers, rules
from ocsptools.proxy.cache import RedisCache, open_cache
from ocsptools.proxy.issuers import Known, split_url
from ocsptools.proxy.refresher import Ask, NotAllowed, Refresher, cert_id, plan, serving
from ocsptools.proxy.service import Proxy, Settings
from ocsptools.staple import Certificate
from test_proxy_support import (TRY_LATER, FakeClock, ProxyProc, dead_url, entry_for,  # noqa: F401
                                faketime_lib, in_process, issuer_dir, make_entry, received,
                                redis_server, request_der, start_proxy, wait_for)

NOW = 1_800_000_000.0
CID = der.CertID("sha1", b"\x01" * 20, b"\x02" * 20, 0x77)
ISSUER = Certificate(der=b"issuer", subject="CN=I", issuer="CN=R", serial=1,
                     not_before=datetime(2026, 1, 1, tzinfo=timezone.utc),
                     not_after=datetime(2036, 1, 1, tzinfo=timezone.utc), is_ca=True)
STORED = "http://127.0.0.1:9/stored/"
ROUTED = "http://127.0.0.1:9/routed/"


def known(*allowed: str, issuer: bool = True) -> Known:
    """The allow-list: ALLOWED prefixes, the issuer of CID (its leaves name ROUTED) if ISSUER."""
    return Known(prefixes=[split_url(u) for u in allowed],
                 issuers={CID.issuer_ref: ISSUER} if issuer else {},
                 routes={ISSUER.der: [ROUTED]} if issuer else {})


def test_cert_id_of_an_entry():
    assert cert_id(entry_for(CID, now=NOW)) == CID


#: (case, the allow-list, the entry's due, the plan)
PLANS = [
    ("not due: refreshed meanwhile", known(STORED, ROUTED), NOW + 1, None),
    ("the issuer not under --allow-from", known(STORED, ROUTED, issuer=False), NOW,
     NotAllowed("its issuer is not under --allow-from")),
    ("no allowed responder", known(), NOW,
     NotAllowed(f"its responder {STORED} is not allowed (--allow / --allow-from)")),
    ("where it came from, then the routes", known(STORED, ROUTED), NOW, [STORED, ROUTED]),
    ("where it came from, no longer allowed", known(ROUTED), NOW, [ROUTED]),
    ("the same URL once", known("http://127.0.0.1:9/"), NOW - 5, [STORED, ROUTED]),
]


@pytest.mark.parametrize("case, allow, due, expected", PLANS, ids=[p[0] for p in PLANS])
def test_plan(case, allow, due, expected):
    entry = entry_for(CID, now=NOW, due=due, url=STORED)
    got = plan(entry, allow, NOW)
    if isinstance(expected, list):
        assert got == Ask(CID, ISSUER, None, expected)
    else:
        assert got == expected


@pytest.mark.parametrize("valid_until, said", [
    (NOW + 1, "still valid until " + rules.http_date(NOW + 1)),
    (NOW, "EXPIRED, clients get tryLater")])
def test_serving(valid_until, said):
    assert serving(make_entry(now=NOW, valid_until=valid_until), NOW) == said


def test_failures_back_off_on_the_clock(tmp_path):
    """A responder that refuses: retried after 30 s, then 60 s...; never before it is due."""
    clock = FakeClock(wall=NOW)
    url = dead_url()
    with in_process(tmp_path, clock=clock, known=known(url)) as proxy:
        proxy.cache.put(entry_for(CID, now=NOW, due=NOW, url=url))
        refresher = Refresher(proxy)

        async def scenario():
            seen = []
            for step in (0, 29, 1, 59, 1):
                clock.advance(step)
                outcome = await refresher.refresh_one(CID.key)
                stored = proxy.cache.get(CID.key)
                seen.append((outcome, stored.due - clock.now, stored.failures))
            return seen
        assert asyncio.run(scenario()) == [("failed", 30, 1), (None, 1, 1), ("failed", 60, 2),
                                           (None, 1, 2), ("failed", 120, 3)]
        assert proxy.metrics.refreshes["failed"] == 3


def test_not_allowed_backs_off_and_keeps_the_entry(tmp_path):
    clock = FakeClock(wall=NOW)
    entry = entry_for(CID, now=NOW, due=NOW, url=STORED)
    with in_process(tmp_path, clock=clock, known=known(issuer=False)) as proxy:
        proxy.cache.put(entry)
        assert asyncio.run(Refresher(proxy).refresh_one(CID.key)) == "not allowed"
        stored = proxy.cache.get(CID.key)
        assert (stored.due, stored.failures, stored.response) == (NOW + rules.BACKOFF.base, 1, entry.response)
        assert proxy.metrics.refreshes["not allowed"] == 1


def test_a_locked_or_missing_entry_is_left_alone(tmp_path):
    clock = FakeClock(wall=NOW)
    entry = entry_for(CID, now=NOW, due=NOW, url=STORED)
    with in_process(tmp_path, clock=clock, known=known(issuer=False)) as proxy:
        proxy.cache.put(entry)
        assert proxy.cache.lock(CID.key, "another proxy", 60, NOW)
        refresher = Refresher(proxy)
        assert asyncio.run(refresher.refresh_one(CID.key)) is None
        assert proxy.cache.get(CID.key) == entry
        assert asyncio.run(refresher.refresh_one("no such key")) is None
        clock.advance(60)                                       # the other proxy died: its lock lapses
        assert asyncio.run(refresher.refresh_one(CID.key)) == "not allowed"


def test_a_tick_sweeps_then_starts_the_due_refreshes(tmp_path):
    clock = FakeClock(wall=NOW)
    with in_process(tmp_path, clock=clock, known=known(issuer=False)) as proxy:
        proxy.cache.put(entry_for(CID, now=NOW, due=NOW - 1))
        proxy.cache.put(make_entry("later", now=NOW, due=NOW + 10))
        proxy.cache.put(make_entry("gone", now=NOW, due=NOW - 1, this_update=NOW - 3 * rules.KEEP_EXPIRED,
                                   next_update=NOW - rules.KEEP_EXPIRED))
        refresher = Refresher(proxy)

        async def scenario():
            sem = asyncio.Semaphore(1)
            started = await refresher.tick(sem)
            while refresher.refreshing:
                await asyncio.sleep(0.01)
            again = await refresher.tick(sem)                   # backed off: nothing due
            return started, again
        started, again = asyncio.run(scenario())
        assert started == [CID.key] and again == []
        assert proxy.cache.get("gone") is None and proxy.metrics.refreshes["not allowed"] == 1


# -- end to end -----------------------------------------------------------------------------------

def test_upstream_killed_clients_keep_valid_answers(pki, issuer_dir, start_proxy, tmp_path):
    leaf = pki.leaves["good1"]
    req = request_der(pki, leaf, tmp=tmp_path)
    upstream = pkimod.Responder(pki, port=0, nmin=5).start()     # 5-minute answers
    try:
        proxy = start_proxy("--allow", upstream.url, "--allow-from", str(issuer_dir),
                            "--refresh-at", "1%", "--timeout", "2")   # refresh due after 3 s
        status, _, body = proxy.post(req, target=upstream.url)
        assert status == 200
    finally:
        upstream.stop()
    answers, errors = [], []

    def client():
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                answers.append(proxy.post(req, target=upstream.url))
            except Exception as exc:      # pragma: no cover - reported below
                errors.append(exc)
            time.sleep(0.02)
    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(answers) > 50
    assert all(s == 200 and b == body for s, _, b in answers), ({s for s, _, _ in answers}, proxy.log)
    m = wait_for(lambda: (lambda m: m if m['ocsp_proxy_refreshes_total{result=failed}'] >= 1 else None)(proxy.metrics()))
    assert m["ocsp_proxy_upstream_errors_total{kind=connect}"] >= 1
    assert "refresh failed" in proxy.log and "still valid until" in proxy.log


@pytest.fixture
def short_lived(pki):
    """A leaf whose AIA names its own responder giving 5-minute answers (1% refresh: after 3 s)."""
    port = pkimod.free_port()
    leaf = pki.make_leaf(f"short{port}", ocsp_urls=[f"http://127.0.0.1:{port}/"])
    upstream = pkimod.Responder(pki, port=port, nmin=5).start()
    yield leaf, upstream
    upstream.stop()


def warm(cache_url, *args):
    res = run_cmd("ocsp-proxy", "warm", "--cache", cache_url, "--refresh-at", "1%", *args)
    assert res.returncode == 0, res.stderr


def not_allowed_refreshes(proxy):
    return proxy.metrics()["ocsp_proxy_refreshes_total{result=not allowed}"]


def test_cached_urls_obey_the_allow_list(pki, short_lived, issuer_dir, start_proxy, tmp_path):
    """Warmed from a responder the proxy may not contact (only the issuer under --allow-from): the
    refresher leaves it alone and the entry is served while valid; once expired, a client's miss
    is refused instead of being sent to the URL stored in the cache."""
    leaf, upstream = short_lived
    cache_url = f"sqlite:///{tmp_path}/cache.sqlite"
    warm(cache_url, leaf.fullchain)
    assert received(upstream) == 1
    req = request_der(pki, leaf, tmp=tmp_path)
    proxy = start_proxy("--allow-from", str(issuer_dir), "--timeout", "2")
    assert wait_for(lambda: not_allowed_refreshes(proxy) >= 1, timeout=15), proxy.log
    assert "not allowed" in proxy.log and upstream.url in proxy.log
    status, _, body = proxy.post(req)
    assert status == 200 and body[:1] == b"\x30" and body != TRY_LATER      # still valid: served
    assert received(upstream) == 1
    proxy.stop()
    later = start_proxy("--allow-from", str(issuer_dir), "--timeout", "2",
                        env={"LD_PRELOAD": faketime_lib(), "FAKETIME": "+6m"})    # past nextUpdate
    status, _, _ = later.post(req)
    assert status == 403
    assert received(upstream) == 1


def test_sighup_shrinking_the_allow_list_stops_refreshes(pki, short_lived, start_proxy, tmp_path):
    leaf, upstream = short_lived
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(leaf.fullchain, tree / "leaf.pem")
    shutil.copy(pki.inter_cert, tree / "inter.pem")
    proxy = start_proxy("--allow-from", str(tree), "--refresh-at", "1%", "--timeout", "2")
    req = request_der(pki, leaf, tmp=tmp_path)
    assert proxy.post(req)[0] == 200
    assert wait_for(lambda: proxy.metrics()["ocsp_proxy_refreshes_total{result=ok}"] >= 1, timeout=15)
    os.unlink(tree / "leaf.pem")                     # the issuer stays trusted, its responder goes
    proxy.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reloaded" in proxy.log)
    time.sleep(0.5)                                   # a refresh already in flight may finish
    before = received(upstream)
    assert wait_for(lambda: not_allowed_refreshes(proxy) >= 1, timeout=15), proxy.log
    assert received(upstream) == before
    assert proxy.post(req)[0] == 200                  # the refreshed answer is still served


def slow_relay_to(upstream, delay: float):
    """A FakeResponder handler that relays to the real responder UPSTREAM, answering DELAY s late."""

    def relay(r):
        if r.method == "GET":
            real = urllib.request.Request(upstream.url + r.path.lstrip("/"))
        else:
            real = urllib.request.Request(upstream.url, data=r.body,
                                          headers={"Content-Type": "application/ocsp-request"})
        body = urllib.request.urlopen(real, timeout=10).read()
        return Answer(body=body, delay=delay)
    return relay


def test_the_redis_lock_lets_one_of_two_proxies_refresh(pki, redis_server, issuer_dir):
    """Two proxies (two Redis connections) refresh the same due entry at the same instant, with a
    responder that takes 1 s: without SET NX PX both would fetch it."""
    redis_server.client.flushdb()
    with FakeResponder() as slow:
        leaf = pki.make_leaf(f"locked{slow.port}", ocsp_urls=[slow.url])
        upstream = pkimod.Responder(pki, port=0, nmin=5).start()
        try:
            slow.set(handler=slow_relay_to(upstream, 1.0))
            res = run_cmd("ocsp-proxy", "warm", "--cache", redis_server.url, leaf.fullchain)
            assert res.returncode == 0, res.stderr
            assert len(slow.requests) == 1
            caches = [open_cache(redis_server.url) for _ in range(2)]
            (entry,) = list(caches[0].entries())
            caches[0].reschedule(entry.key, time.time() - 1, 0)         # due now
            ossl = OpenSSL("openssl", timeout=10)
            known = issuers.load([slow.url], [str(issuer_dir)], ossl)

            async def both():
                proxies = [Proxy(c, known, ossl, Settings(refresh_pct=1.0), logging.getLogger("test"))
                           for c in caches]
                try:
                    return await asyncio.gather(*(Refresher(p).refresh_one(entry.key) for p in proxies))
                finally:
                    for p in proxies:
                        p.executor.shutdown()
            outcomes = asyncio.run(both())
            assert sorted(outcomes, key=str) == [None, "ok"]             # one refreshed, one skipped
            assert len(slow.requests) == 2                               # one upstream request
            assert caches[1].get(entry.key).this_update >= entry.this_update
            assert caches[1].get(entry.key).due > time.time()
            for c in caches:
                c.close()
        finally:
            upstream.stop()


def test_two_proxies_share_redis_with_one_refresher(pki, redis_server, issuer_dir, tmp_path):
    """Two `serve` processes on one Redis behind a slow responder (1.5 s, longer than the
    refresher's 1 s tick): B answers from what A stored, both refresh under one lock (the lock
    itself is proven deterministically by test_the_redis_lock_lets_one_of_two_proxies_refresh),
    and both serve the refreshed answer."""
    redis_server.client.flushdb()
    leaf = pki.leaves["good1"]
    req = request_der(pki, leaf, tmp=tmp_path)
    upstream = pkimod.Responder(pki, port=0, nmin=5).start()     # 5-minute answers
    try:
        with FakeResponder() as slow:
            slow.set(handler=slow_relay_to(upstream, 1.5))
            args = ("--allow", slow.url, "--allow-from", str(issuer_dir), "--refresh-at", "1%")
            with ProxyProc(*args, cache=redis_server.url) as a, ProxyProc(*args, cache=redis_server.url) as b:
                status, _, body = a.post(req, target=slow.url)
                assert status == 200 and len(slow.requests) == 1
                status, _, body_b = b.post(req, target=slow.url)
                assert status == 200 and body_b == body and len(slow.requests) == 1   # B: from Redis
                assert b.metrics()["ocsp_proxy_cache_hits_total"] == 1
                key = next(iter(redis_server.client.scan_iter(RedisCache.PREFIX + "entry:*")))
                pttl = redis_server.client.pttl(key) / 1000
                assert 300 + rules.KEEP_EXPIRED - 30 < pttl <= 300 + rules.KEEP_EXPIRED   # nextUpdate-bound
                time.sleep(9)               # refresh due 3 s after each thisUpdate: two rounds at least
                ma, mb = a.metrics(), b.metrics()
                ok = ma["ocsp_proxy_refreshes_total{result=ok}"] + mb["ocsp_proxy_refreshes_total{result=ok}"]
                dup = (ma["ocsp_proxy_refreshes_total{result=unchanged}"]
                       + mb["ocsp_proxy_refreshes_total{result=unchanged}"])
                assert ok >= 2
                assert dup == 0                             # never two proxies on one refresh
                assert len(slow.requests) - 1 <= ok + 1     # one upstream request per refresh (+1 in flight)
                fresh = wait_for(lambda: a.post(req, target=slow.url)[2] != body, timeout=5)
                assert fresh                                # both serve the refreshed answer
                # the same answer from both (a refresh may land between two reads, and each
                # proxy trusts its in-memory copy for MEMO_TTL: ask until one read agrees)
                assert wait_for(lambda: b.post(req, target=slow.url)[2] == a.post(req, target=slow.url)[2],
                                timeout=10)
    finally:
        upstream.stop()
