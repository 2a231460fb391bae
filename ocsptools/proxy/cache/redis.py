"""The Redis cache backend (``redis://host:port/db``): several proxies on several machines share
it; entries expire by themselves (PXAT), a lock key lets one proxy refresh, a schema key guards
the migration of what earlier versions stored."""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, Iterator, List, Optional

from ... import life
from ...errors import UsageError
from .. import rules
from ..entry import Entry, migrated
from .base import SCHEMA_VERSION, Cache


_UNLOCK_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisCache(Cache):
    """Entries as JSON strings with PXAT = end + KEEP_EXPIRED; sorted sets of due times, thisUpdates
    and ends (``valid_until``)."""

    PREFIX = "ocsp-proxy:"

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url
        try:
            import redis  # noqa: WPS433 (optional dependency)
        except ImportError:
            raise UsageError(f"{url}: the redis Python package is not installed "
                             f"(pip install 'ocsptools[redis]')") from None
        self._redis = redis
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._unlock = self.client.register_script(_UNLOCK_SCRIPT)
        self.due_key = self.PREFIX + "due"
        self.age_key = self.PREFIX + "this_update"
        self.next_key = self.PREFIX + "valid_until"
        self.sets = (self.due_key, self.age_key, self.next_key)

    def _k(self, key: str) -> str:
        return self.PREFIX + "entry:" + key

    def migrate(self, now: float) -> None:
        """Bring entries an earlier version wrote up to date (``migrated``: entries without
        ``valid_until`` are due at NOW), once per Redis database: the first proxy to start does it
        while holding the schema key."""
        schema = self.PREFIX + "schema"
        if self._call("read", self.client.get, schema) == str(SCHEMA_VERSION).encode():
            return
        if not self._call("lock", self.client.set, schema, b"migrating", nx=True, ex=300):
            return                                          # another proxy is at it
        names = self._call("read", lambda: list(self.client.scan_iter(self.PREFIX + "entry:*", count=500)))
        for name in names:
            raw = self._call("read", self.client.get, name)
            if not raw:
                continue
            entry = Entry.from_json(migrated(raw, now))
            pipe = self.client.pipeline()
            pipe.set(name, entry.to_json(), keepttl=True)
            pipe.zadd(self.due_key, {entry.key: entry.due})
            pipe.zadd(self.next_key, {entry.key: entry.valid_until})
            self._call("write", pipe.execute)
        self._call("write", self.client.delete, self.PREFIX + "next_update")   # the old index
        self._call("write", self.client.set, schema, str(SCHEMA_VERSION))

    def _call(self, action: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self._redis.RedisError as exc:
            raise self.error(action, exc) from None

    def get(self, key: str) -> Optional[Entry]:
        raw = self._call("read", self.client.get, self._k(key))
        return Entry.from_json(raw) if raw else None

    def put(self, entry: Entry) -> bool:
        """Optimistic transaction (WATCH/MULTI): stored only if ``life.newer`` than the entry
        there, decided here in Python (the one rule), never in a Lua copy of it."""
        name = self._k(entry.key)
        pxat = int(rules.keep_until(entry.valid_until) * 1000)

        def attempt() -> bool:
            with self.client.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(name)
                        raw = pipe.get(name)
                        if raw and life.newer(entry.version, Entry.from_json(raw).version) is not True:
                            pipe.unwatch()
                            return False
                        pipe.multi()
                        pipe.set(name, entry.to_json(), pxat=pxat)
                        pipe.zadd(self.due_key, {entry.key: entry.due})
                        pipe.zadd(self.age_key, {entry.key: entry.this_update})
                        pipe.zadd(self.next_key, {entry.key: entry.valid_until})
                        pipe.execute()
                        return True
                    except self._redis.WatchError:
                        continue
        return bool(self._call("write", attempt))

    def reschedule(self, key: str, due: float, failures: int) -> None:
        """Optimistic transaction (WATCH/MULTI): the JSON is rewritten in Python, never by Lua's
        cjson, which would round the times to 14 digits."""
        name = self._k(key)

        def attempt() -> None:
            with self.client.pipeline() as pipe:
                for _ in range(10):
                    try:
                        pipe.watch(name)
                        raw = pipe.get(name)
                        pipe.multi()
                        if raw:
                            entry = replace(Entry.from_json(raw), due=due, failures=failures)
                            pipe.set(name, entry.to_json(), keepttl=True)
                            pipe.zadd(self.due_key, {key: due})
                        else:
                            for zset in self.sets:
                                pipe.zrem(zset, key)
                        pipe.execute()
                        return
                    except self._redis.WatchError:
                        continue
        self._call("write", attempt)

    def due(self, now: float, limit: int = 100) -> List[str]:
        keys = self._call("read", self.client.zrangebyscore, self.due_key, "-inf", now, 0, limit)
        return [k.decode() if isinstance(k, bytes) else k for k in keys]

    def delete(self, key: str) -> bool:
        pipe = self.client.pipeline()
        pipe.delete(self._k(key))
        for name in self.sets:
            pipe.zrem(name, key)
        res = self._call("write", pipe.execute)
        return bool(res[0])

    def _all(self) -> Iterator[Entry]:
        for name in self._call("read", lambda: list(self.client.scan_iter(self.PREFIX + "entry:*", count=500))):
            raw = self._call("read", self.client.get, name)
            if raw:
                yield Entry.from_json(raw)

    def purge_serial(self, serial_hex: str) -> List[str]:
        keys = [e.key for e in self._all() if e.serial == serial_hex.upper()]
        for key in keys:
            self.delete(key)
        return keys

    def entries(self) -> Iterator[Entry]:
        return iter(sorted(self._all(), key=lambda e: e.this_update))

    def lock(self, key: str, token: str, ttl: float, now: float) -> bool:
        return bool(self._call("lock", self.client.set, self.PREFIX + "lock:" + key, token,
                               nx=True, px=max(1, int(ttl * 1000))))

    def unlock(self, key: str, token: str) -> None:
        self._call("unlock", self._unlock, keys=[self.PREFIX + "lock:" + key], args=[token])

    def sweep(self, now: float) -> int:
        # entries expire by themselves (PXAT); drop due-set members whose entry is gone
        gone = 0
        for key in self._call("read", self.client.zrangebyscore, self.due_key, "-inf", "+inf"):
            key = key.decode() if isinstance(key, bytes) else key
            if not self._call("read", self.client.exists, self._k(key)):
                for name in self.sets:
                    self._call("write", self.client.zrem, name, key)
                gone += 1
        return gone

    def summary(self, now: float) -> Dict[str, float]:
        """Counted from the index sets by score, so entries Redis already dropped (PXAT =
        nextUpdate + KEEP_EXPIRED) are not counted while their index rows wait for the sweep."""
        cutoff = now - rules.KEEP_EXPIRED                   # live: valid_until > cutoff
        pipe = self.client.pipeline(transaction=False)
        pipe.zcount(self.next_key, f"({cutoff!r}", "+inf")
        pipe.zcount(self.next_key, f"({cutoff!r}", now)
        count, expired = self._call("read", pipe.execute)
        oldest: Optional[float] = None
        start = 0
        while count and oldest is None:                     # oldest thisUpdate of a live entry
            page = self._call("read", self.client.zrange, self.age_key, start, start + 99, withscores=True)
            if not page:
                break
            ends = self._call("read", self.client.zmscore, self.next_key, [m for m, _ in page])
            for (_, this_update), end in zip(page, ends):
                if end is not None and end > cutoff:
                    oldest = this_update
                    break
            start += 100
        return {"entries": count, "expired": expired,
                "oldest_age": (now - oldest) if oldest is not None else 0.0}

    def ping(self) -> None:
        self._call("reach", self.client.ping)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass
