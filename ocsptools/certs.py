"""Loading certificates (a file, or a batch of files) and finding the one that really issued a leaf.

Issuer discovery order (the first candidate whose key verifies the leaf's
signature wins; a matching name alone is never enough):

1. ``-i/--issuer FILE`` (if given, it must be right: no fall-through);
2. the following certificates of the leaf's own bundle;
3. ``CERT.issuer`` beside the certificate (HAProxy convention);
4. ``chain.pem`` beside the certificate (certbot's ``live/<name>/`` layout);
5. every certificate file in ``--ca-dir DIR``;
6. the AIA caIssuers URL(s) (DER, PEM or PKCS#7; size-capped, timed out).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from . import transport
from .codec.pem import pem_damage, split_pem_certs
from .errors import CertificateError, FetchError, InputError, IssuerNotFound, OpensslError
from .openssl import OpenSSL
from .parallel import batches, parallel_map
from .staple import Certificate

__all__ = ["CERT_SUFFIXES", "MAX_CERT_FILE", "read_input", "parse_certificates", "load_file", "ders_of",
           "parse_many", "IssuerMatch", "IssuerFinder"]

CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der", ".p7b", ".p7c")
MAX_CERT_FILE = 4 * 1024 * 1024


def read_input(path: str) -> bytes:
    """The bytes of PATH (``-`` is standard input), with errors that name the file."""
    if path == "-":
        return sys.stdin.buffer.read(MAX_CERT_FILE + 1)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CERT_FILE + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", path=path) from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a certificate file", path=path) from None
    except PermissionError:
        raise InputError(f"{path}: permission denied", path=path) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}", path=path) from None
    if len(data) > MAX_CERT_FILE:
        raise InputError(f"{path}: larger than {MAX_CERT_FILE} bytes; not a certificate file", path=path)
    return data


def parse_certificates(data: bytes, label: str, ossl: OpenSSL) -> List[Certificate]:
    """Every certificate in DATA (PEM bundle, DER or PKCS#7), parsed.  Raises CertificateError
    (DamagedPem, naming the block, for a damaged PEM CERTIFICATE block)."""
    if not data.strip():
        raise CertificateError(f"{label}: empty file, expected a PEM certificate", path=label)
    damage = pem_damage(data)
    if damage is not None:
        raise damage.error(label)
    try:
        ders = ossl.certificate_ders(data)
    except ValueError as exc:
        raise CertificateError(f"{label}: {exc}", path=label) from None
    if not ders:
        what = "a private key" if b"PRIVATE KEY-----" in data else "no certificate"
        raise CertificateError(f"{label}: holds {what}; expected a PEM certificate (leaf first, "
                               f"then its chain)", path=label)
    try:
        return ossl.parse_certificates(ders)
    except ValueError as exc:
        damage = pem_damage(data, _unreadable(ders, str(exc), ossl))
        if damage is not None:
            raise damage.error(label) from None
        raise CertificateError(f"{label}: not a valid certificate ({exc})", path=label) from None


def _unreadable(ders: Sequence[bytes], reason: str, ossl: OpenSSL) -> Dict[bytes, str]:
    """Which of DERS openssl cannot read, and why: after the batch of them failed with REASON,
    one process per certificate (only on this error path)."""
    if len(ders) == 1:
        return {ders[0]: reason}
    bad: Dict[bytes, str] = {}
    for der in ders:
        try:
            ossl.parse_certificates([der])
        except ValueError as exc:
            bad[der] = str(exc)
    return bad


def load_file(path: str, ossl: OpenSSL) -> List[Certificate]:
    return parse_certificates(read_input(path), "standard input" if path == "-" else path, ossl)


# -- batches (ocsp-renew-dir): many files, few openssl processes ------------------------------

def ders_of(data: bytes, ossl: OpenSSL) -> List[bytes]:
    """The DER of every certificate in DATA (PEM, DER or PKCS#7), or [] when it holds none that
    can be used (a damaged PEM block, what openssl cannot read): the lenient reading of a batch,
    where ``parse_certificates`` would say why."""
    try:
        ders = split_pem_certs(data)
    except ValueError:                  # a damaged PEM block: no usable certificate here
        return []
    if ders or b"-----BEGIN" in data or data[:1] != b"\x30":
        return ders
    try:
        return ossl.certificate_ders(data)
    except (ValueError, OpensslError):
        return []


def parse_many(ders: Sequence[bytes], ossl: OpenSSL, workers: int) -> Dict[bytes, Certificate]:
    """The certificates of unique DERS, parsed with one openssl per batch (batches spread over
    WORKERS threads so the cores share the work); a corrupt one is isolated by halving its batch
    and left out."""
    parsed: Dict[bytes, Certificate] = {}

    def go(chunk: List[bytes]) -> None:
        if not chunk:
            return
        try:
            for der, cert in zip(chunk, ossl.parse_certificates(chunk)):
                parsed[der] = cert
        except ValueError:
            if len(chunk) == 1:
                return
            mid = len(chunk) // 2
            go(chunk[:mid])
            go(chunk[mid:])
    parallel_map(go, batches(ders, workers), workers)
    return parsed


def plausible_issuer(leaf: Certificate, candidate: Certificate) -> bool:
    """Could CANDIDATE have issued LEAF?  Not itself, and its name and key identifier must
    match: only such a candidate is worth an ``openssl verify``."""
    return candidate.der != leaf.der and candidate.may_have_issued(leaf)


@dataclass(frozen=True)
class IssuerMatch:
    issuer: Certificate
    source: str            # where it was found, for messages and -v


class IssuerFinder:
    """Finds the issuer of a leaf, checking each candidate's signature with openssl."""

    def __init__(self, ossl: OpenSSL, *, http: transport.HttpOptions = transport.HttpOptions(),
                 use_aia: bool = True) -> None:
        self.ossl = ossl
        self.http = http
        self.use_aia = use_aia

    def _first_verifying(self, leaf: Certificate, candidates: Iterable[Certificate]) -> Optional[Certificate]:
        for cand in candidates:
            if not plausible_issuer(leaf, cand):
                continue
            ok, _ = self.ossl.verify_issued(leaf, cand)
            if ok:
                return cand
        return None

    def find(self, leaf: Certificate, *, cert_path: Optional[str] = None,
             bundle: Sequence[Certificate] = (), issuer_file: Optional[str] = None,
             ca_dirs: Sequence[str] = ()) -> IssuerMatch:
        with self.ossl.batch():             # the leaf is written once for every candidate
            return self._find(leaf, cert_path, bundle, issuer_file, ca_dirs)

    def _find(self, leaf: Certificate, cert_path: Optional[str], bundle: Sequence[Certificate],
              issuer_file: Optional[str], ca_dirs: Sequence[str]) -> IssuerMatch:
        if issuer_file is not None:
            certs = load_file(issuer_file, self.ossl)
            ok, detail = self.ossl.verify_issued(leaf, certs[0])
            if not ok:
                raise IssuerNotFound(
                    f"{issuer_file}: did not issue the certificate ({detail}); "
                    f"give the certificate that signed it with -i", path=issuer_file)
            return IssuerMatch(certs[0], issuer_file)
        found = self._first_verifying(leaf, bundle)
        if found is not None:
            return IssuerMatch(found, f"{cert_path or 'the input'} (bundle)")
        for path, certs in self._local_candidates(cert_path, ca_dirs):
            found = self._first_verifying(leaf, certs)
            if found is not None:
                return IssuerMatch(found, path)
        if self.use_aia:
            errors = []
            for url in leaf.ca_issuers_urls:
                try:
                    data = transport.download(url, opts=self.http)
                    certs = parse_certificates(data, url, self.ossl)
                except (FetchError, InputError) as exc:
                    errors.append(str(exc))
                    continue
                found = self._first_verifying(leaf, certs)
                if found is not None:
                    return IssuerMatch(found, url)
                errors.append(f"{url}: not the issuer")
            if errors:
                raise IssuerNotFound(
                    f"{cert_path or 'certificate'}: issuer not found locally and AIA caIssuers "
                    f"failed ({'; '.join(errors)}); give it with -i FILE", path=cert_path)
        raise IssuerNotFound(
            f"{cert_path or 'certificate'}: issuer not found (tried the bundle, .issuer, chain.pem"
            f"{', --ca-dir' if ca_dirs else ''}{', AIA' if self.use_aia else ''}); "
            f"give it with -i FILE or append the chain to the certificate file", path=cert_path)

    def _local_candidates(self, cert_path: Optional[str],
                          ca_dirs: Sequence[str]) -> Iterator[Tuple[str, List[Certificate]]]:
        paths: List[str] = []
        if cert_path and cert_path != "-":
            paths.append(cert_path + ".issuer")
            paths.append(os.path.join(os.path.dirname(os.path.abspath(cert_path)), "chain.pem"))
        for directory in ca_dirs:
            try:
                names = sorted(os.listdir(directory))
            except OSError as exc:
                raise InputError(f"{directory}: cannot list --ca-dir: {exc.strerror}", path=directory) from None
            paths.extend(os.path.join(directory, n) for n in names if n.lower().endswith(CERT_SUFFIXES))
        for path in paths:
            if not os.path.isfile(path):
                continue
            try:
                certs = load_file(path, self.ossl)
            except InputError:
                continue            # a stray key or garbage file beside the certificate
            yield path, certs
