"""The sqlite cache backend (``sqlite:///path``): one file in WAL mode that survives restarts and
needs nothing installed, its schema versioned with ``PRAGMA user_version`` and migrated in place."""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import replace
from typing import Dict, Iterator, List, Optional

from ... import life
from .. import rules
from ..entry import Entry, migrated
from .base import SCHEMA_VERSION, Cache, CacheError

#: The schema of version ``SCHEMA_VERSION`` (version 0 had no ``valid_until`` column).
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


class SqliteCache(Cache):
    """One sqlite file in WAL mode; one connection per thread.  ``open_cache`` migrates it."""

    def __init__(self, path: str, url: str) -> None:
        self.path = path
        self.url = url
        self._local = threading.local()
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            raise CacheError(f"{url}: directory {directory} does not exist; create it (writable by "
                             f"the proxy's user) or choose another --cache", path=url)
        try:
            self._conn()
        except sqlite3.Error as exc:
            raise self.error("open the cache", exc) from None

    def migrate(self, now: float) -> None:
        """Create the schema, or bring a database an earlier version wrote up to date, in place
        and in one transaction (``migrated``: entries without ``valid_until`` are due at NOW)."""
        try:
            self._migrate(self._conn(), now)
        except sqlite3.Error as exc:
            raise self.error("open the cache", exc) from None

    def _migrate(self, conn: sqlite3.Connection, now: float) -> None:
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
            raise self.error("read", exc) from None
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
            raise self.error("write", exc) from None

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
            raise self.error("write", exc) from None

    def due(self, now: float, limit: int = 100) -> List[str]:
        try:
            rows = self._conn().execute("SELECT key FROM entries WHERE due<=? ORDER BY due LIMIT ?",
                                        (now, limit)).fetchall()
        except sqlite3.Error as exc:
            raise self.error("read", exc) from None
        return [r[0] for r in rows]

    def delete(self, key: str) -> bool:
        try:
            return self._conn().execute("DELETE FROM entries WHERE key=?", (key,)).rowcount > 0
        except sqlite3.Error as exc:
            raise self.error("write", exc) from None

    def purge_serial(self, serial_hex: str) -> List[str]:
        conn = self._conn()
        try:
            keys = [r[0] for r in conn.execute("SELECT key FROM entries WHERE serial=?",
                                               (serial_hex.upper(),)).fetchall()]
            for key in keys:
                conn.execute("DELETE FROM entries WHERE key=?", (key,))
        except sqlite3.Error as exc:
            raise self.error("write", exc) from None
        return keys

    def entries(self) -> Iterator[Entry]:
        try:
            rows = self._conn().execute("SELECT data FROM entries ORDER BY this_update").fetchall()
        except sqlite3.Error as exc:
            raise self.error("read", exc) from None
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
            raise self.error("lock", exc) from None

    def unlock(self, key: str, token: str) -> None:
        try:
            self._conn().execute("DELETE FROM locks WHERE key=? AND token=?", (key, token))
        except sqlite3.Error as exc:
            raise self.error("unlock", exc) from None

    def sweep(self, now: float) -> int:
        try:
            return self._conn().execute("DELETE FROM entries WHERE keep_until<=?", (now,)).rowcount
        except sqlite3.Error as exc:
            raise self.error("write", exc) from None

    def summary(self, now: float) -> Dict[str, float]:
        try:
            count, expired, oldest = self._conn().execute(
                "SELECT COUNT(*), COALESCE(SUM(valid_until<=?), 0), MIN(this_update) FROM entries "
                "WHERE keep_until>?", (now, now)).fetchone()       # as Redis: not the ones past keep
        except sqlite3.Error as exc:
            raise self.error("read", exc) from None
        return {"entries": count, "expired": expired,
                "oldest_age": (now - oldest) if oldest is not None else 0.0}

    def ping(self) -> None:
        try:
            self._conn().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise self.error("read", exc) from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
