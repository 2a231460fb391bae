"""The Stapler service: ``Stapler`` (add/remove/attach, pre-stapling, the refresh thread, persistence, status).

A ``Stapler`` is the handshake path (``handshake.HandshakePath``: the OCSP
callback) over a ``Book`` of managed certificates (``entries``), refreshed by a
``Refresher`` (``refresh``) on the ``Schedule`` (``schedule``), in a background
thread or in the caller's (``refresh_due``).  It takes a ``clock`` and a
``rand`` so tests drive it without sleeping.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from .. import transport
from ..errors import FetchError, NotApplicable, OcspToolsError, Revoked, StoreError, UsageError
from ..fetch import FetchOptions, find_issuer, load_leaf
from ..openssl import HASHES, OpenSSL
from ..staple import iso
from . import metrics
from .entries import Book, CertificateStatus, Clock, Entry, status_of
from .handshake import HandshakePath
from .refresh import Refresher, staple_path
from .schedule import Schedule, servable

PathLike = Union[str, "os.PathLike[str]"]

#: The refresh thread re-reads the clock at least this often (suspend, clock steps).
MAX_SLEEP = 300.0


def system_clock() -> datetime:
    """The default clock: timezone-aware UTC, whole seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0)


class Stapler(HandshakePath):
    """Serves, refreshes and persists OCSP staples for a pyOpenSSL server.

    ``cache_dir``: directory for persisted staples (created if missing);
    None keeps staples in memory only.  ``openssl``: the openssl binary
    used to verify responses (never on the handshake path).  ``timeout``:
    per HTTP exchange and per openssl run.  ``method``/``hash_alg``/``proxy``
    as for ocsp-fetch (``--method``, ``--hash``, ``--proxy``).
    ``schedule``: refresh and backoff (``Schedule``).  ``clock``/``rand``:
    injectable time source and random source (tests).  ``logger``: where
    every failure and change is logged (default ``ocsptools.stapler``)."""

    def __init__(self, cache_dir: Optional[PathLike] = None, *, openssl: str = "openssl",
                 timeout: float = 10.0, method: str = "auto", hash_alg: str = "sha1",
                 proxy: Optional[str] = None, schedule: Schedule = Schedule(),
                 clock: Clock = system_clock, rand: Callable[[], float] = random.random,
                 logger: Optional[logging.Logger] = None) -> None:
        if method not in transport.METHODS:
            raise UsageError(f"method must be one of {', '.join(transport.METHODS)}, not {method!r}")
        if hash_alg not in HASHES:
            raise UsageError(f"hash_alg must be one of {', '.join(HASHES)}, not {hash_alg!r}")
        if timeout <= 0:
            raise UsageError(f"timeout must be positive, not {timeout!r}")
        self.cache_dir: Optional[str] = None if cache_dir is None else os.fspath(cache_dir)
        if self.cache_dir is not None:
            prepare_dir(self.cache_dir)
        self.schedule = schedule
        super().__init__(Book(), clock, logger or logging.getLogger("ocsptools.stapler"))
        self._ossl = OpenSSL(openssl, timeout=timeout)
        self._opts = FetchOptions(method=method, hash_alg=hash_alg,
                                  http=transport.HttpOptions(timeout=timeout, proxy=proxy))
        self._refresher = Refresher(self._book, ossl=self._ossl, opts=self._opts, schedule=schedule,
                                    clock=clock, rand=rand, log=self.log, cache_dir=self.cache_dir)
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # -- setting up ---------------------------------------------------------
    def add(self, cert: PathLike, *, issuer: Optional[PathLike] = None,
            ca_dirs: Sequence[PathLike] = (), urls: Sequence[str] = (),
            name: Optional[str] = None, use_aia: bool = True) -> CertificateStatus:
        """Manage the certificate in file CERT (PEM; leaf first, then its chain).

        The issuer is found as ocsp-fetch finds it (``issuer`` file, the
        bundle, ``CERT.issuer``, ``chain.pem``, ``ca_dirs``, AIA), checked by
        signature.  ``urls`` overrides the certificate's responder URLs.  A
        valid staple persisted earlier is loaded at once (served from the
        first handshake).  Adding the same certificate twice returns the
        existing entry.  A certificate naming no OCSP responder (and no ``urls``) is
        "not applicable": kept, never fetched, and its issuer is not looked for.  Raises
        InputError (CertificateError, IssuerNotFound) for unusable files, OpensslError if
        openssl fails."""
        book = self._book
        cert_path = os.fspath(cert)
        for url in urls:
            transport.check_url(url)
        certs, cert_label = load_leaf(cert_path, self._ossl)
        leaf = certs[0]
        urls_t = tuple(urls)
        # no OCSP responder: "not applicable", decided before any issuer is looked for
        applicable = bool(urls_t or leaf.ocsp_urls)
        now = self._clock()
        with book.lock:
            existing = book.entries.get(leaf.der)
            if existing is not None:
                return status_of(existing, now)
        target = None
        if applicable and not leaf.expired(now):
            target = find_issuer(certs, cert_path, cert_label, self._ossl,
                                 issuer_file=None if issuer is None else os.fspath(issuer),
                                 ca_dirs=[os.fspath(d) for d in ca_dirs], http=self._opts.http,
                                 use_aia=use_aia)
        fingerprint = hashlib.sha256(leaf.der).hexdigest()
        label = name or cert_path
        with book.lock:
            if label in book.names:
                label = f"{label}@{fingerprint[:12]}"
            book.names.add(label)
        staple_file = staple_path(self.cache_dir, fingerprint) if self.cache_dir is not None else None
        entry = Entry(leaf=leaf, path=cert_path, target=target, name=label, fingerprint=fingerprint,
                      staple_file=staple_file, urls=urls_t, applicable=applicable, next_attempt=now)
        if leaf.expired(now):
            self.log.warning("%s: the certificate expired at %s; not stapling it (replace the "
                             "certificate)", label, iso(leaf.not_after))
            with book.lock:
                book.dropped[leaf.der] = label
                book.names.discard(label)
            return status_of(entry, now)
        if not applicable:
            if leaf.must_staple:
                self.log.error("%s: Must-Staple certificate without an OCSP responder URL: clients "
                               "will refuse it; re-issue it without Must-Staple", label)
            else:
                self.log.debug("%s: no OCSP responder in the certificate: stapling not applicable",
                               label)
        else:
            self._refresher.load_persisted(entry, now, initial=True)
        with book.lock:
            existing = book.entries.setdefault(leaf.der, entry)   # a concurrent add() may have won
            if existing is not entry:
                book.names.discard(label)
        self._wake.set()
        return status_of(existing, now)

    def remove(self, fingerprint: str) -> bool:
        """Stop managing the certificate with this fingerprint (``CertificateStatus.fingerprint``).

        Its persisted staple stays.  Returns False if it was not managed."""
        book = self._book
        with book.lock:
            for der, entry in list(book.entries.items()):
                if entry.fingerprint == fingerprint.lower():
                    del book.entries[der]
                    book.names.discard(entry.name)
                    return True
        return False

    # -- pre-stapling and the refresh thread ----------------------------------
    def prestaple(self, timeout: float = 30.0, *, require_all: bool = False) -> None:
        """Fetch a staple now for every certificate that has no valid one.

        Blocks until every Must-Staple certificate (with ``require_all``:
        every certificate with a responder) has a valid staple, retrying
        for about TIMEOUT seconds (an HTTP exchange in progress finishes).  Raises Revoked, NotApplicable or
        FetchError naming the certificates still without one; the others
        keep being retried in the background with backoff."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._book.lock:
            entries = list(self._book.entries.values())
        now = self._clock()
        for entry in entries:
            if entry.applicable and not entry.leaf.expired(now) \
                    and not servable(entry.staple, entry.leaf, now):
                self._refresher.refresh(entry)
        delay = 0.5
        while True:
            now = self._clock()
            missing = [e for e in entries if (e.leaf.must_staple or (require_all and e.applicable))
                       and not e.leaf.expired(now) and not servable(e.staple, e.leaf, now)
                       and self._book.entries.get(e.leaf.der) is e]
            retryable = [e for e in missing if e.applicable and e.revoked is None]
            remaining = deadline - time.monotonic()
            if not missing or len(retryable) < len(missing) or remaining <= 0 \
                    or self._stopping.is_set():
                break
            self._stopping.wait(min(delay, remaining))
            delay = min(delay * 2, 5.0)
            for entry in retryable:
                self._refresher.refresh(entry)
        if missing:
            raise prestaple_error(missing, timeout)

    def start(self, *, wait: bool = True, timeout: float = 30.0, require_all: bool = False) -> None:
        """Start the background refresh thread (a daemon), after ``prestaple()`` if WAIT.

        With WAIT, a failing ``prestaple`` raises and the thread is not started."""
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()      # a closed Stapler may be started again
        if wait:
            self.prestaple(timeout, require_all=require_all)
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._run, name="ocsptools-stapler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.refresh_due()
                delay = self.seconds_until_due()
            except Exception:           # a bug: say so, keep stapling
                self.log.exception("stapler: internal error in the refresh thread (please report "
                                   "this); retrying in 60 s")
                delay = 60.0
            if self._stopping.is_set():
                break
            self._wake.wait(delay)

    def refresh_due(self) -> int:
        """One pass, in the calling thread: drop expired certificates, refresh what is due.

        Returns the number of refreshes attempted.  The background thread
        calls this; tests call it directly with an injected clock."""
        book = self._book
        now = self._clock()
        self._refresher.drop_expired(now)
        with book.lock:
            due = [e for e in book.entries.values()
                   if e.applicable and (e.force or e.next_attempt <= now)]
        done = 0
        for entry in sorted(due, key=lambda e: e.next_attempt):
            if self._stopping.is_set():
                break
            with book.lock:
                if book.entries.get(entry.leaf.der) is not entry:
                    continue
            self._refresher.refresh(entry)
            done += 1
        return done

    def seconds_until_due(self) -> float:
        """Seconds until the next refresh or certificate expiry (at most MAX_SLEEP)."""
        now = self._clock()
        with self._book.lock:
            entries = self._book.entries.values()
            times = [e.next_attempt for e in entries if e.applicable]
            times += [e.leaf.not_after for e in entries]
            if any(e.force for e in entries):
                return 0.0
        if not times:
            return MAX_SLEEP
        delay = (min(times) - now).total_seconds()
        return min(max(delay, 0.0), MAX_SLEEP)

    def refresh_now(self) -> None:
        """Ask the responders again for every certificate, soon, in the background thread
        (e.g. from a SIGHUP handler, or after replacing a responder)."""
        with self._book.lock:
            for entry in self._book.entries.values():
                entry.force = True
        self._wake.set()

    def wake(self) -> None:
        """Make the background thread re-read the clock and run what is due."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the refresh thread to stop (returns at once; ``close`` waits for it)."""
        self._stopping.set()
        self._wake.set()

    def close(self, timeout: float = 15.0) -> None:
        """Stop the refresh thread and wait for it (up to TIMEOUT s: an HTTP exchange in
        progress finishes first).  Staples already served stay valid in memory."""
        self.stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                self.log.warning("stapler: the refresh thread did not stop within %g s", timeout)
        self._thread = None

    def __enter__(self) -> "Stapler":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- looking at it --------------------------------------------------------
    def status(self) -> List[CertificateStatus]:
        """A snapshot of every managed certificate, by name."""
        now = self._clock()
        with self._book.lock:
            entries = list(self._book.entries.values())
        return sorted((status_of(e, now) for e in entries), key=lambda s: s.name)

    def counters(self) -> Dict[str, Dict[str, int]]:
        """Status requests by result and refreshes by result, since start (for metrics)."""
        with self._book.lock:
            return {"requests": dict(self._book.requests), "refreshes": dict(self._book.refreshes)}

    def register_metrics(self, registry: Any = None, *, max_certificates: int = 100) -> Any:
        """Export Prometheus metrics through prometheus_client in REGISTRY (default:
        prometheus_client's global one).  Per-certificate series are kept for at most
        MAX_CERTIFICATES certificates; every other label takes a fixed set of values."""
        return metrics.register(self, registry, max_certificates=max_certificates)


def prestaple_error(missing: List[Entry], timeout: float) -> OcspToolsError:
    """The one-line error ``prestaple`` raises for the MISSING entries after TIMEOUT seconds."""
    parts = []
    for e in missing:
        what = "Must-Staple certificate" if e.leaf.must_staple else "certificate"
        if not e.applicable:
            why = "names no OCSP responder (re-issue it without Must-Staple)"
        elif e.revoked is not None:
            why = f"is REVOKED ({e.last_error})"
        else:
            why = (f"has no valid staple after {timeout:g} s ({e.last_error or 'no answer yet'})")
        parts.append(f"{e.name}: {what} {why}")
    message = " | ".join(parts) + ("; not serving it unstapled: fix the responder or the "
                                   "certificate, or put a valid staple in the staple directory")
    single = missing[0] if len(missing) == 1 else None
    path = single.path if single is not None else None
    if single is not None and not single.applicable:
        return NotApplicable(message, path=path)
    if single is not None and single.revoked is not None:
        return Revoked(message, path=path, staple=single.revoked)
    return FetchError(message, path=path)


def prepare_dir(path: str) -> None:
    """Create the staple directory PATH if missing; StoreError if it cannot be used."""
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the staple directory: {exc.strerror}; choose "
                         f"another cache_dir", path=path) from None
    if not os.path.isdir(path):
        raise StoreError(f"{path}: not a directory; choose another cache_dir", path=path)
    if not os.access(path, os.W_OK | os.X_OK):
        raise StoreError(f"{path}: the staple directory is not writable by this user; fix its "
                         f"permissions or choose another cache_dir", path=path)
