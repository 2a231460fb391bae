"""TLS handshake messages: the server's certificate chain and its stapled OCSP response (bytes).

Pure: no openssl, no I/O.  ``server_handshake`` reads the messages the server sent (as
``openssl s_client -msg`` dumped them, see ``ocsptools.openssl.s_client``): the Certificate message
(type 11) and, in TLS 1.2, the CertificateStatus message (type 22); in TLS 1.3 the staple travels
in the status_request extension of the leaf's certificate entry.  Every structure is read with
bounds checks; anything malformed is a ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

__all__ = ["HS_CERTIFICATE", "HS_CERTIFICATE_STATUS", "EXT_STATUS_REQUEST", "STATUS_TYPE_OCSP",
           "TlsMessage", "Reader", "ServerHandshake", "server_handshake"]

HS_CERTIFICATE = 11
HS_CERTIFICATE_STATUS = 22
EXT_STATUS_REQUEST = 5
STATUS_TYPE_OCSP = 1


@dataclass(frozen=True)
class TlsMessage:
    """One protocol message as ``s_client -msg`` printed it (header line + hex dump)."""

    received: bool          # ``<<<`` (from the server) or ``>>>`` (sent)
    version: str            # ``TLS 1.3``
    kind: str               # ``Handshake``, ``RecordHeader``, ``Alert`` ...
    name: str               # ``Certificate``, ``CertificateStatus`` ... ("" for record headers)
    data: bytes


class Reader:
    """Bounds-checked reading of TLS structures (ValueError on any overrun)."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"truncated {self.what}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> bytes:
        return self.take(self.uint(length_bytes))

    @property
    def done(self) -> bool:
        return self.pos == len(self.data)


def _handshake_body(msg: TlsMessage) -> Tuple[int, bytes]:
    r = Reader(msg.data, f"{msg.name or 'handshake'} message")
    hs_type = r.uint(1)
    body = r.vector(3)
    if not r.done:
        raise ValueError(f"{msg.name or 'handshake'} message: trailing bytes after the body")
    return hs_type, body


def _certificate_status(data: bytes) -> bytes:
    """The OCSPResponse DER of a CertificateStatus structure (status_type ocsp, 24-bit length)."""
    r = Reader(data, "CertificateStatus")
    status_type = r.uint(1)
    if status_type != STATUS_TYPE_OCSP:
        raise ValueError(f"CertificateStatus of type {status_type}, not ocsp (1)")
    der = r.vector(3)
    if not r.done:
        raise ValueError("CertificateStatus: trailing bytes after the OCSP response")
    return der


def _certificate_list(body: bytes, tls13: bool) -> Tuple[List[bytes], Optional[bytes]]:
    """The certificates of a Certificate message and, in TLS 1.3, the leaf entry's staple."""
    r = Reader(body, "Certificate message")
    if tls13:
        r.vector(1)                              # certificate_request_context
    lst = Reader(r.vector(3), "certificate_list")
    if not r.done:
        raise ValueError("Certificate message: trailing bytes after the certificate list")
    certs: List[bytes] = []
    staple: Optional[bytes] = None
    while not lst.done:
        certs.append(lst.vector(3))
        if tls13:
            exts = Reader(lst.vector(2), "certificate entry extensions")
            while not exts.done:
                ext_type = exts.uint(2)
                ext_data = exts.vector(2)
                if ext_type == EXT_STATUS_REQUEST and len(certs) == 1:
                    staple = _certificate_status(ext_data)
    return certs, staple


@dataclass(frozen=True)
class ServerHandshake:
    """What the server sent, from the handshake bytes: its chain and the staple's exact DER."""

    version: Optional[str] = None           # of the Certificate message (``TLS 1.3``)
    chain: Tuple[bytes, ...] = ()
    staple: Optional[bytes] = None          # None: the server sent no staple


def server_handshake(messages: Sequence[TlsMessage]) -> ServerHandshake:
    """Find the server's Certificate and (TLS 1.2) CertificateStatus messages and decode them.

    TLS 1.2 carries the staple in a CertificateStatus message (type 22);
    TLS 1.3 in the status_request extension of the first (leaf) entry of the
    Certificate message (type 11).  The first of each counts."""
    version = None
    chain: Tuple[bytes, ...] = ()
    staple: Optional[bytes] = None
    seen_cert = seen_status = False
    for msg in messages:
        if not msg.received or msg.kind != "Handshake" or not msg.data:
            continue
        hs_type, body = _handshake_body(msg)
        if hs_type == HS_CERTIFICATE and not seen_cert:
            seen_cert = True
            version = msg.version
            certs, ext_staple = _certificate_list(body, msg.version == "TLS 1.3")
            chain = tuple(certs)
            if ext_staple is not None and staple is None:
                staple = ext_staple
        elif hs_type == HS_CERTIFICATE_STATUS and not seen_status:
            seen_status = True
            staple = _certificate_status(body)
    return ServerHandshake(version=version, chain=chain, staple=staple)
