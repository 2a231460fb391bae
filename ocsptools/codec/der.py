"""The package's one DER reader: a small, strict walker for what must be read without openssl.

OCSP requests: ``parse_request`` (CertIDs; nonce, other extensions, requestorName, signature),
``encode_request`` (the canonical one-CertID request without nonce the proxy sends upstream) and
``split_ocsp_request`` (openssl's request for N certificates cut into N single requests).
Certificates: ``issuer_hashes`` (a CertID's issuerNameHash / issuerKeyHash for an issuer),
``key_hash`` (ResponderID byKey), ``cert_serial``, ``is_certificate`` (the shape of one: a
certificate given where a staple was expected) and ``certificate_problem`` (why bytes are not
exactly one well-formed certificate: a damaged PEM block).

Anything not exactly well-formed (indefinite or non-minimal lengths, lengths past the end,
trailing bytes, wrong tags) raises ``DerError`` (a ValueError).  Every element count is bounded
(``MAX_CERT_IDS``, ``MAX_EXTENSIONS``, the fields of each structure), so reading costs the same for
300 bytes and for megabytes of garbage.  Pure: no I/O, no clock.  The tests check the results
against ``openssl ocsp -req_text`` and ``openssl x509 -ocspid``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import List, Optional, Tuple

from . import serial as serial_text

__all__ = ["DerError", "CertID", "ParsedRequest", "parse_request", "issuer_hashes", "key_hash",
           "encode_request", "split_ocsp_request", "cert_serial", "is_certificate",
           "certificate_problem", "sequence_end", "HASH_OIDS", "MAX_CERT_IDS", "MAX_EXTENSIONS"]


class DerError(ValueError):
    """The bytes are not the DER structure they should be."""


#: CertID hash algorithms the proxy understands (DER of the OID contents).
HASH_OIDS = {
    bytes.fromhex("2b0e03021a"): "sha1",
    bytes.fromhex("608648016503040201"): "sha256",
    bytes.fromhex("608648016503040202"): "sha384",
    bytes.fromhex("608648016503040203"): "sha512",
}
OID_BY_HASH = {v: k for k, v in HASH_OIDS.items()}
NONCE_OID = bytes.fromhex("2b0601050507300102")     # 1.3.6.1.5.5.7.48.1.2
MAX_CERT_IDS = 100
#: Extensions in one request, all lists together (a nonce and a few others in practice).
MAX_EXTENSIONS = 32

SEQUENCE, INTEGER, OCTET_STRING, OID, NULL, BIT_STRING = 0x30, 0x02, 0x04, 0x06, 0x05, 0x03


def _tlv(buf: bytes, off: int, end: int) -> Tuple[int, int, int]:
    """(tag, content start, content end) of the element at OFF, bounded by END."""
    if off + 2 > end:
        raise DerError("truncated element")
    tag = buf[off]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tags are not used in OCSP")
    first = buf[off + 1]
    off += 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError("indefinite length is not DER")
    else:
        n = first & 0x7F
        if n > 4 or off + n > end:
            raise DerError("bad length")
        length = int.from_bytes(buf[off:off + n], "big")
        if length < 0x80 or buf[off] == 0:
            raise DerError("non-minimal length is not DER")
        off += n
    if off + length > end:
        raise DerError("element runs past its container")
    return tag, off, off + length


def _expect(buf: bytes, off: int, end: int, tag: int, what: str) -> Tuple[int, int]:
    t, s, e = _tlv(buf, off, end)
    if t != tag:
        raise DerError(f"{what}: expected tag 0x{tag:02x}, found 0x{t:02x}")
    return s, e


def _children(buf: bytes, start: int, end: int, most: int, what: str) -> List[Tuple[int, int, int, int]]:
    """(tag, element start, content start, content end) of each child in [start, end), at most MOST."""
    out: List[Tuple[int, int, int, int]] = []
    off = start
    while off < end:
        if len(out) == most:
            raise DerError(f"more than {most} elements in {what}")
        t, s, e = _tlv(buf, off, end)
        out.append((t, off, s, e))
        off = e
    return out


def sequence_end(buf: bytes, off: int = 0) -> int:
    """Where the DER SEQUENCE starting at OFF ends (reads only its header; DerError if none)."""
    t, _, e = _tlv(buf, off, len(buf))
    if t != SEQUENCE:
        raise DerError("not a SEQUENCE")
    return e


@dataclass(frozen=True)
class CertID:
    hash_alg: Optional[str]          # sha1 | sha256 | sha384 | sha512 | None (unknown OID)
    name_hash: bytes
    key_hash: bytes
    serial: int

    @property
    def serial_hex(self) -> str:
        return serial_text.to_hex(self.serial)

    @property
    def key(self) -> str:
        """The canonical cache key: a digest of (hash algorithm, name hash, key hash, serial)."""
        text = f"{self.hash_alg}:{self.name_hash.hex()}:{self.key_hash.hex()}:{self.serial_hex}"
        return hashlib.sha256(text.encode("ascii")).hexdigest()

    @property
    def issuer_ref(self) -> Tuple[Optional[str], bytes, bytes]:
        return (self.hash_alg, self.name_hash, self.key_hash)


@dataclass(frozen=True)
class ParsedRequest:
    cert_ids: Tuple[CertID, ...]
    nonce: bool = False
    extensions: bool = False         # any request or single-request extension (nonce included)
    requestor_name: bool = False
    signed: bool = False

    @property
    def cacheable(self) -> bool:
        """One CertID with a known hash, and nothing that makes the answer request-specific."""
        return (len(self.cert_ids) == 1 and self.cert_ids[0].hash_alg is not None
                and not self.extensions and not self.requestor_name and not self.signed)

    @property
    def why_not_cacheable(self) -> str:
        if self.nonce:
            return "nonce"
        if len(self.cert_ids) != 1:
            return "several certificates"
        if self.cert_ids[0].hash_alg is None:
            return "unknown CertID hash"
        if self.signed:
            return "signed request"
        return "request extensions" if self.extensions else "requestor name"


def _integer(buf: bytes, s: int, e: int) -> int:
    if s == e:
        raise DerError("empty INTEGER")
    if e - s > 1 and ((buf[s] == 0 and buf[s + 1] < 0x80) or (buf[s] == 0xFF and buf[s + 1] >= 0x80)):
        raise DerError("non-minimal INTEGER")
    if e - s > 64:
        raise DerError("INTEGER too long for a serial number")
    return int.from_bytes(buf[s:e], "big", signed=True)


def _cert_id(buf: bytes, s: int, e: int) -> CertID:
    kids = _children(buf, s, e, 4, "CertID")
    if len(kids) != 4:
        raise DerError("CertID must have 4 fields")
    (t0, _, a0, a1), (t1, _, n0, n1), (t2, _, k0, k1), (t3, _, i0, i1) = kids
    if (t0, t1, t2, t3) != (SEQUENCE, OCTET_STRING, OCTET_STRING, INTEGER):
        raise DerError("CertID fields have the wrong types")
    alg = _children(buf, a0, a1, 2, "hashAlgorithm")
    if not alg or alg[0][0] != OID:
        raise DerError("bad hashAlgorithm")
    if len(alg) == 2 and alg[1][0] == NULL and alg[1][2] != alg[1][3]:
        raise DerError("bad NULL parameters")
    hash_alg = HASH_OIDS.get(bytes(buf[alg[0][2]:alg[0][3]]))
    return CertID(hash_alg, bytes(buf[n0:n1]), bytes(buf[k0:k1]), _integer(buf, i0, i1))


def _extensions(buf: bytes, s: int, e: int, most: int) -> Tuple[bool, int]:
    """[2] EXPLICIT Extensions: SEQUENCE OF Extension {OID, BOOLEAN?, OCTET STRING}: (nonce?, how many)."""
    s0, e0 = _expect(buf, s, e, SEQUENCE, "Extensions")
    if e0 != e:
        raise DerError("trailing bytes after Extensions")
    found = False
    exts = _children(buf, s0, e0, most, f"Extensions (at most {MAX_EXTENSIONS} in a request)")
    for t, _, xs, xe in exts:
        if t != SEQUENCE:
            raise DerError("Extension is not a SEQUENCE")
        fields = _children(buf, xs, xe, 3, "Extension")
        if not fields or fields[0][0] != OID or fields[-1][0] != OCTET_STRING:
            raise DerError("malformed Extension")
        if bytes(buf[fields[0][2]:fields[0][3]]) == NONCE_OID:
            found = True
    return found, len(exts)


def parse_request(der: bytes) -> ParsedRequest:
    """Read an OCSPRequest strictly; raise DerError on anything malformed."""
    if not der:
        raise DerError("empty request")
    t, s, e = _tlv(der, 0, len(der))
    if t != SEQUENCE or e != len(der):
        raise DerError("not a single DER SEQUENCE")
    top = _children(der, s, e, 2, "OCSPRequest")
    if not top or top[0][0] != SEQUENCE:
        raise DerError("not an OCSPRequest")
    signed = False
    if len(top) == 2:
        if top[1][0] != 0xA0:
            raise DerError("unexpected field after tbsRequest")
        signed = True
    _, _, ts, te = top[0]
    fields = _children(der, ts, te, 4, "TBSRequest")
    idx = 0
    requestor = False
    if idx < len(fields) and fields[idx][0] == 0xA0:          # version [0] EXPLICIT
        vs, ve = _expect(der, fields[idx][2], fields[idx][3], INTEGER, "version")
        if _integer(der, vs, ve) != 0:
            raise DerError("unsupported OCSPRequest version")
        idx += 1
    if idx < len(fields) and fields[idx][0] == 0xA1:          # requestorName [1]
        requestor = True
        idx += 1
    if idx >= len(fields) or fields[idx][0] != SEQUENCE:
        raise DerError("missing requestList")
    _, _, ls, le = fields[idx]
    idx += 1
    ids: List[CertID] = []
    extensions = False
    nonce = False
    budget = MAX_EXTENSIONS
    for rt, _, rs, re_ in _children(der, ls, le, MAX_CERT_IDS, "requestList (certificates)"):
        if rt != SEQUENCE:
            raise DerError("Request is not a SEQUENCE")
        parts = _children(der, rs, re_, 2, "Request")
        if not parts or parts[0][0] != SEQUENCE:
            raise DerError("malformed Request")
        if len(parts) == 2:
            if parts[1][0] != 0xA0:
                raise DerError("unexpected field in Request")
            extensions = True
            found, used = _extensions(der, parts[1][2], parts[1][3], budget)
            nonce, budget = nonce or found, budget - used
        ids.append(_cert_id(der, parts[0][2], parts[0][3]))
    if not ids:
        raise DerError("empty requestList")
    if idx < len(fields):
        if fields[idx][0] != 0xA2:
            raise DerError("unexpected field in TBSRequest")
        extensions = True
        found, used = _extensions(der, fields[idx][2], fields[idx][3], budget)
        nonce, budget = nonce or found, budget - used
        idx += 1
    if idx != len(fields):
        raise DerError("trailing fields in TBSRequest")
    return ParsedRequest(tuple(ids), nonce=nonce, extensions=extensions,
                         requestor_name=requestor, signed=signed)


def _tbs_fields(cert_der: bytes) -> Tuple[List[Tuple[int, int, int, int]], int]:
    """The fields of a Certificate's tbsCertificate, and the index of its serialNumber."""
    t, s, e = _tlv(cert_der, 0, len(cert_der))
    if t != SEQUENCE or e != len(cert_der):
        raise DerError("not a DER certificate")
    ts, te = _expect(cert_der, s, e, SEQUENCE, "tbsCertificate")
    kids = _children(cert_der, ts, te, 10, "tbsCertificate")
    return kids, 1 if kids and kids[0][0] == 0xA0 else 0


def _subject_and_key(cert_der: bytes) -> Tuple[bytes, bytes]:
    """The subject Name's full DER and the subjectPublicKey bits of a Certificate."""
    kids, i = _tbs_fields(cert_der)
    # serial, signature, issuer, validity, subject, subjectPublicKeyInfo
    if len(kids) < i + 6:
        raise DerError("tbsCertificate too short")
    subj, spki = kids[i + 4], kids[i + 5]
    if subj[0] != SEQUENCE or spki[0] != SEQUENCE:
        raise DerError("malformed subject or subjectPublicKeyInfo")
    parts = _children(cert_der, spki[2], spki[3], 2, "subjectPublicKeyInfo")
    if len(parts) != 2 or parts[1][0] != BIT_STRING or parts[1][2] == parts[1][3]:
        raise DerError("malformed subjectPublicKeyInfo")
    return bytes(cert_der[subj[1]:subj[3]]), bytes(cert_der[parts[1][2] + 1:parts[1][3]])


def issuer_hashes(cert_der: bytes, alg: str) -> Tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) that CertIDs with hash ALG use for this issuer certificate."""
    name_der, key_bits = _subject_and_key(cert_der)
    return hashlib.new(alg, name_der).digest(), hashlib.new(alg, key_bits).digest()


def key_hash(cert_der: bytes) -> str:
    """A certificate's ResponderID byKey value: the SHA-1 hash of its subjectPublicKey BIT
    STRING's value (no tag, length or unused-bits octet; RFC 6960 4.2.2.3), upper-case hex."""
    return hashlib.sha1(_subject_and_key(cert_der)[1]).hexdigest().upper()


def _enc(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _enc_int(value: int) -> bytes:
    length = max(1, (value.bit_length() + 8) // 8)
    return _enc(INTEGER, value.to_bytes(length, "big", signed=True))


def encode_request(cid: CertID) -> bytes:
    """The canonical OCSPRequest for one CertID: no version, no extensions, no nonce."""
    if cid.hash_alg not in OID_BY_HASH:
        raise DerError(f"cannot encode a CertID with hash {cid.hash_alg!r}")
    alg = _enc(SEQUENCE, _enc(OID, OID_BY_HASH[cid.hash_alg]) + _enc(NULL, b""))
    certid = _enc(SEQUENCE, alg + _enc(OCTET_STRING, cid.name_hash) + _enc(OCTET_STRING, cid.key_hash)
                  + _enc_int(cid.serial))
    return _enc(SEQUENCE, _enc(SEQUENCE, _enc(SEQUENCE, _enc(SEQUENCE, certid))))


def split_ocsp_request(der: bytes) -> List[Tuple[bytes, int]]:
    """An unsigned OCSPRequest for N certificates cut into N single requests: (DER, CertID serial)
    per Request, in order, each with the TBSRequest's version, requestorName and extensions."""
    t, s, e = _tlv(der, 0, len(der))
    top = _children(der, s, e, 2, "OCSPRequest") if t == SEQUENCE and e == len(der) else []
    if len(top) != 1 or top[0][0] != SEQUENCE:
        raise DerError("not an OCSPRequest, or a signed one (those cannot be split)")
    lists = [f for f in _children(der, top[0][2], top[0][3], 4, "TBSRequest") if f[0] == SEQUENCE]
    if not lists:
        raise DerError("OCSPRequest without a requestList")
    _, ls, lcs, lce = lists[0]
    before, after = der[top[0][2]:ls], der[lce:top[0][3]]
    out: List[Tuple[bytes, int]] = []
    for rt, rs, rcs, rce in _children(der, lcs, lce, 1 << 16, "requestList"):
        parts = _children(der, rcs, rce, 2, "Request") if rt == SEQUENCE else []
        if not parts or parts[0][0] != SEQUENCE:
            raise DerError("requestList holds something other than a Request")
        out.append((_enc(SEQUENCE, _enc(SEQUENCE, before + _enc(SEQUENCE, der[rs:rce]) + after)),
                    _cert_id(der, parts[0][2], parts[0][3]).serial))
    return out


def cert_serial(cert_der: bytes) -> int:
    """The serialNumber of a DER certificate."""
    kids, i = _tbs_fields(cert_der)
    if len(kids) <= i or kids[i][0] != INTEGER:
        raise DerError("certificate without serialNumber")
    return _integer(cert_der, kids[i][2], kids[i][3])


def is_certificate(der: bytes) -> bool:
    """Do the bytes begin with an X.509 Certificate's shape (SEQUENCE { tbsCertificate SEQUENCE {
    [0] version OPTIONAL, serialNumber INTEGER, five SEQUENCEs, ... }, SEQUENCE, BIT STRING }),
    which an OCSPResponse (SEQUENCE { ENUMERATED, [0] ... }) never has?  Bytes after the first
    element (a DER bundle) are ignored; anything malformed is simply not a certificate."""
    try:
        t, s, e = _tlv(der, 0, len(der))
        if t != SEQUENCE:
            return False
        outer = _children(der, s, e, 3, "Certificate")
        if [k[0] for k in outer] != [SEQUENCE, SEQUENCE, BIT_STRING]:
            return False
        tbs = _children(der, outer[0][2], outer[0][3], 10, "tbsCertificate")
        i = 1 if tbs and tbs[0][0] == 0xA0 else 0
        return [k[0] for k in tbs[i:i + 6]] == [INTEGER] + [SEQUENCE] * 5
    except DerError:
        return False


#: Nesting deeper than this is not a certificate (and bounds the walk).
MAX_DEPTH = 32


def _walk(buf: bytes, start: int, end: int, depth: int) -> None:
    """Every element in [start, end) well-formed DER, constructed ones (tag bit 0x20) recursively."""
    if depth > MAX_DEPTH:
        raise DerError("nested too deeply")
    for tag, _, s, e in _children(buf, start, end, 1 << 16, "a constructed element"):
        if tag & 0x20:
            _walk(buf, s, e, depth + 1)


def certificate_problem(der: bytes) -> Optional[str]:
    """Why DER is not exactly one well-formed X.509 Certificate (tags, lengths and nesting checked
    throughout, not field contents or the signature), or None.  A PEM block whose base64 still
    decodes after a byte was damaged usually fails here; openssl would only say "unsupported"."""
    if not der:
        return "empty"
    try:
        t, s, e = _tlv(der, 0, len(der))
        if t != SEQUENCE:
            return f"starts with tag 0x{t:02x}, not a SEQUENCE"
        if e != len(der):
            return f"{len(der) - e} bytes after the certificate"
        _walk(der, s, e, 1)
    except DerError as exc:
        return str(exc)
    if not is_certificate(der):
        return "not the structure of an X.509 certificate"
    return None
