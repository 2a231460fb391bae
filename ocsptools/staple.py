"""Value objects: what a staple, its SingleResponses and the certificates around it are.

Nothing here does I/O or reads the clock: every method that needs the time
takes ``now`` as an argument.  The openssl layer (``ocsptools.openssl``)
builds these from openssl's output; everything else consumes them.

Certificates live here too (not in ``certs.py``) because the openssl parser
produces them and ``certs.py`` (loading, issuer discovery) consumes them:
one dependency-free value module avoids an import cycle.

All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional, Tuple

from .codec import serial as serial_text
from .codec.pem import pem_encode
from .life import CLOCK_SKEW, Life, iso

__all__ = ["CLOCK_SKEW", "iso", "Certificate", "SingleResponse", "ResponseInfo", "Staple",
           "encode_staple", "decode_staple", "pem_encode", "normalize_name", "normalize_hex", "FORMATS"]


FORMATS = ("der", "pem", "base64")


def encode_staple(der: bytes, fmt: str) -> bytes:
    """DER as written to disk or stdout: raw DER, PEM (``OCSP RESPONSE``), or one base64 line
    (what HAProxy's ``set ssl ocsp-response`` takes)."""
    if fmt == "der":
        return der
    if fmt == "pem":
        return pem_encode(der, "OCSP RESPONSE").encode("ascii")
    if fmt == "base64":
        return base64.b64encode(der) + b"\n"
    raise ValueError(f"unknown format {fmt!r}")


def decode_staple(data: bytes) -> bytes:
    """The DER of a stored staple in any of the FORMATS (unrecognised bytes come back as they are)."""
    if data[:1] == b"\x30":
        return data
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        text = b"".join(l for l in text.splitlines() if not l.startswith(b"-----"))
    try:
        decoded = base64.b64decode(b"".join(text.split()), validate=True)
    except ValueError:
        return data
    return decoded if decoded[:1] == b"\x30" else data


def normalize_name(name: str) -> str:
    """Make openssl's two DN print styles comparable (``O = X, CN = Y`` vs ``O=X, CN=Y``)."""
    parts = [p.strip() for p in name.replace(" = ", "=").split(",")]
    return ", ".join(p for p in parts if p)


def normalize_hex(value: str) -> str:
    return value.replace(":", "").replace(" ", "").upper()


@dataclass(frozen=True)
class Certificate:
    """One X.509 certificate: its DER and the fields ocsptools needs."""

    der: bytes
    subject: str
    issuer: str
    serial: int
    not_before: datetime
    not_after: datetime
    ocsp_urls: Tuple[str, ...] = ()
    ca_issuers_urls: Tuple[str, ...] = ()
    is_ca: bool = False
    must_staple: bool = False
    ocsp_signing: bool = False
    ski: Optional[str] = None
    aki: Optional[str] = None
    key_hash: Optional[str] = None      # SHA-1 of the subjectPublicKey bits, hex (ResponderID byKey)

    @property
    def serial_hex(self) -> str:
        return serial_text.to_hex(self.serial)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    @property
    def pem(self) -> str:
        return pem_encode(self.der)

    def may_have_issued(self, leaf: "Certificate") -> bool:
        """Cheap pre-filter: names (and key identifiers, when both are present) line up.

        The real test, that this certificate's key verifies the leaf's
        signature, is done by openssl (``OpenSSL.verify_issued``)."""
        if normalize_name(self.subject) != normalize_name(leaf.issuer):
            return False
        if leaf.aki and self.ski and leaf.aki != self.ski:
            return False
        return True

    def expired(self, now: datetime) -> bool:
        return now >= self.not_after


@dataclass(frozen=True)
class SingleResponse:
    """One SingleResponse of a BasicOCSPResponse, as ``openssl ocsp -resp_text`` shows it."""

    hash_algorithm: str
    issuer_name_hash: str
    issuer_key_hash: str
    serial: int
    cert_status: str                    # good | revoked | unknown
    this_update: datetime
    next_update: Optional[datetime] = None
    revocation_time: Optional[datetime] = None
    revocation_reason: Optional[str] = None


@dataclass(frozen=True)
class ResponseInfo:
    """Everything openssl printed about one DER OCSP response (verified or not)."""

    response_status: str                # successful | tryLater | unauthorized | ...
    produced_at: Optional[datetime] = None
    responder_id: Optional[str] = None  # a DN, or a hex key hash
    responses: Tuple[SingleResponse, ...] = ()
    certs: Tuple[Certificate, ...] = ()  # certificates embedded in the response
    nonce: Optional[str] = None          # the nonce extension's value, hex, if any

    @property
    def successful(self) -> bool:
        return self.response_status == "successful"

    def signer(self) -> Optional[Certificate]:
        """The embedded certificate named by the ResponderID, if embedded."""
        for cert in self.certs:
            if self.names(cert):
                return cert
        return None

    def names(self, cert: Certificate) -> bool:
        """Does the ResponderID name CERT?  byName: its subject; byKey: the SHA-1 hash of its
        subjectPublicKey (RFC 6960 4.2.2.3; a SubjectKeyIdentifier is only a hint, never used)."""
        rid = self.responder_id
        if not rid:
            return False
        if "=" in rid:
            return normalize_name(cert.subject) == normalize_name(rid)
        return cert.key_hash is not None and cert.key_hash == normalize_hex(rid)

    def find(self, serial: int) -> Tuple[SingleResponse, ...]:
        return tuple(r for r in self.responses if r.serial == serial)


@dataclass(frozen=True)
class Staple:
    """A DER OCSP response together with what we know about it.

    ``single`` is the SingleResponse for our certificate (the matched one
    when the response carries several).  ``verified`` is true only when the
    signature, the responder's authorisation and the CertID were checked
    against the certificate and its issuer."""

    der: bytes
    info: ResponseInfo
    single: SingleResponse
    verified: bool = False
    signer_not_after: Optional[datetime] = None
    messages: Tuple[str, ...] = field(default=())
    cert_not_after: Optional[datetime] = None    # the certificate's, when verified for one

    @property
    def cert_status(self) -> str:
        return self.single.cert_status

    @property
    def this_update(self) -> datetime:
        return self.single.this_update

    @property
    def next_update(self) -> Optional[datetime]:
        return self.single.next_update

    @property
    def produced_at(self) -> Optional[datetime]:
        return self.info.produced_at

    @property
    def serial(self) -> int:
        return self.single.serial

    @property
    def life(self) -> Life:
        """Its effective validity (``ocsptools.life``): until the earliest of nextUpdate, the
        signer's notAfter and the certificate's notAfter."""
        return Life(self.this_update, self.next_update, self.signer_not_after, self.cert_not_after)

    @property
    def valid_until(self) -> Optional[datetime]:
        """When TLS clients stop accepting it (``life.end``); None without nextUpdate."""
        return self.life.end

    @property
    def version(self) -> Tuple[datetime, Optional[datetime]]:
        """(thisUpdate, producedAt): what ``life.newer`` compares."""
        return (self.this_update, self.produced_at)
