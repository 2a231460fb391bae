"""The cache backends (sqlite file, real redis-server) and two proxies sharing Redis."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

import pki as pkimod
from ocsptools.errors import UsageError
from ocsptools.proxy import rules
from ocsptools.proxy.cache import (SCHEMA_VERSION, CacheError, Entry, RedisCache, SqliteCache,
                                   describe, open_cache)
from conftest import run_cmd
from test_proxy_support import ProxyProc, RedisServer, received, request_der, wait_for


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def make_entry(key="k1", serial="AB12", this_update=None, next_update=None, produced_at=None, due=None,
               valid_until=None):
    now = time.time()
    tu = now - 60 if this_update is None else this_update
    nu = now + 3600 if next_update is None else next_update
    return Entry(key=key, url="http://127.0.0.1:1/", hash_alg="sha1", name_hash="00" * 20,
                 key_hash="11" * 20, serial=serial, request=b"\x30\x00", response=b"\x30\x03\x0a\x01\x00",
                 cert_status="good", this_update=tu, next_update=nu,
                 produced_at=tu if produced_at is None else produced_at, fetched_at=now,
                 valid_until=nu if valid_until is None else valid_until,
                 due=now + 1800 if due is None else due)


@pytest.fixture(params=["sqlite", "redis"])
def cache(request, tmp_path):
    if request.param == "sqlite":
        c = open_cache(f"sqlite:///{tmp_path}/c.sqlite")
    else:
        server = request.getfixturevalue("redis_server")
        server.client.flushdb()
        c = open_cache(server.url)
    yield c
    c.close()


def test_put_only_newer_and_get(cache):
    e = make_entry()
    assert cache.get("k1") is None
    assert cache.put(e) is True
    assert cache.get("k1") == e
    assert cache.put(e) is False                                   # as new: no change
    older = replace(e, this_update=e.this_update - 10, response=b"old")
    assert cache.put(older) is False and cache.get("k1").response == e.response
    tie_newer = replace(e, produced_at=e.produced_at + 1, response=b"tie")
    assert cache.put(tie_newer) is True and cache.get("k1").response == b"tie"
    newer = replace(e, this_update=e.this_update + 10, response=b"new")
    assert cache.put(newer) is True and cache.get("k1").response == b"new"


def test_due_reschedule_delete_purge_summary(cache):
    now = time.time()
    a = make_entry("a", serial="01", due=now - 5)
    b = make_entry("b", serial="02", due=now + 100, next_update=now - 1, this_update=now - 7200)
    c = make_entry("c", serial="01", due=now + 100)
    for e in (a, b, c):
        assert cache.put(e)
    assert cache.due(now) == ["a"]
    cache.reschedule("a", now + 50, 3)
    assert cache.due(now) == [] and cache.get("a").failures == 3 and cache.get("a").due == now + 50
    assert cache.due(now + 60) == ["a"]
    s = cache.summary(now)
    assert s["entries"] == 3 and s["expired"] == 1 and 7199 < s["oldest_age"] < 7300
    assert sorted(cache.purge_serial("01")) == ["a", "c"]
    assert cache.get("a") is None and cache.get("c") is None
    assert [e.key for e in cache.entries()] == ["b"]
    assert cache.delete("b") is True and cache.delete("b") is False
    assert cache.summary(now)["entries"] == 0


def test_lock_is_exclusive_and_expires(cache):
    now = time.time()
    assert cache.lock("k", "t1", 0.3, now)
    assert not cache.lock("k", "t2", 0.3, now)
    cache.unlock("k", "t2")                                          # not the holder: no effect
    assert not cache.lock("k", "t2", 0.3, now)
    cache.unlock("k", "t1")
    assert cache.lock("k", "t2", 0.3, now)
    time.sleep(0.4)
    assert cache.lock("k", "t3", 0.3, now + 0.4)                     # the holder died: the lock lapses


def test_sqlite_survives_reopen_and_uses_wal(tmp_path):
    url = f"sqlite:///{tmp_path}/c.sqlite"
    c = open_cache(url)
    e = make_entry()
    c.put(e)
    c.close()
    again = open_cache(url)
    assert again.get("k1") == e
    assert again._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    now = time.time()
    again.put(make_entry("old", next_update=now - rules.KEEP_EXPIRED - 1, this_update=now - 2 * rules.KEEP_EXPIRED))
    assert again.sweep(now) == 1 and again.get("old") is None and again.get("k1") is not None


def test_redis_ttl_is_tied_to_the_end_of_the_answer(redis_server):
    redis_server.client.flushdb()
    c = open_cache(redis_server.url)
    now = time.time()
    for hours, signer_hours in ((2, None), (30, None), (30, 3)):
        end = now + (signer_hours or hours) * 3600
        e = make_entry(f"t{hours}-{signer_hours}", next_update=now + hours * 3600, valid_until=end)
        c.put(e)
        pttl = redis_server.client.pttl(RedisCache.PREFIX + "entry:" + e.key) / 1000
        expected = end + rules.KEEP_EXPIRED - now
        assert abs(pttl - expected) < 5, (hours, pttl, expected)


def test_expired_counts_the_signers_end_not_next_update(cache):
    now = time.time()
    cache.put(make_entry("a", next_update=now + 86400, valid_until=now - 1))     # signer dead
    cache.put(make_entry("b", next_update=now + 86400))
    assert cache.summary(now)["expired"] == 1
    info = describe(list(cache.entries()), now)
    assert info["valid"] == 1 and info["next_expiry"] == cache.get("b").valid_until


def test_a_database_written_by_the_previous_version_is_migrated_in_place(tmp_path):
    """tests/fixtures/proxy/cache-v0.sqlite was written by the cache of commit db21237 (entries
    with issuer and leaf DER, no valid_until column, user_version 0)."""
    path = tmp_path / "c.sqlite"
    shutil.copy(Path(__file__).parent / "fixtures" / "proxy" / "cache-v0.sqlite", path)
    before = sqlite3.connect(path)
    assert before.execute("PRAGMA user_version").fetchone()[0] == 0
    old_rows = before.execute("SELECT key, data FROM entries ORDER BY key").fetchall()
    before.close()
    assert len(old_rows) == 3 and all('"issuer"' in data for _, data in old_rows)
    started = time.time()
    c = open_cache(f"sqlite:///{path}")
    entries = {e.key: e for e in c.entries()}
    assert len(entries) == 3
    for key, data in old_rows:
        old, new = json.loads(data), entries[key]
        assert new.response == base64.b64decode(old["response"]) and new.serial == old["serial"]
        assert new.valid_until == old["next_update"]            # until a refresh learns better
        assert new.due <= started + 1                           # ... which is due at once
        assert new.failures == old["failures"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert not any('"issuer"' in d or '"leaf"' in d
                   for (d,) in conn.execute("SELECT data FROM entries").fetchall())
    assert conn.execute("SELECT COUNT(*) FROM entries WHERE valid_until IS NULL").fetchone()[0] == 0
    conn.close()
    assert sorted(c.due(time.time())) == sorted(entries)
    # a second opening migrates nothing again (a rescheduled entry stays rescheduled)
    c.reschedule(next(iter(entries)), started + 9999, 0)
    c.close()
    again = open_cache(f"sqlite:///{path}")
    assert again.get(next(iter(entries))).due == started + 9999
    again.close()


def test_redis_entries_written_by_the_previous_version_are_migrated(redis_server):
    r = redis_server.client
    r.flushdb()
    now = time.time()
    old = json.loads(make_entry("old1", due=now + 5000).to_json())
    del old["valid_until"]
    old.update(issuer=base64.b64encode(b"issuer-der").decode(), leaf=None)
    r.set(RedisCache.PREFIX + "entry:old1", json.dumps(old))
    r.zadd(RedisCache.PREFIX + "due", {"old1": now + 5000})
    r.zadd(RedisCache.PREFIX + "next_update", {"old1": old["next_update"]})
    c = open_cache(redis_server.url)
    assert c.due(now + 1) == ["old1"]
    raw = json.loads(r.get(RedisCache.PREFIX + "entry:old1"))
    assert "issuer" not in raw and raw["valid_until"] == old["next_update"]
    assert r.get(RedisCache.PREFIX + "schema") == str(SCHEMA_VERSION).encode()
    assert not r.exists(RedisCache.PREFIX + "next_update")
    assert c.summary(now)["entries"] == 1


def test_cache_urls_and_errors(tmp_path):
    for bad in ("sqlite://relative", "memcached://x", "redis://", "sqlite:///"):
        with pytest.raises(UsageError):
            open_cache(bad)
    with pytest.raises(CacheError, match="does not exist"):
        open_cache(f"sqlite:///{tmp_path}/missing/dir/c.sqlite")
    port = pkimod.free_port()
    c = open_cache(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(CacheError, match=f"127.0.0.1:{port}"):
        c.get("x")


def test_describe_counts():
    now = time.time()
    entries = [make_entry("a"), make_entry("b", next_update=now - 1)]
    d = describe(entries, now)
    assert d["entries"] == 2 and d["valid"] == 1 and d["expired"] == 1 and d["by_status"] == {"good": 2}


def slow_relay_to(upstream, delay: float):
    """A FakeResponder handler that relays to the real responder UPSTREAM, answering DELAY s late."""
    import urllib.request
    from fake_responder import Answer

    def relay(r):
        if r.method == "GET":
            real = urllib.request.Request(upstream.url + r.path.lstrip("/"))
        else:
            real = urllib.request.Request(upstream.url, data=r.body,
                                          headers={"Content-Type": "application/ocsp-request"})
        body = urllib.request.urlopen(real, timeout=10).read()
        return Answer(body=body, delay=delay)
    return relay


def test_the_redis_lock_lets_one_of_two_proxies_refresh(pki, redis_server, tmp_path):
    """Two proxies (two Redis connections) refresh the same due entry at the same instant, with a
    responder that takes 1 s: without SET NX PX both would fetch it."""
    import asyncio
    import logging
    from fake_responder import FakeResponder
    from ocsptools.openssl import OpenSSL
    from ocsptools.proxy import issuers
    from ocsptools.proxy.refresher import Refresher
    from ocsptools.proxy.service import Proxy, Settings
    redis_server.client.flushdb()
    issuer_dir = tmp_path / "issuer"
    issuer_dir.mkdir()
    shutil.copy(pki.inter_cert, issuer_dir / "inter.pem")
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


def test_two_proxies_share_redis_with_one_refresher(pki, redis_server, tmp_path):
    """Two `serve` processes on one Redis behind a slow responder (1.5 s, longer than the
    refresher's 1 s tick): B answers from what A stored, both refresh under one lock (the lock
    itself is proven deterministically by test_the_redis_lock_lets_one_of_two_proxies_refresh),
    and both serve the refreshed answer."""
    from fake_responder import FakeResponder
    redis_server.client.flushdb()
    issuer_dir = tmp_path / "issuer"
    issuer_dir.mkdir()
    shutil.copy(pki.inter_cert, issuer_dir / "inter.pem")
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


def entries_around_keep(now):
    """A valid entry, one past nextUpdate (kept, never served) and one whose keep ends in 1 s
    (Redis drops it by itself: PXAT); the dying one is also the oldest."""
    return [make_entry("live", serial="01", this_update=now - 600),
            make_entry("kept", serial="02", this_update=now - 7200, next_update=now - 60),
            make_entry("dying", serial="03", this_update=now - 3 * rules.KEEP_EXPIRED,
                       next_update=now - rules.KEEP_EXPIRED + 1.0)]


def test_summary_leaves_out_entries_past_their_keep(cache):
    now = time.time()
    for e in entries_around_keep(now):
        assert cache.put(e)
    s = cache.summary(now)
    assert s["entries"] == 3 and s["expired"] == 2 and s["oldest_age"] > 2 * rules.KEEP_EXPIRED
    time.sleep(1.2)
    later = time.time()
    s = cache.summary(later)
    assert s["entries"] == 2 and s["expired"] == 1 and 7200 <= s["oldest_age"] < 7300
    if isinstance(cache, RedisCache):
        assert cache.get("dying") is None                               # Redis dropped it (PXAT)
        assert cache.client.zcard(cache.age_key) == 3                   # its index rows wait for the sweep
        assert cache.sweep(later) == 1 and cache.summary(later)["entries"] == 2


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
