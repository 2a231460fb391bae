"""Running ``ocsp-proxy serve``: the allow-list, the cache, the ``Proxy``, its ``Refresher`` and the
HTTP listeners wired together until SIGTERM or SIGINT; SIGHUP re-reads ``--allow-from``."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
from typing import List, Sequence, Tuple

from ..errors import OcspToolsError
from ..openssl import OpenSSL
from . import issuers, server
from .cache import Cache, open_cache
from .issuers import Known
from .refresher import Refresher
from .service import Proxy, Settings

#: How long a stopping proxy waits for its refresher.
STOP_WAIT = 5.0


def notes(known: Known, allow: Sequence[str]) -> List[Tuple[int, str]]:
    """What the proxy says at start about its allow-list: (logging level, message) (pure)."""
    out = [(logging.WARNING, warning) for warning in known.warnings]
    if known.not_applicable:
        out.append((logging.DEBUG, f"{known.not_applicable} certificate(s) under --allow-from without "
                                   f"an OCSP URL: not applicable"))
    if not known.prefixes and known.not_applicable and not allow:
        out.append((logging.INFO, "no certificate under --allow-from has an OCSP URL (not applicable): "
                                  "only cached answers can be served, every other request gets 403"))
    elif not known.prefixes:
        out.append((logging.WARNING, "no responder is allowed (give --allow URL or --allow-from DIR): "
                                     "only cached answers can be served, every other request gets 403"))
    return out


def run(allow: Sequence[str], allow_from: Sequence[str], cache_url: str, ossl: OpenSSL,
        settings: Settings, limits: server.Limits, listen: Sequence[Tuple[str, int]],
        log: logging.Logger) -> None:
    """Load the allow-list, open the cache and serve until stopped by a signal."""
    known = issuers.load(allow, allow_from, ossl)
    cache = open_cache(cache_url)
    cache.ping()
    for level, message in notes(known, allow):
        log.log(level, message)
    asyncio.run(serve(allow, allow_from, cache, known, ossl, settings, limits, listen, log))


async def listen_on(proxy: Proxy, listen: Sequence[Tuple[str, int]], limits: server.Limits,
                    log: logging.Logger) -> list:
    try:
        return await server.start(proxy.handle, listen, limits, proxy.http_stats, log)
    except OSError as exc:
        detail = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            detail = "address already in use (another ocsp-proxy? choose another --listen)"
        raise OcspToolsError(f"cannot listen on {', '.join(f'{h}:{p}' for h, p in listen)}: "
                             f"{detail}") from None


async def serve(allow: Sequence[str], allow_from: Sequence[str], cache: Cache, known: Known,
                ossl: OpenSSL, settings: Settings, limits: server.Limits,
                listen: Sequence[Tuple[str, int]], log: logging.Logger) -> None:
    proxy = Proxy(cache, known, ossl, settings, log)
    refresher = Refresher(proxy)
    servers = await listen_on(proxy, listen, limits, log)
    bound = []
    own = []
    for srv in servers:
        for sock in srv.sockets:
            addr = sock.getsockname()
            host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
            bound.append(f"http://{host}:{addr[1]}/")
            own.append((addr[0], addr[1]))
    settings.own = tuple(own) + tuple(settings.own)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def reload() -> None:
        async def do() -> None:
            try:
                new = await proxy.io(issuers.load, allow, allow_from, ossl)
            except OcspToolsError as exc:
                log.error(f"reload failed, keeping the old allow-list: {exc}")
                return
            proxy.known = new
            proxy.memo.clear()
            log.info(f"reloaded: {new.issuer_count} issuer(s), "
                     f"{len(new.prefixes)} responder prefix(es) allowed")
        loop.create_task(do())

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    log.info(f"listening on {' '.join(bound)} (cache {cache.url}; {known.issuer_count} issuer(s), "
             f"{len(known.prefixes)} responder prefix(es) allowed; refresh at {settings.refresh_pct:g}%)")
    refreshing = loop.create_task(refresher.run())
    await stop.wait()
    log.info("stopping")
    refresher.stop()
    for srv in servers:
        srv.close()
    await asyncio.wait([refreshing], timeout=STOP_WAIT)
    proxy.executor.shutdown(wait=False, cancel_futures=True)
    cache.close()
