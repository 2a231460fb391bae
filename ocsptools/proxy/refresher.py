"""The background refresher: each cached answer renewed at ``--refresh-at`` of its effective life.

Every ``REFRESH_TICK`` seconds the cache lists the entries due (``Cache.due``); each is refreshed
under the cache's lock, so one proxy of several sharing Redis does it.  What a refresh does is
decided first (``plan``, pure: not due, not allowed, or ask these responders for this CertID),
then done: a verified, newer answer replaces the entry; a failure, a refusal or an answer no
newer reschedules it with exponential backoff (``rules.retry_at``) while the entry is served
as long as it is valid.  Issuers come only from ``--allow-from``, never from the cache.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Set, Tuple, Union

from ..codec import der
from ..errors import FetchError, OcspToolsError
from ..staple import Certificate
from . import rules
from .cache import CacheError
from .entry import Entry
from .issuers import Known
from .upstream import Unverifiable, ask_first, check, error_kind, make_entry

if TYPE_CHECKING:
    from .service import Proxy

REFRESH_TICK = 1.0
REFRESH_CONCURRENCY = 4
#: Entries past their keep (``rules.keep_until``) are swept this often.
SWEEP_EVERY = 600.0
#: Due entries taken per tick.
DUE_BATCH = 200


@dataclass(frozen=True)
class Ask:
    """Refresh by asking URLS for CID, verified for ISSUER (and LEAF when known)."""

    cid: der.CertID
    issuer: Certificate
    leaf: Optional[Certificate]
    urls: List[str]


@dataclass(frozen=True)
class NotAllowed:
    """No trusted issuer or no allowed responder: back off, keep serving while valid."""

    why: str


def cert_id(entry: Entry) -> der.CertID:
    return der.CertID(entry.hash_alg, bytes.fromhex(entry.name_hash), bytes.fromhex(entry.key_hash),
                      int(entry.serial, 16))


def plan(entry: Entry, known: Known, now: float) -> Union[None, NotAllowed, Ask]:
    """What refreshing ENTRY at NOW under the allow-list KNOWN means (None: not due)."""
    if entry.due > now:
        return None                                   # someone refreshed it meanwhile
    cid = cert_id(entry)
    issuer = known.issuer_for(cid)                    # never the issuer read from the cache
    if issuer is None:
        return NotAllowed("its issuer is not under --allow-from")
    urls = list(dict.fromkeys(([entry.url] if known.allowed(entry.url) else [])
                              + known.routes_for(issuer, cid.serial)))
    if not urls:
        return NotAllowed(f"its responder {entry.url} is not allowed (--allow / --allow-from)")
    return Ask(cid, issuer, known.leaf_for(issuer, cid.serial), urls)


def serving(entry: Entry, now: float) -> str:
    """What clients get for ENTRY meanwhile (for the log)."""
    return ("still valid until " + rules.http_date(entry.valid_until)
            if rules.usable(entry.valid_until, now) else "EXPIRED, clients get tryLater")


class Refresher:
    """Refreshes the entries of PROXY's cache, with its allow-list, clock, executor and metrics."""

    def __init__(self, proxy: "Proxy") -> None:
        self.proxy = proxy
        self.refreshing: Set[str] = set()
        self.stopped = asyncio.Event()
        self.last_sweep = 0.0

    def stop(self) -> None:
        self.stopped.set()

    async def run(self) -> None:
        """Tick until ``stop()``."""
        sem = asyncio.Semaphore(REFRESH_CONCURRENCY)
        while not self.stopped.is_set():
            try:
                await asyncio.wait_for(self.stopped.wait(), REFRESH_TICK)
                break
            except asyncio.TimeoutError:
                pass
            await self.tick(sem)

    async def tick(self, sem: asyncio.Semaphore) -> List[str]:
        """Sweep if it is time, start a refresh of each due entry; the keys started."""
        p = self.proxy
        now = p.clock()
        try:
            if now - self.last_sweep > SWEEP_EVERY:
                self.last_sweep = now
                await p.io(p.cache.sweep, now)
            keys = await p.io(p.cache.due, now, DUE_BATCH)
        except CacheError as exc:
            p.metrics.cache_errors += 1
            p.log.error(str(exc))
            return []
        started = []
        for key in keys:
            if key in self.refreshing:
                continue
            self.refreshing.add(key)
            started.append(key)
            asyncio.get_running_loop().create_task(self._guarded(key, sem))
        return started

    async def _guarded(self, key: str, sem: asyncio.Semaphore) -> None:
        try:
            async with sem:
                await self.refresh_one(key)
        except Exception as exc:
            self.proxy.log.error(f"refresh of {key[:12]} failed unexpectedly: {type(exc).__name__}: {exc}")
        finally:
            self.refreshing.discard(key)

    async def refresh_one(self, key: str) -> Optional[str]:
        """Refresh one due entry if this proxy gets its lock.  Returns the outcome (for tests/logs):
        None (not ours, not due, gone), "ok", "unchanged", "failed" or "not allowed"."""
        p = self.proxy
        token = uuid.uuid4().hex
        ttl = p.settings.http.timeout * 3 + 30
        if not await p.io(p.cache.lock, key, token, ttl, p.clock()):
            return None
        try:
            entry = await p.io(p.cache.get, key)
            if entry is None:
                await p.io(p.cache.delete, key)               # gone (TTL): drop its index rows
                return None
            todo = plan(entry, p.known, p.clock())            # one allow-list for this refresh
            if todo is None:
                return None
            if isinstance(todo, NotAllowed):
                return await self._refused(entry, todo.why)
            return await self._ask(entry, todo)
        except CacheError as exc:
            p.metrics.cache_errors += 1
            p.log.error(str(exc))
            return None
        finally:
            try:
                await p.io(p.cache.unlock, key, token)
            except CacheError:
                pass

    async def _ask(self, entry: Entry, todo: Ask) -> str:
        p = self.proxy
        try:
            url, body = await p.io(ask_first, todo.urls, entry.request, p.settings.http)
            staple = await p.io(check, body, todo.cid, todo.issuer, todo.leaf, p.ossl, p.now_dt(), url)
        except (FetchError, Unverifiable) as exc:
            return await self._failed(entry, exc)
        new = make_entry(staple, todo.cid, url, p.now_dt(), p.settings.refresh_pct)
        if not await p.io(p.cache.put, new):
            due, _, _ = await self._back_off(entry)
            p.metrics.refreshes["unchanged"] += 1
            p.log.info(f"serial {entry.serial}: {url} returned no newer answer; "
                       f"next try {rules.http_date(due)}")
            return "unchanged"
        p.metrics.refreshes["ok"] += 1
        if entry.key in p.hot:
            p.install(new)
        p.log.info(f"serial {entry.serial}: refreshed from {url}, valid until "
                   f"{rules.http_date(new.valid_until)}")
        return "ok"

    async def _back_off(self, entry: Entry) -> Tuple[float, int, str]:
        """Reschedule ENTRY after one more failure: (when, failures, what clients get meanwhile)."""
        p = self.proxy
        failures = entry.failures + 1
        now = p.clock()
        due = rules.retry_at(failures, now, entry.valid_until)
        await p.io(p.cache.reschedule, entry.key, due, failures)
        return due, failures, serving(entry, now)

    async def _refused(self, entry: Entry, why: str) -> str:
        """No allowed responder or no trusted issuer: back off, keep serving the entry while valid."""
        due, _, state = await self._back_off(entry)
        self.proxy.metrics.refreshes["not allowed"] += 1
        self.proxy.log.warning(f"serial {entry.serial}: not refreshed, not allowed: {why}; cached "
                               f"answer {state}; next look {rules.http_date(due)}")
        return "not allowed"

    async def _failed(self, entry: Entry, exc: OcspToolsError) -> str:
        due, failures, state = await self._back_off(entry)
        self.proxy.metrics.refreshes["failed"] += 1
        self.proxy.metrics.upstream_errors[error_kind(exc)] += 1
        self.proxy.log.warning(f"serial {entry.serial}: refresh failed ({exc}); cached answer {state}; "
                               f"retry {failures} at {rules.http_date(due)}")
        return "failed"
