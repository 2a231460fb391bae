"""The proxy: routing, allow-list, hot in-memory layer, single-flight misses, background refresh.

Request flow (``Proxy.handle``):

1. the fast path: the exact request (method, Host, target, body) was seen
   before and maps to a cached CertID whose answer is valid and was checked
   against the cache less than ``MEMO_TTL`` seconds ago: the prepared bytes
   are written, no task, no thread, no openssl;
2. otherwise (``_slow``): parse the request (GET base64 path, POST body;
   absolute URI as Apache's SSLOCSPProxyURL sends it, or Host + path as
   nginx's ssl_stapling_responder does), parse the OCSPRequest (400), refuse
   a responder path with a dot segment or an encoded slash (403), check the
   responder's normal form against the allow-list (403);
3. nonce / several certificates / signed: passed to the responder, answered
   uncached;
4. one CertID: answered from the cache if valid; else one fetch per CertID at
   a time (concurrent misses wait for it), verified for the issuer the CertID
   names (signature, delegation, CertID, times) and stored only if newer;
   unverifiable answers are passed through uncached; an expired entry is
   never served: tryLater.

The refresher (``refresh_loop``) renews each entry at ``--refresh-at`` of its
effective life (``ocsptools.life``: until the earliest of nextUpdate and the
signer's and certificate's notAfter, which also bounds serving, ``max-age``
and ``Expires``), with exponential backoff on failure, under the cache's lock so one
proxy of several sharing Redis does it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence, Tuple

from .. import transport
from ..errors import FetchError, OcspToolsError
from ..openssl import OpenSSL, split_pem_certs
from ..staple import Certificate
from ..codec import der
from . import paths, rules
from .cache import Cache, CacheError, Entry
from .issuers import Known, split_url
from .metrics import CONTENT_TYPE, Metrics
from .server import Request, Stats, render
from .upstream import Unverifiable, ask_first, check, error_kind, forward, make_entry

TRY_LATER = bytes.fromhex("3003 0a01 03".replace(" ", ""))
OCSP_TYPE = "application/ocsp-response"
#: How long the in-memory copy of an entry is trusted before the shared cache is read again
#: (bounds how long a purge or another proxy's refresh takes to be seen here).
MEMO_TTL = 2.0
MEMO_MAX = 50000
REFRESH_TICK = 1.0
REFRESH_CONCURRENCY = 4
SWEEP_EVERY = 600.0
SPECIAL = ("/metrics", "/healthz", "/admin/purge")


@dataclass
class Settings:
    refresh_pct: float = 50.0
    http: transport.HttpOptions = transport.HttpOptions()
    admin_token: Optional[str] = None
    own: Sequence[Tuple[str, int]] = ()      # our listening addresses (never forwarded to)


class Hot:
    """An entry ready to be written: headers rebuilt once per second."""

    __slots__ = ("entry", "valid_until", "recheck", "etag", "last_modified", "expires", "_sec",
                 "_ka", "_close", "_body")

    def __init__(self, entry: Entry, recheck: float) -> None:
        import hashlib
        self.entry = entry
        self.valid_until = entry.valid_until
        self.recheck = recheck
        self.etag = '"' + hashlib.sha256(entry.response).hexdigest()[:32] + '"'
        self.last_modified = rules.http_date(entry.this_update)
        self.expires = rules.http_date(entry.valid_until)
        self._sec = -1
        self._ka = b""
        self._close = b""
        self._body = entry.response

    def _headers(self, now: float, status: str = "200 OK", body: bool = True) -> Tuple[bytes, bytes]:
        common = (f"Server: ocsp-proxy\r\nDate: {rules.http_date(now)}\r\n"
                  + (f"Content-Type: {OCSP_TYPE}\r\nContent-Length: {len(self._body)}\r\n" if body else "")
                  + f"Cache-Control: max-age={rules.max_age(self.valid_until, now)}, public, "
                    f"no-transform, must-revalidate\r\n"
                  + f"Expires: {self.expires}\r\nLast-Modified: {self.last_modified}\r\n"
                  + f"ETag: {self.etag}\r\n")
        head = f"HTTP/1.1 {status}\r\n" + common
        return ((head + "Connection: keep-alive\r\n\r\n").encode("latin-1"),
                (head + "Connection: close\r\n\r\n").encode("latin-1"))

    def render(self, now: float, keep_alive: bool, head: bool) -> bytes:
        sec = int(now)
        if sec != self._sec:
            self._ka, self._close = self._headers(now)
            self._sec = sec
        hdr = self._ka if keep_alive else self._close
        return hdr if head else hdr + self._body

    def not_modified(self, now: float, keep_alive: bool) -> bytes:
        ka, close = self._headers(now, "304 Not Modified", body=False)
        return ka if keep_alive else close


class Proxy:
    def __init__(self, cache: Cache, known: Known, ossl: OpenSSL, settings: Settings,
                 log: logging.Logger, *, executor: Optional[ThreadPoolExecutor] = None) -> None:
        self.cache = cache
        self.known = known
        self.ossl = ossl
        self.settings = settings
        self.log = log
        self.metrics = Metrics()
        self.http_stats = Stats()
        self.executor = executor or ThreadPoolExecutor(max_workers=16, thread_name_prefix="ocsp-proxy")
        self.memo: Dict[tuple, str] = {}
        self.hot: Dict[str, Hot] = {}
        self.inflight: Dict[str, asyncio.Future] = {}
        self.refreshing: set = set()
        self._stop = asyncio.Event()
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    # -- helpers -----------------------------------------------------------------
    async def _io(self, fn, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, fn, *args)

    @staticmethod
    def _now_dt() -> datetime:
        return datetime.now(timezone.utc).replace(microsecond=0)

    def _install(self, entry: Entry) -> Hot:
        if len(self.hot) > MEMO_MAX:
            self.hot.clear()
        hot = Hot(entry, time.monotonic() + MEMO_TTL)
        self.hot[entry.key] = hot
        return hot

    def _memoize(self, memo_key: tuple, key: str) -> None:
        if len(self.memo) > MEMO_MAX:
            self.memo.clear()
        self.memo[memo_key] = key

    def _own(self, url: str) -> bool:
        target = split_url(url)
        if target is None:
            return False
        for host, port in self.settings.own:
            if port == target.port and (host in ("", "0.0.0.0", "::") or host.lower() == target.host
                                        or target.host in ("localhost", "127.0.0.1", "::1")):
                return True
        return False

    @staticmethod
    def _try_later(keep_alive: bool, head: bool = False) -> bytes:
        return render(200, TRY_LATER, content_type=OCSP_TYPE, keep_alive=keep_alive, head=head,
                      headers=(("Cache-Control", "no-store"),), date=rules.http_date(time.time()))

    # -- the request handler ---------------------------------------------------
    def handle(self, req: Request):
        method = req.method
        if method not in ("GET", "POST", "HEAD"):
            return render(405, b"use GET or POST (RFC 6960 A.1)\n", keep_alive=req.keep_alive,
                          headers=(("Allow", "GET, POST, HEAD"),))
        memo_key = (method == "POST", req.headers.get("host", ""), req.target, req.body)
        key = self.memo.get(memo_key)
        if key is not None:
            hot = self.hot.get(key)
            if hot is not None:
                now = time.time()
                if now < hot.valid_until and time.monotonic() < hot.recheck:
                    self.metrics.hits += 1
                    inm = req.headers.get("if-none-match")
                    if inm is not None and hot.etag in inm:
                        return hot.not_modified(now, req.keep_alive)
                    return hot.render(now, req.keep_alive, method == "HEAD")
        return self._slow(req, memo_key)

    async def _slow(self, req: Request, memo_key: tuple) -> bytes:
        head = req.method == "HEAD"
        ka = req.keep_alive
        target = req.target
        if target.startswith("/") and target.split("?", 1)[0] in SPECIAL:
            return await self._special(req)
        # -- where does the client want to go, and what does it ask? --------------
        if target.startswith("http://") or target.startswith("https://"):
            parts = urllib.parse.urlsplit(target)
            base = f"{parts.scheme}://{parts.netloc}"
            path = parts.path or "/"
            explicit = True
        elif target.startswith("/"):
            host = req.headers.get("host", "")
            if host and not paths.HOST.fullmatch(host):
                self.metrics.bad_requests += 1
                return render(400, b"malformed Host header\n", keep_alive=False)
            base = f"http://{host}" if host else ""
            path = target.split("?", 1)[0]
            explicit = False
        else:
            self.metrics.bad_requests += 1
            return render(400, b"request target must be a path or an absolute http URI\n", keep_alive=False)
        if req.method == "POST":
            ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype and ctype != "application/ocsp-request":
                self.metrics.bad_requests += 1
                return render(400, b"POST needs Content-Type: application/ocsp-request\n", keep_alive=ka)
            data = req.body
            try:
                parsed = der.parse_request(data)
            except der.DerError as exc:
                self.metrics.bad_requests += 1
                return render(400, f"malformed OCSP request: {exc}\n".encode(), keep_alive=ka)
            responder_path = path
        else:
            split = paths.split_get_path(path.split("?", 1)[0])
            if split is None:
                self.metrics.bad_requests += 1
                return render(400, b"malformed request: expected GET /<url-encoded base64 OCSP "
                                   b"request> (RFC 6960 A.1)\n", keep_alive=ka)
            responder_path, data, parsed = split
        # -- only a normal path under an allowed prefix is matched and forwarded ------------------
        dest = split_url(base + responder_path) if base else None
        why = paths.unsafe(responder_path) or (dest.unsafe if dest is not None else None)
        if why:
            self.metrics.forbidden += 1
            self.log.warning(f"refused {req.peer}: {why} in the responder path {responder_path}")
            return render(403, f"{responder_path}: {why} in the path\n".encode(), keep_alive=ka)
        url = dest.url if dest is not None else (base + responder_path if base else "")
        urls: List[str] = []
        if url and not self._own(url) and (explicit or self.known.allowed(url)):
            if not self.known.allowed(url):
                self.metrics.forbidden += 1
                self.log.warning(f"refused {req.peer}: responder {url} is not allowed "
                                 f"(--allow / --allow-from)")
                return render(403, f"{url}: responder not allowed by this proxy\n".encode(), keep_alive=ka)
            urls = [url]
        cid = parsed.cert_ids[0]
        issuer = self.known.issuer_for(cid)
        if not urls and issuer is not None:
            urls = self.known.routes_for(issuer, cid.serial)
        # -- uncacheable: pass through ------------------------------------------------
        if not parsed.cacheable:
            if not urls:
                return self._forbidden(req, cid, ka)
            reason = parsed.why_not_cacheable
            self.metrics.passthrough[reason] += 1
            return await self._passthrough(urls, data, ka, head)
        # -- cacheable: cache, then one fetch per CertID ----------------------------------
        key = cid.key
        now = time.time()
        hot = self.hot.get(key)
        entry: Optional[Entry] = None
        if hot is not None and now < hot.valid_until and time.monotonic() < hot.recheck:
            entry = hot.entry
        else:
            try:
                entry = await self._io(self.cache.get, key)
            except CacheError as exc:
                self.metrics.cache_errors += 1
                self.log.error(str(exc))
                entry = hot.entry if hot is not None else None
        now = time.time()
        if entry is not None and rules.usable(entry.valid_until, now):
            if hot is None or hot.entry != entry:
                hot = self._install(entry)
            else:
                hot.recheck = time.monotonic() + MEMO_TTL
            self._memoize(memo_key, key)
            self.metrics.hits += 1
            inm = req.headers.get("if-none-match")
            if inm is not None and hot.etag in inm:
                return hot.not_modified(now, ka)
            return hot.render(now, ka, head)
        if not urls and entry is not None and self.known.allowed(entry.url):
            urls = [entry.url]          # the URL it was fetched from, if the allow-list still has it
        if not urls:
            return self._forbidden(req, cid, ka)
        self.metrics.misses += 1
        fut = self.inflight.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self.inflight[key] = fut
            try:
                result = await self._fetch(cid, data, urls, issuer, entry)
                fut.set_result(result)
            except BaseException as exc:
                fut.set_exception(exc)
                fut.exception()          # mark retrieved
                raise
            finally:
                self.inflight.pop(key, None)
        else:
            result = await asyncio.shield(fut)
        kind, value = result
        if kind == "hot":
            self._memoize(memo_key, key)
            return value.render(time.time(), ka, head)
        if kind == "pass":
            status, body, ctype = value
            return render(status, body, content_type=ctype, keep_alive=ka, head=head,
                          headers=(("Cache-Control", "no-store"),))
        return self._try_later(ka, head)

    def _forbidden(self, req: Request, cid: der.CertID, ka: bool) -> bytes:
        self.metrics.forbidden += 1
        self.log.warning(f"refused {req.peer}: no allowed responder for serial {cid.serial_hex} "
                         f"(issuer not under --allow-from, and no allowed absolute URL or Host)")
        return render(403, b"no allowed responder for this certificate\n", keep_alive=ka)

    async def _passthrough(self, urls: List[str], data: bytes, ka: bool, head: bool) -> bytes:
        failures = []
        for url in urls:
            try:
                resp = await self._io(forward, url, data, self.settings.http)
            except FetchError as exc:
                self.metrics.upstream_errors[error_kind(exc)] += 1
                failures.append(str(exc))
                continue
            return render(resp.status if resp.status in (200, 400, 403, 404, 500, 502, 503) else 502,
                          resp.body, content_type=resp.headers.get("content-type", OCSP_TYPE),
                          keep_alive=ka, head=head, headers=(("Cache-Control", "no-store"),))
        self.log.warning("pass-through failed: " + " | ".join(failures) + "; answered tryLater")
        return self._try_later(ka, head)

    async def _fetch(self, cid: der.CertID, data: bytes, urls: List[str],
                     issuer: Optional[Certificate], entry: Optional[Entry]):
        """One upstream exchange for a cacheable CertID: ("hot", Hot) | ("pass", (status, body, type)) | ("later", msg)."""
        try:
            url, body = await self._io(ask_first, urls, data, self.settings.http)
        except FetchError as exc:
            self.metrics.upstream_errors[error_kind(exc)] += 1
            if entry is not None:
                self.metrics.expired += 1
                self.log.warning(f"serial {cid.serial_hex}: the cached answer expired at "
                                 f"{rules.http_date(entry.valid_until)} and the responder could not "
                                 f"renew it ({exc}); answered tryLater")
            else:
                self.log.warning(f"serial {cid.serial_hex}: {exc}; answered tryLater")
            return ("later", str(exc))
        if issuer is None:              # only issuers under --allow-from, never one read from the cache
            self.metrics.passthrough["unknown issuer"] += 1
            return ("pass", (200, body, OCSP_TYPE))
        leaf = self.known.leaf_for(issuer, cid.serial)
        try:
            staple = await self._io(check, body, cid, issuer, leaf, self.ossl, self._now_dt(), url)
        except Unverifiable as exc:
            self.metrics.upstream_errors[exc.kind] += 1
            self.metrics.passthrough["unverifiable"] += 1
            self.log.warning(f"not cached: {exc}")
            if entry is not None:
                self.metrics.expired += 1
                self.log.warning(f"serial {cid.serial_hex}: the cached answer expired at "
                                 f"{rules.http_date(entry.valid_until)}; passing the responder's "
                                 f"unverifiable answer through")
            return ("pass", (200, body, OCSP_TYPE))
        new = make_entry(staple, cid, url, self._now_dt(), self.settings.refresh_pct)
        try:
            stored = await self._io(self.cache.put, new)
            if not stored:
                current = await self._io(self.cache.get, cid.key)
                if current is not None and rules.usable(current.valid_until, time.time()):
                    new = current
        except CacheError as exc:
            self.metrics.cache_errors += 1
            self.log.error(f"{exc} (answer served from memory)")
        return ("hot", self._install(new))

    # -- /metrics, /healthz, /admin/purge -----------------------------------------------
    async def _special(self, req: Request) -> bytes:
        path = req.target.split("?", 1)[0]
        ka = req.keep_alive
        if path == "/metrics":
            try:
                gauges = dict(await self._io(self.cache.summary, time.time()))
            except CacheError as exc:
                self.metrics.cache_errors += 1
                self.log.error(str(exc))
                gauges = {}
            gauges["issuers"] = len({c.der for c in self.known.issuers.values()})
            st = self.http_stats
            body = self.metrics.render(gauges, {"open": st.open, "timeouts": st.timeouts,
                                                "refused": st.refused})
            return render(200, body, content_type=CONTENT_TYPE, keep_alive=ka, head=req.method == "HEAD")
        if path == "/healthz":
            try:
                await self._io(self.cache.ping)
            except CacheError as exc:
                return render(503, f"cache unreachable: {exc}\n".encode(), keep_alive=ka)
            return render(200, b"ok\n", keep_alive=ka, head=req.method == "HEAD")
        # /admin/purge
        token = self.settings.admin_token
        if token is None:
            return render(404, b"purging over HTTP is off (start with --admin-token-file)\n", keep_alive=ka)
        if req.method != "POST":
            return render(405, b"POST /admin/purge\n", keep_alive=ka, headers=(("Allow", "POST"),))
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return render(401, b"missing Authorization: Bearer TOKEN\n", keep_alive=ka,
                          headers=(("WWW-Authenticate", 'Bearer realm="ocsp-proxy"'),))
        if not hmac.compare_digest(auth[len("Bearer "):].strip().encode(), token.encode()):
            self.log.warning(f"refused purge from {req.peer}: wrong admin token")
            return render(403, b"wrong admin token\n", keep_alive=ka)
        serials: List[str] = []
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(req.target).query)
        for value in query.get("serial", []):
            text = value.strip().upper().removeprefix("0X")
            if not text or any(c not in "0123456789ABCDEF" for c in text.lstrip("-")):
                return render(400, f"not a hex serial: {value}\n".encode(), keep_alive=ka)
            serials.append(format(int(text, 16), "X") if not text.startswith("-") else text)
        for cert_der in split_pem_certs(req.body):
            try:
                serials.append(der.CertID(None, b"", b"", der.cert_serial(cert_der)).serial_hex)
            except der.DerError:
                return render(400, b"unreadable certificate in the body\n", keep_alive=ka)
        if not serials:
            return render(400, b"name what to purge: ?serial=HEX or PEM certificates in the body\n",
                          keep_alive=ka)
        purged: List[str] = []
        try:
            for serial in serials:
                purged.extend(await self._io(self.cache.purge_serial, serial))
        except CacheError as exc:
            return render(503, f"{exc}\n".encode(), keep_alive=ka)
        for key in purged:
            self.hot.pop(key, None)
        self.log.info(f"purged {len(purged)} entr{'y' if len(purged) == 1 else 'ies'} for serial(s) "
                      f"{', '.join(serials)} at the request of {req.peer}")
        return render(200, f"purged {len(purged)}\n".encode(), keep_alive=ka)

    # -- background refresh ---------------------------------------------------------------
    async def refresh_loop(self) -> None:
        sem = asyncio.Semaphore(REFRESH_CONCURRENCY)
        last_sweep = 0.0
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), REFRESH_TICK)
                break
            except asyncio.TimeoutError:
                pass
            now = time.time()
            try:
                if now - last_sweep > SWEEP_EVERY:
                    last_sweep = now
                    await self._io(self.cache.sweep, now)
                keys = await self._io(self.cache.due, now, 200)
            except CacheError as exc:
                self.metrics.cache_errors += 1
                self.log.error(str(exc))
                continue
            for key in keys:
                if key in self.refreshing:
                    continue
                self.refreshing.add(key)
                asyncio.get_running_loop().create_task(self._refresh_guarded(key, sem))

    async def _refresh_guarded(self, key: str, sem: asyncio.Semaphore) -> None:
        try:
            async with sem:
                await self.refresh_one(key)
        except Exception as exc:
            self.log.error(f"refresh of {key[:12]} failed unexpectedly: {type(exc).__name__}: {exc}")
        finally:
            self.refreshing.discard(key)

    async def refresh_one(self, key: str) -> Optional[str]:
        """Refresh one due entry if this proxy gets its lock.  Returns the outcome (for tests/logs)."""
        token = uuid.uuid4().hex
        ttl = self.settings.http.timeout * 3 + 30
        if not await self._io(self.cache.lock, key, token, ttl, time.time()):
            return None
        try:
            entry = await self._io(self.cache.get, key)
            now = time.time()
            if entry is None:
                await self._io(self.cache.delete, key)       # gone (TTL): drop its index rows
                return None
            if entry.due > now:
                return None                                   # someone refreshed it meanwhile
            cid = der.CertID(entry.hash_alg, bytes.fromhex(entry.name_hash),
                             bytes.fromhex(entry.key_hash), int(entry.serial, 16))
            known = self.known                                # one allow-list for this refresh
            issuer = known.issuer_for(cid)                    # never the issuer read from the cache
            if issuer is None:
                return await self._refresh_refused(entry, "its issuer is not under --allow-from")
            leaf = known.leaf_for(issuer, cid.serial)
            urls = list(dict.fromkeys(([entry.url] if known.allowed(entry.url) else [])
                                      + known.routes_for(issuer, cid.serial)))
            if not urls:
                return await self._refresh_refused(entry, f"its responder {entry.url} is not allowed "
                                                          f"(--allow / --allow-from)")
            try:
                url, body = await self._io(ask_first, urls, entry.request, self.settings.http)
                staple = await self._io(check, body, cid, issuer, leaf, self.ossl, self._now_dt(), url)
            except (FetchError, Unverifiable) as exc:
                return await self._refresh_failed(entry, exc)
            new = make_entry(staple, cid, url, self._now_dt(), self.settings.refresh_pct)
            if not await self._io(self.cache.put, new):
                due, _, _ = await self._back_off(entry)
                self.metrics.refreshes["unchanged"] += 1
                self.log.info(f"serial {entry.serial}: {url} returned no newer answer; "
                              f"next try {rules.http_date(due)}")
                return "unchanged"
            self.metrics.refreshes["ok"] += 1
            if key in self.hot:
                self._install(new)
            self.log.info(f"serial {entry.serial}: refreshed from {url}, valid until "
                          f"{rules.http_date(new.valid_until)}")
            return "ok"
        except CacheError as exc:
            self.metrics.cache_errors += 1
            self.log.error(str(exc))
            return None
        finally:
            try:
                await self._io(self.cache.unlock, key, token)
            except CacheError:
                pass

    async def _back_off(self, entry: Entry) -> Tuple[float, int, str]:
        """Reschedule ENTRY after one more failure: (when, failures, what clients get meanwhile)."""
        failures = entry.failures + 1
        now = time.time()
        due = rules.retry_at(failures, now, entry.valid_until)
        await self._io(self.cache.reschedule, entry.key, due, failures)
        state = ("still valid until " + rules.http_date(entry.valid_until)
                 if rules.usable(entry.valid_until, now) else "EXPIRED, clients get tryLater")
        return due, failures, state

    async def _refresh_refused(self, entry: Entry, why: str) -> str:
        """No allowed responder or no trusted issuer: back off, keep serving the entry while valid."""
        due, _, state = await self._back_off(entry)
        self.metrics.refreshes["not allowed"] += 1
        self.log.warning(f"serial {entry.serial}: not refreshed, not allowed: {why}; cached answer "
                         f"{state}; next look {rules.http_date(due)}")
        return "not allowed"

    async def _refresh_failed(self, entry: Entry, exc: OcspToolsError) -> str:
        due, failures, state = await self._back_off(entry)
        self.metrics.refreshes["failed"] += 1
        self.metrics.upstream_errors[error_kind(exc)] += 1
        self.log.warning(f"serial {entry.serial}: refresh failed ({exc}); cached answer {state}; "
                         f"retry {failures} at {rules.http_date(due)}")
        return "failed"

    def stop(self) -> None:
        self._stop.set()
