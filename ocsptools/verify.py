"""Turning DER bytes into a Staple, verified for a certificate or merely inspected.

``verify`` is the single gate every response passes before it may be
written or trusted.  It combines what openssl reports (response status,
signature and responder authorisation anchored at the issuer, CertID match)
with our own reading of the response (embedded signer, several
SingleResponses) and refuses anything doubtful with one clear line.  Time
checks are separate and pure (``ocsptools.life.problems``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Optional, Tuple

from .codec import der as der_codec
from .errors import ResponderStatusError, ResponseError, WrongCertificate
from .openssl import OpenSSL, Verdict, hash_algorithms
from .staple import Certificate, ResponseInfo, Staple

RESPONDER_ERRORS = {
    "malformedRequest": "the responder says the request was malformed",
    "internalError": "the responder reports an internal error",
    "tryLater": "the responder says try later",
    "sigRequired": "the responder requires signed requests",
    "unauthorized": "the responder is not authorised for this certificate "
                    "(wrong responder URL, or wrong issuer)",
}

def describe_status(status: str) -> str:
    return RESPONDER_ERRORS.get(status, f"the responder answered {status}")


def signer_not_after(info: ResponseInfo, issuer: Optional[Certificate]) -> Optional[datetime]:
    """The notAfter of the certificate that signed INFO: the embedded one the ResponderID names
    (byName, or byKey by its key hash), else ISSUER when the ResponderID names it."""
    signer = info.signer()
    if signer is not None:
        return signer.not_after
    if issuer is not None and info.names(issuer):
        return issuer.not_after
    return None


def inspect(der: bytes, ossl: OpenSSL, *, label: str = "response") -> Staple:
    """Read a response without any certificate: status and times only (``verified=False``)."""
    if not der:
        raise ResponseError(f"{label}: empty, not an OCSP response")
    try:
        info = ossl.read_response(der)
    except ValueError as exc:
        raise ResponseError(f"{label}: {exc}") from None
    require_successful(info, label)
    if not info.responses:
        raise ResponseError(f"{label}: the response holds no SingleResponse")
    return Staple(der=der, info=info, single=info.responses[0], verified=False,
                  signer_not_after=signer_not_after(info, None))


def require_successful(info: ResponseInfo, label: str) -> None:
    if not info.successful:
        raise ResponderStatusError(f"{label}: {describe_status(info.response_status)} "
                                   f"(OCSP status {info.response_status})", info.response_status)


def verify(der: bytes, leaf: Certificate, issuer: Certificate, ossl: OpenSSL, *,
           hash_alg: Optional[str] = None, label: str = "response") -> Staple:
    """Verify DER as an OCSP response for LEAF issued by ISSUER; return the Staple.

    Raises ResponseError (or ResponderStatusError) when the response is not
    an OCSP response, is not successful, is not signed by the issuer or an
    OCSPSigning delegate of it whose certificate is embedded, and
    WrongCertificate when it carries no SingleResponse for exactly this certificate.  The
    certificate status is *not* judged here: revoked and unknown come back as Staples.  Within
    the caller's ``ossl.batch()`` the certificates' input files are shared."""
    if not der:
        raise ResponseError(f"{label}: empty, not an OCSP response")
    with ossl.batch():          # a second look under another CertID hash reuses the files
        info, verdict, alg = _examine(lambda a: ossl.verify_response(
            der, leaf, issuer, hash_alg=a), hash_alg, label)
    return _staple(der, info, verdict, alg, leaf.serial, issuer, label,
                   f"this certificate (serial {leaf.serial_hex}, issuer {issuer.subject})",
                   cert_not_after=leaf.not_after)


def verify_serial(der: bytes, serial: int, issuer: Certificate, ossl: OpenSSL, *,
                  hash_alg: Optional[str] = None, label: str = "response") -> Staple:
    """``verify`` for a certificate known only by its serial and ISSUER (ocsp-proxy has seen a
    CertID, not the certificate); the Staple's ``cert_not_after`` is unknown (None)."""
    if not der:
        raise ResponseError(f"{label}: empty, not an OCSP response")
    with ossl.batch():
        info, verdict, alg = _examine(lambda a: ossl.verify_response_serial(
            der, serial, issuer, hash_alg=a), hash_alg, label)
    return _staple(der, info, verdict, alg, serial, issuer, label,
                   f"serial {format(serial, 'X')} of {issuer.subject}")


def _examine(run: Callable[[str], Tuple[ResponseInfo, Optional[Verdict]]], hash_alg: Optional[str],
             label: str) -> Tuple[ResponseInfo, Verdict, str]:
    """openssl's reading of a response for our certificate, asked with HASH_ALG (sha1 if None)
    first; (info, verdict, the CertID hash that found it)."""
    def once(alg: str) -> Tuple[ResponseInfo, Optional[Verdict]]:
        try:
            return run(alg)
        except ValueError as exc:
            raise ResponseError(f"{label}: {exc}") from None

    alg = hash_alg or "sha1"
    info, verdict = once(alg)
    require_successful(info, label)
    if verdict is not None and verdict.no_status_found:
        # The responder (or a stored staple) may name our certificate with another CertID hash
        # than we asked with: a CertID names its own algorithm (RFC 6960 4.1.1), and the answer
        # is for our certificate all the same.  Look again with the ones it uses.
        for other in hash_algorithms(info):
            if other != alg:
                found, again = once(other)
                if again is not None and not again.no_status_found:
                    info, verdict, alg = found, again, other
                    break
    assert verdict is not None
    return info, verdict, alg


def _staple(der: bytes, info: ResponseInfo, verdict: Verdict, alg: str, serial: int,
            issuer: Certificate, label: str, what: str, *,
            cert_not_after: Optional[datetime] = None) -> Staple:
    """The Staple openssl's VERDICT vouches for: signature and authorisation checked, and the
    SingleResponse for SERIAL under ISSUER (CertID hashed with ALG) that openssl matched."""
    if not verdict.signature_ok:
        raise ResponseError(f"{label}: {signature_message(verdict)}")
    if verdict.no_status_found or verdict.cert_status is None:
        serials = ", ".join(format(r.serial, "X") for r in info.responses) or "none"
        raise WrongCertificate(f"{label}: not a response for {what}; it covers serial(s) {serials}",
                               [r.serial for r in info.responses])
    name_hash, key_hash = (h.hex().upper() for h in der_codec.issuer_hashes(issuer.der, alg))
    matches = [r for r in info.find(serial)
               if r.cert_status == verdict.cert_status and r.this_update == verdict.this_update
               and r.issuer_name_hash.upper() == name_hash and r.issuer_key_hash.upper() == key_hash]
    if not matches:
        raise ResponseError(f"{label}: openssl's status line does not match any SingleResponse "
                            f"for serial {format(serial, 'X')}; refusing it")
    return Staple(der=der, info=info, single=matches[0], verified=True,
                  signer_not_after=signer_not_after(info, issuer), cert_not_after=cert_not_after)


#: What each of openssl's reasons for a signature that does not verify means to a user.
SIGNATURE_MESSAGES = {
    "unsupported-algorithm": "signed with a signature algorithm openssl does not support",
    "wrong-key-type": "the signature algorithm does not match the signer's key",
    "bad-signature": "the signature does not verify",
    "signer-not-embedded": ("signed by a responder that is not the issuer and whose certificate "
                            "is not embedded in the response (TLS clients cannot verify such a "
                            "staple)"),
    "not-delegated": ("signed by a certificate that is neither the issuer nor a delegated "
                      "responder with id-kp-OCSPSigning"),
    "signer-out-of-time": "the responder certificate is expired or not yet valid",
    "not-chained": "signed by a certificate that does not chain to the issuer",
}


def signature_message(verdict: Verdict) -> str:
    """Why the signature of a response did not verify, said for a user."""
    if verdict.signature_problem is not None:
        return SIGNATURE_MESSAGES[verdict.signature_problem]
    detail = ", ".join(verdict.verify_errors) if verdict.verify_errors else "no detail from openssl"
    return f"the response does not verify ({detail})"
