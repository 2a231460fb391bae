"""What the proxy may talk to and trust: ``--allow`` prefixes, ``--allow-from`` certificate trees.

From the certificates under each ``--allow-from DIR`` (searched recursively:
bundles, ``chain.pem``, ``*.issuer`` files) the proxy learns

* the responder URLs it may contact (the leaves' AIA OCSP URLs; a leaf
  without one is not applicable: skipped quietly, before any issuer search);
* the issuers it can verify answers for, indexed by the CertID hashes
  (sha1/sha256/sha384/sha512 of the issuer's name and key), so a request's
  CertID names its issuer without any openssl process;
* for each issuer, the responders its leaves name (to route requests that
  arrive as ``Host: proxy`` + path, the way nginx's ``ssl_stapling_responder``
  sends them), and the leaves themselves (verified with ``verify.verify``).

A URL is allowed when it lies under a prefix in RFC 3986 normal form and
in whole path segments; a path with a dot segment or an encoded slash never
is (``paths.normalise``, ``paths.unsafe``), and ``Prefix.url`` is what is
contacted.

Trust is anchored at the issuer whose name *and key* hashes the CertID
carries: only that key, or a delegate it certified for OCSPSigning, can sign
an answer the proxy caches.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..certs import CERT_SUFFIXES, MAX_CERT_FILE, parse_certificates
from ..codec import der
from ..codec.pem import split_pem_certs
from ..errors import InputError, UsageError
from ..openssl import HASHES, OpenSSL
from ..staple import Certificate
from . import paths

ISSUER_SUFFIXES = CERT_SUFFIXES + (".issuer",)


@dataclass(frozen=True)
class Prefix:
    scheme: str
    host: str
    port: int
    path: str                # in normal form (paths.normalise)
    unsafe: str = ""         # why the URL's path may not be contacted (paths.unsafe), or ""

    def matches(self, other: "Prefix") -> bool:
        """OTHER lies under this prefix: same origin, the same path or one below it, never an unsafe one."""
        if other.unsafe or (self.scheme, self.host, self.port) != (other.scheme, other.host, other.port):
            return False
        below = self.path if self.path.endswith("/") else self.path + "/"
        return other.path == self.path or other.path.startswith(below)

    @property
    def url(self) -> str:
        """The URL in normal form (what is contacted): no default port, no query."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == (443 if self.scheme == "https" else 80) else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.path}"


def split_url(url: str) -> Optional[Prefix]:
    """Normalise an http(s) URL for prefix comparison (lower-case host, explicit port, normal path)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    port = port or (443 if parts.scheme == "https" else 80)
    return Prefix(parts.scheme, parts.hostname.lower().rstrip("."), port, paths.normalise(parts.path or "/"),
                  paths.unsafe(parts.path) or "")


@dataclass
class Known:
    """Everything learned from --allow and --allow-from.  Immutable once built (swap on reload)."""

    prefixes: List[Prefix] = field(default_factory=list)
    issuers: Dict[Tuple[Optional[str], bytes, bytes], Certificate] = field(default_factory=dict)
    routes: Dict[bytes, List[str]] = field(default_factory=dict)     # issuer DER -> responder URLs
    leaves: Dict[Tuple[bytes, int], Certificate] = field(default_factory=dict)  # (issuer DER, serial)
    files: int = 0
    not_applicable: int = 0          # leaves without an OCSP URL (skipped quietly)
    warnings: List[str] = field(default_factory=list)

    @property
    def issuer_count(self) -> int:
        """Distinct issuer certificates (one may be listed under several CertID hashes)."""
        return len({c.der for c in self.issuers.values()})

    def allowed(self, url: str) -> bool:
        target = split_url(url)
        return target is not None and self.allows(target)

    def allows(self, target: Prefix) -> bool:
        """``allowed`` for a URL already split (``split_url``)."""
        return any(p.matches(target) for p in self.prefixes)

    def issuer_for(self, cid: der.CertID) -> Optional[Certificate]:
        return self.issuers.get(cid.issuer_ref)

    def leaf_for(self, issuer: Certificate, serial: int) -> Optional[Certificate]:
        return self.leaves.get((issuer.der, serial))

    def routes_for(self, issuer: Certificate, serial: int) -> List[str]:
        leaf = self.leaf_for(issuer, serial)
        urls = list(leaf.ocsp_urls) if leaf is not None else []
        urls += [u for u in self.routes.get(issuer.der, []) if u not in urls]
        return [u for u in urls if self.allowed(u)]

    def add_issuer(self, cert: Certificate) -> None:
        for alg in HASHES:
            try:
                name_hash, key_hash = der.issuer_hashes(cert.der, alg)
            except der.DerError:
                return
            self.issuers.setdefault((alg, name_hash, key_hash), cert)


def _candidate_files(directory: str) -> List[str]:
    if not os.path.isdir(directory):
        raise InputError(f"{directory}: not a directory (--allow-from takes a directory of "
                         f"certificates)", path=directory)
    found = []
    for root, dirs, names in os.walk(directory, onerror=None):
        dirs.sort()
        for name in sorted(names):
            if name.lower().endswith(ISSUER_SUFFIXES):
                found.append(os.path.join(root, name))
    return found


def load(allow: Sequence[str], allow_from: Sequence[str], ossl: OpenSSL,
         extra_issuers: Iterable[Certificate] = ()) -> Known:
    """Build the allow-list and the known issuers.  One openssl process for all PEM files."""
    known = Known()
    for url in allow:
        prefix = split_url(url)
        if prefix is None:
            raise UsageError(f"--allow {url}: not an http:// or https:// URL prefix")
        if prefix.unsafe:
            raise UsageError(f"--allow {url}: {prefix.unsafe} in the path")
        known.prefixes.append(prefix)
    files: List[Tuple[str, List[bytes]]] = []
    for directory in allow_from:
        for path in _candidate_files(directory):
            try:
                if os.path.getsize(path) > MAX_CERT_FILE:
                    continue
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError as exc:
                known.warnings.append(f"{path}: cannot read: {exc.strerror}")
                continue
            ders = split_pem_certs(data) if b"-----BEGIN" in data else []
            if not ders and data[:1] == b"\x30":
                try:
                    ders = [c.der for c in parse_certificates(data, path, ossl)]
                except InputError as exc:
                    known.warnings.append(str(exc))
                    continue
            if ders:
                files.append((path, ders))
    known.files = len(files)
    flat = [d for _, ders in files for d in ders]
    parsed: Dict[bytes, Certificate] = {}
    unique = list(dict.fromkeys(flat))
    for start in range(0, len(unique), 500):
        chunk = unique[start:start + 500]
        try:
            certs = ossl.parse_certificates(chunk)
        except ValueError:
            certs = []
            for one in chunk:           # find the broken one(s), keep the rest
                try:
                    certs.extend(ossl.parse_certificates([one]))
                except ValueError as exc:
                    known.warnings.append(f"a certificate under --allow-from is unreadable ({exc})")
        for cert in certs:
            parsed[cert.der] = cert
    cas = [c for c in parsed.values() if c.is_ca] + list(extra_issuers)
    for ca in cas:
        known.add_issuer(ca)
    not_applicable = set()
    for path, ders in files:
        first = parsed.get(ders[0])
        if first is None or first.is_ca:
            continue
        leaf = first
        if not leaf.ocsp_urls:          # not applicable, before anything else: no issuer search
            not_applicable.add(leaf.der)
            continue
        for url in leaf.ocsp_urls:
            prefix = split_url(url)
            if prefix is None or prefix.unsafe:
                why = prefix.unsafe + " in the path" if prefix is not None else "not http/https"
                known.warnings.append(f"{path}: ignoring OCSP URL {url} ({why})")
                continue
            if prefix not in known.prefixes:
                known.prefixes.append(prefix)
        bundle = [parsed[d] for d in ders[1:] if d in parsed]
        for ca in bundle + cas:
            if ca.is_ca and ca.may_have_issued(leaf):
                known.leaves[(ca.der, leaf.serial)] = leaf
                urls = known.routes.setdefault(ca.der, [])
                urls.extend(u for u in leaf.ocsp_urls if u not in urls)
                break
    known.not_applicable = len(not_applicable)
    return known
