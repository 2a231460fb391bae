"""proxy/cache/: the backends (sqlite file, real redis-server) keep one contract; each migrates
what the previous version stored; open_cache's URLs."""

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
from ocsptools.proxy.cache import SCHEMA_VERSION, CacheError, RedisCache, open_cache
from ocsptools.proxy.entry import describe
from test_proxy_support import entries_around_keep, make_entry, redis_server  # noqa: F401 (a fixture)


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
    with sqlite3.connect(tmp_path / "c.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
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
    c = open_cache(f"sqlite:///{path}", now=started)
    entries = {e.key: e for e in c.entries()}
    assert len(entries) == 3
    for key, data in old_rows:
        old, new = json.loads(data), entries[key]
        assert new.response == base64.b64decode(old["response"]) and new.serial == old["serial"]
        assert new.valid_until == old["next_update"]            # until a refresh learns better
        assert new.due == min(old["due"], started)              # ... which is due at once
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


@pytest.mark.parametrize("url", ["sqlite://relative", "memcached://x", "redis://", "sqlite:///"])
def test_unusable_cache_urls(url):
    with pytest.raises(UsageError):
        open_cache(url)


def test_a_missing_directory_and_an_unreachable_redis_are_cache_errors(tmp_path):
    with pytest.raises(CacheError, match="does not exist"):
        open_cache(f"sqlite:///{tmp_path}/missing/dir/c.sqlite")
    port = pkimod.free_port()
    c = open_cache(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(CacheError, match=f"127.0.0.1:{port}"):
        c.get("x")


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
