"""PEM text: the certificates a PEM file holds, PEM encoding, which CERTIFICATE block is damaged.

Pure: no openssl, no I/O, no clock.  ``split_pem_certs`` is what every reader of PEM
certificates uses (files, ``openssl`` output, ``s_client -showcerts``); ``pem_damage`` names the
first damaged CERTIFICATE block of a file so that the error can say which one to replace.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import List, Mapping, Optional

from ..errors import DamagedPem

__all__ = ["PEM_CERT_RE", "split_pem_certs", "pem_encode", "PemDamage", "pem_damage"]

PEM_CERT_RE = re.compile(
    rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----\s*(.*?)\s*-----END (?:X509 |TRUSTED )?CERTIFICATE-----",
    re.S)


def split_pem_certs(data: bytes) -> List[bytes]:
    """The DER of each CERTIFICATE block in PEM text, in order (ValueError for invalid base64)."""
    ders = []
    for m in PEM_CERT_RE.finditer(data):
        try:
            ders.append(base64.b64decode(b"".join(m.group(1).split()), validate=True))
        except ValueError:
            raise ValueError("a CERTIFICATE block is not valid base64") from None
    return ders


def pem_encode(der: bytes, label: str = "CERTIFICATE") -> str:
    """DER as one PEM block of LABEL (64-character lines)."""
    b64 = base64.b64encode(der).decode("ascii")
    body = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


@dataclass(frozen=True)
class PemDamage:
    """Where a PEM file's CERTIFICATE block is damaged, and how."""

    block: int              # 1-based
    blocks: int
    line: int               # of its BEGIN line
    reason: str

    def error(self, label: str) -> DamagedPem:
        where = f"block {self.block} of {self.blocks}" if self.blocks > 1 else "block"
        return DamagedPem(
            f"{label}: the CERTIFICATE {where} at line {self.line} is damaged ({self.reason}); "
            f"copy the certificate file again from its source (the CA, certbot's live/ directory)",
            path=label, block=self.block, blocks=self.blocks, line=self.line)


def pem_damage(data: bytes, unreadable: Optional[Mapping[bytes, str]] = None) -> Optional[PemDamage]:
    """The first damaged CERTIFICATE block of PEM DATA, or None.

    Damaged: its base64 is invalid, or it decodes to something other than exactly one
    well-formed DER certificate (``der.certificate_problem``), or to a DER in UNREADABLE (what
    openssl could not read, with its reason)."""
    from . import der as der_codec      # not at import: ``import ocsptools`` loads this module
    matches = list(PEM_CERT_RE.finditer(data))
    for i, m in enumerate(matches, 1):
        line = data.count(b"\n", 0, m.start()) + 1
        try:
            der = base64.b64decode(b"".join(m.group(1).split()), validate=True)
        except binascii.Error:
            return PemDamage(i, len(matches), line, "its base64 is not valid")
        problem = der_codec.certificate_problem(der)
        if problem is not None:
            return PemDamage(i, len(matches), line, f"its DER is broken: {problem}")
        if unreadable and der in unreadable:
            return PemDamage(i, len(matches), line, f"openssl cannot read it: {unreadable[der]}")
    return None
