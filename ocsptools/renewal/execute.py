"""Carrying out a run's renewals: fetch, verify, and install only what is good and newer.

Requests are built per issuer (one ``openssl ocsp`` for all its leaves); the
fetches run on ``jobs`` threads with at most ``per_responder`` in flight to
any responder host; each response is verified for its certificate
(``fetch.fetch_staple``) and installed through the ``WriteGate`` only if its
status is good and it is newer than the installed staple (``install.decide``),
atomically (``install.write_newer``).  A failure keeps the installed staple
and says what was kept.
"""

from __future__ import annotations

import threading
import urllib.parse
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .. import install, life, transport
from ..errors import (FetchError, OcspToolsError, OpensslError, StaleResponse, StoreError,
                      without_label)
from ..fetch import FetchResult, fetch_staple
from ..openssl import OpenSSL
from ..parallel import parallel_map
from ..policy import StapleFacts
from ..staple import Staple, iso
from ..statecache import identity
from .items import (FAILED, RENEWED, REVOKED, SKIPPED, UNCHANGED, Item, Ledger, RunOptions, cert_newer,
                    renew_options_for, responder_urls_for)


class WriteGate:
    """Every install passes through here.  ``close()`` waits for the installs in progress and
    refuses later ones, so a fetch abandoned at shutdown (--watch) can never write afterwards."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._closed = False

    @contextmanager
    def passage(self, path: str) -> Iterator[None]:
        with self._cond:
            if self._closed:
                raise StoreError(f"{path}: not installed: shutting down", path=path)
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def close(self, timeout: Optional[float] = None) -> bool:
        """Refuse new installs; wait (up to TIMEOUT) for those in progress.  True if none is left."""
        with self._cond:
            self._closed = True
            return self._cond.wait_for(lambda: self._active == 0, timeout)


class Renewals:
    """Renews a run's due items (loaded leaves with their issuer).

    Everything it uses is handed to it: the run's options, openssl, clock and ``now``, the
    ledger it reports to, the write gate, the proxy choice, RECORD (puts an item's new facts in
    the state cache), STOPPING (set: start no new fetch), PROGRESS and AFTER_INSTALL (the
    server push; returns why a server refused the staple, or None)."""

    def __init__(self, opts: RunOptions, ossl: OpenSSL, clock: Callable[[], datetime], now: datetime,
                 ledger: Ledger, gate: WriteGate, proxies: transport.ProxyChoice,
                 record: Callable[[Item], None], stopping: threading.Event,
                 progress: Optional[Callable[[int, int], None]] = None,
                 after_install: Optional[Callable[[Item, Staple], Optional[str]]] = None) -> None:
        self.opts, self.ossl, self.clock, self.now = opts, ossl, clock, now
        self.ledger, self.gate, self.proxies, self.record = ledger, gate, proxies, record
        self.stopping, self.progress, self.after_install = stopping, progress, after_install

    def renew(self, jobs: List[Item]) -> None:
        requests = self._requests(jobs)
        total, done = len(jobs), [0]
        sems: Dict[str, threading.Semaphore] = {}
        for it in jobs:
            sems.setdefault(host_key(responder_urls_for(it, self.opts)),
                            threading.Semaphore(max(1, self.opts.per_responder)))
        stopping = self.stopping

        def one(item: Item) -> None:
            if stopping.is_set():
                return
            urls = responder_urls_for(item, self.opts)
            with sems[host_key(urls)]:
                if stopping.is_set():
                    return
                self.renew_one(item, urls, requests.get(item.key))
            with self.ledger.lock:
                done[0] += 1
                if self.progress is not None:
                    self.progress(done[0], total)
            result = self.ledger.result
            if self.opts.stop_on_error and (result.failed or result.revoked):
                stopping.set()
        parallel_map(one, jobs, self.opts.jobs)

    def _requests(self, jobs: List[Item]) -> Dict[str, bytes]:
        """Prebuilt requests, one openssl per issuer (a failure leaves the item to build its own)."""
        groups: Dict[bytes, List[Item]] = {}
        for it in jobs:
            groups.setdefault(it.tgt.issuer.der, []).append(it)
        out: Dict[str, bytes] = {}
        for its in groups.values():
            try:
                reqs = self.ossl.build_requests(its[0].tgt.issuer, [it.tgt.leaf for it in its],
                                                    hash_alg=self.opts.fetch.hash_alg,
                                                    workers=self.opts.jobs)
            except (OpensslError, ValueError):
                continue
            for it, req in zip(its, reqs):
                out[it.key] = req
        return out

    def _fetch(self, item: Item, urls: Tuple[str, ...], request: Optional[bytes]) -> FetchResult:
        """``fetch.fetch_staple`` with this run's responder URLs, prebuilt request and proxy choices."""
        return fetch_staple(item.tgt, replace(self.opts.fetch, urls=urls), self.ossl,
                            self.clock, request=request, http_for=self.proxies)

    def kept(self, item: Item) -> str:
        """What the failed renewal left in place, said the way a sysadmin needs it."""
        st = item.staple
        lf = st.life(item.tgt.leaf.not_after) if st is not None else None
        mine = st is not None and st.serial == item.tgt.leaf.serial
        if mine and lf is not None and lf.end is not None:
            assert st is not None
            if st.status == "good" and lf.end > self.now:
                return f"; the installed staple was kept, valid until {iso(lf.end)}"
            if st.status == "good":
                return (f"; the installed staple was kept, but it expired at {iso(lf.end)} "
                        f"(servers stop stapling it)")
            return f"; the installed staple was kept (it says {st.status})"
        if item.staple_id is not None:
            why = (st.problem if st is not None and st.problem else
                   "it is for another certificate" if st is not None and not mine else "unusable")
            return f"; the installed file was kept (not a valid staple: {why})"
        return "; no staple installed"

    def renew_one(self, item: Item, urls: Tuple[str, ...], request: Optional[bytes]) -> None:
        report = self.ledger.report
        try:
            result = self._fetch(item, urls, request)
        except (FetchError, OpensslError) as exc:
            item.retry_after = getattr(exc, "retry_after", None)
            item.try_later = bool(getattr(exc, "try_later", False))
            report(FAILED, item, without_label(str(exc), item.cand.cert) + self.kept(item))
            return
        staple = result.staple
        item.cert_status = staple.cert_status
        if staple.cert_status == "revoked":
            reason = staple.single.revocation_reason
            item.revocation_time, item.revocation_reason = iso(staple.single.revocation_time), reason
            report(REVOKED, item, f"REVOKED at {iso(staple.single.revocation_time)}"
                   + (f" ({reason})" if reason else "") + f" according to {result.url}"
                   + self.kept(item))
            return
        if staple.cert_status != "good":
            report(FAILED, item, f"the responder {result.url} says {staple.cert_status}; "
                                 f"check the issuer and responder URL" + self.kept(item))
            return
        try:
            with self.gate.passage(item.cand.staple):
                changed = self._install(item, staple)
        except OcspToolsError as exc:
            report(FAILED, item, without_label(str(exc), item.cand.cert) + self.kept(item))
            return
        if not changed:
            if self.opts.verbose:
                report(SKIPPED, item, f"the responder's answer is the installed one "
                                      f"(thisUpdate {iso(staple.this_update)}); kept")
            item.outcome = UNCHANGED
            return
        due, _ = life.renewal_due(staple.life, renew_options_for(item.cand, self.opts.renew).rule)
        detail = f"good until {iso(staple.valid_until)}, renewal due at {iso(due)}"
        if result.warnings:
            detail += "; warning: " + "; ".join(result.warnings)
        if self.after_install is not None:
            refused = self.after_install(item, staple)
            if refused:
                detail += "; " + refused
                with self.ledger.lock:
                    self.ledger.result.push_failed += 1
        report(RENEWED, item, detail)

    def _install(self, item: Item, staple: Staple) -> bool:
        """Install STAPLE if newer than what the staple file holds now; True if it was written."""
        path = item.cand.staple
        target = item.tgt
        new = StapleFacts.of(staple)
        now = self.clock()
        if identity(path) != item.staple_id:
            # the file changed since it was examined: judge what is there now
            cur = install.installed_staple(path, target, self.ossl, now)
            current = StapleFacts.of(cur) if cur is not None else None
        else:                   # what was verified when it was examined, by the same rule
            st = item.staple
            current = st if (st is not None and st.status is not None
                             and st.serial == target.leaf.serial
                             and install.counts_as_installed(st.life(target.leaf.not_after), now)
                             ) else None
        verdict = install.decide(staple.version, current.version if current is not None else None)
        if verdict == install.OLDER:
            assert current is not None
            raise StaleResponse(install.older_message(new.this_update, current.this_update), path=path)
        if verdict == install.SAME:
            if cert_newer(item):
                # the same response again, for a touched certificate: rewrite it (identical,
                # verified bytes) so the staple is newer than the certificate, as make expects
                install.rewrite(path, staple.der)
                self._installed(item, path, new)
            return False
        install.write_newer(path, staple.der, backup=self.opts.backup, keep=self.opts.backup_keep)
        self._installed(item, path, new, changed=True)
        return True

    def _installed(self, item: Item, path: str, new: StapleFacts, changed: bool = False) -> None:
        with self.ledger.lock:
            if changed:
                self.ledger.result.changed.append(path)
            item.staple_id = identity(path)
            item.staple = new
            self.record(item)


def host_key(urls: Sequence[str]) -> str:
    """The responder host a fetch to URLS goes to (what --per-responder limits)."""
    if not urls:
        return ""
    try:
        parts = urllib.parse.urlsplit(urls[0])
        return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    except ValueError:              # a certificate's unusable URL: its fetch fails with a reason
        return urls[0]
