"""ocsptools.codec.pem: PEM blocks in and out, and which CERTIFICATE block of a file is damaged (pure).
(Damaged files through the commands: test_damaged_input.py.)"""

from __future__ import annotations

import base64

import pytest

from ocsptools.codec.pem import pem_damage, pem_encode, split_pem_certs
from ocsptools.errors import DamagedPem


@pytest.fixture(scope="module")
def ders(pki):
    return split_pem_certs(pki.leaves["good1"].fullchain.read_bytes())


def test_round_trip_in_order(ders):
    assert len(ders) == 2
    text = "".join(pem_encode(d) for d in ders)
    assert all(len(line) <= 64 for line in text.splitlines())
    assert split_pem_certs(text.encode()) == ders
    assert pem_encode(b"\x30\x00", "OCSP RESPONSE") == \
        "-----BEGIN OCSP RESPONSE-----\nMAA=\n-----END OCSP RESPONSE-----\n"


@pytest.mark.parametrize("label", ["CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"])
def test_certificate_labels_and_surroundings(ders, label):
    body = base64.b64encode(ders[0]).decode()
    text = f"junk before\n-----BEGIN {label}-----\n{body}\n-----END {label}-----\ntrailing\n"
    assert split_pem_certs(text.encode()) == [ders[0]]
    assert split_pem_certs(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n") == []


def test_invalid_base64_is_a_value_error():
    with pytest.raises(ValueError, match="not valid base64"):
        split_pem_certs(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")


def test_damage_names_the_block_and_its_line(ders):
    good = "".join(pem_encode(d) for d in ders).encode()
    assert pem_damage(good) is None
    broken = pem_encode(ders[0][:-10]).encode()             # valid base64, truncated DER
    damage = pem_damage(good + b"\n" + broken)
    assert (damage.block, damage.blocks) == (3, 3) and "DER is broken" in damage.reason
    assert damage.line == good.count(b"\n") + 2
    err = damage.error("site.pem")
    assert isinstance(err, DamagedPem) and err.block == 3 and err.path == "site.pem"
    assert str(err).startswith("site.pem: the CERTIFICATE block 3 of 3 at line ")
    bad64 = good.replace(good.splitlines()[1], b"!" * 64, 1)
    assert pem_damage(bad64).reason == "its base64 is not valid"
    assert pem_damage(good, {ders[1]: "unsupported"}).reason == "openssl cannot read it: unsupported"
