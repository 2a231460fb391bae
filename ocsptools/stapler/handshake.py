"""The Stapler's handshake path: pyOpenSSL's OCSP callback, answering from memory by certificate DER.

``HandshakePath`` is the part of a ``Stapler`` a TLS handshake runs through
(the ``Stapler`` is one: it inherits this).  The callback takes the
certificate in use from the connection, looks its DER up in the ``Book`` and
returns the precomputed staple if the clock is inside its window
(``Entry.served``): no file, network or openssl, one short lock.  It never
raises into the handshake: anything unexpected is counted, logged (at most once
a minute) and answered with no staple.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Optional, Protocol, Set, Tuple, TypeVar

from .entries import Book, Clock, why_unstapled

try:                                    # pyOpenSSL is needed only by the servers that use this
    from OpenSSL import crypto as _crypto
except ImportError:                     # pragma: no cover - pyOpenSSL not installed
    _crypto = None  # type: ignore[assignment]


class ConnectionLike(Protocol):
    """What the OCSP callback needs of a pyOpenSSL ``SSL.Connection``."""

    def get_certificate(self) -> Any: ...


class ContextLike(Protocol):
    """What ``attach`` needs of a pyOpenSSL ``SSL.Context``."""

    def set_ocsp_server_callback(self, callback: Any, data: Any = None) -> None: ...


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


class HandshakePath:
    """The OCSP callback over a ``Book``: ``attach``, ``ocsp_callback``, ``staple_for``."""

    def __init__(self, book: Book, clock: Clock, log: logging.Logger) -> None:
        self._book = book
        # the book's own lock and dictionaries (never rebound), one attribute away per handshake
        self._lock = book.lock
        self._entries = book.entries
        self._requests = book.requests
        self._dropped = book.dropped
        self._clock = clock
        self.log = log
        self._unknown_logged: Set[bytes] = set()
        self._callback_error_at = -1e9              # monotonic time of the last logged callback error
        self._callback_errors_unlogged = 0

    def attach(self, context: _Ctx) -> _Ctx:
        """Install the OCSP callback on a pyOpenSSL ``SSL.Context`` (each SNI context too).

        pyOpenSSL requires this before the context makes its first connection."""
        context.set_ocsp_server_callback(self.ocsp_callback)
        return context

    def ocsp_callback(self, conn: ConnectionLike, data: Any = None) -> bytes:
        """pyOpenSSL's server OCSP callback: the staple for the certificate in use, or b"".

        Memory only; never raises (an exception would abort the handshake)."""
        try:
            cert = conn.get_certificate()
            if cert is None:
                self._book.count_request("unknown_certificate")
                return b""
            der = certificate_der(cert)
            return self.staple_for(der)
        except Exception as exc:    # never into the handshake; never silently
            self._book.count_request("error")
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
                                    why_unstapled(entry, now))
                        else:
                            note = (logging.WARNING, "%s: handshakes get no staple: %s",
                                    entry.name, why_unstapled(entry, now))
        if note is not None:
            self.log.log(note[0], note[1], *note[2:])
        return der
