"""The contract every cache backend keeps (``Cache``), its error (``CacheError``) and the version
of what backends store (``SCHEMA_VERSION``).

* ``put(entry)`` stores only a strictly newer answer (``life.newer``:
  thisUpdate, then producedAt), atomically; an entry is forgotten
  ``rules.KEEP_EXPIRED`` after it stops verifying (the Redis TTL is tied to
  that instant, never fixed);
* ``due(now)`` lists keys whose refresh (or retry after backoff) is due;
* ``lock(key, token, ttl)`` is held by one refresher at a time across every
  proxy sharing the cache (Redis ``SET NX PX``; a lock row in sqlite);
* ``migrate(now)`` brings what an earlier version stored up to date
  (``entry.migrated``), in place.

Every method may block: the server calls them from worker threads.  Errors
are ``CacheError`` (a StoreError) naming the cache URL.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional

from ...errors import StoreError
from ..entry import Entry

#: ``PRAGMA user_version`` of the sqlite schema, and the Redis ``schema`` key.  0: before the
#: effective life (no ``valid_until``; entries carried issuer and leaf DER).
SCHEMA_VERSION = 1


class CacheError(StoreError):
    """The cache cannot be read or written."""


class Cache:
    """What the proxy, the refresher and the cache tools ask of a backend."""

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
    def migrate(self, now: float) -> None: pass
    def close(self) -> None: pass

    def error(self, action: str, exc: BaseException) -> CacheError:
        """The CacheError saying this cache cannot ACTION (EXC's reason)."""
        return CacheError(f"{self.url}: cannot {action}: {exc}; check the cache (--cache)", path=self.url)
