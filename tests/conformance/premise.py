"""What a corpus response claims to be, and a pyca/cryptography check that its files say exactly that."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from . import der

if TYPE_CHECKING:
    from .corpus import Case

ECDSA_SHA256 = "1.2.840.10045.4.3.2"
_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}


@dataclass(frozen=True)
class Premise:
    """The facts a case rests on; ``premise_problems`` holds the DER to each of them."""

    response_status: str = "successful"        # OCSPResponseStatus name in lower case, or "unparsable"
    responder: Optional[Tuple[str, str]] = None  # ("name" | "key", CN of the certificate it names)
    certs: Tuple[str, ...] = ()                # CNs of the embedded certificates, in order
    serials: Tuple[int, ...] = ()              # serial of each SingleResponse, in order
    status: Optional[str] = None               # our SingleResponse's status; None: there is none
    certid_hash: str = "sha1"                  # hash algorithm of our CertID
    issuer_key_of: str = "inter"               # CN of the CA whose key hash our CertID carries
    signed_by: Optional[str] = None            # CN whose key made a signature that verifies; None: none
    signature_alg: str = ECDSA_SHA256          # the signatureAlgorithm OID claimed
    this_update: Optional[datetime] = None
    next_update: Optional[datetime] = None
    produced_at: Optional[datetime] = None     # None: not part of the premise
    revocation_time: Optional[datetime] = None
    revocation_reason: Optional[str] = None    # x509.ReasonFlags name
    signer_facts: Tuple[str, ...] = ()         # about the responder's certificate, see _FACTS


def _verifies(cert: x509.Certificate, r: ocsp.OCSPResponse) -> bool:
    """Does R's signature verify with CERT's key (the key decides the scheme, whatever OID is claimed)?"""
    try:
        alg = r.signature_hash_algorithm or hashes.SHA256()
    except UnsupportedAlgorithm:
        alg = hashes.SHA256()
    key = cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(r.signature, r.tbs_response_bytes, ec.ECDSA(alg))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(r.signature, r.tbs_response_bytes, padding.PKCS1v15(), alg)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _eku(cert: x509.Certificate) -> Optional[List[x509.ObjectIdentifier]]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def _has_ski(cert: x509.Certificate) -> bool:
    try:
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return True
    except x509.ExtensionNotFound:
        return False


def _fact(fact: str, cert: x509.Certificate, certs: Dict[str, x509.Certificate]) -> bool:
    now = datetime.now(timezone.utc)
    eku = _eku(cert)
    if fact.startswith("issued-by:"):
        parent = certs[fact.split(":", 1)[1]]
        try:
            cert.verify_directly_issued_by(parent)
            return True
        except (ValueError, TypeError, InvalidSignature):
            return False
    return {
        "ski": _has_ski(cert), "no-ski": not _has_ski(cert),
        "ocsp-signing": eku is not None and ExtendedKeyUsageOID.OCSP_SIGNING in eku,
        "no-ocsp-signing": eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku,
        "no-eku": eku is None,
        "any-eku": eku is not None and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku,
        "expired": cert.not_valid_after_utc < now,
        "not-yet-valid": cert.not_valid_before_utc > now,
        "valid-now": cert.not_valid_before_utc <= now <= cert.not_valid_after_utc,
    }[fact]


def _files(case: "Case") -> Tuple[List[str], x509.Certificate, x509.Certificate]:
    problems = []
    leaf = x509.load_pem_x509_certificates(case.leaf.read_bytes())
    issuer = x509.load_pem_x509_certificates(case.issuer.read_bytes())
    chain = x509.load_pem_x509_certificates(case.fullchain.read_bytes())
    if len(leaf) != 1 or len(issuer) != 1 or chain != leaf + issuer:
        problems.append("cert.pem, cert.pem.issuer and fullchain.pem are not leaf, issuer, leaf+issuer")
    if case.response.read_bytes() != case.der:
        problems.append("response.der differs from the case's DER")
    if leaf[0].serial_number != case.serial or leaf[0].issuer != issuer[0].subject:
        problems.append("the leaf's serial or issuer is not the case's")
    aia = leaf[0].extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    if not [a for a in aia if a.access_location.value.endswith(f"/case/{case.name}")]:
        problems.append("the leaf's AIA OCSP URL does not name the case")
    key = serialization.load_pem_private_key(case.key.read_bytes(), None)
    if key.public_key() != leaf[0].public_key():
        problems.append("key.pem is not the leaf's key")
    return problems, leaf[0], issuer[0]


def premise_problems(case: "Case", certs: Dict[str, x509.Certificate]) -> List[str]:
    """Everything in CASE's premise (and files) that its DER does not bear out, read with pyca."""
    p = case.premise
    problems, leaf, issuer = _files(case)
    try:
        r = ocsp.load_der_ocsp_response(case.der)
    except ValueError:
        return problems + ([] if p.response_status == "unparsable" else ["does not parse"])
    status = r.response_status.name.lower()
    if status != p.response_status:
        return problems + [f"responseStatus {status}, not {p.response_status}"]
    if status != "successful":
        return problems
    kind, cn = p.responder
    named = certs[cn]
    if kind == "name" and (r.responder_name != named.subject or r.responder_key_hash is not None):
        problems.append(f"ResponderID is not byName {cn}")
    if kind == "key" and r.responder_key_hash != der.key_sha1(
            named.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)):
        problems.append(f"ResponderID is not byKey {cn}")
    embedded = [c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value for c in r.certificates]
    if tuple(embedded) != p.certs or any(c != certs[n] for c, n in zip(r.certificates, embedded)):
        problems.append(f"embeds {embedded}, not {list(p.certs)}")
    if r.signature_algorithm_oid.dotted_string != p.signature_alg:
        problems.append(f"signatureAlgorithm {r.signature_algorithm_oid.dotted_string}")
    if p.signed_by is not None and not _verifies(certs[p.signed_by], r):
        problems.append(f"the signature does not verify with {p.signed_by}'s key")
    if p.signed_by is None and _verifies(named, r):
        problems.append(f"the signature verifies with {cn}'s key")
    if p.produced_at is not None and r.produced_at_utc != p.produced_at:
        problems.append(f"producedAt {r.produced_at_utc}")
    for fact in p.signer_facts:
        if not _fact(fact, named, certs):
            problems.append(f"the responder certificate {cn} is not {fact}")
    singles = list(r.responses)
    if tuple(s.serial_number for s in singles) != p.serials:
        problems.append(f"SingleResponses for serials {[s.serial_number for s in singles]}")
    ours = [s for s in singles if s.serial_number == case.serial]
    if p.status is None:
        return problems + (["has a SingleResponse for our serial"] if ours else [])
    if len(ours) != 1:
        return problems + [f"{len(ours)} SingleResponses for our serial"]
    s = ours[0]
    alg = _HASHES[p.certid_hash]()
    if s.hash_algorithm.name != alg.name or s.issuer_name_hash != digest(alg, issuer.subject.public_bytes()):
        problems.append("our CertID's hash algorithm or issuerNameHash is not as claimed")
    key_bits = der.key_bits(certs[p.issuer_key_of].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    if s.issuer_key_hash != digest(alg, key_bits):
        problems.append(f"our CertID's issuerKeyHash is not {p.issuer_key_of}'s")
    got = (s.certificate_status.name.lower(), s.this_update_utc, s.next_update_utc,
           s.revocation_time_utc, s.revocation_reason.name if s.revocation_reason else None)
    want = (p.status, p.this_update, p.next_update, p.revocation_time, p.revocation_reason)
    if got != want:
        problems.append(f"status and times {got}, not {want}")
    if case.verdict == "good" and leaf.not_valid_after_utc < case.valid_until:
        problems.append("valid_until is after the leaf's notAfter")
    return problems


def digest(alg: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(alg)
    h.update(data)
    return h.finalize()
