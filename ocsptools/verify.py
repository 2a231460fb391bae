"""Turning DER bytes into a Staple, verified for a certificate or merely inspected.

``verify`` is the single gate every response passes before it may be
written or trusted.  It combines what openssl reports (response status,
signature and responder authorisation anchored at the issuer, CertID match)
with our own reading of the response (embedded signer, several
SingleResponses) and refuses anything doubtful with one clear line.  Time
checks are separate and pure (``ocsptools.policy.time_problems``).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

from .errors import ResponderStatusError, ResponseError
from .openssl import OpenSSL, Scratch, hash_algorithms
from .staple import Certificate, ResponseInfo, SingleResponse, Staple, normalize_name

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


def _signer_not_after(info: ResponseInfo, issuer: Optional[Certificate]) -> Optional[object]:
    signer = info.signer()
    if signer is not None:
        return signer.not_after
    if issuer is not None and info.responder_id:
        rid = info.responder_id
        if ("=" in rid and normalize_name(rid) == normalize_name(issuer.subject)) or \
                (issuer.ski and rid.replace(":", "").upper() == issuer.ski):
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
    _require_successful(info, label)
    if not info.responses:
        raise ResponseError(f"{label}: the response holds no SingleResponse")
    return Staple(der=der, info=info, single=info.responses[0], verified=False,
                  signer_not_after=_signer_not_after(info, None))  # type: ignore[arg-type]


def _require_successful(info: ResponseInfo, label: str) -> None:
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

        def run(alg: str):
            try:
                return ossl.examine_response(resp_file, issuer_file=issuer_file,
                                             cert_file=leaf_file, hash_alg=alg)
            except ValueError as exc:
                raise ResponseError(f"{label}: {exc}") from None

        info, verdict = run(hash_alg or "sha1")
        _require_successful(info, label)
        if hash_alg is None and verdict is not None and verdict.no_status_found:
            # A stored staple may use another CertID hash: retry with the one it uses.
            for alg in hash_algorithms(info):
                if alg != "sha1":
                    info, verdict = run(alg)
                    if not verdict.no_status_found:
                        break
    finally:
        files.scratch.remove(resp_file)
    assert verdict is not None
    if not verdict.signature_ok:
        raise ResponseError(f"{label}: {_signature_message(verdict.verify_errors, info)}")
    if verdict.no_status_found or verdict.cert_status is None:
        serials = ", ".join(format(r.serial, "X") for r in info.responses) or "none"
        raise ResponseError(f"{label}: not a response for this certificate (serial "
                            f"{leaf.serial_hex}, issuer {issuer.subject}); it covers serial(s) {serials}")
    matches = [r for r in info.find(leaf.serial)
               if r.cert_status == verdict.cert_status and r.this_update == verdict.this_update]
    if not matches:
        raise ResponseError(f"{label}: openssl's status line does not match any SingleResponse "
                            f"for serial {leaf.serial_hex}; refusing it")
    single: SingleResponse = matches[0]
    return Staple(der=der, info=info, single=single, verified=True,
                  signer_not_after=_signer_not_after(info, issuer))  # type: ignore[arg-type]


def _signature_message(errors, info: ResponseInfo) -> str:
    errs = list(errors)
    if "signer certificate not found" in errs:
        return ("signed by a responder whose certificate is not embedded in the response "
                "(TLS clients cannot verify such a staple)")
    if "missing ocspsigning usage" in errs:
        return ("signed by a certificate that is neither the issuer nor a delegated responder "
                "with id-kp-OCSPSigning")
    if "certificate has expired" in errs or "certificate is not yet valid" in errs:
        return "the responder certificate is expired or not yet valid"
    if "signature failure" in errs or "bad signature" in errs:
        return "the signature does not verify"
    if "root ca not trusted" in errs or "unable to get local issuer certificate" in errs:
        return "signed by a certificate that does not chain to the issuer"
    detail = ", ".join(errs) if errs else "no detail from openssl"
    return f"the response does not verify ({detail})"
