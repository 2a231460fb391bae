"""ocsptools.certs: loading certificates one file at a time or in batches, and finding the issuer
whose key verifies the leaf (each candidate checked by openssl; the leaf written once)."""

from __future__ import annotations

import dataclasses

import pytest

from ocsptools import certs
from ocsptools.codec.pem import split_pem_certs
from ocsptools.errors import CertificateError, DamagedPem, IssuerNotFound
from ocsptools.openssl import OpenSSL, files


@pytest.fixture(scope="module")
def loaded(pki):
    paths = {"inter": pki.inter_cert, "other": pki.other_inter_cert, "root": pki.root_cert,
             **{n: leaf.cert for n, leaf in pki.leaves.items()}}
    parsed = OpenSSL().parse_certificates([split_pem_certs(p.read_bytes())[0] for p in paths.values()])
    return dict(zip(paths, parsed))


def test_ders_of_is_lenient(pki, loaded):
    ossl = OpenSSL()
    chain = pki.leaves["good1"].fullchain.read_bytes()
    assert certs.ders_of(chain, ossl) == split_pem_certs(chain)
    assert certs.ders_of(loaded["good1"].der, ossl) == [loaded["good1"].der]
    damaged = chain.replace(chain.splitlines()[1], b"!" * 64, 1)
    for nothing in (damaged, b"", b"plain text", b"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"):
        assert certs.ders_of(nothing, ossl) == []
    assert ossl.spawned == 2                # the probe, then the DER (PEM needs no openssl)


def test_parse_many_leaves_out_what_openssl_cannot_read(loaded):
    good = [c.der for c in loaded.values()]
    corrupt = good[0][:40] + b"\x00" + good[0][41:]
    parsed = certs.parse_many(good[:3] + [corrupt] + good[3:], OpenSSL(), 2)
    assert set(parsed) == set(good) and all(parsed[d].der == d for d in good)
    assert certs.parse_many([], OpenSSL(), 4) == {}


def test_parse_certificates_says_what_is_wrong(pki):
    ossl = OpenSSL()
    assert [c.serial for c in certs.parse_certificates(pki.leaves["good1"].fullchain.read_bytes(), "x", ossl)][0] \
        == int(pki.leaves["good1"].serial, 16)
    with pytest.raises(CertificateError, match="^x: empty file"):
        certs.parse_certificates(b"  \n", "x", ossl)
    with pytest.raises(CertificateError, match="^x: holds a private key"):
        certs.parse_certificates(b"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n", "x", ossl)
    chain = pki.leaves["good1"].fullchain.read_bytes()
    with pytest.raises(DamagedPem, match="block 1 of 2"):
        certs.parse_certificates(chain.replace(chain.splitlines()[1], b"!" * 64, 1), "x", ossl)


def test_issuer_finder_checks_each_candidate_and_writes_the_leaf_once(loaded, monkeypatch):
    written = []
    real = files.Scratch.file
    monkeypatch.setattr(files.Scratch, "file",
                        lambda self, data, name="f": written.append(data) or real(self, data, name))
    # a look-alike: the intermediate's name, another key (only openssl can tell them apart)
    impostor = dataclasses.replace(loaded["other"], subject=loaded["inter"].subject, ski=None)
    ossl = OpenSSL()
    finder = certs.IssuerFinder(ossl, use_aia=False)
    match = finder.find(loaded["good1"], bundle=[loaded["root"], impostor, loaded["inter"]])
    assert match.issuer == loaded["inter"] and match.source == "the input (bundle)"
    assert ossl.spawned == 3                # the probe, the impostor, the intermediate
    assert written.count(loaded["good1"].pem.encode()) == 1
    with pytest.raises(IssuerNotFound, match="issuer not found"):
        finder.find(loaded["good1"], bundle=[impostor])
