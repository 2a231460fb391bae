"""The proxy's cache: ``open_cache(url)`` picks the backend, one ``Entry`` per CertID in each.

``sqlite:///absolute/path`` (``sqlite.py``: one file, WAL, survives restarts,
nothing to install) or ``redis://host:port/db`` (``redis.py``: several proxies
on several machines share it).  Both keep the contract of ``base.Cache``;
what is stored is ``proxy.entry.Entry``.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Optional

from ...errors import UsageError
from .base import SCHEMA_VERSION, Cache, CacheError
from .redis import RedisCache
from .sqlite import SqliteCache

__all__ = ["Cache", "CacheError", "RedisCache", "SCHEMA_VERSION", "SqliteCache", "open_cache"]


def open_cache(url: str, now: Optional[float] = None) -> Cache:
    """A cache backend from ``sqlite:///path`` or ``redis://host:port/db``, migrated (what an
    earlier version stored without ``valid_until`` is due at NOW, by default the wall clock's)."""
    parts = urllib.parse.urlsplit(url)
    if now is None:
        now = time.time()
    if parts.scheme == "sqlite":
        if parts.netloc not in ("", "localhost") or not parts.path or parts.path == "/":
            raise UsageError(f"{url}: use sqlite:///ABSOLUTE/PATH (three slashes, then the file)")
        cache: Cache = SqliteCache(urllib.parse.unquote(parts.path), url)
        cache.migrate(now)
        return cache
    if parts.scheme in ("redis", "rediss", "unix"):
        if parts.scheme != "unix" and not parts.hostname:
            raise UsageError(f"{url}: use redis://HOST:PORT/DB")
        cache = RedisCache(url)
        try:
            cache.migrate(now)
        except CacheError:
            pass                    # unreachable now: the proxy reports it; entries still read
        return cache
    raise UsageError(f"{url}: unknown cache; use sqlite:///PATH or redis://HOST:PORT/DB")
