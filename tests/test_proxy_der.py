"""The proxy's DER walker against openssl's own reading, the pure rules, and the GET path splitter."""

from __future__ import annotations

import base64
import re
import urllib.parse
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

import pki as pkimod
from ocsptools.codec import der
from ocsptools.proxy import rules
from ocsptools.proxy import paths
from ocsptools.proxy.paths import split_get_path
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


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    size = n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")
    return bytes([tag, n]) + content if n < 0x80 else bytes([tag, 0x80 | len(size)]) + size + content


_CERT_ID = _tlv(0x30, bytes.fromhex("300906052b0e03021a0500") + _tlv(0x04, b"\x01" * 20)
                + _tlv(0x04, b"\x02" * 20) + bytes.fromhex("020105"))
_EXT = _tlv(0x30, bytes.fromhex("06012b0400"))


def _tbs(request_list: bytes, tail: bytes = b"") -> bytes:
    return _tlv(0x30, _tlv(0x30, _tlv(0x30, request_list) + tail))


#: (garbage, N -> bytes of about 6*N): each is refused, after the same few elements whatever N.
GARBAGE = [
    ("NULLs in the OCSPRequest", lambda n: _tlv(0x30, b"\x05\x00" * (3 * n))),
    ("NULLs in the requestList", lambda n: _tbs(b"\x05\x00" * (3 * n))),
    ("Requests in the requestList", lambda n: _tbs(_tlv(0x30, _CERT_ID) * (n // 10 + 11))),
    ("fields in a CertID", lambda n: _tbs(_tlv(0x30, _tlv(0x30, b"\x05\x00" * (3 * n))))),
    ("request extensions", lambda n: _tbs(_tlv(0x30, _CERT_ID), _tlv(0xA2, _tlv(0x30, _EXT * (n * 6 // 7))))),
    ("extensions of each certificate", lambda n: _tbs(
        _tlv(0x30, _CERT_ID + _tlv(0xA0, _tlv(0x30, _EXT * 20))) * (n // 35))),
    ("fields in an extension", lambda n: _tbs(_tlv(0x30, _CERT_ID), _tlv(0xA2, _tlv(0x30, _tlv(
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


def test_split_get_path(pki, tmp_path):
    data = request_der(pki, pki.leaves["good1"], tmp=tmp_path)
    b64 = base64.b64encode(data).decode()
    assert split_get_path("/" + urllib.parse.quote(b64, safe=""))[:2] == ("/", data)
    assert split_get_path("/ocsp/sub/" + urllib.parse.quote(b64, safe=""))[:2] == ("/ocsp/sub/", data)
    assert split_get_path("/ocsp/" + b64)[:2] == ("/ocsp/", data)           # '/' and '+' unencoded
    assert split_get_path("/ocsp/" + b64[:-4]) is None
    assert split_get_path("/metrics") is None


def naive_split(path):
    """The splitter before issue 15: every '/' from the left, its whole suffix decoded (quadratic);
    now also refusing more than two '=' (b64decode took ``AAAA=====``)."""
    for i, ch in enumerate(path):
        if ch != "/":
            continue
        candidate = urllib.parse.unquote(path[i + 1:])
        if len(candidate) < 8 or candidate.endswith("==="):
            continue
        try:
            data = base64.b64decode(candidate, validate=True)
            parsed = der.parse_request(data)
        except ValueError:
            continue
        return path[:i + 1], data, parsed
    return None


_PIECES = st.sampled_from(["/", "/", "%2F", "%2f", "%3D", "=", "==", "+", "%2B", "A", "M", "MEIw", "ocsp",
                           "AAA/", "%", "%4", "%zz", "-", ".", "%C3%A9", "%41", "\u00e9", "?"])


@st.composite
def get_paths(draw):
    prefix = "".join(draw(st.lists(_PIECES, max_size=12)))
    cid = der.CertID(draw(st.sampled_from(["sha1", "sha256"])), draw(st.binary(min_size=20, max_size=32)),
                     draw(st.binary(min_size=20, max_size=32)), draw(st.integers(1, 2 ** 128)))
    b64 = base64.b64encode(der.encode_request(cid)).decode()
    suffix = draw(st.sampled_from([b64, urllib.parse.quote(b64, safe=""), urllib.parse.quote(b64, safe="/"),
                                   b64[:-4], b64 + "/", ""]))
    tail = "".join(draw(st.lists(_PIECES, max_size=3))) if draw(st.booleans()) else ""
    return "/" + prefix + ("/" if draw(st.booleans()) else "") + suffix + tail


@settings(max_examples=600, deadline=None)
@given(get_paths())
def test_split_get_path_agrees_with_the_naive_splitter(path):
    assert split_get_path(path) == naive_split(path)


#: (pathological GET path of about N characters): the old splitter decoded every suffix.
PATHOLOGICAL = [
    ("slashes", lambda n: "/" * n),
    ("base64 groups between slashes", lambda n: "/" + "AAA/" * (n // 4)),
    ("SEQUENCE headers between slashes", lambda n: "/" + "MAAA/" * (n // 5)),
    ("encoded slashes", lambda n: "/" + "%2F/" * (n // 4)),
    ("slashes, then a real request", lambda n: "/" * n + "MAMwATA="),
]


@pytest.mark.parametrize("name, make", PATHOLOGICAL, ids=[p[0] for p in PATHOLOGICAL])
def test_split_get_path_work_is_bounded(name, make, monkeypatch):
    """At most three base64 decodes (one per padding class) of at most MAX_GET_TAIL characters and
    MAX_SPLIT_PARSES DER parses, whatever the path's length (the old splitter: one of each per '/')."""
    decoded, parses = [], []
    real_decode, real_parse = base64.b64decode, der.parse_request

    def decode(text, *args, **kw):
        decoded.append(len(text))
        return real_decode(text, *args, **kw)

    def parse(data):
        parses.append(len(data))
        return real_parse(data)
    monkeypatch.setattr(paths.base64, "b64decode", decode)
    monkeypatch.setattr(paths.der, "parse_request", parse)
    for n in (1600, 16000):
        path = make(n)
        assert split_get_path(path) is None
        assert len(decoded) <= 3 and max(decoded, default=0) <= paths.MAX_GET_TAIL, (n, decoded)
        assert len(parses) <= paths.MAX_SPLIT_PARSES, (n, parses)
        del decoded[:], parses[:]


def test_rules():
    """The proxy's settings of ocsptools.life, as POSIX seconds."""
    from ocsptools.staple import ResponseInfo, SingleResponse, Staple
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    single = SingleResponse("sha1", "AA", "BB", 1, "good", t0, t0 + timedelta(days=4))
    s = Staple(der=b"0", info=ResponseInfo("successful", responses=(single,)), single=single,
               signer_not_after=t0 + timedelta(days=1))
    assert rules.valid_until(s) == (t0 + timedelta(days=1)).timestamp()       # the signer's end
    assert rules.refresh_due(s, 50) == (t0 + timedelta(hours=12)).timestamp()
    assert rules.refresh_due(s, 100) == rules.valid_until(s)
    now = 10_000.0
    assert rules.retry_at(1, now, now + 100_000) == now + rules.BACKOFF.base
    assert rules.retry_at(2, now, now + 100_000) == now + 2 * rules.BACKOFF.base
    assert rules.retry_at(30, now, now + 100_000) == now + rules.BACKOFF.cap
    assert rules.retry_at(10, now, now + 600) == now + 150            # a quarter of the time left
    assert rules.retry_at(1, now, now - 5) == now + rules.BACKOFF.base  # expired: keep trying
    assert rules.max_age(now + 90.5, now) == 90 and rules.max_age(now - 1, now) == 0
    assert rules.usable(now + 1, now) and not rules.usable(now, now)
