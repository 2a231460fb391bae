"""The proxy's DER walker (ocsptools/codec/der.py) against openssl's own reading: OCSP requests,
issuer hashes, the canonical request; malformed and hostile input is refused in bounded work."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings, strategies as st

import pki as pkimod
from ocsptools.codec import der
from test_codec_der import tlv
from test_proxy_support import request_der


def pem_der(path) -> bytes:
    text = open(path).read()
    return base64.b64decode("".join(text.split("-----")[2].split()))


def req_text(path) -> str:
    text = pkimod.openssl("ocsp", "-reqin", path, "-req_text").stdout
    return re.sub(r"\\\n\s*", "", text)           # openssl wraps long hashes with a backslash


@pytest.mark.parametrize("alg", ["sha1", "sha256", "sha384", "sha512"])
def test_parse_request_matches_openssl(pki, tmp_path, alg):
    leaf = pki.leaves["good1"]
    data = request_der(pki, leaf, hash_alg=alg, tmp=tmp_path)
    parsed = der.parse_request(data)
    path = tmp_path / "r.der"
    path.write_bytes(data)
    text = req_text(path)
    assert parsed.cacheable and not parsed.nonce
    cid = parsed.cert_ids[0]
    assert cid.hash_alg == alg and f"Hash Algorithm: {alg}" in text
    assert f"Issuer Name Hash: {cid.name_hash.hex().upper()}" in text
    assert f"Issuer Key Hash: {cid.key_hash.hex().upper()}" in text
    assert f"Serial Number: {cid.serial_hex}" in text
    # the issuer hashes computed from the issuer certificate are the ones openssl put in the request
    assert der.issuer_hashes(pem_der(pki.inter_cert), alg) == (cid.name_hash, cid.key_hash)
    # our canonical encoding of the same CertID is byte-identical to openssl's -no_nonce request
    assert der.encode_request(cid) == data


def test_issuer_hashes_match_x509_ocspid(pki):
    out = pkimod.openssl("x509", "-in", pki.inter_cert, "-noout", "-ocspid").stdout
    name_hash, key_hash = der.issuer_hashes(pem_der(pki.inter_cert), "sha1")
    assert f"Subject OCSP hash: {name_hash.hex().upper()}" in out
    assert f"Public key OCSP hash: {key_hash.hex().upper()}" in out
    assert der.cert_serial(pem_der(pki.leaves["good1"].cert)) == int(pki.leaves["good1"].serial, 16)


def test_nonce_and_several_certificates(pki, tmp_path):
    one = der.parse_request(request_der(pki, pki.leaves["good1"], nonce=True, tmp=tmp_path))
    assert one.nonce and one.extensions and not one.cacheable and one.why_not_cacheable == "nonce"
    two = der.parse_request(request_der(pki, pki.leaves["good1"], extra_certs=[pki.leaves["good2"]],
                                        tmp=tmp_path))
    assert len(two.cert_ids) == 2 and not two.cacheable and two.why_not_cacheable == "several certificates"
    assert {c.serial for c in two.cert_ids} == {int(pki.leaves["good1"].serial, 16),
                                                  int(pki.leaves["good2"].serial, 16)}


def test_encoded_requests_are_accepted_by_openssl(tmp_path):
    cid = der.CertID("sha256", b"\x01" * 32, b"\x02" * 32, 0x80)      # serial needing a 0x00 pad
    data = der.encode_request(cid)
    path = tmp_path / "ours.der"
    path.write_bytes(data)
    assert "Serial Number: 80" in req_text(path)
    assert der.parse_request(data).cert_ids[0] == cid
    big = der.CertID("sha1", b"\x03" * 20, b"\x04" * 20, 2 ** 150 + 7)
    assert der.parse_request(der.encode_request(big)).cert_ids[0] == big


@pytest.mark.parametrize("data", [
    b"", b"\x30", b"\x30\x80\x00\x00", b"\x30\x81\x01\x00", b"\x31\x00", b"\x30\x00",
    b"\x30\x02\x30\x00", b"\x30\x04\x30\x02\x30\x00", b"\x30\x03\x0a\x01\x03",
])
def test_malformed_requests_are_refused(data):
    with pytest.raises(der.DerError):
        der.parse_request(data)


def test_trailing_bytes_and_bad_integers_are_refused(pki, tmp_path):
    good = request_der(pki, pki.leaves["good1"], tmp=tmp_path)
    with pytest.raises(der.DerError):
        der.parse_request(good + b"\x00")
    with pytest.raises(der.DerError):
        der.parse_request(good[:-1])
    cid = der.parse_request(good).cert_ids[0]
    serial = cid.serial.to_bytes((cid.serial.bit_length() + 8) // 8, "big")
    padded = good.replace(b"\x02" + bytes([len(serial)]) + serial,
                          b"\x02" + bytes([len(serial) + 1]) + b"\x00" + serial)
    if padded != good:
        with pytest.raises(der.DerError):
            der.parse_request(padded)


_CERT_ID = tlv(0x30, bytes.fromhex("300906052b0e03021a0500") + tlv(0x04, b"\x01" * 20)
                + tlv(0x04, b"\x02" * 20) + bytes.fromhex("020105"))
_EXT = tlv(0x30, bytes.fromhex("06012b0400"))


def _tbs(request_list: bytes, tail: bytes = b"") -> bytes:
    return tlv(0x30, tlv(0x30, tlv(0x30, request_list) + tail))


#: (garbage, N -> bytes of about 6*N): each is refused, after the same few elements whatever N.
GARBAGE = [
    ("NULLs in the OCSPRequest", lambda n: tlv(0x30, b"\x05\x00" * (3 * n))),
    ("NULLs in the requestList", lambda n: _tbs(b"\x05\x00" * (3 * n))),
    ("Requests in the requestList", lambda n: _tbs(tlv(0x30, _CERT_ID) * (n // 10 + 11))),
    ("fields in a CertID", lambda n: _tbs(tlv(0x30, tlv(0x30, b"\x05\x00" * (3 * n))))),
    ("request extensions", lambda n: _tbs(tlv(0x30, _CERT_ID), tlv(0xA2, tlv(0x30, _EXT * (n * 6 // 7))))),
    ("extensions of each certificate", lambda n: _tbs(
        tlv(0x30, _CERT_ID + tlv(0xA0, tlv(0x30, _EXT * 20))) * (n // 35))),
    ("fields in an extension", lambda n: _tbs(tlv(0x30, _CERT_ID), tlv(0xA2, tlv(0x30, tlv(
        0x30, b"\x05\x00" * (3 * n)))))),
]


@pytest.mark.parametrize("name, make", GARBAGE, ids=[g[0] for g in GARBAGE])
def test_walker_work_is_bounded_whatever_the_size(name, make, monkeypatch):
    """A 60 KB body costs the walker no more elements than a 6 KB one (it runs in the event loop)."""
    real, calls = der._tlv, []

    def counting(*args):
        calls.append(1)
        return real(*args)
    monkeypatch.setattr(der, "_tlv", counting)
    counts = []
    for n in (1000, 10000):
        data = make(n)
        assert 5 * n < len(data) < 65536
        del calls[:]
        with pytest.raises(der.DerError, match="more than"):
            der.parse_request(data)
        counts.append(len(calls))
    assert counts[1] <= 2000 and counts[1] <= counts[0] * 1.5, counts


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_walker_never_fails_other_than_der_error(data):
    try:
        der.parse_request(data)
    except der.DerError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["sha1", "sha256", "sha384", "sha512"]), st.integers(min_value=1, max_value=2 ** 159))
def test_encode_parse_round_trip(alg, serial):
    size = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}[alg]
    cid = der.CertID(alg, b"\xaa" * size, b"\xbb" * size, serial)
    assert der.parse_request(der.encode_request(cid)).cert_ids[0] == cid
