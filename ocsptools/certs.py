"""Loading certificates and finding the certificate that really issued a leaf.

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

import base64
import binascii
import os
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from . import transport
from .codec import der as der_codec
from .errors import CertificateError, DamagedPem, FetchError, InputError, IssuerNotFound
from .openssl import PEM_CERT_RE, OpenSSL, Scratch
from .staple import Certificate

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


@dataclass(frozen=True)
class PemDamage:
    """Where a PEM file's CERTIFICATE block is damaged, and how."""

    block: int              # 1-based
    blocks: int
    line: int               # of its BEGIN line
    reason: str

    def error(self, label: str) -> DamagedPem:
        where = f"block {self.block} of {self.blocks}" if self.blocks > 1 else "block"
        return DamagedPem(
            f"{label}: the CERTIFICATE {where} at line {self.line} is damaged ({self.reason}); "
            f"copy the certificate file again from its source (the CA, certbot's live/ directory)",
            path=label, block=self.block, blocks=self.blocks, line=self.line)


def pem_damage(data: bytes, unreadable: Optional[Mapping[bytes, str]] = None) -> Optional[PemDamage]:
    """The first damaged CERTIFICATE block of PEM DATA, or None (pure; no openssl).

    Damaged: its base64 is invalid, or it decodes to something other than exactly one
    well-formed DER certificate (``der.certificate_problem``), or to a DER in UNREADABLE (what
    openssl could not read, with its reason)."""
    matches = list(PEM_CERT_RE.finditer(data))
    for i, m in enumerate(matches, 1):
        line = data.count(b"\n", 0, m.start()) + 1
        try:
            der = base64.b64decode(b"".join(m.group(1).split()), validate=True)
        except binascii.Error:
            return PemDamage(i, len(matches), line, "its base64 is not valid")
        problem = der_codec.certificate_problem(der)
        if problem is not None:
            return PemDamage(i, len(matches), line, f"its DER is broken: {problem}")
        if unreadable and der in unreadable:
            return PemDamage(i, len(matches), line, f"openssl cannot read it: {unreadable[der]}")
    return None


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

    def _verifies(self, leaf: Certificate, candidate: Certificate, scratch: Scratch) -> Tuple[bool, str]:
        leaf_file = scratch.file(leaf.pem.encode(), "leaf.pem")
        cand_file = scratch.file(candidate.pem.encode(), "issuer.pem")
        return self.ossl.verify_issued(leaf_file, cand_file)

    def _first_verifying(self, leaf: Certificate, candidates: Iterable[Certificate],
                         scratch: Scratch) -> Optional[Certificate]:
        for cand in candidates:
            if cand.der == leaf.der or not cand.may_have_issued(leaf):
                continue
            ok, _ = self._verifies(leaf, cand, scratch)
            if ok:
                return cand
        return None

    def find(self, leaf: Certificate, *, cert_path: Optional[str] = None,
             bundle: Sequence[Certificate] = (), issuer_file: Optional[str] = None,
             ca_dirs: Sequence[str] = ()) -> IssuerMatch:
        with Scratch() as scratch:
            if issuer_file is not None:
                certs = load_file(issuer_file, self.ossl)
                ok, detail = self._verifies(leaf, certs[0], scratch)
                if not ok:
                    raise IssuerNotFound(
                        f"{issuer_file}: did not issue the certificate ({detail}); "
                        f"give the certificate that signed it with -i", path=issuer_file)
                return IssuerMatch(certs[0], issuer_file)
            found = self._first_verifying(leaf, bundle, scratch)
            if found is not None:
                return IssuerMatch(found, f"{cert_path or 'the input'} (bundle)")
            for path, certs in self._local_candidates(cert_path, ca_dirs):
                found = self._first_verifying(leaf, certs, scratch)
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
                    found = self._first_verifying(leaf, certs, scratch)
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
