"""ocsptools.codec.der: cutting openssl's request for N certificates into N single requests (pure).
(The request parser and the certificate readers are tested in test_proxy_der.py and
test_damaged_input.py; the split against real openssl in test_openssl_facade.py.)"""

from __future__ import annotations

import pytest

from ocsptools.codec import der


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    size = n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")
    return bytes([tag, n]) + content if n < 0x80 else bytes([tag, 0x80 | len(size)]) + size + content


CIDS = [der.CertID("sha1", b"\x01" * 20, b"\x02" * 20, serial) for serial in (5, 0x1234, 2 ** 100)]


def request(cert_ids, *, before: bytes = b"", after: bytes = b"", signature: bytes = b"") -> bytes:
    """An OCSPRequest for CERT_IDS, with BEFORE (version, requestorName) and AFTER (extensions)
    around its requestList in the TBSRequest, and an optional SIGNATURE."""
    reqs = b"".join(_request_of(der.encode_request(c)) for c in cert_ids)
    return tlv(0x30, tlv(0x30, before + tlv(0x30, reqs) + after) + signature)


def _request_of(single: bytes) -> bytes:
    """The Request element of a canonical one-CertID request (three SEQUENCE headers in)."""
    off = 0
    for _ in range(3):
        off = off + 2 if single[off + 1] < 0x80 else off + 2 + (single[off + 1] & 0x7F)
    return single[off:]


def test_split_gives_the_canonical_single_requests_in_order():
    parts = der.split_ocsp_request(request(CIDS))
    assert [serial for _, serial in parts] == [c.serial for c in CIDS]
    assert [d for d, _ in parts] == [der.encode_request(c) for c in CIDS]


def test_version_requestor_and_extensions_are_copied_into_each():
    version = tlv(0xA0, bytes.fromhex("020100"))
    requestor = tlv(0xA1, tlv(0x30, b""))
    nonce = tlv(0xA2, tlv(0x30, tlv(0x30, bytes.fromhex("06092b0601050507300102") + tlv(0x04, b"\x04\x02ab"))))
    parts = der.split_ocsp_request(request(CIDS[:2], before=version + requestor, after=nonce))
    for (single, serial), cid in zip(parts, CIDS):
        parsed = der.parse_request(single)
        assert parsed.cert_ids == (cid,) and serial == cid.serial
        assert parsed.nonce and parsed.requestor_name


@pytest.mark.parametrize("bad", [
    b"", b"\x30\x03\x02\x01\x00", b"\x31\x00", b"\x30\x80",
    request(CIDS[:1]) + b"\x00",                                # trailing bytes
    request(CIDS[:1], signature=tlv(0xA0, tlv(0x30, b""))),     # signed: cannot be split
    tlv(0x30, tlv(0x30, tlv(0xA0, bytes.fromhex("020100")))),   # no requestList
    tlv(0x30, tlv(0x30, tlv(0x30, tlv(0x02, b"\x01")))),        # a requestList of something else
])
def test_split_refuses_anything_else(bad):
    with pytest.raises(der.DerError):
        der.split_ocsp_request(bad)
