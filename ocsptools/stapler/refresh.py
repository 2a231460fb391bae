"""The Stapler's refresher: brings one certificate's staple up to date (persisted staple, responder, persistence, backoff).

``Refresher.refresh(entry)`` never raises: it adopts a newer staple another
process persisted, else asks the responders (``fetch.fetch_staple``: verified
for that certificate), keeps the current staple on any failure, persists a
newer one (``install.install``: ``store.atomic_write``, replaced only by a newer
verified response, under a lock file shared by the processes of one directory)
and schedules the next attempt (``schedule``: ``ocsptools.life``'s rules).  Each
outcome is counted in the ``Book`` and logged in one line naming the
certificate.  One refresh runs at a time.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from datetime import datetime
from typing import Callable, Optional

from .. import life, store
from ..errors import (CertStatusError, LockBusy, NotApplicable, OcspToolsError, Revoked,
                      StaleResponse, StoreError)
from ..fetch import FetchOptions, fetch_staple, require_good
from ..install import install, installed_staple
from ..openssl import OpenSSL
from ..staple import Staple, iso
from .entries import Book, Clock, Entry, revoked_text
from .schedule import Schedule, next_refresh, retry_at, servable

#: Persisted staples are DER files named ``<sha256 of the certificate DER, hex>.ocsp``.
STAPLE_SUFFIX = ".ocsp"
LOCK_NAME = ".ocsptools-stapler.lock"


def staple_path(cache_dir: str, fingerprint: str) -> str:
    """Where the staple of the certificate with FINGERPRINT is persisted in CACHE_DIR."""
    return os.path.join(cache_dir, fingerprint + STAPLE_SUFFIX)


class Refresher:
    """Refreshes, persists and drops the entries of a ``Book`` (see the module)."""

    def __init__(self, book: Book, *, ossl: OpenSSL, opts: FetchOptions, schedule: Schedule,
                 clock: Clock, rand: Callable[[], float], log: logging.Logger,
                 cache_dir: Optional[str]) -> None:
        self.book = book
        self.ossl = ossl
        self.opts = opts
        self.schedule = schedule
        self.clock = clock
        self.rand = rand
        self.log = log
        self.cache_dir = cache_dir
        self.lock = threading.RLock()           # one refresh at a time (network, openssl)

    def drop_expired(self, now: datetime) -> None:
        """Stop managing every certificate past its notAfter and remove its persisted staple."""
        book = self.book
        with book.lock:
            expired = [(der, e) for der, e in book.entries.items() if e.leaf.expired(now)]
            for der, entry in expired:
                del book.entries[der]
                book.dropped[der] = entry.name
                book.names.discard(entry.name)
        for _, entry in expired:
            self.log.warning("%s: the certificate expired at %s; dropped (no staple is served for "
                             "it any more); replace the certificate", entry.name,
                             iso(entry.leaf.not_after))
            if entry.staple_file is not None:
                try:
                    os.unlink(entry.staple_file)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    self.log.warning("%s: cannot remove its staple: %s", entry.staple_file,
                                     exc.strerror)

    def load_persisted(self, entry: Entry, now: datetime, *, initial: bool = False) -> Optional[Staple]:
        """Adopt the persisted staple if it is valid and newer than the one in memory."""
        if entry.staple_file is None:
            return None
        try:
            found = installed_staple(entry.staple_file, entry.tgt, self.ossl, now)
        except (StoreError, OcspToolsError) as exc:
            self.log.warning("%s: cannot use the persisted staple: %s", entry.name, exc)
            return None
        if found is None:
            return None
        if found.cert_status == "revoked":
            if initial:
                with self.book.lock:
                    entry.revoked = found
                    entry.set_staple(None)
                    entry.last_error = revoked_text(found)
                self.log.error("%s: the certificate is REVOKED (persisted answer, %s); not "
                               "stapling it", entry.name, revoked_text(found))
            return None
        if not servable(found, entry.leaf, now):
            return None
        known = entry.staple if entry.staple is not None else entry.revoked
        if life.newer(found.version, known.version if known is not None else None) is not True:
            return None
        self._install_in_memory(entry, found, now)
        if initial:
            self.log.info("%s: loaded the persisted staple %s (thisUpdate %s, valid until %s)",
                          entry.name, entry.staple_file, iso(found.this_update), iso(found.valid_until))
        return found

    def _install_in_memory(self, entry: Entry, staple: Staple, now: datetime) -> None:
        nxt = next_refresh(staple, now, self.schedule, self.rand())
        with self.book.lock:
            entry.set_staple(staple)
            entry.revoked = None
            entry.failures = 0
            entry.unchanged = 0
            entry.last_error = ""
            entry.unserved_logged = False
            entry.next_attempt = nxt

    def refresh(self, entry: Entry) -> None:
        """Bring ENTRY's staple up to date; never raises (failures are logged and scheduled)."""
        with self.lock:
            now = self.clock()
            force = entry.force
            with self.book.lock:
                entry.force = False
            try:
                if not force and self.load_persisted(entry, now) is not None \
                        and entry.next_attempt > now:
                    self.book.count_refresh("from_disk")
                    return
                self._fetch(entry, now)
            except Exception as exc:   # a bug below: schedule a retry rather than spin
                self.log.exception("%s: internal error while refreshing (please report this)",
                                   entry.name)
                self._failed(entry, now, f"internal error: {type(exc).__name__}: {exc}", None)

    def _fetch(self, entry: Entry, now: datetime) -> None:
        opts = replace(self.opts, urls=entry.urls) if entry.urls else self.opts
        try:
            result = fetch_staple(entry.tgt, opts, self.ossl, self.clock)
            for warning in result.warnings:
                self.log.warning("%s: %s", entry.name, warning)
            require_good(result, entry.tgt)
        except Revoked as exc:
            with self.book.lock:
                entry.answered = exc.cert_status
            self._revoked(entry, exc, now)
            return
        except CertStatusError as exc:
            with self.book.lock:
                entry.answered = exc.cert_status
            self._failed(entry, now, str(exc), None)
            return
        except NotApplicable as exc:
            with self.book.lock:
                entry.applicable = False
                entry.last_error = str(exc)
            return
        except OcspToolsError as exc:
            self._failed(entry, now, str(exc), getattr(exc, "retry_after", None))
            return
        staple = result.staple
        with self.book.lock:
            entry.answered = staple.cert_status
        current = entry.staple if servable(entry.staple, entry.leaf, now) else entry.revoked
        newer = life.newer(staple.version, current.version if current is not None else None)
        if newer is False:
            assert current is not None
            self._failed(entry, now, f"{result.url}: answered with an older response (thisUpdate "
                                     f"{iso(staple.this_update)}) than the one already held "
                                     f"(thisUpdate {iso(current.this_update)}); kept that", None)
            return
        if newer is None:
            self._unchanged(entry, now, result.url)
            return
        served = self._persist(entry, staple, now)
        if served is not staple:        # the directory held a newer one (another process)
            self.book.count_refresh("from_disk")
            return
        self._install_in_memory(entry, staple, now)
        self.book.count_refresh("ok")
        self.log.info("%s: new staple from %s: thisUpdate %s, valid until %s; next refresh %s",
                      entry.name, result.url, iso(staple.this_update), iso(staple.valid_until),
                      iso(entry.next_attempt))

    def _persist(self, entry: Entry, staple: Staple, now: datetime) -> Staple:
        """Write STAPLE to the directory unless it holds a newer one; return the staple to serve."""
        if entry.staple_file is None or self.cache_dir is None:
            return staple
        lock = store.FileLock(os.path.join(self.cache_dir, LOCK_NAME))
        try:
            lock.acquire(5.0, what="another process writing staples")
            try:
                install(entry.staple_file, staple, entry.tgt, self.ossl, now)
            finally:
                lock.release()
        except StaleResponse:
            disk = self.load_persisted(entry, now)
            if disk is not None:
                return disk
            return staple
        except (StoreError, LockBusy) as exc:
            self.log.error("%s: cannot persist the new staple (%s); serving it from memory, "
                           "a restart before the next refresh starts unstapled", entry.name, exc)
        return staple

    def _failed(self, entry: Entry, now: datetime, message: str,
                retry_after: Optional[float]) -> None:
        serving = entry.staple if servable(entry.staple, entry.leaf, now) else None
        with self.book.lock:
            entry.failures += 1
            entry.last_error = message
            entry.next_attempt = retry_at(now, entry.failures, self.schedule,
                                          retry_after=retry_after,
                                          valid_until=serving.valid_until if serving else None)
        self.book.count_refresh("failed")
        if serving is not None:
            keep = f"still serving the staple valid until {iso(serving.valid_until)}"
        elif entry.leaf.must_staple:
            keep = "NO staple for this Must-Staple certificate (clients refuse it)"
        else:
            keep = "no staple to serve"
        level = logging.ERROR if serving is None and entry.leaf.must_staple else logging.WARNING
        self.log.log(level, "%s: refresh failed (%d in a row): %s; %s; next try %s",
                     entry.name, entry.failures, message, keep, iso(entry.next_attempt))

    def _unchanged(self, entry: Entry, now: datetime, url: str) -> None:
        current = entry.staple
        with self.book.lock:
            entry.unchanged += 1
            entry.failures = 0
            entry.last_error = ""
            entry.next_attempt = retry_at(now, entry.unchanged, self.schedule,
                                          valid_until=current.valid_until if current else None)
        self.book.count_refresh("unchanged")
        self.log.info("%s: %s answered the staple already served; asking again %s",
                      entry.name, url, iso(entry.next_attempt))

    def _revoked(self, entry: Entry, exc: Revoked, now: datetime) -> None:
        answer = exc.staple if isinstance(exc.staple, Staple) else None
        if answer is not None:
            self._persist(entry, answer, now)
        with self.book.lock:
            entry.set_staple(None)
            entry.revoked = answer
            entry.failures = 0
            entry.last_error = str(exc)
            entry.next_attempt = now + self.schedule.backoff_max
        self.book.count_refresh("revoked")
        self.log.error("%s: %s; no staple is served for it (replace the certificate); "
                       "checking again %s", entry.name, exc, iso(entry.next_attempt))
