"""Just enough DER to take OCSP responses apart and put them back together (corpus surgery)."""

from __future__ import annotations

import hashlib
from typing import List, Optional, Tuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

SEQUENCE, OID, OCTET_STRING, BIT_STRING, ENUMERATED, GENERALIZED_TIME = 0x30, 0x06, 0x04, 0x03, 0x0A, 0x18
CTX0, CTX1, CTX2 = 0xA0, 0xA1, 0xA2

#: AlgorithmIdentifier DER of the signature algorithms the corpus names.
ALG_ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
ALG_RSA_SHA256 = bytes.fromhex("300d06092a864886f70d01010b0500")
#: ecdsa-with-SHA256 with its last arc changed to 127: 1.2.840.10045.4.3.127, assigned to nothing.
ALG_UNKNOWN_SAME_LENGTH = bytes.fromhex("300a06082a8648ce3d04037f")


def tlv(buf: bytes, off: int = 0) -> Tuple[int, int, int]:
    """(tag, content start, end) of the element at OFF."""
    tag, length = buf[off], buf[off + 1]
    off += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(buf[off:off + n], "big")
        off += n
    if off + length > len(buf):
        raise ValueError("DER element runs past the end of its buffer")
    return tag, off, off + length


def children(buf: bytes) -> List[bytes]:
    """The elements (whole TLVs) inside the constructed element BUF."""
    _, start, end = tlv(buf)
    out, off = [], start
    while off < end:
        _, _, stop = tlv(buf, off)
        out.append(buf[off:stop])
        off = stop
    return out


def content(element: bytes) -> bytes:
    _, start, end = tlv(element)
    return element[start:end]


def encode(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def key_bits(spki_der: bytes) -> bytes:
    """The value of a SubjectPublicKeyInfo's subjectPublicKey BIT STRING (no unused-bits byte)."""
    return content(children(spki_der)[1])[1:]


def key_sha1(spki_der: bytes) -> bytes:
    """RFC 6960 4.2.2.3 KeyHash / 4.1.1 issuerKeyHash (SHA-1) of a SubjectPublicKeyInfo."""
    return hashlib.sha1(key_bits(spki_der)).digest()


class Basic:
    """An OCSPResponse with a BasicOCSPResponse, split into its four parts."""

    def __init__(self, der: bytes) -> None:
        status, wrapped = children(der)
        if content(status) != b"\x00":
            raise ValueError("not a successful OCSPResponse")
        oid, octets = children(children(wrapped)[0])
        self.type_oid = oid
        parts = children(content(octets))
        self.tbs, self.alg, self.sig = parts[0], parts[1], parts[2]
        self.certs: Optional[bytes] = parts[3] if len(parts) > 3 else None

    @property
    def signature(self) -> bytes:
        return content(self.sig)[1:]

    def tbs_fields(self) -> List[bytes]:
        return children(self.tbs)

    def produced_at_index(self) -> int:
        """Index of producedAt among the tbs fields (the responderID is just before it)."""
        return next(i for i, f in enumerate(self.tbs_fields()) if f[0] == GENERALIZED_TIME)

    def with_tbs_fields(self, fields: List[bytes]) -> "Basic":
        self.tbs = encode(SEQUENCE, b"".join(fields))
        return self

    def sign(self, key, algorithm: hashes.HashAlgorithm = hashes.SHA256()) -> "Basic":
        """Re-sign the (changed) tbsResponseData with KEY."""
        if isinstance(key, ec.EllipticCurvePrivateKey):
            sig = key.sign(self.tbs, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPrivateKey):
            sig = key.sign(self.tbs, padding.PKCS1v15(), algorithm)
        else:
            raise TypeError(f"unsupported key {key!r}")
        self.sig = encode(BIT_STRING, b"\x00" + sig)
        return self

    def der(self) -> bytes:
        body = self.tbs + self.alg + self.sig + (self.certs or b"")
        basic = encode(SEQUENCE, body)
        response_bytes = encode(SEQUENCE, self.type_oid + encode(OCTET_STRING, basic))
        return encode(SEQUENCE, encode(ENUMERATED, b"\x00") + encode(CTX0, response_bytes))


def flip_signature_byte(der: bytes) -> bytes:
    """The same response with one byte of the signature value inverted (a forgery)."""
    b = Basic(der)
    sig = bytearray(b.signature)
    sig[-3] ^= 0xFF
    b.sig = encode(BIT_STRING, b"\x00" + bytes(sig))
    return b.der()


def with_algorithm(der: bytes, alg: bytes) -> bytes:
    """The same response and signature under another signatureAlgorithm."""
    b = Basic(der)
    b.alg = alg
    return b.der()


def without_certs(der: bytes) -> bytes:
    """The same signed response without its certs field (the signature covers only the tbs)."""
    b = Basic(der)
    b.certs = None
    return b.der()


def gentime(when) -> bytes:
    return encode(GENERALIZED_TIME, when.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def name_responder_id(name_der: bytes) -> bytes:
    """ResponderID byName: [1] EXPLICIT Name."""
    return encode(CTX1, name_der)
