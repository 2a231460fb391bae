"""ocsptools.openssl.argv: the command lines keep openssl's rules (pure; the recorded outputs were made
with these very lines: test_openssl_parsers.py)."""

from __future__ import annotations

import pytest

from ocsptools.openssl import argv

VERIFYING = {
    "verify_issued": argv.verify_issued("I.pem", ["a.pem", "-b.pem"]),
    "read_response": argv.read_response("R.der"),
    "verify_response": argv.verify_response("R.der", "I.pem", "sha256", cert_file="C.pem"),
    "verify_response_serial": argv.verify_response("R.der", "I.pem", "sha1", serial="0xAB"),
    "s_client": argv.s_client("127.0.0.1", 443, "M.txt"),
}
REQUESTS = {
    "one": argv.ocsp_request("I.pem", ["C.pem"], "sha1", "Q.der"),
    "many": argv.ocsp_request("I.pem", ["C1.pem", "C2.pem"], "sha384", "Q.der"),
    "nonce": argv.ocsp_request("I.pem", ["C.pem"], "sha1", "Q.der", nonce=True, req_text=True),
}
ALL = {**VERIFYING, **REQUESTS, "store_text": argv.store_text(), "store_certs": argv.store_certs(),
       "pkcs7": argv.pkcs7_certs("DER"), "version": argv.version()}


@pytest.mark.parametrize("name", sorted(VERIFYING))
def test_no_system_store_is_ever_loaded(name):
    args = VERIFYING[name]
    assert "-no-CApath" in args and "-no-CAstore" in args
    assert ("-CAfile" in args) != ("-no-CAfile" in args)


@pytest.mark.parametrize("name", sorted(ALL))
def test_never_respout_and_only_strings(name):
    args = ALL[name]
    assert "-respout" not in args and all(isinstance(a, str) for a in args)


@pytest.mark.parametrize("args", [REQUESTS["one"], REQUESTS["many"], REQUESTS["nonce"],
                                  VERIFYING["verify_response"], VERIFYING["verify_response_serial"]])
def test_issuer_and_digest_come_before_the_certificates(args):
    first = min(i for i, a in enumerate(args) if a in ("-cert", "-serial"))
    assert args.index("-issuer") < first
    assert min(i for i, a in enumerate(args) if a[1:] in argv.HASHES) < first


def test_nonce_only_when_asked():
    assert "-no_nonce" in REQUESTS["one"] and "-nonce" not in REQUESTS["one"]
    assert "-nonce" in REQUESTS["nonce"] and REQUESTS["nonce"][-1] == "-req_text"
    assert "-no_nonce" in VERIFYING["verify_response"]
    assert REQUESTS["many"].count("-cert") == 2


def test_leaf_files_follow_the_end_of_options():
    args = VERIFYING["verify_issued"]
    assert args[args.index("--") + 1:] == ["a.pem", "-b.pem"]


def test_refusals():
    with pytest.raises(ValueError, match="unsupported CertID hash 'md5'"):
        argv.ocsp_request("I.pem", ["C.pem"], "md5", "Q.der")
    with pytest.raises(ValueError, match="unsupported CertID hash"):
        argv.verify_response("R.der", "I.pem", "sha3", cert_file="C.pem")
    with pytest.raises(ValueError, match="a certificate file or a serial"):
        argv.verify_response("R.der", "I.pem", "sha1")
    with pytest.raises(ValueError, match="negative"):
        argv.serial_label(-5)
    assert argv.serial_label(0xAB12) == "0xAB12" and argv.check_hash("sha512") == "sha512"
