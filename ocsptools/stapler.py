"""In-process OCSP stapling for pyOpenSSL servers: ``Stapler``.

A ``Stapler`` keeps one verified staple per certificate in memory and hands
it to pyOpenSSL from ``Context.set_ocsp_server_callback``::

    stapler = Stapler("/var/cache/myserver/staples")
    stapler.add("/etc/ssl/example/fullchain.pem")    # leaf first, then its chain
    stapler.attach(ctx)                              # before ctx makes connections
    stapler.start()                                  # waits for Must-Staple staples
    ...
    stapler.close()

What it guarantees:

* the OCSP callback answers from memory (no file, network or openssl on the
  handshake path) with the staple of the certificate in use (found by its
  DER, so SNI servers with several contexts work), and never raises into the
  handshake: anything unexpected is logged and answered with no staple;
* only a staple that fully verified for that certificate (``verify.verify``:
  signature, responder authorisation, CertID), says ``good`` and is valid at
  this instant (``ocsptools.life``: never past nextUpdate, the responder
  certificate's or the certificate's notAfter) is ever served;
* a background thread refreshes each staple before half of its effective life
  [thisUpdate, min(nextUpdate, responder and certificate notAfter)] has elapsed (a little
  earlier, at random, so several workers do not ask at once), and on failure
  retries with exponential backoff (1 minute doubling to 1 hour, never past
  the current staple's expiry) while it keeps serving the valid staple;
* with a directory, staples are persisted (``store.atomic_write`` through
  ``fetch.install``: replaced only by a newer verified response) and loaded
  again at ``add()``, so a restarted server staples from its first handshake
  even when the responder is down; several processes may share a directory
  (a newer staple written by one is adopted by the others);
* ``prestaple()`` / ``start(wait=True)`` block until every Must-Staple
  certificate has a valid staple, or raise a clear ``OcspToolsError``: a
  Must-Staple certificate is never knowingly served unstapled;
* a certificate past its notAfter is dropped (not served, not refreshed, its
  persisted staple removed);
* a certificate without an OCSP URL is "not applicable": kept quietly,
  never fetched.

Revoked: the response is kept (persisted, so a restart knows) but never
served, and the old ``good`` staple stops being served; it is re-checked
hourly.  ``unknown`` and every fetch failure keep the current staple.

The schedule is pure (``next_refresh``, ``retry_at``, ``servable`` take
``now``; the rules are ``ocsptools.life``'s); the ``Stapler`` takes a ``clock`` so tests drive it without sleeping.
Optional Prometheus metrics: ``Stapler.register_metrics()`` (extra
``metrics``, ``ocsptools._metrics``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import (Any, Callable, Dict, List, Optional, Protocol, Sequence, Set, Tuple, TypeVar,
                    Union)

from . import life, store, transport
from .errors import (CertStatusError, FetchError, LockBusy, NotApplicable, OcspToolsError,
                     Revoked, StaleResponse, StoreError, UsageError)
from .fetch import (FetchOptions, Target, fetch_staple, find_issuer, install, installed_staple,
                    load_leaf, require_good)
from .openssl import HASHES, OpenSSL
from .staple import CLOCK_SKEW, Certificate, Staple, iso

__all__ = [
    "Stapler",
    "Schedule",
    "CertificateStatus",
    "servable",
    "serve_window",
    "next_refresh",
    "retry_at",
    "system_clock",
    "STAPLED",
    "UNSTAPLED",
    "NOT_APPLICABLE",
    "REVOKED",
    "EXPIRED",
]

Clock = Callable[[], datetime]
PathLike = Union[str, "os.PathLike[str]"]

#: States of a managed certificate (``CertificateStatus.state``).
STAPLED = "stapled"            # a valid good staple is served
UNSTAPLED = "unstapled"        # no valid staple (yet): handshakes get none
NOT_APPLICABLE = "not-applicable"  # the certificate names no OCSP responder
REVOKED = "revoked"            # the responder says revoked: nothing is served
EXPIRED = "expired"            # the certificate expired: dropped (only add() reports this)
STATES = (STAPLED, UNSTAPLED, NOT_APPLICABLE, REVOKED, EXPIRED)

#: Results counted for status requests and refreshes (fixed sets: bounded metric labels).
REQUEST_RESULTS = ("stapled", "unstapled", "unknown_certificate", "error")
REFRESH_RESULTS = ("ok", "unchanged", "failed", "revoked", "from_disk")

#: Persisted staples are DER files named ``<sha256 of the certificate DER, hex>.ocsp``.
STAPLE_SUFFIX = ".ocsp"
LOCK_NAME = ".ocsptools-stapler.lock"

#: The refresh thread re-reads the clock at least this often (suspend, clock steps).
MAX_SLEEP = 300.0


def system_clock() -> datetime:
    """The default clock: timezone-aware UTC, whole seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0)


# --------------------------------------------------------------------------
# The schedule: pure, takes ``now``
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Schedule:
    """When to refresh and how to back off (the rules are ``ocsptools.life``'s; these are the
    Stapler's settings of them).

    ``refresh_at``: share of the staple's effective life after which it is
    refreshed (0.5: half-life).  ``jitter``: refresh earlier by up to this
    fraction of the time left until then, at random, so workers sharing a
    responder spread out (0 in tests).  ``min_interval``: never ask again
    sooner than this after an answer.  ``backoff_first`` doubling up to
    ``backoff_max`` after failures."""

    refresh_at: float = life.RENEW_SHARE
    jitter: float = life.JITTER
    min_interval: timedelta = timedelta(minutes=1)
    backoff_first: timedelta = timedelta(minutes=1)
    backoff_max: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not 0.0 < self.refresh_at < 1.0:
            raise UsageError(f"refresh_at must lie between 0 and 1, not {self.refresh_at!r}")
        if not 0.0 <= self.jitter <= 1.0:
            raise UsageError(f"jitter must lie in [0, 1], not {self.jitter!r}")
        for name in ("min_interval", "backoff_first", "backoff_max"):
            if getattr(self, name) <= timedelta(0):
                raise UsageError(f"{name} must be a positive duration")
        if self.backoff_first > self.backoff_max:
            raise UsageError("backoff_first must not exceed backoff_max")

    @property
    def rule(self) -> life.RenewalRule:
        return life.RenewalRule(share=self.refresh_at)

    @property
    def backoff(self) -> life.Backoff:
        return life.Backoff(base=self.backoff_first.total_seconds(),
                            cap=self.backoff_max.total_seconds())


def serve_window(staple: Optional[Staple], leaf: Certificate, *,
                 skew: timedelta = CLOCK_SKEW) -> Optional[Tuple[datetime, datetime]]:
    """The instants [start, end) during which STAPLE may be stapled to LEAF's handshakes, or None.

    Only a verified ``good`` response for LEAF's serial, with a nextUpdate,
    qualifies; it may be served from SKEW before its thisUpdate until its
    effective end (``life``: the earliest of its nextUpdate, its responder
    certificate's notAfter and LEAF's notAfter)."""
    if staple is None or not staple.verified or staple.cert_status != "good":
        return None
    if staple.serial != leaf.serial:
        return None
    lf = replace(staple.life, cert_not_after=leaf.not_after)
    if lf.end is None:
        return None
    return lf.this_update - skew, lf.end


def servable(staple: Optional[Staple], leaf: Certificate, now: datetime, *,
             skew: timedelta = CLOCK_SKEW) -> bool:
    """May STAPLE be stapled to LEAF's handshakes at NOW?  (NOW inside ``serve_window``.)"""
    window = serve_window(staple, leaf, skew=skew)
    return window is not None and window[0] <= now < window[1]


def next_refresh(staple: Staple, now: datetime, schedule: Schedule, rand: float) -> datetime:
    """When the Stapler refreshes STAPLE: ``life.renewal_instant`` with the schedule's settings."""
    due, _ = life.renewal_due(staple.life, schedule.rule)
    return life.renewal_instant(now, due, staple.valid_until, rand=rand, jitter=schedule.jitter,
                                floor=schedule.min_interval)


def retry_at(now: datetime, failures: int, schedule: Schedule, *,
             retry_after: Optional[float] = None, valid_until: Optional[datetime] = None) -> datetime:
    """When the Stapler tries again after FAILURES failures: ``life.retry_delay`` from NOW."""
    left = None if valid_until is None else (valid_until - now).total_seconds()
    return now + timedelta(seconds=life.retry_delay(failures, schedule.backoff,
                                                    retry_after=retry_after, left=left))


# --------------------------------------------------------------------------
# What callers see
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class CertificateStatus:
    """A snapshot of one managed certificate (``Stapler.status()``, ``Stapler.add()``)."""

    name: str                           # as given to add(name=...), else the certificate path
    path: str                           # the certificate file
    fingerprint: str                    # SHA-256 of the certificate DER, lower-case hex
    subject: str
    serial: str                         # hex
    not_after: datetime
    must_staple: bool
    state: str                          # stapled | unstapled | not-applicable | revoked | expired
    this_update: Optional[datetime] = None     # of the staple being served (or the revoked answer)
    next_update: Optional[datetime] = None
    valid_until: Optional[datetime] = None     # min(nextUpdate, responder and certificate notAfter)
    next_refresh: Optional[datetime] = None
    failures: int = 0                   # consecutive failed refreshes
    last_error: str = ""
    staple_file: Optional[str] = None   # where the staple is persisted, if a directory is used
    answered: Optional[str] = None      # the status of the responder's last verified answer


class ConnectionLike(Protocol):
    """What the OCSP callback needs of a pyOpenSSL ``SSL.Connection``."""

    def get_certificate(self) -> Any: ...


class ContextLike(Protocol):
    """What ``attach`` needs of a pyOpenSSL ``SSL.Context``."""

    def set_ocsp_server_callback(self, callback: Any, data: Any = None) -> None: ...


try:                                    # pyOpenSSL is needed only by the servers that use this
    from OpenSSL import crypto as _crypto
except ImportError:                     # pragma: no cover - pyOpenSSL not installed
    _crypto = None  # type: ignore[assignment]


_Ctx = TypeVar("_Ctx", bound=ContextLike)


def certificate_der(cert: Any) -> bytes:
    """The DER of a pyOpenSSL ``X509`` (or a ``cryptography`` certificate, or DER bytes)."""
    if isinstance(cert, (bytes, bytearray)):
        return bytes(cert)
    if _crypto is not None and isinstance(cert, _crypto.X509):
        return _crypto.dump_certificate(_crypto.FILETYPE_ASN1, cert)    # the fastest way (~3 us)
    to_cryptography = getattr(cert, "to_cryptography", None)
    if to_cryptography is not None:
        cert = to_cryptography()
    from cryptography.hazmat.primitives.serialization import Encoding
    der = cert.public_bytes(Encoding.DER)
    if not isinstance(der, bytes):
        raise TypeError(f"cannot take the DER of {type(cert).__name__}")
    return der


# --------------------------------------------------------------------------
# The Stapler
# --------------------------------------------------------------------------

@dataclass
class _Entry:
    """One managed certificate.  Fields are changed under ``Stapler._lock``."""

    leaf: Certificate
    path: str                           # the certificate file, as given
    target: Optional[Target]            # with its issuer; None when not applicable (never looked for)
    name: str
    fingerprint: str
    staple_file: Optional[str]
    urls: Tuple[str, ...]
    applicable: bool
    next_attempt: datetime
    staple: Optional[Staple] = None     # the good staple being served (None: nothing)
    revoked: Optional[Staple] = None    # a verified revoked answer (then staple is None)
    failures: int = 0
    unchanged: int = 0                  # refreshes in a row that brought nothing newer
    last_error: str = ""
    force: bool = False                 # refresh_now(): ask the responder even if the disk is newer
    answered: Optional[str] = None      # good | revoked | unknown: the last verified answer said
    unserved_logged: bool = False       # "handshake without staple" logged since the last change
    served: Optional[Tuple[bytes, datetime, datetime]] = None   # (DER, start, end): the callback's view

    @property
    def tgt(self) -> Target:
        """The target of an applicable certificate (only those are fetched, verified, persisted)."""
        assert self.target is not None
        return self.target

    def set_staple(self, staple: Optional[Staple]) -> None:
        """Change the good staple (None: serve nothing) and the callback's precomputed view of it."""
        self.staple = staple
        window = serve_window(staple, self.leaf)
        self.served = None if staple is None or window is None else (staple.der, window[0], window[1])


class Stapler:
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
            _prepare_dir(self.cache_dir)
        self.schedule = schedule
        self.log = logger or logging.getLogger("ocsptools.stapler")
        self._ossl = OpenSSL(openssl, timeout=timeout)
        self._opts = FetchOptions(method=method, hash_alg=hash_alg,
                                  http=transport.HttpOptions(timeout=timeout, proxy=proxy))
        self._clock = clock
        self._rand = rand
        self._lock = threading.Lock()            # entries, counters (short sections only)
        self._refresh_lock = threading.RLock()   # one refresh at a time (network, openssl)
        self._entries: Dict[bytes, _Entry] = {}
        self._names: Set[str] = set()
        self._dropped: Dict[bytes, str] = {}     # DER -> name of certificates dropped as expired
        self._unknown_logged: Set[bytes] = set()
        self._callback_error_at = -1e9              # monotonic time of the last logged callback error
        self._callback_errors_unlogged = 0
        self._requests: Dict[str, int] = {k: 0 for k in REQUEST_RESULTS}
        self._refreshes: Dict[str, int] = {k: 0 for k in REFRESH_RESULTS}
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
        cert_path = os.fspath(cert)
        for url in urls:
            transport.check_url(url)
        certs, cert_label = load_leaf(cert_path, self._ossl)
        leaf = certs[0]
        urls_t = tuple(urls)
        # no OCSP responder: "not applicable", decided before any issuer is looked for
        applicable = bool(urls_t or leaf.ocsp_urls)
        now = self._clock()
        with self._lock:
            existing = self._entries.get(leaf.der)
            if existing is not None:
                return self._status(existing, now)
        target = None
        if applicable and not leaf.expired(now):
            target = find_issuer(certs, cert_path, cert_label, self._ossl,
                                 issuer_file=None if issuer is None else os.fspath(issuer),
                                 ca_dirs=[os.fspath(d) for d in ca_dirs], http=self._opts.http,
                                 use_aia=use_aia)
        fingerprint = hashlib.sha256(leaf.der).hexdigest()
        label = name or cert_path
        with self._lock:
            if label in self._names:
                label = f"{label}@{fingerprint[:12]}"
            self._names.add(label)
        staple_file = (os.path.join(self.cache_dir, fingerprint + STAPLE_SUFFIX)
                       if self.cache_dir is not None else None)
        entry = _Entry(leaf=leaf, path=cert_path, target=target, name=label, fingerprint=fingerprint,
                       staple_file=staple_file, urls=urls_t, applicable=applicable, next_attempt=now)
        if leaf.expired(now):
            self.log.warning("%s: the certificate expired at %s; not stapling it (replace the "
                             "certificate)", label, iso(leaf.not_after))
            with self._lock:
                self._dropped[leaf.der] = label
                self._names.discard(label)
            return self._status(entry, now)
        if not applicable:
            if leaf.must_staple:
                self.log.error("%s: Must-Staple certificate without an OCSP responder URL: clients "
                               "will refuse it; re-issue it without Must-Staple", label)
            else:
                self.log.debug("%s: no OCSP responder in the certificate: stapling not applicable",
                               label)
        else:
            self._load_persisted(entry, now, initial=True)
        with self._lock:
            existing = self._entries.setdefault(leaf.der, entry)   # a concurrent add() may have won
            if existing is not entry:
                self._names.discard(label)
        self._wake.set()
        return self._status(existing, now)

    def remove(self, fingerprint: str) -> bool:
        """Stop managing the certificate with this fingerprint (``CertificateStatus.fingerprint``).

        Its persisted staple stays.  Returns False if it was not managed."""
        with self._lock:
            for der, entry in list(self._entries.items()):
                if entry.fingerprint == fingerprint.lower():
                    del self._entries[der]
                    self._names.discard(entry.name)
                    return True
        return False

    def attach(self, context: _Ctx) -> _Ctx:
        """Install the OCSP callback on a pyOpenSSL ``SSL.Context`` (each SNI context too).

        pyOpenSSL requires this before the context makes its first connection."""
        context.set_ocsp_server_callback(self.ocsp_callback)
        return context

    # -- the handshake path -------------------------------------------------
    def ocsp_callback(self, conn: ConnectionLike, data: Any = None) -> bytes:
        """pyOpenSSL's server OCSP callback: the staple for the certificate in use, or b"".

        Memory only; never raises (an exception would abort the handshake)."""
        try:
            cert = conn.get_certificate()
            if cert is None:
                self._count_request("unknown_certificate")
                return b""
            der = certificate_der(cert)
            return self.staple_for(der)
        except Exception as exc:    # never into the handshake; never silently
            self._count_request("error")
            try:
                mono = time.monotonic()
                with self._lock:
                    quiet = mono - self._callback_error_at < 60.0
                    if quiet:
                        self._callback_errors_unlogged += 1
                        return b""
                    self._callback_error_at, unlogged = mono, self._callback_errors_unlogged
                    self._callback_errors_unlogged = 0
                more = f"; {unlogged} more since the last report" if unlogged else ""
                self.log.error("OCSP callback failed (%s: %s); handshake continues without a "
                               "staple (please report this)%s", type(exc).__name__, exc, more)
            except Exception:
                pass
            return b""

    def staple_for(self, cert_der: bytes) -> bytes:
        """The DER staple to send with the certificate CERT_DER now, or b"" (what the callback does)."""
        now = self._clock()
        note: Optional[Tuple[Any, ...]] = None
        with self._lock:
            entry = self._entries.get(cert_der)
            if entry is None:
                self._requests["unknown_certificate"] += 1
                if cert_der not in self._unknown_logged and len(self._unknown_logged) < 1000:
                    self._unknown_logged.add(cert_der)
                    dropped = self._dropped.get(cert_der)
                    if dropped is not None:
                        note = (logging.WARNING, "%s: the server still presents this expired "
                                "certificate; replace it", dropped)
                    else:
                        note = (logging.WARNING, "a handshake uses a certificate the Stapler does "
                                "not manage (SHA-256 %s); add() it", hashlib.sha256(cert_der).hexdigest())
                der = b""
            else:
                served = entry.served
                if served is not None and served[1] <= now < served[2]:
                    self._requests["stapled"] += 1
                    der = served[0]
                else:
                    self._requests["unstapled"] += 1
                    der = b""
                    if not entry.unserved_logged and entry.applicable:
                        entry.unserved_logged = True
                        if entry.leaf.must_staple:
                            note = (logging.ERROR, "%s: Must-Staple certificate served WITHOUT a "
                                    "staple (clients will refuse it): %s", entry.name,
                                    _why_unstapled(entry, now))
                        else:
                            note = (logging.WARNING, "%s: handshakes get no staple: %s",
                                    entry.name, _why_unstapled(entry, now))
        if note is not None:
            self.log.log(note[0], note[1], *note[2:])
        return der

    # -- pre-stapling and the refresh thread ----------------------------------
    def prestaple(self, timeout: float = 30.0, *, require_all: bool = False) -> None:
        """Fetch a staple now for every certificate that has no valid one.

        Blocks until every Must-Staple certificate (with ``require_all``:
        every certificate with a responder) has a valid staple, retrying
        for about TIMEOUT seconds (an HTTP exchange in progress finishes).  Raises Revoked, NotApplicable or
        FetchError naming the certificates still without one; the others
        keep being retried in the background with backoff."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            entries = list(self._entries.values())
        now = self._clock()
        for entry in entries:
            if entry.applicable and not entry.leaf.expired(now) \
                    and not servable(entry.staple, entry.leaf, now):
                self._refresh(entry)
        delay = 0.5
        while True:
            now = self._clock()
            missing = [e for e in entries if (e.leaf.must_staple or (require_all and e.applicable))
                       and not e.leaf.expired(now) and not servable(e.staple, e.leaf, now)
                       and self._entries.get(e.leaf.der) is e]
            retryable = [e for e in missing if e.applicable and e.revoked is None]
            remaining = deadline - time.monotonic()
            if not missing or len(retryable) < len(missing) or remaining <= 0 \
                    or self._stopping.is_set():
                break
            self._stopping.wait(min(delay, remaining))
            delay = min(delay * 2, 5.0)
            for entry in retryable:
                self._refresh(entry)
        if missing:
            raise self._prestaple_error(missing, timeout)

    def _prestaple_error(self, missing: List[_Entry], timeout: float) -> OcspToolsError:
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
        now = self._clock()
        self._drop_expired(now)
        with self._lock:
            due = [e for e in self._entries.values()
                   if e.applicable and (e.force or e.next_attempt <= now)]
        done = 0
        for entry in sorted(due, key=lambda e: e.next_attempt):
            if self._stopping.is_set():
                break
            with self._lock:
                if self._entries.get(entry.leaf.der) is not entry:
                    continue
            self._refresh(entry)
            done += 1
        return done

    def seconds_until_due(self) -> float:
        """Seconds until the next refresh or certificate expiry (at most MAX_SLEEP)."""
        now = self._clock()
        with self._lock:
            times = [e.next_attempt for e in self._entries.values() if e.applicable]
            times += [e.leaf.not_after for e in self._entries.values()]
            if any(e.force for e in self._entries.values()):
                return 0.0
        if not times:
            return MAX_SLEEP
        delay = (min(times) - now).total_seconds()
        return min(max(delay, 0.0), MAX_SLEEP)

    def refresh_now(self) -> None:
        """Ask the responders again for every certificate, soon, in the background thread
        (e.g. from a SIGHUP handler, or after replacing a responder)."""
        with self._lock:
            for entry in self._entries.values():
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
        with self._lock:
            entries = list(self._entries.values())
        return sorted((self._status(e, now) for e in entries), key=lambda s: s.name)

    def counters(self) -> Dict[str, Dict[str, int]]:
        """Status requests by result and refreshes by result, since start (for metrics)."""
        with self._lock:
            return {"requests": dict(self._requests), "refreshes": dict(self._refreshes)}

    def register_metrics(self, registry: Any = None, *, max_certificates: int = 100) -> Any:
        """Export Prometheus metrics through prometheus_client (extra ``metrics``) in REGISTRY
        (default: prometheus_client's global one).  Per-certificate series are kept for at
        most MAX_CERTIFICATES certificates; every other label takes a fixed set of values."""
        from ._metrics import register
        return register(self, registry, max_certificates=max_certificates)

    def _status(self, entry: _Entry, now: datetime) -> CertificateStatus:
        leaf = entry.leaf
        staple = entry.staple if entry.staple is not None else entry.revoked
        if leaf.expired(now):
            state = EXPIRED
        elif not entry.applicable:
            state = NOT_APPLICABLE
        elif entry.revoked is not None:
            state = REVOKED
        elif servable(entry.staple, leaf, now):
            state = STAPLED
        else:
            state = UNSTAPLED
        return CertificateStatus(
            name=entry.name, path=entry.path, fingerprint=entry.fingerprint,
            subject=leaf.subject, serial=leaf.serial_hex, not_after=leaf.not_after,
            must_staple=leaf.must_staple, state=state,
            this_update=staple.this_update if staple else None,
            next_update=staple.next_update if staple else None,
            valid_until=staple.valid_until if staple else None,
            next_refresh=entry.next_attempt if entry.applicable else None,
            failures=entry.failures, last_error=entry.last_error, staple_file=entry.staple_file,
            answered=entry.answered)

    # -- refreshing one certificate -------------------------------------------
    def _count_request(self, result: str) -> None:
        with self._lock:
            self._requests[result] += 1

    def _count_refresh(self, result: str) -> None:
        with self._lock:
            self._refreshes[result] += 1

    def _drop_expired(self, now: datetime) -> None:
        with self._lock:
            expired = [(der, e) for der, e in self._entries.items() if e.leaf.expired(now)]
            for der, entry in expired:
                del self._entries[der]
                self._dropped[der] = entry.name
                self._names.discard(entry.name)
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

    def _load_persisted(self, entry: _Entry, now: datetime, *, initial: bool = False) -> Optional[Staple]:
        """Adopt the persisted staple if it is valid and newer than the one in memory."""
        if entry.staple_file is None:
            return None
        try:
            found = installed_staple(entry.staple_file, entry.tgt, self._ossl, now)
        except (StoreError, OcspToolsError) as exc:
            self.log.warning("%s: cannot use the persisted staple: %s", entry.name, exc)
            return None
        if found is None:
            return None
        if found.cert_status == "revoked":
            if initial:
                with self._lock:
                    entry.revoked = found
                    entry.set_staple(None)
                    entry.last_error = _revoked_text(found)
                self.log.error("%s: the certificate is REVOKED (persisted answer, %s); not "
                               "stapling it", entry.name, _revoked_text(found))
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

    def _install_in_memory(self, entry: _Entry, staple: Staple, now: datetime) -> None:
        nxt = next_refresh(staple, now, self.schedule, self._rand())
        with self._lock:
            entry.set_staple(staple)
            entry.revoked = None
            entry.failures = 0
            entry.unchanged = 0
            entry.last_error = ""
            entry.unserved_logged = False
            entry.next_attempt = nxt

    def _refresh(self, entry: _Entry) -> None:
        """Bring ENTRY's staple up to date; never raises (failures are logged and scheduled)."""
        with self._refresh_lock:
            now = self._clock()
            force = entry.force
            with self._lock:
                entry.force = False
            try:
                if not force and self._load_persisted(entry, now) is not None \
                        and entry.next_attempt > now:
                    self._count_refresh("from_disk")
                    return
                self._fetch(entry, now)
            except Exception as exc:   # a bug below: schedule a retry rather than spin
                self.log.exception("%s: internal error while refreshing (please report this)",
                                   entry.name)
                self._failed(entry, now, f"internal error: {type(exc).__name__}: {exc}", None)

    def _fetch(self, entry: _Entry, now: datetime) -> None:
        opts = replace(self._opts, urls=entry.urls) if entry.urls else self._opts
        try:
            result = fetch_staple(entry.tgt, opts, self._ossl, self._clock)
            for warning in result.warnings:
                self.log.warning("%s: %s", entry.name, warning)
            require_good(result, entry.tgt)
        except Revoked as exc:
            with self._lock:
                entry.answered = exc.cert_status
            self._revoked(entry, exc, now)
            return
        except CertStatusError as exc:
            with self._lock:
                entry.answered = exc.cert_status
            self._failed(entry, now, str(exc), None)
            return
        except NotApplicable as exc:
            with self._lock:
                entry.applicable = False
                entry.last_error = str(exc)
            return
        except OcspToolsError as exc:
            self._failed(entry, now, str(exc), getattr(exc, "retry_after", None))
            return
        staple = result.staple
        with self._lock:
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
            self._count_refresh("from_disk")
            return
        self._install_in_memory(entry, staple, now)
        self._count_refresh("ok")
        self.log.info("%s: new staple from %s: thisUpdate %s, valid until %s; next refresh %s",
                      entry.name, result.url, iso(staple.this_update), iso(staple.valid_until),
                      iso(entry.next_attempt))

    def _persist(self, entry: _Entry, staple: Staple, now: datetime) -> Staple:
        """Write STAPLE to the directory unless it holds a newer one; return the staple to serve."""
        if entry.staple_file is None or self.cache_dir is None:
            return staple
        lock = store.FileLock(os.path.join(self.cache_dir, LOCK_NAME))
        try:
            lock.acquire(5.0, what="another process writing staples")
            try:
                install(entry.staple_file, staple, entry.tgt, self._ossl, now)
            finally:
                lock.release()
        except StaleResponse:
            disk = self._load_persisted(entry, now)
            if disk is not None:
                return disk
            return staple
        except (StoreError, LockBusy) as exc:
            self.log.error("%s: cannot persist the new staple (%s); serving it from memory, "
                           "a restart before the next refresh starts unstapled", entry.name, exc)
        return staple

    def _failed(self, entry: _Entry, now: datetime, message: str,
                retry_after: Optional[float]) -> None:
        serving = entry.staple if servable(entry.staple, entry.leaf, now) else None
        with self._lock:
            entry.failures += 1
            entry.last_error = message
            entry.next_attempt = retry_at(now, entry.failures, self.schedule,
                                            retry_after=retry_after,
                                            valid_until=serving.valid_until if serving else None)
        self._count_refresh("failed")
        if serving is not None:
            keep = f"still serving the staple valid until {iso(serving.valid_until)}"
        elif entry.leaf.must_staple:
            keep = "NO staple for this Must-Staple certificate (clients refuse it)"
        else:
            keep = "no staple to serve"
        level = logging.ERROR if serving is None and entry.leaf.must_staple else logging.WARNING
        self.log.log(level, "%s: refresh failed (%d in a row): %s; %s; next try %s",
                     entry.name, entry.failures, message, keep, iso(entry.next_attempt))

    def _unchanged(self, entry: _Entry, now: datetime, url: str) -> None:
        current = entry.staple
        with self._lock:
            entry.unchanged += 1
            entry.failures = 0
            entry.last_error = ""
            entry.next_attempt = retry_at(now, entry.unchanged, self.schedule,
                                            valid_until=current.valid_until if current else None)
        self._count_refresh("unchanged")
        self.log.info("%s: %s answered the staple already served; asking again %s",
                      entry.name, url, iso(entry.next_attempt))

    def _revoked(self, entry: _Entry, exc: Revoked, now: datetime) -> None:
        answer = exc.staple if isinstance(exc.staple, Staple) else None
        if answer is not None:
            self._persist(entry, answer, now)
        with self._lock:
            entry.set_staple(None)
            entry.revoked = answer
            entry.failures = 0
            entry.last_error = str(exc)
            entry.next_attempt = now + self.schedule.backoff_max
        self._count_refresh("revoked")
        self.log.error("%s: %s; no staple is served for it (replace the certificate); "
                       "checking again %s", entry.name, exc, iso(entry.next_attempt))


def _revoked_text(staple: Staple) -> str:
    reason = staple.single.revocation_reason
    return f"revoked at {iso(staple.single.revocation_time)}" + (f" ({reason})" if reason else "")


def _why_unstapled(entry: _Entry, now: datetime) -> str:
    if entry.revoked is not None:
        return "the certificate is revoked"
    staple = entry.staple
    if staple is not None and staple.valid_until is not None and staple.valid_until <= now:
        return f"the staple expired at {iso(staple.valid_until)} ({entry.last_error or 'no refresh yet'})"
    if entry.last_error:
        return entry.last_error
    return "no staple fetched yet"


def _prepare_dir(path: str) -> None:
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
