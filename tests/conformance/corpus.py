"""The conformance corpus: crafted OCSP responses, one leaf each, with the verdict the RFCs give them."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from . import ca, der
from .ca import Issued
from .premise import Premise, digest, premise_problems

VERDICTS = ("good", "revoked", "unknown", "refuse")
#: What a case is about.  A consumer that does not make a kind of check cannot judge its cases.
CHECKS = ("format", "signature", "signer", "signer-validity", "certid", "status", "times")

M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
CertStatus = ocsp.OCSPCertStatus


@dataclass(frozen=True)
class Case:
    """One crafted response for one leaf, and what a correct consumer concludes from it."""

    name: str
    title: str
    der: bytes
    leaf: Path                 # <dir>/<name>/cert.pem (the leaf only)
    fullchain: Path            # leaf + its issuer
    issuer: Path               # <dir>/<name>/cert.pem.issuer
    key: Path                  # the leaf's private key (for TLS servers)
    response: Path             # the DER, also on disk
    serial: int
    hash_alg: str              # what the client puts in its CertID: sha1 | sha256
    verdict: str               # good | revoked | unknown | refuse
    refuse_reason: Optional[str]
    rfc: str
    check: str                 # one of CHECKS
    this_update: Optional[datetime] = None
    next_update: Optional[datetime] = None
    valid_until: Optional[datetime] = None   # min(nextUpdate, delegated signer notAfter, leaf notAfter)
    renewal_due: Optional[datetime] = None   # thisUpdate + 50% of (valid_until - thisUpdate)
    premise: Premise = Premise()


@dataclass
class Corpus:
    dir: Path
    port: int
    now: datetime
    cases: Tuple[Case, ...]
    root: Path
    inter: Path
    certs: Dict[str, Path]     # every CA and signer certificate by CN (<dir>/<cn>.pem)
    server: Optional[object] = None   # the conftest fixture's CaseServer answering url(case)

    @property
    def by_name(self) -> Dict[str, Case]:
        return {c.name: c for c in self.cases}

    def url(self, case: Case) -> str:
        return case_url(self.port, case.name)


def case_url(port: int, name: str) -> str:
    return f"http://127.0.0.1:{port}/case/{name}"


class _Builder:
    def __init__(self, directory: Path, port: int) -> None:
        self.dir, self.port = directory, port
        self.now = now = datetime.now(timezone.utc).replace(microsecond=0)
        life = dict(not_before=-60 * D, not_after=3650 * D, ca=True)
        self.root = ca.issue("root", None, now, **life)
        self.inter = ca.issue("inter", self.root, now, **life)
        self.foreign = ca.issue("foreign-ca", None, now, **life)
        self.sibling = ca.issue("sibling-ca", self.root, now, **life)
        self.inter_rsa = ca.issue("inter-rsa", self.root, now, key=ca.rsa_key(), **life)
        ocsp_eku = [ca.OCSP_SIGNING]

        def signer(cn: str, issuer: Issued = self.inter, eku=ocsp_eku, **kw) -> Issued:
            return ca.issue(cn, issuer, now, eku=eku, **kw)

        signers = [signer("ocsp-signer"), signer("ocsp-signer-noski", ski=False),
                   signer("signer-eku-serverauth", eku=[ca.SERVER_AUTH]),
                   signer("signer-eku-any", eku=[ca.ANY_EKU]), signer("signer-no-eku", eku=None),
                   signer("foreign-ocsp-signer", self.foreign), signer("sibling-ocsp-signer", self.sibling),
                   signer("signer-expired", not_before=-60 * D, not_after=-D),
                   signer("signer-not-yet-valid", not_before=D),
                   signer("signer-2days", not_after=2 * D), signer("signer-20min", not_after=20 * M),
                   signer("signer-20min-noski", not_after=20 * M, ski=False)]
        self.pki: Dict[str, Issued] = {x.cn: x for x in
                                       [self.root, self.inter, self.foreign, self.sibling, self.inter_rsa,
                                        *signers]}
        self.bystanders = [ca.issue(f"bystander-{i}", self.inter, now, not_after=90 * D) for i in (1, 2)]
        self.cases: List[Case] = []
        directory.mkdir(parents=True, exist_ok=True)
        self.paths = {cn: x.write(directory / f"{cn}.pem") for cn, x in self.pki.items()}

    # -- responses ------------------------------------------------------------------------
    def respond(self, leaf: Issued, *, signer: Optional[Issued] = None, by: str = "name",
                certs: Optional[Sequence[Issued]] = None, status: CertStatus = CertStatus.GOOD,
                this_update: timedelta = -H, next_update: Optional[timedelta] = 7 * D,
                reason: Optional[x509.ReasonFlags] = None, certid_hash: str = "sha1",
                certid_issuer: Optional[Issued] = None, serial: Optional[int] = None,
                issuer: Optional[Issued] = None, sig_hash: hashes.HashAlgorithm = hashes.SHA256(),
                nonce: bool = False) -> Tuple[bytes, Premise]:
        """A response built by pyca/cryptography, and the premise it implies."""
        issuer = issuer or self.inter
        signer = signer or issuer
        if certs is None:
            certs = [] if signer is issuer else [signer]
        certid_issuer = certid_issuer or issuer
        serial = leaf.serial if serial is None else serial
        alg = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256()}[certid_hash]
        name_hash = digest(alg, issuer.cert.subject.public_bytes())
        tu = self.now + this_update
        nu = None if next_update is None else self.now + next_update
        revoked_at = self.now - D if status == CertStatus.REVOKED else None
        b = (ocsp.OCSPResponseBuilder()
             .add_response_by_hash(name_hash, digest(alg, der.key_bits(certid_issuer.spki)), serial,
                                   alg, status, tu, nu, revoked_at, reason)
             .responder_id(ocsp.OCSPResponderEncoding.HASH if by == "key"
                           else ocsp.OCSPResponderEncoding.NAME, signer.cert))
        if certs:
            b = b.certificates([c.cert for c in certs])
        if nonce:
            b = b.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
        body = b.sign(signer.key, sig_hash).public_bytes(serialization.Encoding.DER)
        return body, Premise(responder=(by, signer.cn), certs=tuple(c.cn for c in certs),
                             serials=(serial,), status=status.name.lower(), certid_hash=certid_hash,
                             issuer_key_of=certid_issuer.cn, signed_by=signer.cn,
                             this_update=tu, next_update=nu, revocation_time=revoked_at,
                             revocation_reason=reason.name if reason else None)

    def resign(self, body: bytes, premise: Premise, *, produced_at: Optional[datetime] = None,
               responder_name: Optional[Issued] = None) -> Tuple[bytes, Premise]:
        """Change producedAt or the ResponderID inside the tbs and sign it again with the
        premise's signer."""
        b = der.Basic(body)
        fields = b.tbs_fields()
        i = b.produced_at_index()
        if produced_at is not None:
            fields[i] = der.gentime(produced_at)
            premise = replace(premise, produced_at=produced_at)
        if responder_name is not None:
            fields[i - 1] = der.name_responder_id(responder_name.cert.subject.public_bytes())
            premise = replace(premise, responder=("name", responder_name.cn))
        return b.with_tbs_fields(fields).sign(self.pki[premise.signed_by].key).der(), premise

    def openssl_multi(self, leaf: Issued, order: Sequence[Issued]) -> Tuple[bytes, Premise]:
        """Several SingleResponses: `openssl ocsp -index` answers a request for ORDER offline."""
        from pki import openssl  # tests/pki.py: LC_ALL=C, system CA bundle hidden
        work = self.dir / "_openssl" / leaf.cn
        work.mkdir(parents=True)
        inter = self.inter.write(work / "inter.pem")
        (work / "inter.key").write_bytes(self.inter.key_pem)
        rows = [f"V\t{c.not_after:%y%m%d%H%M%SZ}\t\t{c.serial:X}\tunknown\t/CN={c.cn}\n" for c in order]
        (work / "index.txt").write_text("".join(rows))
        (work / "index.txt.attr").write_text("unique_subject = no\n")
        args = ["ocsp", "-issuer", inter, "-no_nonce", "-reqout", work / "req.der"]
        for c in order:
            args += ["-cert", c.write(work / f"{c.cn}.pem")]
        openssl(*args)
        before = datetime.now(timezone.utc).replace(microsecond=0)
        openssl("ocsp", "-index", work / "index.txt", "-CA", inter, "-rsigner", inter,
                "-rkey", work / "inter.key", "-resp_no_certs", "-ndays", "7",
                "-reqin", work / "req.der", "-respout", work / "resp.der")
        after = datetime.now(timezone.utc)
        body = (work / "resp.der").read_bytes()
        ours = [s for s in ocsp.load_der_ocsp_response(body).responses if s.serial_number == leaf.serial]
        tu, nu = (ours[0].this_update_utc, ours[0].next_update_utc) if ours else (None, None)
        if ours and not (before <= tu <= after and nu - tu == 7 * D):
            raise AssertionError(f"{leaf.cn}: openssl dated its response {tu} .. {nu}")
        return body, Premise(responder=("name", "inter"), serials=tuple(c.serial for c in order),
                             status="good" if ours else None, signed_by="inter",
                             this_update=tu, next_update=nu)

    # -- cases ----------------------------------------------------------------------------
    def case(self, name: str, title: str, *, verdict: str, check: str, rfc: str,
             make: Callable[[Issued], Tuple[bytes, Premise]], reason: Optional[str] = None,
             hash_alg: str = "sha1", leaf_life: timedelta = 90 * D,
             issuer: Optional[Issued] = None) -> None:
        assert verdict in VERDICTS and check in CHECKS and (verdict == "refuse") == bool(reason), name
        issuer = issuer or self.inter
        leaf = ca.issue(name, issuer, self.now, not_after=leaf_life, eku=[ca.SERVER_AUTH],
                        ocsp_url=case_url(self.port, name), dns_names=[name, "localhost"])
        body, premise = make(leaf)
        d = self.dir / name
        d.mkdir()
        files = {"cert.pem": leaf.pem, "cert.pem.issuer": issuer.pem, "fullchain.pem": leaf.pem + issuer.pem,
                 "key.pem": leaf.key_pem, "response.der": body}
        for fname, data in files.items():
            (d / fname).write_bytes(data)
        tu, nu = premise.this_update, premise.next_update
        valid_until = due = None
        if verdict == "good":
            ends = [nu, leaf.not_after]
            if premise.signed_by != issuer.cn:      # a delegated signer dies with its certificate
                ends.append(self.pki[premise.signed_by].not_after)
            valid_until = min(ends)
            due = tu + (valid_until - tu) / 2
        c = Case(name, title, body, d / "cert.pem", d / "fullchain.pem", d / "cert.pem.issuer",
                 d / "key.pem", d / "response.der", leaf.serial, hash_alg, verdict, reason, rfc, check,
                 tu, nu, valid_until, due, premise)
        problems = premise_problems(c, {cn: x.cert for cn, x in self.pki.items()})
        if problems:
            raise AssertionError(f"corpus case {name}: the response is not what it claims: {problems}")
        self.cases.append(c)


def build_corpus(directory, port: int) -> Corpus:
    """Build every case into DIRECTORY (fresh); leaves name http://127.0.0.1:PORT/case/<name>."""
    directory = Path(directory)
    b = _Builder(directory, port)
    from .cases import define
    define(b)
    return Corpus(directory, port, b.now, tuple(b.cases), b.paths["root"], b.paths["inter"], b.paths)
