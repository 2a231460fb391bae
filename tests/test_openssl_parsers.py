"""The openssl text parsers (ocsptools.openssl.parse, .parse_ocsp), on outputs recorded from real
openssl runs (tests/fixtures/openssl), and the command lines those outputs were recorded with
(ocsptools.openssl.argv)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ocsptools.codec.pem import split_pem_certs
from ocsptools.openssl import argv
from ocsptools.openssl.parse import (openssl_error_reasons, parse_storeutl_text, parse_time,
                                     parse_verify_many, parse_verify_one)
from ocsptools.openssl.parse_ocsp import (parse_resp_text, parse_response, parse_responder_error,
                                          parse_verdict, read_examined)
from ocsptools.staple import ResponseInfo, normalize_name

FIX = Path(__file__).resolve().parent / "fixtures" / "openssl"


def load(case):
    return json.loads((FIX / f"{case}.json").read_text())


def verdict(case):
    d = load(case)
    return parse_verdict(d["stdout"], d["stderr"], d["label"])


def info(case) -> ResponseInfo:
    return parse_response(load(case)["stdout"])


def test_good():
    v = verdict("good")
    assert v.signature_ok and v.cert_status == "good" and not v.no_status_found
    assert v.this_update.tzinfo is not None and v.next_update > v.this_update
    i = info("good")
    assert i.response_status == "successful" and len(i.responses) == 1
    assert i.responses[0].hash_algorithm == "sha1"
    assert i.signer() is not None and i.signer().ocsp_signing
    assert i.produced_at is not None


def test_issuer_signed_response_has_issuer_as_responder():
    i = info("good_issuer_signed")
    assert "Intermediate" in i.responder_id
    assert verdict("good_issuer_signed").signature_ok


def test_sha256_certid():
    assert info("good_sha256").responses[0].hash_algorithm == "sha256"
    assert verdict("good_sha256").cert_status == "good"


def test_revoked_exits_zero_but_is_revoked():
    d = load("revoked")
    assert d["rc"] == 0                      # openssl's exit status says nothing
    v = verdict("revoked")
    assert v.cert_status == "revoked" and v.signature_ok
    assert v.revocation_reason == "keyCompromise" and v.revocation_time is not None
    single = info("revoked").responses[0]
    assert single.cert_status == "revoked" and single.revocation_reason == "keyCompromise"


def test_unknown():
    v = verdict("unknown")
    assert v.cert_status == "unknown" and v.signature_ok


@pytest.mark.parametrize("case,reason", [
    ("verify_failure_nosign", "missing ocspsigning usage"),
    ("verify_failure_badsig", "signature failure"),
    ("verify_failure_not_embedded", "signer certificate not found"),
    ("verify_failure_expired_signer", "certificate has expired"),
])
def test_verify_failure_still_prints_good(case, reason):
    d = load(case)
    assert "good1.pem: good" in d["stdout"]          # the lie
    v = verdict(case)
    assert not v.signature_ok
    assert reason in v.verify_errors


@pytest.mark.parametrize("case,problem", [
    ("verify_failure_nosign", "not-delegated"),
    ("verify_failure_badsig", "bad-signature"),
    ("verify_failure_not_embedded", "signer-not-embedded"),
    ("verify_failure_expired_signer", "signer-out-of-time"),
    ("good", None),
])
def test_signature_problem_is_a_code_not_text(case, problem):
    assert verdict(case).signature_problem == problem


def test_times_invalid_warning_with_error_line_between():
    v = verdict("times_invalid_expired")
    assert v.times_invalid and v.cert_status == "good" and v.signature_ok
    assert v.next_update < datetime.now(timezone.utc)
    # the same stdout with stderr merged in (error line between the name and the status)
    d = load("times_invalid_expired")
    out = d["stdout"].replace("Status times invalid.\n", "Status times invalid.\n"
                              "4007AEA1107F0000:error:1380007D:OCSP routines:OCSP_check_validity:"
                              "status expired:../crypto/ocsp/ocsp_cl.c:351:\n")
    assert parse_verdict(out, d["stderr"], d["label"]).cert_status == "good"


def test_no_next_update():
    v = verdict("no_next_update")
    assert v.cert_status == "good" and v.next_update is None
    assert info("no_next_update").responses[0].next_update is None


def test_several_single_responses_ours_last():
    i = info("multi_ours_last")
    assert len(i.responses) == 3
    assert [r.cert_status for r in i.responses] == ["good", "revoked", "good"]
    v = verdict("multi_ours_last")
    assert v.cert_status == "good" and v.signature_ok
    assert len({r.serial for r in i.responses}) == 3


def test_other_serial_is_no_status_found():
    v = verdict("other_serial")
    assert v.no_status_found and v.cert_status is None and v.signature_ok


@pytest.mark.parametrize("case,status", [
    ("responder_error_trylater", "tryLater"),
    ("responder_error_unauthorized", "unauthorized"),
    ("responder_error_malformedrequest", "malformedRequest"),
    ("responder_error_internalerror", "internalError"),
])
def test_responder_errors(case, status):
    d = load(case)
    assert d["rc"] == 1 and "OCSP Response Data" not in d["stdout"]
    assert parse_responder_error(d["stdout"]) == status
    assert verdict(case).cert_status is None


def test_day_padded_with_space():
    d = load("padded_day")
    assert "Dec  5 10:00:00 2026 GMT" in d["stdout"]
    v = verdict("padded_day")
    assert v.this_update == datetime(2026, 12, 5, 10, 0, tzinfo=timezone.utc)
    assert v.next_update == datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)


def test_responder_id_by_key_hash_finds_signer():
    i = info("key_id_responder")
    assert "=" not in i.responder_id
    assert i.signer() is not None and i.signer().ocsp_signing


def test_not_ocsp_gives_reason():
    d = load("not_ocsp")
    assert "OCSP Response Data" not in d["stdout"]
    assert openssl_error_reasons(d["stderr"]) == ["not enough data"]
    with pytest.raises(ValueError):
        parse_resp_text(d["stdout"])


def test_inspect_without_verification():
    i = info("inspect_good")
    assert i.successful and i.responses[0].cert_status == "good"


def test_embedded_certificates_have_pem():
    d = load("good")
    ders = split_pem_certs(d["stdout"].encode())
    _, cert_fields = parse_resp_text(d["stdout"])
    assert len(ders) == len(cert_fields) == 1


def test_storeutl_bundle():
    d = load("storeutl_bundle")
    certs = parse_storeutl_text(d["stdout"])
    assert len(certs) == 4 == len(split_pem_certs((FIX / "storeutl_bundle.pem").read_bytes()))
    leaf, inter, root, nourl = certs
    assert leaf["must_staple"] and leaf["ocsp_urls"] and leaf["ca_issuers_urls"] == ["http://127.0.0.1:1/inter.der"]
    assert not leaf["is_ca"] and inter["is_ca"] and root["is_ca"]
    assert normalize_name(leaf["issuer"]) == normalize_name(inter["subject"])
    assert leaf["aki"] == inter["ski"]
    assert nourl["ocsp_urls"] == [] and not nourl["must_staple"]
    assert root["subject"] == root["issuer"]


@pytest.mark.parametrize("text,expected", [
    ("Nov 21 13:05:39 2026 GMT", datetime(2026, 11, 21, 13, 5, 39, tzinfo=timezone.utc)),
    ("Apr  6 00:00:01 2027 GMT", datetime(2027, 4, 6, 0, 0, 1, tzinfo=timezone.utc)),
    ("Jan  1 23:59:59.123 2030 GMT", datetime(2030, 1, 1, 23, 59, 59, tzinfo=timezone.utc)),
])
def test_parse_time(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("bad", ["", "Nov 21 2026", "21 Nov 13:05:39 2026 GMT", "Nov 21 13:05:39 2026 UTC",
                                 "Noz 21 13:05:39 2026 GMT"])
def test_parse_time_rejects(bad):
    with pytest.raises(ValueError):
        parse_time(bad)


def test_label_is_matched_literally_not_as_regex():
    d = load("good")
    out = d["stdout"].replace("good1.pem: good", "good1Xpem: revoked") + "good1.pem: unknown\n"
    # the only line starting with the exact label says unknown (no continuation lines)
    assert parse_verdict(out, d["stderr"], "good1.pem").cert_status == "unknown"


# ---------------------------------------------------------------------------
# one `openssl ocsp -respin` run read whole, as the facade does

@pytest.mark.parametrize("case", ["good", "revoked", "other_serial", "verify_failure_badsig"])
def test_read_examined_gives_the_response_and_the_verdict_on_the_label(case):
    d = load(case)
    info, v = read_examined(d["stdout"], d["stderr"], d["label"])
    assert info == parse_response(d["stdout"]) and v == verdict(case)
    assert read_examined(d["stdout"], d["stderr"], None)[1] is None


def test_read_examined_status_only_and_garbage():
    d = load("responder_error_trylater")
    info, v = read_examined(d["stdout"], d["stderr"], d["label"])
    assert info == ResponseInfo(response_status="tryLater") and v is None
    d = load("not_ocsp")
    with pytest.raises(ValueError, match=r"^not a DER OCSP response \(not enough data\)$"):
        read_examined(d["stdout"], d["stderr"], d["label"])


# ---------------------------------------------------------------------------
# the recorded outputs come from the command lines the package runs

VERIFIED = sorted(p.stem for p in FIX.glob("*.json") if load(p.stem)["label"] is not None)


@pytest.mark.parametrize("case", VERIFIED)
def test_fixtures_were_recorded_with_the_packages_command_line(case):
    d = load(case)
    respin = d["argv"].split()[2]
    hash_alg = next(a[1:] for a in d["argv"].split() if a[1:] in argv.HASHES)
    assert " ".join(argv.verify_response(respin, "issuer.pem", hash_alg, cert_file=d["label"])) == d["argv"]


def test_storeutl_fixture_command_line():
    assert " ".join(argv.store_text()) == load("storeutl_bundle")["argv"]


# ---------------------------------------------------------------------------
# `openssl verify`: one leaf, or many in one process

# Recorded: `openssl verify -partial_chain -no_check_time -CAfile inter.pem -no-CApath
# -no-CAstore -- good1.pem good2.pem root.pem revoked1.pem` (OpenSSL 3.0.19).
VERIFY_STDOUT = "a/good1.pem: OK\na/good2.pem: OK\na/revoked1.pem: OK\n"
VERIFY_STDERR = ("O = ocsptools test, CN = ocsptools Test Root CA\n"
                 "error 18 at 0 depth lookup: self-signed certificate\n"
                 "error a/root.pem: verification failed\n")


def test_parse_verify_many_recorded():
    paths = ["a/good1.pem", "a/good2.pem", "a/root.pem", "a/revoked1.pem", "a/absent.pem"]
    got = parse_verify_many(VERIFY_STDOUT, VERIFY_STDERR, paths)
    assert got["a/good1.pem"] == (True, "") and got["a/revoked1.pem"] == (True, "")
    assert got["a/root.pem"] == (False, "self-signed certificate")
    assert got["a/absent.pem"] == (False, "no verdict from openssl")
    # a path printed as OK that also failed is a failure; a look-alike path is not matched
    got = parse_verify_many("a/x.pem: OK\n", "error a/x.pem: verification failed\n", ["a/x.pem"])
    assert got["a/x.pem"][0] is False
    got = parse_verify_many("b/a/x.pem: OK\n", "", ["a/x.pem"])
    assert got["a/x.pem"][0] is False


@pytest.mark.parametrize("rc, stdout, stderr, expected", [
    (0, "a/good1.pem: OK\n", "", (True, "")),
    (2, "", VERIFY_STDERR, (False, "self-signed certificate")),
    (2, "", "error a/x.pem: verification failed\n", (False, "signature does not verify")),
    (0, "", "", (False, "signature does not verify")),          # exit 0 alone proves nothing
    (1, "a/good1.pem: OK\n", "", (False, "signature does not verify")),
])
def test_parse_verify_one(rc, stdout, stderr, expected):
    assert parse_verify_one(rc, stdout, stderr) == expected
