"""TLS handshake decoding (ocsptools.codec.tls): the chain and the staple from the server's
Certificate and CertificateStatus messages, bounds-checked."""

from __future__ import annotations

import pytest

from ocsptools.codec.tls import TlsMessage, server_handshake


def _hs(hs_type: int, body: bytes, version="TLS 1.2") -> TlsMessage:
    return TlsMessage(True, version, "Handshake", "x", bytes([hs_type]) + len(body).to_bytes(3, "big") + body)


def test_certificate_status_of_another_type_is_refused():
    body = bytes([2]) + (3).to_bytes(3, "big") + b"abc"
    with pytest.raises(ValueError, match="not ocsp"):
        server_handshake([_hs(22, body)])
    ok = bytes([1]) + (3).to_bytes(3, "big") + b"abc"
    assert server_handshake([_hs(22, ok)]).staple == b"abc"
    with pytest.raises(ValueError, match="truncated"):
        server_handshake([_hs(22, ok[:-1])])


def test_tls13_staple_only_from_the_leaf_entry():
    def entry(cert: bytes, staple: bytes | None) -> bytes:
        exts = b""
        if staple is not None:
            status = bytes([1]) + len(staple).to_bytes(3, "big") + staple
            exts = (5).to_bytes(2, "big") + len(status).to_bytes(2, "big") + status
        return len(cert).to_bytes(3, "big") + cert + len(exts).to_bytes(2, "big") + exts
    certs = entry(b"LEAF", None) + entry(b"INTER", b"not-the-leaf's")
    body = b"\x00" + len(certs).to_bytes(3, "big") + certs
    hs = server_handshake([_hs(11, body, "TLS 1.3")])
    assert hs.chain == (b"LEAF", b"INTER") and hs.staple is None
    certs = entry(b"LEAF", b"STAPLE") + entry(b"INTER", None)
    body = b"\x00" + len(certs).to_bytes(3, "big") + certs
    assert server_handshake([_hs(11, body, "TLS 1.3")]).staple == b"STAPLE"
    sent = TlsMessage(False, "TLS 1.3", "Handshake", "Certificate", _hs(11, body, "TLS 1.3").data)
    assert server_handshake([sent]).chain == ()            # our own messages never count
