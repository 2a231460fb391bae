"""The corpus's throwaway PKI, issued in memory with pyca/cryptography (EC P-256; RSA on request)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Optional, Sequence, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from . import der

PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey]
OCSP_SIGNING = ExtendedKeyUsageOID.OCSP_SIGNING
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
ANY_EKU = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE

_serials = itertools.count(0x5EED00)


def ec_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def rsa_key() -> PrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ocsptools conformance"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    cn: str
    cert: x509.Certificate
    key: PrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @property
    def serial(self) -> int:
        return self.cert.serial_number

    @property
    def not_after(self) -> datetime:
        return self.cert.not_valid_after_utc

    @property
    def spki(self) -> bytes:
        return self.cert.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def key_hash(self) -> bytes:
        """SHA-1 of the subjectPublicKey BIT STRING value (RFC 6960 ResponderID byKey)."""
        return der.key_sha1(self.spki)

    def write(self, path: Path) -> Path:
        path.write_bytes(self.pem)
        return path


def issue(cn: str, issuer: Optional[Issued], now: datetime, *, key: Optional[PrivateKey] = None,
          not_before: timedelta = timedelta(days=-30), not_after: timedelta = timedelta(days=365),
          ca: bool = False, eku: Optional[Sequence[x509.ObjectIdentifier]] = None,
          ski: bool = True, ocsp_url: Optional[str] = None, dns_names: Sequence[str] = (),
          serial: Optional[int] = None) -> Issued:
    """A certificate for CN issued by ISSUER (None: self-signed), valid from NOW+NOT_BEFORE to
    NOW+NOT_AFTER; EKU only when given; SubjectKeyIdentifier only when SKI."""
    key = key or ec_key()
    signer_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else name(cn)
    b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(serial or next(_serials))
         .not_valid_before(now + not_before).not_valid_after(now + not_after)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    usage = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment",
                           "key_agreement", "encipher_only", "decipher_only"), False)
    b = b.add_extension(x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca,
                                      **usage), critical=True)
    if ski:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if issuer is not None:
        try:
            issuer_ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                issuer_ski.value), critical=False)
        except x509.ExtensionNotFound:
            pass
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if ocsp_url:
        b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]),
            critical=False)
    if dns_names:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]),
                            critical=False)
    cert = b.sign(signer_key, hashes.SHA256())
    return Issued(cn, cert, key)
