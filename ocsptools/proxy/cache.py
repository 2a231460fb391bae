"""The proxy's cache: one ``Entry`` per CertID, in sqlite (default) or Redis.

``open_cache(url)`` takes ``sqlite:///absolute/path`` (one file, WAL, survives
restarts, nothing to install) or ``redis://host:port/db`` (several proxies on
several machines share it).  Both keep the same contract:

* ``put(entry)`` stores only a strictly newer answer (``life.newer``:
  thisUpdate, then producedAt), atomically; an entry is forgotten
  ``rules.KEEP_EXPIRED`` after it stops verifying (the Redis TTL is tied to
  that instant, never fixed);
* ``due(now)`` lists keys whose refresh (or retry after backoff) is due;
* ``lock(key, token, ttl)`` is held by one refresher at a time across every
  proxy sharing the cache (Redis ``SET NX PX``; a lock row in sqlite).

Every method may block: the server calls them from worker threads.  Errors
are ``CacheError`` (a StoreError) naming the cache URL.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, fields, replace
from typing import Dict, Iterator, List, Optional, Tuple

from .. import life
from ..errors import StoreError, UsageError
from . import rules


class CacheError(StoreError):
    """The cache cannot be read or written."""


_BYTES = ("request", "response")
#: What earlier versions stored in each entry and nothing reads: dropped when read.
_OBSOLETE = ("issuer", "leaf")


@dataclass(frozen=True)
class Entry:
    """One verified response and what the proxy needs to serve and refresh it."""

    key: str                  # CertID.key
    url: str                  # the responder it came from (refreshes go there)
    hash_alg: str
    name_hash: str            # hex
    key_hash: str             # hex
    serial: str               # hex, as CertID.serial_hex
    request: bytes            # the canonical request DER (sent again on refresh)
    response: bytes           # the verified response DER
    cert_status: str
    this_update: float
    next_update: float
    produced_at: Optional[float]
    fetched_at: float
    valid_until: float = 0.0  # when it stops verifying (``life``); an old entry: its nextUpdate
    due: float = 0.0          # when the refresher should look at it next
    failures: int = 0         # consecutive failed refreshes

    @property
    def version(self) -> Tuple[float, Optional[float]]:
        return (self.this_update, self.produced_at)

    def to_json(self) -> str:
        data = asdict(self)
        for name in _BYTES:
            if data[name] is not None:
                data[name] = base64.b64encode(data[name]).decode("ascii")
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text) -> "Entry":
        """An entry from its JSON, also as earlier versions wrote it (no ``valid_until``: its
        nextUpdate stands in until the next refresh; ``issuer``/``leaf``: ignored)."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for name in _BYTES:
            if data.get(name) is not None:
                data[name] = base64.b64decode(data[name])
        if not data.get("valid_until"):
            data["valid_until"] = data.get("next_update", 0.0)
        return cls(**data)


def migrated(text: str, now: float) -> str:
    """An entry's JSON as an earlier version stored it, rewritten for this one: the dead
    ``issuer``/``leaf`` dropped and, when it had no ``valid_until``, due for refresh at NOW
    (its signer's notAfter is learnt again from a fresh, verified answer)."""
    data = json.loads(text)
    stale = not data.get("valid_until")
    entry = Entry.from_json(text)
    if stale:
        entry = replace(entry, due=min(entry.due, now))
    return entry.to_json()


class Cache:
    url: str = ""

    def get(self, key: str) -> Optional[Entry]: raise NotImplementedError
    def put(self, entry: Entry) -> bool: raise NotImplementedError
    def reschedule(self, key: str, due: float, failures: int) -> None: raise NotImplementedError
    def due(self, now: float, limit: int = 100) -> List[str]: raise NotImplementedError
    def delete(self, key: str) -> bool: raise NotImplementedError
    def purge_serial(self, serial_hex: str) -> List[str]: raise NotImplementedError
    def entries(self) -> Iterator[Entry]: raise NotImplementedError
    def lock(self, key: str, token: str, ttl: float, now: float) -> bool: raise NotImplementedError
    def unlock(self, key: str, token: str) -> None: raise NotImplementedError
    def sweep(self, now: float) -> int: return 0
    def summary(self, now: float) -> Dict[str, float]: raise NotImplementedError
    def ping(self) -> None: raise NotImplementedError
    def close(self) -> None: pass

    def _err(self, action: str, exc: BaseException) -> CacheError:
        return CacheError(f"{self.url}: cannot {action}: {exc}; check the cache (--cache)", path=self.url)


# --------------------------------------------------------------------------
# sqlite
# --------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    serial TEXT NOT NULL,
    this_update REAL NOT NULL,
    next_update REAL NOT NULL,
    produced_at REAL,
    due REAL NOT NULL,
    keep_until REAL NOT NULL,
    data TEXT NOT NULL,
    valid_until REAL
);
CREATE INDEX IF NOT EXISTS entries_due ON entries(due);
CREATE INDEX IF NOT EXISTS entries_serial ON entries(serial);
CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, token TEXT NOT NULL, until REAL NOT NULL);
"""
#: ``PRAGMA user_version`` of the schema above.  0: before the effective life (no
#: ``valid_until`` column; entries carried issuer and leaf DER).
SCHEMA_VERSION = 1


class SqliteCache(Cache):
    """One sqlite file in WAL mode; one connection per thread."""

    def __init__(self, path: str, url: str) -> None:
        self.path = path
        self.url = url
        self._local = threading.local()
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            raise CacheError(f"{url}: directory {directory} does not exist; create it (writable by "
                             f"the proxy's user) or choose another --cache", path=url)
        try:
            conn = self._conn()
            self._migrate(conn)
        except sqlite3.Error as exc:
            raise self._err("open the cache", exc) from None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Create the schema, or bring a database an earlier version wrote up to date, in place
        and in one transaction (``migrated``)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                columns = {r[1] for r in conn.execute("PRAGMA table_info(entries)").fetchall()}
                if columns and "valid_until" not in columns:
                    conn.execute("ALTER TABLE entries ADD COLUMN valid_until REAL")
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                now = time.time()
                for key, data in conn.execute("SELECT key, data FROM entries").fetchall():
                    entry = Entry.from_json(migrated(data, now))
                    conn.execute("UPDATE entries SET data=?, due=?, valid_until=?, keep_until=? "
                                 "WHERE key=?", (entry.to_json(), entry.due, entry.valid_until,
                                                 rules.keep_until(entry.valid_until), key))
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> Optional[Entry]:
        try:
            row = self._conn().execute("SELECT data FROM entries WHERE key=?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise self._err("read", exc) from None
        return Entry.from_json(row[0]) if row else None

    def put(self, entry: Entry) -> bool:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT this_update, produced_at FROM entries WHERE key=?",
                                   (entry.key,)).fetchone()
                if row is not None and life.newer(entry.version, (row[0], row[1])) is not True:
                    conn.execute("ROLLBACK")
                    return False
                conn.execute(
                    "INSERT OR REPLACE INTO entries(key, serial, this_update, next_update, "
                    "produced_at, due, keep_until, data, valid_until) VALUES (?,?,?,?,?,?,?,?,?)",
                    (entry.key, entry.serial, entry.this_update, entry.next_update,
                     entry.produced_at, entry.due,
                     rules.keep_until(entry.valid_until), entry.to_json(), entry.valid_until))
                conn.execute("COMMIT")
                return True
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._err("write", exc) from None

    def reschedule(self, key: str, due: float, failures: int) -> None:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT data FROM entries WHERE key=?", (key,)).fetchone()
            if row is not None:
                entry = replace(Entry.from_json(row[0]), due=due, failures=failures)
                conn.execute("UPDATE entries SET due=?, data=? WHERE key=?", (due, entry.to_json(), key))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._err("write", exc) from None

    def due(self, now: float, limit: int = 100) -> List[str]:
        try:
            rows = self._conn().execute("SELECT key FROM entries WHERE due<=? ORDER BY due LIMIT ?",
                                        (now, limit)).fetchall()
        except sqlite3.Error as exc:
            raise self._err("read", exc) from None
        return [r[0] for r in rows]

    def delete(self, key: str) -> bool:
        try:
            return self._conn().execute("DELETE FROM entries WHERE key=?", (key,)).rowcount > 0
        except sqlite3.Error as exc:
            raise self._err("write", exc) from None

    def purge_serial(self, serial_hex: str) -> List[str]:
        conn = self._conn()
        try:
            keys = [r[0] for r in conn.execute("SELECT key FROM entries WHERE serial=?",
                                               (serial_hex.upper(),)).fetchall()]
            for key in keys:
                conn.execute("DELETE FROM entries WHERE key=?", (key,))
        except sqlite3.Error as exc:
            raise self._err("write", exc) from None
        return keys

    def entries(self) -> Iterator[Entry]:
        try:
            rows = self._conn().execute("SELECT data FROM entries ORDER BY this_update").fetchall()
        except sqlite3.Error as exc:
            raise self._err("read", exc) from None
        for row in rows:
            yield Entry.from_json(row[0])

    def lock(self, key: str, token: str, ttl: float, now: float) -> bool:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM locks WHERE key=? AND until<=?", (key, now))
            got = conn.execute("INSERT OR IGNORE INTO locks(key, token, until) VALUES (?,?,?)",
                               (key, token, now + ttl)).rowcount > 0
            conn.execute("COMMIT")
            return got
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._err("lock", exc) from None

    def unlock(self, key: str, token: str) -> None:
        try:
            self._conn().execute("DELETE FROM locks WHERE key=? AND token=?", (key, token))
        except sqlite3.Error as exc:
            raise self._err("unlock", exc) from None

    def sweep(self, now: float) -> int:
        try:
            return self._conn().execute("DELETE FROM entries WHERE keep_until<=?", (now,)).rowcount
        except sqlite3.Error as exc:
            raise self._err("write", exc) from None

    def summary(self, now: float) -> Dict[str, float]:
        try:
            count, expired, oldest = self._conn().execute(
                "SELECT COUNT(*), COALESCE(SUM(valid_until<=?), 0), MIN(this_update) FROM entries "
                "WHERE keep_until>?", (now, now)).fetchone()       # as Redis: not the ones past keep
        except sqlite3.Error as exc:
            raise self._err("read", exc) from None
        return {"entries": count, "expired": expired,
                "oldest_age": (now - oldest) if oldest is not None else 0.0}

    def ping(self) -> None:
        try:
            self._conn().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise self._err("read", exc) from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------

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

    def migrate(self) -> None:
        """Bring entries an earlier version wrote up to date (``migrated``), once per Redis
        database: the first proxy to start does it while holding the schema key."""
        schema = self.PREFIX + "schema"
        if self._call("read", self.client.get, schema) == str(SCHEMA_VERSION).encode():
            return
        if not self._call("lock", self.client.set, schema, b"migrating", nx=True, ex=300):
            return                                          # another proxy is at it
        now = time.time()
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
            raise self._err(action, exc) from None

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


def open_cache(url: str) -> Cache:
    """A cache backend from ``sqlite:///path`` or ``redis://host:port/db``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc not in ("", "localhost") or not parts.path or parts.path == "/":
            raise UsageError(f"{url}: use sqlite:///ABSOLUTE/PATH (three slashes, then the file)")
        return SqliteCache(urllib.parse.unquote(parts.path), url)
    if parts.scheme in ("redis", "rediss", "unix"):
        if parts.scheme != "unix" and not parts.hostname:
            raise UsageError(f"{url}: use redis://HOST:PORT/DB")
        cache = RedisCache(url)
        try:
            cache.migrate()
        except CacheError:
            pass                    # unreachable now: the proxy reports it; entries still read
        return cache
    raise UsageError(f"{url}: unknown cache; use sqlite:///PATH or redis://HOST:PORT/DB")


def describe(entries: List[Entry], now: float) -> Dict[str, object]:
    """Counts and ages for ``stats`` and /metrics (pure)."""
    valid = [e for e in entries if rules.usable(e.valid_until, now)]
    oldest = min((e.this_update for e in entries), default=None)
    return {
        "entries": len(entries),
        "valid": len(valid),
        "expired": len(entries) - len(valid),
        "oldest_age": (now - oldest) if oldest is not None else 0.0,
        "next_expiry": min((e.valid_until for e in valid), default=None),
        "by_status": {s: sum(1 for e in entries if e.cert_status == s)
                      for s in sorted({e.cert_status for e in entries})},
    }
