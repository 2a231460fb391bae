"""Batched loading for a run: certificates parsed, issuers found and checked, staples verified.

For every candidate not decided from the state cache: the certificate file is
read (one ``openssl storeutl`` parses all of the run's certificates), its
issuer is chosen among the candidates ``certs`` orders (an explicit issuer
file; else the bundle's following certificates, then the layout's issuer
files; then AIA), each checked by signature with one ``openssl verify`` per
distinct issuer, and the installed staple is verified strictly for it.  A
certificate without a responder URL is "not applicable" before any issuer is
looked for.  Outcomes are set on the items (kind, error, target, facts).
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

from .. import store, verify
from ..certs import IssuerFinder, ders_of, parse_many, plausible_issuer, read_input
from ..codec.pem import pem_damage
from ..errors import (FetchError, InputError, OcspToolsError, OpensslError, StoreError, WrongCertificate,
                      without_label)
from ..fetch import Target
from ..openssl import OpenSSL
from ..parallel import parallel_map
from ..policy import CertFacts, StapleFacts
from ..staple import Certificate, decode_staple
from .items import Item, RunOptions, responder_urls_for

Options = List[Tuple[Certificate, str]]        # issuer candidates in order, with where each is from


def load_targets(items: Sequence[Item], ossl: OpenSSL, opts: RunOptions) -> None:
    """Set each item's kind (leaf, ignore, failed), certificate facts and target (leaf + issuer)."""
    cert_ders = _read_certificates(items, ossl)
    issuer_files = _read_issuer_files(items, cert_ders, ossl)
    unique: Dict[bytes, None] = {}
    for ders in list(cert_ders.values()) + list(issuer_files.values()):
        for d in ders:
            unique.setdefault(d)
    parsed = parse_many(list(unique), ossl, opts.jobs)
    pending: Dict[int, Options] = {}
    for idx, ders in cert_ders.items():
        options = _choose_leaf(items[idx], ders, parsed, issuer_files, opts)
        if options is not None:
            pending[idx] = options
    _check_signatures(items, pending, parsed, ossl, opts.jobs)
    _fall_back(items, pending, ossl, opts)


def _read_certificates(items: Sequence[Item], ossl: OpenSSL) -> Dict[int, List[bytes]]:
    cert_ders: Dict[int, List[bytes]] = {}
    for idx, item in enumerate(items):
        cand = item.cand
        try:
            data = read_input(cand.cert)
        except InputError as exc:
            item.kind, item.error = "failed", str(exc)
            continue
        damage = pem_damage(data)
        if damage is not None:
            item.kind, item.error = "failed", str(damage.error(cand.cert))
            continue
        ders = ders_of(data, ossl)
        if not ders:
            what = "a private key" if b"PRIVATE KEY-----" in data else "no certificate"
            item.kind, item.error = "ignore", f"holds {what}"
            if cand.explicit:
                item.kind, item.error = "failed", f"{cand.cert}: holds {what}, not a certificate"
            continue
        cert_ders[idx] = ders
    return cert_ders


def _read_issuer_files(items: Sequence[Item], cert_ders: Dict[int, List[bytes]],
                       ossl: OpenSSL) -> Dict[str, List[bytes]]:
    """Every issuer file named by the candidates read, once each (a missing one holds nothing)."""
    issuer_files: Dict[str, List[bytes]] = {}
    for idx in cert_ders:
        cand = items[idx].cand
        for path in ([cand.issuer] if cand.issuer else list(cand.issuer_files)):
            if path is None or path in issuer_files:
                continue
            try:
                issuer_files[path] = ders_of(read_input(path), ossl) if os.path.isfile(path) else []
            except InputError as exc:
                issuer_files[path] = []
                if cand.issuer:
                    items[idx].error = str(exc)
    return issuer_files


def _choose_leaf(item: Item, ders: List[bytes], parsed: Dict[bytes, Certificate],
                 issuer_files: Dict[str, List[bytes]], opts: RunOptions):
    """Make ITEM a leaf (or ignore/fail it); return its issuer candidates in order, or None
    when no issuer is to be looked for."""
    cand = item.cand
    leaf = parsed.get(ders[0])
    if leaf is None:
        item.kind, item.error = "failed", f"{cand.cert}: not a valid certificate"
        return None
    if leaf.is_ca:
        item.kind, item.error = "ignore", "a CA certificate, not a leaf"
        if cand.explicit:
            item.kind, item.error = "failed", (f"{cand.cert}: holds a CA certificate "
                                                f"({leaf.subject}), not a leaf")
        return None
    item.kind = "leaf"
    item.cert = CertFacts.of(leaf)
    item.target = Target(leaf=leaf, issuer=leaf, label=cand.cert)   # the issuer is set later
    if not responder_urls_for(item, opts):
        # no OCSP responder: "not applicable", decided before any issuer is looked for
        # (a tree without issuers must not fail on it every hour)
        return None
    if cand.issuer:
        found = [(parsed[d], cand.issuer) for d in issuer_files.get(cand.issuer, [])[:1] if d in parsed]
    else:
        found = [(parsed[d], cand.cert) for d in ders[1:] if d in parsed]
        for path in cand.issuer_files:
            found += [(parsed[d], path) for d in issuer_files.get(path, []) if d in parsed]
    return [(c, src) for c, src in found if plausible_issuer(leaf, c)]


def _check_signatures(items: Sequence[Item], pending: Dict[int, Options],
                      parsed: Dict[bytes, Certificate], ossl: OpenSSL, jobs: int) -> None:
    """Signature-check the candidates in order, one ``openssl verify`` per distinct issuer per round."""
    while True:
        groups: Dict[bytes, List[int]] = {}
        for idx, options in pending.items():
            if options and items[idx].issuer_path is None:
                groups.setdefault(options[0][0].der, []).append(idx)
        if not groups:
            return
        for der, idxs in groups.items():
            try:
                verdicts = ossl.verify_issued_many(parsed[der], [items[i].tgt.leaf for i in idxs],
                                                   workers=jobs)
            except OpensslError as exc:
                for idx in idxs:
                    items[idx].kind, items[idx].error = "failed", f"{items[idx].cand.cert}: {exc}"
                    pending[idx] = []
                continue
            for idx, (ok, _) in zip(idxs, verdicts):
                cert, src = pending[idx].pop(0)
                if ok:
                    item = items[idx]
                    item.target = Target(leaf=item.tgt.leaf, issuer=cert, label=item.cand.cert,
                                         issuer_source=src)
                    item.issuer_path = src
                    pending[idx] = []


def _fall_back(items: Sequence[Item], pending: Dict[int, Options], ossl: OpenSSL,
               opts: RunOptions) -> None:
    """The leaves still without an issuer: AIA caIssuers, or a failure that says what to do."""
    finder = IssuerFinder(ossl, http=opts.fetch.http, use_aia=opts.use_aia)
    for idx in pending:
        item = items[idx]
        if item.kind != "leaf" or item.issuer_path is not None:
            continue
        cand = item.cand
        if cand.issuer:
            item.kind = "failed"
            item.error = item.error or (f"{cand.issuer}: did not issue {cand.cert}; give the "
                                        f"certificate that signed it as its issuer")
            continue
        if opts.use_aia and item.tgt.leaf.ca_issuers_urls:
            try:
                match = finder.find(item.tgt.leaf)
            except OcspToolsError as exc:
                item.kind, item.error = "failed", f"{cand.cert}: {exc}"
                continue
            item.target = Target(leaf=item.tgt.leaf, issuer=match.issuer, label=cand.cert,
                                 issuer_source=match.source)
            item.issuer_path = None
            continue
        tried = ", ".join(["the bundle"] + [os.path.basename(p) for p in cand.issuer_files])
        item.kind = "failed"
        item.error = (f"{cand.cert}: issuer not found (tried {tried}); append the chain to "
                      f"the certificate file or put the issuer in {cand.cert}.issuer")


def verify_staples(leaves: Sequence[Item], ossl: OpenSSL, opts: RunOptions) -> None:
    """Verify each applicable leaf's installed staple strictly for it (sets ``item.staple``)."""
    def one(item: Item) -> None:
        try:
            data = store.read_file(item.cand.staple)
        except StoreError as exc:
            item.staple = StapleFacts.unusable(str(exc))
            return
        if not data:
            item.staple = StapleFacts.unusable("empty file")
            return
        try:
            st = verify.verify(decode_staple(data), item.tgt.leaf, item.tgt.issuer, ossl,
                               label=item.cand.staple)
        except FetchError as exc:
            serial = None
            if isinstance(exc, WrongCertificate):
                try:        # which certificate is it for?  (the re-issued case)
                    serial = verify.inspect(decode_staple(data), ossl).serial
                except (FetchError, OpensslError):
                    serial = None
            item.staple = StapleFacts(serial=serial, problem=without_label(str(exc), item.cand.staple))
            return
        except OpensslError as exc:
            item.staple = StapleFacts.unusable(str(exc))
            return
        item.staple = StapleFacts.of(st)
    parallel_map(one, [it for it in leaves if it.staple_id is not None
                       and responder_urls_for(it, opts)], opts.jobs)
