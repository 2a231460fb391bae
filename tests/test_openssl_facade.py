"""The openssl facade (ocsptools.openssl.OpenSSL) with the real binary: Certificates and DER in,
values out.  It owns openssl's files (each certificate written once per batch, nothing left
behind) and puts many certificates into few processes.  Responses are made offline (no network)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from hostile_responder import ResponseFactory
from ocsptools.codec.pem import split_pem_certs
from ocsptools.errors import OpensslError
from ocsptools.openssl import OpenSSL, files


@pytest.fixture(scope="module")
def certs(pki):
    """The PKI's certificates as Certificate objects, by name."""
    paths = {"inter": pki.inter_cert, "other": pki.other_inter_cert, "root": pki.root_cert,
             **{n: leaf.cert for n, leaf in pki.leaves.items()}}
    parsed = OpenSSL().parse_certificates([split_pem_certs(p.read_bytes())[0] for p in paths.values()])
    return dict(zip(paths, parsed))


@pytest.fixture(scope="module")
def factory(pki, tmp_path_factory):
    return ResponseFactory(pki, tmp_path_factory.mktemp("responses"))


@pytest.fixture
def scratch_dir(tmp_path, monkeypatch):
    """openssl's scratch directories go here (to see what a call leaves behind)."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


@pytest.fixture
def pem_writes(monkeypatch):
    """The certificates written as PEM input files, in order (by their content)."""
    written = []
    real = files.Scratch.file

    def spy(self, data, name="f"):
        if name == "cert.pem":
            written.append(data)
        return real(self, data, name)
    monkeypatch.setattr(files.Scratch, "file", spy)
    return written


def test_verify_issued_many_one_process_per_issuer(certs):
    ossl = OpenSSL()
    leaves = [certs[n] for n in ("good1", "good2", "revoked1")]
    got = ossl.verify_issued_many(certs["inter"], leaves + [certs["root"]])
    assert [ok for ok, _ in got] == [True, True, True, False]
    assert not any(ok for ok, _ in ossl.verify_issued_many(certs["other"], leaves))
    assert ossl.spawned == 3                # the probe (openssl version), then two verify runs
    assert ossl.verify_issued(certs["good1"], certs["inter"]) == (True, "")
    assert ossl.verify_issued(certs["good1"], certs["other"])[0] is False


def test_build_requests_split_is_what_openssl_reads(pki, certs, tmp_path):
    ossl = OpenSSL()
    names = ("good1", "good2", "revoked1")
    for alg in ("sha1", "sha256"):
        reqs = ossl.build_requests(certs["inter"], [certs[n] for n in names], hash_alg=alg)
        assert len(reqs) == 3
        for req, name in zip(reqs, names):
            path = tmp_path / f"{name}-{alg}.der"
            path.write_bytes(req)
            text = subprocess.run(["openssl", "ocsp", "-reqin", str(path), "-req_text"],
                                  capture_output=True, text=True).stdout
            assert text.count("Certificate ID:") == 1
            assert f"Serial Number: {pki.leaves[name].serial}" in text
            assert f"Hash Algorithm: {alg}" in text
            # the same bytes as openssl's own single request, and as build_request's
            single = tmp_path / "single.der"
            subprocess.run(["openssl", "ocsp", "-issuer", str(pki.inter_cert), f"-{alg}", "-cert",
                            str(pki.leaves[name].cert), "-no_nonce", "-reqout", str(single)],
                           capture_output=True, check=True)
            assert single.read_bytes() == req
            assert ossl.build_request(certs[name], certs["inter"], hash_alg=alg) == req
    # a part that does not carry the serial expected for its certificate refuses the whole batch
    liar = dataclasses.replace(certs["good1"], serial=12345)
    with pytest.raises(OpensslError, match="does not hold the expected certificates"):
        ossl.build_requests(certs["inter"], [liar])
    with pytest.raises(ValueError, match="unsupported CertID hash"):
        ossl.build_requests(certs["inter"], [certs["good1"]], hash_alg="md5")


def test_request_with_a_nonce(certs):
    der, nonce = OpenSSL().build_request_with_nonce(certs["good1"], certs["inter"])
    assert len(nonce) >= 16 and bytes.fromhex(nonce) in der


def test_verify_and_read_a_response(certs, factory, pki):
    ossl = OpenSSL()
    der = factory.response([pki.leaves["good1"].cert])
    info, verdict = ossl.verify_response(der, certs["good1"], certs["inter"])
    assert verdict.signature_ok and verdict.cert_status == "good" and info.successful
    assert ossl.read_response(der) == info
    info, verdict = ossl.verify_response(der, certs["good2"], certs["inter"])
    assert verdict.signature_ok and verdict.no_status_found
    serial = certs["good1"].serial
    info, verdict = ossl.verify_response_serial(der, serial, certs["inter"])
    assert verdict.cert_status == "good"
    with pytest.raises(ValueError, match="negative"):
        ossl.verify_response_serial(der, -1, certs["inter"])
    with pytest.raises(ValueError, match="not a DER OCSP response"):
        ossl.read_response(b"<html>busy</html>")
    status_only = bytes.fromhex("30030a0103")
    assert ossl.verify_response(status_only, certs["good1"], certs["inter"])[0].response_status == "tryLater"


def test_a_batch_writes_each_certificate_once_and_leaves_nothing(certs, factory, pki, scratch_dir,
                                                                  pem_writes):
    ossl = OpenSSL()
    der = factory.response([pki.leaves["good1"].cert])
    leaves = [certs[n] for n in ("good1", "good2", "revoked1")]
    with ossl.batch():
        ossl.verify_issued_many(certs["inter"], leaves)
        ossl.build_requests(certs["inter"], leaves)
        with ossl.batch():                              # batches nest
            threads = [threading.Thread(target=ossl.verify_response,
                                        args=(der, certs["good1"], certs["inter"])) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert len(os.listdir(scratch_dir)) == 1        # one scratch directory, kept small:
        (inside,) = os.listdir(scratch_dir)             # the certificates, no response or request
        assert len(os.listdir(scratch_dir / inside)) == 4
    assert sorted(pem_writes) == sorted(c.pem.encode() for c in [certs["inter"], *leaves])
    assert os.listdir(scratch_dir) == []


def test_a_call_outside_a_batch_uses_private_files(certs, factory, pki, scratch_dir, pem_writes):
    ossl = OpenSSL()
    der = factory.response([pki.leaves["good1"].cert])
    for _ in range(2):
        ossl.verify_response(der, certs["good1"], certs["inter"])
        assert os.listdir(scratch_dir) == []
    assert len(pem_writes) == 4                         # leaf and issuer, for each call
    ossl.certificate_ders(b"not a certificate")         # no file at all, no process
    ossl.parse_certificates([])
    assert ossl.spawned == 3 and os.listdir(scratch_dir) == []


def test_certificate_ders_reads_pem_der_and_pkcs7(certs, pki, tmp_path):
    ossl = OpenSSL()
    der = certs["good1"].der
    assert ossl.certificate_ders(Path(pki.leaves["good1"].fullchain).read_bytes())[0] == der
    assert ossl.certificate_ders(der) == [der]
    p7 = tmp_path / "chain.p7b"
    subprocess.run(["openssl", "crl2pkcs7", "-nocrl", "-certfile", str(pki.leaves["good1"].fullchain),
                    "-out", str(p7)], check=True, capture_output=True)
    assert ossl.certificate_ders(p7.read_bytes())[0] == der
    subprocess.run(["openssl", "pkcs7", "-in", str(p7), "-outform", "DER", "-out", str(tmp_path / "c.der")],
                   check=True, capture_output=True)
    assert ossl.certificate_ders((tmp_path / "c.der").read_bytes())[0] == der
    assert ossl.certificate_ders(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n") == []
