"""Turning DER bytes into a Staple, verified for a certificate or merely inspected.

``verify`` is the single gate every response passes before it may be
written or trusted.  It combines what openssl reports (response status,
signature and responder authorisation anchored at the issuer, CertID match)
with our own reading of the response (embedded signer, several
SingleResponses) and refuses anything doubtful with one clear line.  Time
checks are separate and pure (``ocsptools.life.problems``).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime
from typing import Callable, Dict, Iterator, Optional, Tuple

from .errors import ResponderStatusError, ResponseError
from .codec import der as der_codec
from .openssl import OpenSSL, Scratch, Verdict, hash_algorithms
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
    with Scratch() as scratch:
        path = scratch.file(der, "response.der")
        try:
            info, _ = ossl.examine_response(path)
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


class InputFiles:
    """Where openssl reads its inputs from: certificates written once as PEM files, responses
    written to (and removed from) one scratch directory.  A batch run shares one across its
    threads (``ocsp-renew-dir`` renews thousands of staples against a handful of issuers);
    a single verification makes a private one."""

    def __init__(self, scratch: Scratch) -> None:
        self.scratch = scratch
        self._pem: Dict[bytes, str] = {}
        self._lock = threading.Lock()

    def pem_file(self, cert: Certificate) -> str:
        path = self._pem.get(cert.der)
        if path is None:
            with self._lock:
                path = self._pem.get(cert.der)
                if path is None:
                    path = self._pem[cert.der] = self.scratch.file(cert.pem.encode(), "cert.pem")
        return path


@contextmanager
def input_files(files: Optional[InputFiles]) -> Iterator[InputFiles]:
    """FILES when a batch passes its shared set, else a private set in a scratch directory
    of its own, removed on exit."""
    if files is not None:
        yield files
        return
    with Scratch() as scratch:
        yield InputFiles(scratch)


def verify(der: bytes, leaf: Certificate, issuer: Certificate, ossl: OpenSSL, *,
           hash_alg: Optional[str] = None, label: str = "response",
           files: Optional[InputFiles] = None) -> Staple:
    """Verify DER as an OCSP response for LEAF issued by ISSUER; return the Staple.

    Raises ResponseError (or ResponderStatusError) when the response is not
    an OCSP response, is not successful, is not signed by the issuer or an
    OCSPSigning delegate of it whose certificate is embedded, or carries no
    SingleResponse for exactly this certificate.  The certificate status is
    *not* judged here: revoked and unknown come back as Staples.  FILES lets a
    batch reuse the certificates' PEM files (see InputFiles)."""
    if not der:
        raise ResponseError(f"{label}: empty, not an OCSP response")
    with input_files(files) as inputs:
        return _verify(der, leaf, issuer, ossl, hash_alg, label, inputs)


def _verify(der: bytes, leaf: Certificate, issuer: Certificate, ossl: OpenSSL,
            hash_alg: Optional[str], label: str, files: InputFiles) -> Staple:
    resp_file = files.scratch.file(der, "response.der")
    try:
        leaf_file = files.pem_file(leaf)
        issuer_file = files.pem_file(issuer)
        info, verdict, alg = _examine(lambda a: ossl.examine_response(
            resp_file, issuer_file=issuer_file, cert_file=leaf_file, hash_alg=a), hash_alg, label)
    finally:
        files.scratch.remove(resp_file)
    return _staple(der, info, verdict, alg, leaf.serial, issuer, label,
                   f"this certificate (serial {leaf.serial_hex}, issuer {issuer.subject})",
                   cert_not_after=leaf.not_after)


def verify_serial(der: bytes, serial: int, issuer: Certificate, ossl: OpenSSL, *,
                  hash_alg: Optional[str] = None, label: str = "response") -> Staple:
    """``verify`` for a certificate known only by its serial and ISSUER (ocsp-proxy has seen a
    CertID, not the certificate); the Staple's ``cert_not_after`` is unknown (None)."""
    if not der:
        raise ResponseError(f"{label}: empty, not an OCSP response")
    with Scratch() as scratch:
        resp_file = scratch.file(der, "response.der")
        issuer_file = scratch.file(issuer.pem.encode(), "issuer.pem")
        info, verdict, alg = _examine(lambda a: ossl.examine_response_serial(
            resp_file, issuer_file, serial, hash_alg=a), hash_alg, label)
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
        raise ResponseError(f"{label}: {signature_message(verdict.verify_errors, info)}")
    if verdict.no_status_found or verdict.cert_status is None:
        serials = ", ".join(format(r.serial, "X") for r in info.responses) or "none"
        raise ResponseError(f"{label}: not a response for {what}; it covers serial(s) {serials}")
    name_hash, key_hash = (h.hex().upper() for h in der_codec.issuer_hashes(issuer.der, alg))
    matches = [r for r in info.find(serial)
               if r.cert_status == verdict.cert_status and r.this_update == verdict.this_update
               and r.issuer_name_hash.upper() == name_hash and r.issuer_key_hash.upper() == key_hash]
    if not matches:
        raise ResponseError(f"{label}: openssl's status line does not match any SingleResponse "
                            f"for serial {format(serial, 'X')}; refusing it")
    return Staple(der=der, info=info, single=matches[0], verified=True,
                  signer_not_after=signer_not_after(info, issuer), cert_not_after=cert_not_after)


def signature_message(errors, info: ResponseInfo) -> str:
    """What openssl's verification errors mean, most specific first.  openssl looks for the
    signer among the embedded certificates, then tries the issuer: an issuer-signed response with
    a bad signature reports "signer certificate not found" from the first attempt too."""
    errs = list(errors)
    if "unknown signature algorithm" in errs:
        return "signed with a signature algorithm openssl does not support"
    if "wrong public key type" in errs:
        return "the signature algorithm does not match the signer's key"
    if "signature failure" in errs or "bad signature" in errs:
        return "the signature does not verify"
    if "signer certificate not found" in errs:
        return ("signed by a responder that is not the issuer and whose certificate is not "
                "embedded in the response (TLS clients cannot verify such a staple)")
    if "missing ocspsigning usage" in errs:
        return ("signed by a certificate that is neither the issuer nor a delegated responder "
                "with id-kp-OCSPSigning")
    if "certificate has expired" in errs or "certificate is not yet valid" in errs:
        return "the responder certificate is expired or not yet valid"
    if "root ca not trusted" in errs or "unable to get local issuer certificate" in errs:
        return "signed by a certificate that does not chain to the issuer"
    detail = ", ".join(errs) if errs else "no detail from openssl"
    return f"the response does not verify ({detail})"
