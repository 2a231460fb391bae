"""The corpus's cases: each names its rule, the RFC section that decides it, and the verdict."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from . import der
from .premise import Premise

if TYPE_CHECKING:
    from .corpus import _Builder

from .corpus import CertStatus, D, H, M

DELEGATED = ("ocsp-signing", "issued-by:inter", "valid-now")
RSA_SHA256, ECDSA_SHA384 = "1.2.840.113549.1.1.11", "1.2.840.10045.4.3.3"
HTML = b"<!DOCTYPE html>\n<html><head><title>503</title></head><body>Service unavailable</body></html>\n"


def define(b: "_Builder") -> None:
    s = b.pki

    def resp(*facts: str, after=None, **kw):
        """A pyca response for the leaf (keywords: _Builder.respond), then AFTER(der, premise)."""
        def make(leaf):
            body, premise = b.respond(leaf, **kw)
            premise = replace(premise, signer_facts=facts)
            return after(body, premise) if after else (body, premise)
        return make

    def good(name, title, make, *, check, rfc, **kw):
        b.case(name, title, verdict="good", check=check, rfc=rfc, make=make, **kw)

    def refuse(name, title, reason, make, *, check, rfc, **kw):
        b.case(name, title, verdict="refuse", reason=reason, check=check, rfc=rfc, make=make, **kw)

    # -- who may sign ------------------------------------------------------------------------
    a = dict(check="signer", rfc="RFC 6960 4.2.2.2")
    good("issuer-byname", "issuer-signed, ResponderID byName", resp(), **a)
    good("issuer-bykey", "issuer-signed, ResponderID byKey", resp(by="key"), **a)
    good("delegated-ski-byname", "delegated signer (id-kp-OCSPSigning, issued by inter, embedded) "
         "with SKI, byName", resp("ski", *DELEGATED, signer=s["ocsp-signer"]), **a)
    good("delegated-ski-bykey", "delegated signer with SKI, byKey",
         resp("ski", *DELEGATED, signer=s["ocsp-signer"], by="key"), **a)
    good("delegated-noski-byname", "delegated signer without a SubjectKeyIdentifier, byName",
         resp("no-ski", *DELEGATED, signer=s["ocsp-signer-noski"]), **a)
    good("delegated-noski-bykey", "delegated signer without SKI, byKey: the KeyHash is SHA-1 of its "
         "key BIT STRING, no SKI needed", resp("no-ski", *DELEGATED, signer=s["ocsp-signer-noski"],
                                                by="key"), check="signer", rfc="RFC 6960 4.2.2.3")
    refuse("delegated-eku-serverauth", "delegated signer issued by inter with EKU serverAuth, "
           "no id-kp-OCSPSigning", "unauthorized-signer",
           resp("no-ocsp-signing", "issued-by:inter", signer=s["signer-eku-serverauth"]), **a)
    refuse("delegated-eku-any", "delegated signer with anyExtendedKeyUsage instead of id-kp-OCSPSigning",
           "unauthorized-signer", resp("any-eku", "no-ocsp-signing", signer=s["signer-eku-any"]), **a)
    refuse("delegated-no-eku", "delegated signer issued by inter without any ExtendedKeyUsage",
           "unauthorized-signer", resp("no-eku", "issued-by:inter", signer=s["signer-no-eku"]), **a)
    refuse("foreign-ca-signer", "signed by an unrelated CA's OCSP signer (embedded)", "unauthorized-signer",
           resp("ocsp-signing", "issued-by:foreign-ca", signer=s["foreign-ocsp-signer"]), **a)
    refuse("sibling-ca-signer", "signed by the OCSP signer of another intermediate under the same root",
           "unauthorized-signer",
           resp("ocsp-signing", "issued-by:sibling-ca", signer=s["sibling-ocsp-signer"]), **a)
    refuse("root-signed", "signed by the issuer's own issuer: root signs for inter's leaf (embedded)",
           "unauthorized-signer", resp(signer=b.root), **a)
    refuse("delegated-not-embedded", "delegated signer not in the response's certs: a TLS client "
           "cannot find it", "signer-not-embedded",
           resp(*DELEGATED, signer=s["ocsp-signer"],
                after=lambda d, p: (der.without_certs(d), replace(p, certs=()))),
           check="signer", rfc="RFC 5019 2.2.2")
    refuse("responder-id-mismatch", "signed with the issuer's key, but the ResponderID names the "
           "foreign CA", "responder-id-mismatch",
           resp(after=lambda d, p: b.resign(d, p, responder_name=b.foreign)),
           check="signer", rfc="RFC 6960 4.2.2.3")

    # -- the signer's own validity -------------------------------------------------------------
    a = dict(check="signer-validity", rfc="RFC 6960 3.2 (4)")
    refuse("signer-expired", "delegated signer expired yesterday", "signer-expired",
           resp("expired", "ocsp-signing", signer=s["signer-expired"]), **a)
    refuse("signer-not-yet-valid", "delegated signer valid only from tomorrow", "signer-not-yet-valid",
           resp("not-yet-valid", "ocsp-signing", signer=s["signer-not-yet-valid"]), **a)
    good("signer-expires-before-nextupdate", "delegated signer valid now, expiring in 2 days, "
         "nextUpdate in 7: good until the signer's notAfter",
         resp(*DELEGATED, signer=s["signer-2days"]), **a)
    good("signer-dies-in-20min", "delegated signer expiring in 20 minutes, thisUpdate 10 minutes ago, "
         "nextUpdate in 7 days: good until the signer's notAfter",
         resp(*DELEGATED, signer=s["signer-20min"], this_update=-10 * M), **a)
    good("signer-dies-in-20min-noski-bykey", "the same with a signer without SKI named byKey",
         resp("no-ski", *DELEGATED, signer=s["signer-20min-noski"], by="key", this_update=-10 * M), **a)

    # -- which certificate: CertID ----------------------------------------------------------------
    a = dict(check="certid", rfc="RFC 6960 3.2 (1)")
    by1, by2 = b.bystanders
    refuse("wrong-serial", "a good response for another certificate of the same issuer", "wrong-serial",
           resp(serial=by1.serial, after=lambda d, p: (d, replace(p, status=None))), **a)
    refuse("wrong-issuer-key-hash", "our serial, but the CertID's issuerKeyHash names the foreign CA",
           "wrong-issuer", resp(certid_issuer=b.foreign), check="certid", rfc="RFC 6960 3.2 (1), 4.1.1")
    good("certid-sha256", "SHA-256 CertID, the client asks with SHA-256", resp(certid_hash="sha256"),
         hash_alg="sha256", check="certid", rfc="RFC 6960 4.1.1; RFC 9919 (SHA-256 CertIDs)")
    good("certid-sha256-client-sha1", "SHA-256 CertID, the client asked with SHA-1: decided good, the "
         "CertID still names this certificate", resp(certid_hash="sha256"), hash_alg="sha1",
         check="certid", rfc="RFC 6960 3.2 (1), 4.1.1; RFC 9919")
    a = dict(check="certid", rfc="RFC 6960 4.2.1, 3.2 (1)")
    good("multi-ours-first", "three SingleResponses (openssl -index), ours first",
         lambda leaf: b.openssl_multi(leaf, [leaf, by1, by2]), **a)
    good("multi-ours-not-first", "three SingleResponses (openssl -index), ours second",
         lambda leaf: b.openssl_multi(leaf, [by1, leaf, by2]), **a)
    refuse("multi-without-ours", "two SingleResponses (openssl -index), none for us", "wrong-serial",
           lambda leaf: b.openssl_multi(leaf, [by1, by2]), **a)

    # -- certificate status -----------------------------------------------------------------------
    a = dict(check="status", rfc="RFC 6960 2.2, 4.2.1")
    b.case("revoked-with-reason", "revoked yesterday, reason keyCompromise", verdict="revoked",
           make=resp(status=CertStatus.REVOKED, reason=x509.ReasonFlags.key_compromise), **a)
    b.case("revoked-no-reason", "revoked yesterday, no revocationReason", verdict="revoked",
           make=resp(status=CertStatus.REVOKED), **a)
    b.case("unknown", "status unknown", verdict="unknown", make=resp(status=CertStatus.UNKNOWN), **a)

    # -- times ------------------------------------------------------------------------------------
    a = dict(check="times", rfc="RFC 6960 4.2.2.1")
    refuse("thisupdate-future-1h", "thisUpdate 1 hour ahead, beyond the 5-minute skew", "future",
           resp(this_update=H), **a)
    good("thisupdate-future-2min", "thisUpdate 2 minutes ahead, within the 5-minute skew",
         resp(this_update=2 * M), **a)
    refuse("nextupdate-passed", "nextUpdate passed a day ago", "expired",
           resp(this_update=-8 * D, next_update=-D), **a)
    refuse("nextupdate-passed-2min", "nextUpdate passed 2 minutes ago (no skew for nextUpdate)", "expired",
           resp(this_update=-7 * D, next_update=-2 * M), **a)
    refuse("no-nextupdate", "no nextUpdate: servers will not staple it", "no-next-update",
           resp(next_update=None), check="times", rfc="RFC 5019 2.2.4")
    good("leaf-expires-before-nextupdate", "the leaf expires in 3 days, nextUpdate in 7: good until the "
         "leaf's notAfter", resp(), leaf_life=3 * D, **a)
    good("produced-at-after-thisupdate", "producedAt 30 minutes after thisUpdate (the usual order)",
         resp(after=lambda d, p: b.resign(d, p, produced_at=b.now - 30 * M)), **a)
    good("produced-at-long-ago", "producedAt 10 days before thisUpdate: no acceptance rule reads producedAt",
         resp(after=lambda d, p: b.resign(d, p, produced_at=b.now - 10 * D)), **a)

    # -- the signature ----------------------------------------------------------------------------
    a = dict(check="signature", rfc="RFC 6960 3.2 (2)")
    refuse("bad-signature", "one byte of the signature flipped", "bad-signature",
           resp(after=lambda d, p: (der.flip_signature_byte(d), replace(p, signed_by=None))), **a)
    refuse("unsupported-signature-algorithm", "signatureAlgorithm patched to an unassigned OID "
           "(1.2.840.10045.4.3.127)", "unsupported-algorithm",
           resp(after=lambda d, p: (der.with_algorithm(d, der.ALG_UNKNOWN_SAME_LENGTH),
                                    replace(p, signature_alg="1.2.840.10045.4.3.127"))), **a)
    refuse("wrong-key-type-claimed", "an ECDSA signature by the right key labelled "
           "sha256WithRSAEncryption", "algorithm-mismatch",
           resp(after=lambda d, p: (der.with_algorithm(d, der.ALG_RSA_SHA256),
                                    replace(p, signature_alg=RSA_SHA256))), **a)
    good("rsa-issuer-signed", "RSA issuer (inter-rsa) signs with sha256WithRSAEncryption",
         resp(issuer=b.inter_rsa, after=lambda d, p: (d, replace(p, signature_alg=RSA_SHA256))),
         issuer=b.inter_rsa, check="signature", rfc="RFC 6960 4.3")
    good("ecdsa-sha384-issuer-signed", "EC issuer signs with ecdsa-with-SHA384",
         resp(sig_hash=hashes.SHA384(), after=lambda d, p: (d, replace(p, signature_alg=ECDSA_SHA384))),
         check="signature", rfc="RFC 6960 4.3")

    # -- what else travels in the response -------------------------------------------------------
    a = dict(check="signer", rfc="RFC 6960 4.2.1")
    good("extra-certs-issuer-signed", "issuer-signed with the foreign CA and root in certs",
         resp(certs=[b.foreign, b.root]), **a)
    good("delegated-extra-certs-bykey", "delegated signer embedded between unrelated certificates, byKey",
         resp("ski", *DELEGATED, signer=s["ocsp-signer"], by="key",
              certs=[b.foreign, s["ocsp-signer"], b.root]), **a)
    good("response-with-nonce", "a nonce extension in the response (staples cannot match one)",
         resp(nonce=True), check="format", rfc="RFC 6960 4.4.1")

    # -- not a usable response at all ------------------------------------------------------------
    a = dict(check="format", rfc="RFC 6960 2.3, 4.2.1")
    for status, rfc_name in (("malformed_request", "malformedRequest"), ("internal_error", "internalError"),
                             ("try_later", "tryLater"), ("unauthorized", "unauthorized")):
        body = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus[status.upper()])
        refuse(f"status-{rfc_name.lower()}", f"responseStatus {rfc_name}, no responseBytes",
               "response-status", _fixed(body.public_bytes(serialization.Encoding.DER),
                                         Premise(response_status=status)), **a)
    unparsable = Premise(response_status="unparsable")
    refuse("not-der-html", "an HTML error page with status 200", "not-ocsp", _fixed(HTML, unparsable), **a)
    refuse("truncated", "a good response cut in half", "not-ocsp",
           lambda leaf: (_half(b.respond(leaf)[0]), unparsable), **a)
    refuse("empty", "an empty body", "empty", _fixed(b"", unparsable), **a)


def _fixed(body: bytes, premise: Premise):
    return lambda leaf: (body, premise)


def _half(body: bytes) -> bytes:
    return body[:len(body) // 2]
