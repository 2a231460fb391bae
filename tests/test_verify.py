"""ocsptools.verify, the gate every response passes: typed refusals (a response for another
certificate is a WrongCertificate carrying the serials it covers), messages from codes, never from
text.  Real openssl on responses made offline by the test CA (no network)."""

from __future__ import annotations

import subprocess

import pytest

from hostile_responder import ENV, ResponseFactory
from ocsptools import verify
from ocsptools.codec.pem import split_pem_certs
from ocsptools.errors import ResponderStatusError, ResponseError, WrongCertificate
from ocsptools.openssl import OpenSSL, Verdict
from ocsptools.openssl.parse_ocsp import SIGNATURE_PROBLEMS


@pytest.fixture(scope="module")
def certs(pki):
    paths = {"inter": pki.inter_cert, **{n: leaf.cert for n, leaf in pki.leaves.items()}}
    parsed = OpenSSL().parse_certificates([split_pem_certs(p.read_bytes())[0] for p in paths.values()])
    return dict(zip(paths, parsed))


@pytest.fixture(scope="module")
def factory(pki, tmp_path_factory):
    return ResponseFactory(pki, tmp_path_factory.mktemp("responses"))


def test_every_signature_problem_has_a_message():
    assert set(verify.SIGNATURE_MESSAGES) == {code for _, code in SIGNATURE_PROBLEMS}


@pytest.mark.parametrize("errors, message", [
    (("signature failure",), "the signature does not verify"),
    (("signer certificate not found", "bad signature"), "the signature does not verify"),
    (("signer certificate not found",), "signed by a responder that is not the issuer"),
    (("missing ocspsigning usage",), "neither the issuer nor a delegated responder"),
    (("certificate has expired",), "the responder certificate is expired or not yet valid"),
    (("unable to get local issuer certificate",), "does not chain to the issuer"),
    (("something new", "and more"), "the response does not verify (something new, and more)"),
    ((), "the response does not verify (no detail from openssl)"),
])
def test_signature_messages(errors, message):
    assert message in verify.signature_message(Verdict(signature_ok=False, verify_errors=errors))


def test_a_good_response_verifies(certs, factory, pki):
    der = factory.response([pki.leaves["good1"].cert])
    ossl = OpenSSL()
    staple = verify.verify(der, certs["good1"], certs["inter"], ossl)
    assert staple.verified and staple.cert_status == "good" and staple.serial == certs["good1"].serial
    assert staple.cert_not_after == certs["good1"].not_after and staple.signer_not_after is not None
    by_serial = verify.verify_serial(der, certs["good1"].serial, certs["inter"], ossl)
    assert by_serial.single == staple.single and by_serial.cert_not_after is None
    seen = verify.inspect(der, ossl)
    assert not seen.verified and seen.single == staple.single


def test_a_response_for_another_certificate_is_typed(certs, factory, pki):
    der = factory.response([pki.leaves["good2"].cert])
    with pytest.raises(WrongCertificate) as info:
        verify.verify(der, certs["good1"], certs["inter"], OpenSSL(), label="s.ocsp")
    assert info.value.serials == (certs["good2"].serial,)
    assert str(info.value).startswith("s.ocsp: not a response for this certificate (serial ")
    with pytest.raises(WrongCertificate):
        verify.verify_serial(der, certs["good1"].serial, certs["inter"], OpenSSL())


def test_refusals(certs, factory, pki):
    ossl = OpenSSL()
    with pytest.raises(ResponseError, match="^r: empty, not an OCSP response$"):
        verify.verify(b"", certs["good1"], certs["inter"], ossl, label="r")
    with pytest.raises(ResponseError, match="not a DER OCSP response"):
        verify.verify(b"<html/>", certs["good1"], certs["inter"], ossl)
    with pytest.raises(ResponderStatusError) as info:
        verify.verify(bytes.fromhex("30030a0103"), certs["good1"], certs["inter"], ossl)
    assert info.value.status == "tryLater" and not isinstance(info.value, WrongCertificate)
    nosign = factory.response([pki.leaves["good1"].cert], signer=(pki.nosign_cert, pki.nosign_key))
    with pytest.raises(ResponseError, match="neither the issuer nor a delegated responder") as info:
        verify.verify(nosign, certs["good1"], certs["inter"], ossl)
    assert not isinstance(info.value, WrongCertificate)


def test_a_certid_under_another_hash_is_found_again(certs, pki, tmp_path):
    """A stored staple may name our certificate with SHA-256 while we ask with SHA-1."""
    ossl = OpenSSL()
    req = tmp_path / "req.der"
    req.write_bytes(ossl.build_request(certs["good1"], certs["inter"], hash_alg="sha256"))
    out = tmp_path / "resp.der"
    subprocess.run(["openssl", "ocsp", "-index", str(pki.index), "-rsigner", str(pki.ocsp_cert),
                    "-rkey", str(pki.ocsp_key), "-CA", str(pki.inter_cert), "-reqin", str(req),
                    "-respout", str(out), "-ndays", "1"], check=True, env=ENV, capture_output=True)
    with ossl.batch():
        staple = verify.verify(out.read_bytes(), certs["good1"], certs["inter"], ossl)
    assert staple.verified and staple.single.hash_algorithm == "sha256"
    assert ossl.spawned == 4                # probe, request, the look with sha1, the look with sha256


@pytest.mark.parametrize("status, words", [
    ("tryLater", "try later"), ("unauthorized", "not authorised"), ("weird", "answered weird")])
def test_describe_status(status, words):
    assert words in verify.describe_status(status)
