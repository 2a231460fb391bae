"""The proxy's request service (``Proxy.handle``): the hot path, cache lookups, single-flight
misses and pass-through, on a wall clock and a monotonic clock it is given.

Request flow:

1. the fast path: the exact request (method, Host, target, body) was seen
   before and maps to a cached CertID whose answer is valid and was checked
   against the cache less than ``hot.MEMO_TTL`` seconds ago: the prepared
   bytes are written, no task, no thread, no openssl;
2. otherwise (``_slow``): the special endpoints (``special``); else where the
   request may go and what it asks (``routing.route``: 400 malformed, 403 not
   allowed);
3. nonce / several certificates / signed: passed to the responder, answered
   uncached;
4. one CertID: answered from the cache if valid; else one fetch per CertID at
   a time (``flight``: concurrent misses wait for it), verified for the issuer
   the CertID names (signature, delegation, CertID, times) and stored only if
   newer; unverifiable answers are passed through uncached; an expired entry
   is never served: tryLater.

The background refresh is ``refresher.Refresher``, on the same ``Proxy``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .. import transport
from ..errors import FetchError
from ..openssl import OpenSSL
from . import rules, special
from .answers import OCSP_TYPE, Refusal, Relay, relayed_status, try_later
from .cache import Cache, CacheError
from .entry import Entry
from .flight import SingleFlight
from .hot import MEMO_MAX, MEMO_TTL, Hot
from .issuers import Known
from .metrics import Metrics
from .routing import Route, fallback, no_responder, route
from .server import Request, Stats, render
from .upstream import Unverifiable, ask_first, check, error_kind, forward, make_entry

#: What a miss's upstream exchange gives every client waiting for it: a cached answer, a
#: responder's answer passed through uncached, or None (tryLater).
Outcome = Union[Hot, Relay, None]


@dataclass
class Settings:
    """What ``ocsp-proxy serve``'s options set."""

    refresh_pct: float = 50.0
    http: transport.HttpOptions = transport.HttpOptions()
    admin_token: Optional[str] = None
    own: Sequence[Tuple[str, int]] = ()      # our listening addresses (never forwarded to)


class Proxy:
    """The state the request service, the special endpoints and the refresher share: the cache and
    its in-memory layer, the allow-list (``known``, swapped on reload), openssl, the clocks."""

    def __init__(self, cache: Cache, known: Known, ossl: OpenSSL, settings: Settings,
                 log: logging.Logger, *, executor: Optional[ThreadPoolExecutor] = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.cache = cache
        self.known = known
        self.ossl = ossl
        self.settings = settings
        self.log = log
        self.clock = clock                   # wall clock, POSIX seconds: validity, HTTP dates
        self.monotonic = monotonic           # how long an in-memory copy is trusted
        self.metrics = Metrics()
        self.http_stats = Stats()
        self.executor = executor or ThreadPoolExecutor(max_workers=16, thread_name_prefix="ocsp-proxy")
        self.memo: Dict[tuple, str] = {}     # exact request -> CertID key
        self.hot: Dict[str, Hot] = {}        # CertID key -> prepared answer
        self.flights: SingleFlight[Outcome] = SingleFlight()

    # -- shared helpers ----------------------------------------------------------
    async def io(self, fn, *args):
        """FN(*ARGS) in a worker thread (cache, HTTP, openssl: anything that blocks)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, fn, *args)

    def now_dt(self) -> datetime:
        """The wall clock as an aware UTC datetime (whole seconds), for verification."""
        return datetime.fromtimestamp(self.clock(), timezone.utc).replace(microsecond=0)

    def install(self, entry: Entry) -> Hot:
        """ENTRY in the in-memory layer, trusted for ``MEMO_TTL``."""
        if len(self.hot) > MEMO_MAX:
            self.hot.clear()
        hot = Hot(entry, self.monotonic() + MEMO_TTL)
        self.hot[entry.key] = hot
        return hot

    def memoize(self, memo_key: tuple, key: str) -> None:
        if len(self.memo) > MEMO_MAX:
            self.memo.clear()
        self.memo[memo_key] = key

    def refuse(self, refusal: Refusal) -> bytes:
        """Count (400: bad request, 403: forbidden), log and render a refusal of a client request."""
        if refusal.status == 400:
            self.metrics.bad_requests += 1
        elif refusal.status == 403:
            self.metrics.forbidden += 1
        if refusal.warning:
            self.log.warning(refusal.warning)
        return refusal.render()

    # -- the request handler ---------------------------------------------------
    def handle(self, req: Request) -> Union[bytes, Awaitable[bytes]]:
        """The answer: bytes at once (a fresh cached answer, a 405), else an awaitable of them."""
        method = req.method
        if method not in ("GET", "POST", "HEAD"):
            return render(405, b"use GET or POST (RFC 6960 A.1)\n", keep_alive=req.keep_alive,
                          headers=(("Allow", "GET, POST, HEAD"),))
        memo_key = (method == "POST", req.headers.get("host", ""), req.target, req.body)
        key = self.memo.get(memo_key)
        if key is not None:
            hot = self.hot.get(key)
            if hot is not None:
                # Hot.fresh and Hot.answer inlined (rules.usable: now < valid_until): every
                # cached answer takes this path, at tens of thousands a second; the clocks are
                # called through locals (a call of an instance attribute is slower than a method's)
                wall, mono = self.clock, self.monotonic
                now = wall()
                if now < hot.valid_until and mono() < hot.recheck:
                    self.metrics.hits += 1
                    inm = req.headers.get("if-none-match")
                    if inm is not None and hot.etag in inm:
                        return hot.not_modified(now, req.keep_alive)
                    return hot.render(now, req.keep_alive, method == "HEAD")
        return self._slow(req, memo_key)

    async def _slow(self, req: Request, memo_key: tuple) -> bytes:
        if special.wants(req.target):
            return await special.answer(self, req)
        where = route(req, self.known, self.settings.own)
        if isinstance(where, Refusal):
            return self.refuse(where)
        if not where.parsed.cacheable:
            if not where.urls:
                return self.refuse(no_responder(req, where.cid))
            self.metrics.passthrough[where.parsed.why_not_cacheable] += 1
            return await self._passthrough(where.urls, where.data, req.keep_alive, req.method == "HEAD")
        return await self._cacheable(req, memo_key, where)

    async def _cacheable(self, req: Request, memo_key: tuple, where: Route) -> bytes:
        """One CertID: from memory or the cache while valid, else one fetch per CertID at a time."""
        head = req.method == "HEAD"
        ka = req.keep_alive
        key = where.cid.key
        hot = self.hot.get(key)
        entry: Optional[Entry] = None
        if hot is not None and hot.fresh(self.clock(), self.monotonic()):
            entry = hot.entry
        else:
            try:
                entry = await self.io(self.cache.get, key)
            except CacheError as exc:
                self.metrics.cache_errors += 1
                self.log.error(str(exc))
                entry = hot.entry if hot is not None else None
        now = self.clock()
        if entry is not None and rules.usable(entry.valid_until, now):
            if hot is None or hot.entry != entry:
                hot = self.install(entry)
            else:
                hot.recheck = self.monotonic() + MEMO_TTL
            self.memoize(memo_key, key)
            self.metrics.hits += 1
            return hot.answer(now, ka, head, req.headers.get("if-none-match"))
        urls = fallback(where, entry.url if entry is not None else None, self.known)
        if not urls:
            return self.refuse(no_responder(req, where.cid))
        self.metrics.misses += 1
        outcome = await self.flights.run(key, lambda: self._fetch(where, urls, entry))
        if isinstance(outcome, Hot):
            self.memoize(memo_key, key)
            return outcome.render(self.clock(), ka, head)
        if isinstance(outcome, Relay):
            return outcome.render(ka, head)
        return try_later(self.clock(), ka, head)

    async def _passthrough(self, urls: List[str], data: bytes, ka: bool, head: bool) -> bytes:
        failures = []
        for url in urls:
            try:
                resp = await self.io(forward, url, data, self.settings.http)
            except FetchError as exc:
                self.metrics.upstream_errors[error_kind(exc)] += 1
                failures.append(str(exc))
                continue
            return Relay(relayed_status(resp.status), resp.body,
                         resp.headers.get("content-type", OCSP_TYPE)).render(ka, head)
        self.log.warning("pass-through failed: " + " | ".join(failures) + "; answered tryLater")
        return try_later(self.clock(), ka, head)

    async def _fetch(self, where: Route, urls: List[str], entry: Optional[Entry]) -> Outcome:
        """One upstream exchange for a cacheable CertID (ENTRY: the expired one, if any)."""
        cid, issuer = where.cid, where.issuer
        try:
            url, body = await self.io(ask_first, urls, where.data, self.settings.http)
        except FetchError as exc:
            self.metrics.upstream_errors[error_kind(exc)] += 1
            if entry is not None:
                self.metrics.expired += 1
                self.log.warning(f"serial {cid.serial_hex}: the cached answer expired at "
                                 f"{rules.http_date(entry.valid_until)} and the responder could not "
                                 f"renew it ({exc}); answered tryLater")
            else:
                self.log.warning(f"serial {cid.serial_hex}: {exc}; answered tryLater")
            return None
        if issuer is None:              # only issuers under --allow-from, never one read from the cache
            self.metrics.passthrough["unknown issuer"] += 1
            return Relay(200, body)
        leaf = self.known.leaf_for(issuer, cid.serial)
        try:
            staple = await self.io(check, body, cid, issuer, leaf, self.ossl, self.now_dt(), url)
        except Unverifiable as exc:
            self.metrics.upstream_errors[exc.kind] += 1
            self.metrics.passthrough["unverifiable"] += 1
            self.log.warning(f"not cached: {exc}")
            if entry is not None:
                self.metrics.expired += 1
                self.log.warning(f"serial {cid.serial_hex}: the cached answer expired at "
                                 f"{rules.http_date(entry.valid_until)}; passing the responder's "
                                 f"unverifiable answer through")
            return Relay(200, body)
        new = make_entry(staple, cid, url, self.now_dt(), self.settings.refresh_pct)
        try:
            stored = await self.io(self.cache.put, new)
            if not stored:
                current = await self.io(self.cache.get, cid.key)
                if current is not None and rules.usable(current.valid_until, self.clock()):
                    new = current
        except CacheError as exc:
            self.metrics.cache_errors += 1
            self.log.error(f"{exc} (answer served from memory)")
        return self.install(new)
