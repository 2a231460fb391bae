"""ocsptools.stapler.handshake: the OCSP callback over a Book of hand-built entries, with an
injected clock (no responder, no TLS: tests/test_stapler.py runs it in real handshakes)."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest

from ocsptools.stapler.entries import Book
from ocsptools.stapler.handshake import HandshakePath, certificate_der
from test_stapler_entries import entry
from test_stapler_schedule import DAY, LEAF5, T0, staple

LOG = "test.stapler.handshake"
DER = LEAF5.der


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self):
        return self.now


@pytest.fixture
def hs():
    """A HandshakePath (``.path``) over a Book (``.book``) holding LEAF5 with a staple valid
    [T0 - 5 min, T0 + 4 d), and its clock (``.clock``)."""
    book, clock = Book(), Clock()
    book.entries[DER] = entry(staple=staple())
    return SimpleNamespace(path=HandshakePath(book, clock, logging.getLogger(LOG)), book=book,
                           clock=clock)


def notes(caplog):
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOG]


@pytest.mark.parametrize("offset, served", [
    (timedelta(minutes=-5), True), (timedelta(minutes=-5, seconds=-1), False),
    (DAY, True), (4 * DAY - timedelta(seconds=1), True), (4 * DAY, False),
])
def test_the_staple_is_served_inside_its_window_only(hs, offset, served):
    hs.clock.now = T0 + offset
    assert hs.path.staple_for(DER) == (staple().der if served else b"")
    assert hs.book.requests["stapled" if served else "unstapled"] == 1


def test_no_staple_is_said_once_per_change_and_loudly_for_must_staple(hs, caplog):
    hs.clock.now = T0 + 5 * DAY
    with caplog.at_level(logging.WARNING, logger=LOG):
        assert hs.path.staple_for(DER) == b"" and hs.path.staple_for(DER) == b""
    assert notes(caplog) == [(logging.WARNING, "leaf5: handshakes get no staple: the staple "
                                               "expired at 2026-11-05T12:00:00Z (no refresh yet)")]
    caplog.clear()
    hs.book.entries[DER] = entry(leaf=dataclasses.replace(LEAF5, must_staple=True))
    with caplog.at_level(logging.WARNING, logger=LOG):
        hs.path.staple_for(DER)
    assert notes(caplog) == [(logging.ERROR, "leaf5: Must-Staple certificate served WITHOUT a "
                                             "staple (clients will refuse it): no staple fetched yet")]
    assert hs.book.requests["unstapled"] == 3


def test_a_certificate_not_managed_is_said_once(hs, caplog):
    hs.book.dropped[b"old"] = "old.pem"
    with caplog.at_level(logging.WARNING, logger=LOG):
        for der in (b"other", b"other", b"old", b"old"):
            assert hs.path.staple_for(der) == b""
    said = [m for _, m in notes(caplog)]
    assert len(said) == 2
    assert said[0].startswith("a handshake uses a certificate the Stapler does not manage (SHA-256 ")
    assert said[1] == "old.pem: the server still presents this expired certificate; replace it"
    assert hs.book.requests["unknown_certificate"] == 4


def test_the_callback_never_raises_and_says_a_failure_once_a_minute(hs, caplog):
    class Broken:
        def get_certificate(self):
            raise RuntimeError("boom")

    class NoCert:
        def get_certificate(self):
            return None

    class Presents:
        def get_certificate(self):
            return DER

    with caplog.at_level(logging.WARNING, logger=LOG):
        assert hs.path.ocsp_callback(Broken(), None) == b""
        assert hs.path.ocsp_callback(Broken(), None) == b""          # counted, not said again
        assert hs.path.ocsp_callback(NoCert(), None) == b""
        assert hs.path.ocsp_callback(Presents()) == staple().der
    said = [m for _, m in notes(caplog)]
    assert said == ["OCSP callback failed (RuntimeError: boom); handshake continues without a "
                    "staple (please report this)"]
    assert hs.book.requests == {"stapled": 1, "unstapled": 0, "unknown_certificate": 1, "error": 2}


def test_attach_installs_the_callback(hs):
    class Context:
        def set_ocsp_server_callback(self, callback, data=None):
            self.callback = callback

    ctx = Context()
    assert hs.path.attach(ctx) is ctx and ctx.callback == hs.path.ocsp_callback


def test_certificate_der_of_every_kind_of_certificate(pki):
    crypto = pytest.importorskip("OpenSSL.crypto", reason="pyOpenSSL is not installed")
    pem = pki.leaves["good1"].cert.read_bytes()
    x509 = crypto.load_certificate(crypto.FILETYPE_PEM, pem)
    der = crypto.dump_certificate(crypto.FILETYPE_ASN1, x509)
    assert certificate_der(x509) == der
    assert certificate_der(x509.to_cryptography()) == der
    assert certificate_der(der) == der and certificate_der(bytearray(der)) == der
    with pytest.raises(AttributeError):
        certificate_der(object())
