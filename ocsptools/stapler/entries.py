"""The Stapler's state: each managed certificate (``Entry``), the ``Book`` of them, and the snapshots callers see.

The ``Book`` is shared by the handshake path (``handshake``), the refresher
(``refresh``) and the service (``service``); every field of it and of its
entries is changed under ``Book.lock``, in short sections.  The functions here
are pure: ``status_of`` turns an entry into the ``CertificateStatus`` snapshot
``Stapler.status()`` returns, ``why_unstapled`` says in one line why a
handshake got no staple.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Dict, Optional, Set, Tuple

from ..fetch import Target
from ..staple import Certificate, Staple, iso
from .schedule import serve_window, servable

#: The Stapler's time source: timezone-aware UTC.
Clock = Callable[[], datetime]

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


@dataclass
class Entry:
    """One managed certificate.  Fields are changed under ``Book.lock``."""

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


class Book:
    """The managed certificates by DER, their names, those dropped as expired, and the counters
    of status requests and refreshes: shared by the handshake path, the refresher and the
    service, changed under ``lock`` (short sections only)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: Dict[bytes, Entry] = {}
        self.names: Set[str] = set()
        self.dropped: Dict[bytes, str] = {}     # DER -> name of certificates dropped as expired
        self.requests: Dict[str, int] = {k: 0 for k in REQUEST_RESULTS}
        self.refreshes: Dict[str, int] = {k: 0 for k in REFRESH_RESULTS}

    def count_request(self, result: str) -> None:
        with self.lock:
            self.requests[result] += 1

    def count_refresh(self, result: str) -> None:
        with self.lock:
            self.refreshes[result] += 1


def status_of(entry: Entry, now: datetime) -> CertificateStatus:
    """What ``Stapler.status()`` says of ENTRY at NOW."""
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


def revoked_text(staple: Staple) -> str:
    """``revoked at <time> (<reason>)`` of a revoked answer."""
    reason = staple.single.revocation_reason
    return f"revoked at {iso(staple.single.revocation_time)}" + (f" ({reason})" if reason else "")


def why_unstapled(entry: Entry, now: datetime) -> str:
    """Why ENTRY's handshakes get no staple at NOW, in one line."""
    if entry.revoked is not None:
        return "the certificate is revoked"
    staple = entry.staple
    if staple is not None and staple.valid_until is not None and staple.valid_until <= now:
        return f"the staple expired at {iso(staple.valid_until)} ({entry.last_error or 'no refresh yet'})"
    if entry.last_error:
        return entry.last_error
    return "no staple fetched yet"
