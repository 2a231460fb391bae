"""The corpus is what it claims (pyca), it is served, GnuTLS judges it, and docs/conformance.md is current."""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from . import der, gnutls, ocspcheck
from .corpus import CHECKS, VERDICTS
from .premise import premise_problems

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]
needs_ocsptool = pytest.mark.skipif(not gnutls.available(),
                                    reason="GnuTLS ocsptool (gnutls-bin) not installed")

#: The cases the suite must have (issue 14); more are welcome.
REQUIRED = """issuer-byname issuer-bykey delegated-ski-byname delegated-ski-bykey delegated-noski-byname
delegated-noski-bykey delegated-eku-serverauth foreign-ca-signer root-signed delegated-not-embedded
signer-expired signer-not-yet-valid signer-expires-before-nextupdate signer-dies-in-20min
signer-dies-in-20min-noski-bykey leaf-expires-before-nextupdate wrong-serial revoked-with-reason
revoked-no-reason unknown thisupdate-future-1h thisupdate-future-2min nextupdate-passed no-nextupdate
certid-sha256 certid-sha256-client-sha1 multi-ours-first multi-ours-not-first multi-without-ours
bad-signature unsupported-signature-algorithm extra-certs-issuer-signed delegated-extra-certs-bykey
status-trylater status-unauthorized status-malformedrequest not-der-html truncated empty
wrong-issuer-key-hash produced-at-after-thisupdate produced-at-long-ago rsa-issuer-signed
ecdsa-sha384-issuer-signed""".split()


def _certs(corpus):
    return {cn: x509.load_pem_x509_certificate(p.read_bytes()) for cn, p in corpus.certs.items()}


def test_corpus_shape(corpus):
    names = [c.name for c in corpus.cases]
    assert len(names) >= 40
    assert len(set(names)) == len(names)
    assert len({c.serial for c in corpus.cases}) == len(names)
    assert set(REQUIRED) <= set(names), set(REQUIRED) - set(names)
    for c in corpus.cases:
        assert c.verdict in VERDICTS and c.check in CHECKS and c.hash_alg in ("sha1", "sha256"), c.name
        assert (c.verdict == "refuse") == bool(c.refuse_reason), c.name
        assert c.rfc.startswith("RFC ") and c.title, c.name
        accepted_good = c.verdict == "good"
        assert accepted_good == (c.valid_until is not None) == (c.renewal_due is not None), c.name
        assert c.leaf.parent == corpus.dir / c.name
        assert corpus.url(c) == f"http://127.0.0.1:{corpus.port}/case/{c.name}"
    assert corpus.root.exists() and corpus.inter.exists()


def test_every_premise_holds(corpus):
    certs = _certs(corpus)
    assert {c.name: premise_problems(c, certs) for c in corpus.cases} == {c.name: [] for c in corpus.cases}


@pytest.mark.parametrize("name, lie", [
    ("issuer-bykey", dict(responder=("name", "inter"))),
    ("delegated-noski-bykey", dict(signer_facts=("ski",))),
    ("bad-signature", dict(signed_by="inter")),
    ("multi-ours-not-first", dict(serials=())),
    ("wrong-issuer-key-hash", dict(issuer_key_of="inter")),
    ("delegated-not-embedded", dict(certs=("ocsp-signer",))),
    ("produced-at-long-ago", dict(produced_at=None, this_update=None)),
    ("status-trylater", dict(response_status="unauthorized")),
])
def test_premise_check_catches_a_lie(corpus, name, lie):
    case = corpus.by_name[name]
    assert premise_problems(replace(case, premise=replace(case.premise, **lie)), _certs(corpus))


def test_expected_times_recomputed_from_the_files(corpus):
    """valid_until = min(nextUpdate, the delegated signer's notAfter, the leaf's notAfter), read back
    from the DER and the PEM files; renewal_due at half of thisUpdate..valid_until."""
    for c in (c for c in corpus.cases if c.verdict == "good"):
        r = ocsp.load_der_ocsp_response(c.der)
        single = next(s for s in r.responses if s.serial_number == c.serial)
        leaf = x509.load_pem_x509_certificate(c.leaf.read_bytes())
        issuer = x509.load_pem_x509_certificate(c.issuer.read_bytes())
        ends = [single.next_update_utc, leaf.not_valid_after_utc]
        responder = _responder(r)
        if responder is not None and responder.subject != issuer.subject:   # a delegated signer
            ends.append(responder.not_valid_after_utc)
        assert (c.this_update, c.next_update) == (single.this_update_utc, single.next_update_utc), c.name
        assert c.valid_until == min(ends), c.name
        assert c.renewal_due == c.this_update + (c.valid_until - c.this_update) / 2, c.name
    by, now = corpus.by_name, corpus.now
    assert by["issuer-byname"].this_update == now - timedelta(hours=1)
    assert by["issuer-byname"].valid_until == now + timedelta(days=7)
    assert by["signer-expires-before-nextupdate"].valid_until == now + timedelta(days=2)
    assert by["signer-dies-in-20min"].valid_until == now + timedelta(minutes=20)
    assert by["signer-dies-in-20min"].renewal_due == now + timedelta(minutes=5)
    assert by["leaf-expires-before-nextupdate"].valid_until == now + timedelta(days=3)


def _responder(r):
    """The embedded certificate the ResponderID names, if any."""
    for cert in r.certificates:
        spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if cert.subject == r.responder_name or der.key_sha1(spki) == r.responder_key_hash:
            return cert
    return None


def test_served_by_get_and_post(corpus):
    case = corpus.by_name["issuer-byname"]
    request = base64.b64encode(b"\x30\x03\x02\x01\x01").decode()
    with urllib.request.urlopen(f"{corpus.url(case)}/{request}", timeout=10) as got:
        assert got.read() == case.der
        assert got.headers["Content-Type"] == "application/ocsp-response"
    post = urllib.request.Request(corpus.url(corpus.by_name["empty"]), data=b"\x30\x00", method="POST",
                                  headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(post, timeout=10) as got:
        assert got.read() == b""
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{corpus.port}/case/no-such-case", timeout=10)
    assert err.value.code == 404
    assert ("GET", f"/case/{case.name}/{request}") in corpus.server.requests


@needs_ocsptool
def test_gnutls_judges_every_case(corpus):
    opinions = {c.name: gnutls.run(c) for c in corpus.cases}
    for c in corpus.cases:
        verdict = opinions[c.name].verdict
        assert verdict in VERDICTS + ("n/a",), (c.name, opinions[c.name])
        assert verdict != "n/a" or c.check in gnutls.UNCHECKED, c.name
    assert opinions["issuer-byname"].verdict == "good"
    assert opinions["delegated-ski-bykey"].verdict == "good"
    assert opinions["revoked-with-reason"].verdict == "revoked"
    assert opinions["unknown"].verdict == "unknown"
    assert (opinions["bad-signature"].verdict, opinions["bad-signature"].detail) == ("refuse",
                                                                                     "Signature failure")
    assert opinions["not-der-html"].verdict == "refuse"


def test_ocspcheck_mapping():
    ok = dict(verified=True, cert_status="good", state="OK")
    assert ocspcheck.classify(ok) == "good"
    assert ocspcheck.classify(dict(ok, state="WARNING")) == "refuse"
    assert ocspcheck.classify(dict(ok, verified=False)) == "refuse"
    assert ocspcheck.classify(dict(ok, cert_status="revoked", state="CRITICAL")) == "revoked"
    assert ocspcheck.classify(dict(ok, cert_status=None, state="CRITICAL")) == "refuse"


@needs_ocsptool
def test_docs_are_current():
    cp = subprocess.run([sys.executable, str(ROOT / "scripts" / "conformance-report"), "--check"],
                        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert cp.returncode == 0, cp.stderr
