"""Hostile OCSP responder scenarios, built from real responses signed by the test CA.

Each scenario is an ``Answer`` for ``fake_responder.FakeResponder`` (a
loopback-only HTTP server).  The OCSP bodies are made offline with the real
``openssl ocsp -index ... -reqin ... -respout`` responder code (under
``faketime`` for time-shifted ones) and mutated only where no real responder
would produce the fault (truncation, random bytes).

``Scenario.expect`` is what a careful tool must do:
  * ``"reject"``  the answer must not be used: exit 1, the installed staple byte-identical;
  * ``"revoked"`` exit 4 (ocsp-fetch), staple byte-identical;
  * ``"replace"`` benign: the installed staple is replaced by the new one.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pki as pkimod
from fake_responder import Answer, status_only

ENV = dict(os.environ, LC_ALL="C", SSL_CERT_FILE=os.devnull, SSL_CERT_DIR=os.devnull)


@dataclass
class Scenario:
    name: str
    answer: Callable[[], Answer]
    expect: str                  # reject | revoked | replace
    needle: str                  # a word the one-line message must contain
    slow: bool = False           # exercises a timeout
    signer: Optional[Path] = None  # a short-lived delegated signer whose notAfter matters


class ResponseFactory:
    """Makes DER responses for a PKI's leaves with the real openssl responder code, offline."""

    def __init__(self, pki: "pkimod.PKI", workdir: Path) -> None:
        self.pki = pki
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._n = 0

    def _tmp(self, suffix: str) -> Path:
        self._n += 1
        return self.dir / f"{self._n}{suffix}"

    def request(self, certs: List[Path], *, issuer: Optional[Path] = None, serials: tuple = ()) -> Path:
        """An OCSP request for CERTS, or for SERIALS (hex) under ISSUER.  With ``-cert`` openssl
        hashes the certificate's own issuer *name* whatever ``-issuer`` says; ``-serial`` takes
        name and key hash from ISSUER, a CertID wholly of that issuer."""
        req = self._tmp("-req.der")
        argv = ["openssl", "ocsp", "-issuer", str(issuer or self.pki.inter_cert)]
        for c in certs:
            argv += ["-cert", str(c)]
        for serial in serials:
            argv += ["-serial", f"0x{serial}"]
        subprocess.run(argv + ["-no_nonce", "-reqout", str(req)], check=True, env=ENV, capture_output=True)
        return req

    def response(self, certs: List[Path], *, signer=None, ca: Optional[Path] = None,
                 index: Optional[Path] = None, ndays: Optional[int] = 1, faketime: Optional[str] = None,
                 issuer: Optional[Path] = None, serials: tuple = (), extra: tuple = ()) -> bytes:
        req = self.request(certs, issuer=issuer, serials=serials)
        out = self._tmp("-resp.der")
        s_cert, s_key = signer or (self.pki.ocsp_cert, self.pki.ocsp_key)
        argv = ["openssl", "ocsp", "-index", str(index or self.pki.index), "-rsigner", str(s_cert),
                "-rkey", str(s_key), "-CA", str(ca or self.pki.inter_cert), "-reqin", str(req),
                "-respout", str(out)]
        if ndays is not None:
            argv += ["-ndays", str(ndays)]
        argv += list(extra)
        if faketime:
            argv = ["faketime", "-f", faketime, *argv]
        subprocess.run(argv, check=True, env=ENV, capture_output=True)
        return out.read_bytes()

    def index_without(self, serial: str) -> Path:
        idx = self._tmp("-index.txt")
        idx.write_text("".join(l + "\n" for l in self.pki.index_lines() if serial not in l))
        Path(str(idx) + ".attr").write_text("unique_subject = no\n")
        return idx

    def index_for(self, serial: str, expiry: str = "491231235959Z") -> Path:
        idx = self._tmp("-index.txt")
        idx.write_text(f"V\t{expiry}\t\t{serial}\tunknown\t/CN=x\n")
        Path(str(idx) + ".attr").write_text("unique_subject = no\n")
        return idx


def installed_staple(pki: "pkimod.PKI", leaf: "pkimod.Leaf", workdir: Path) -> bytes:
    """A valid staple for LEAF produced 30 minutes ago (so fresh answers are newer and a
    1-hour-old one is older).  Needs faketime."""
    return ResponseFactory(pki, workdir).response([leaf.cert], faketime="-30m")


def scenarios(pki: "pkimod.PKI", leaf: "pkimod.Leaf", other: "pkimod.Leaf", revoked: "pkimod.Leaf",
              workdir: Path) -> List[Scenario]:
    """Every hostile (and a few benign) answer for LEAF, against a staple installed by
    ``installed_staple`` (30 minutes old).  Needs faketime."""
    f = ResponseFactory(pki, workdir)
    ocsp = lambda body, **kw: (lambda: Answer(body=body, **kw))
    good = f.response([leaf.cert])
    rng = random.Random(1234)
    nosign = (pki.nosign_cert, pki.nosign_key)
    expired_signer = pki.make_signer("hostile-expired", not_before=timedelta(days=-10), not_after=timedelta(days=-1))
    short_signer = pki.make_signer("hostile-short", not_after=timedelta(hours=3))
    out = [
        Scenario("http-500", lambda: Answer(status=500, body=b"oops", content_type="text/plain"), "reject", "HTTP 500"),
        Scenario("http-404", lambda: Answer(status=404, body=b"nope", content_type="text/plain"), "reject", "HTTP 404"),
        Scenario("http-301", lambda: Answer(status=301, headers={"Location": "http://127.0.0.1:9/elsewhere"}),
                 "reject", "redirect"),
        Scenario("connection-reset", lambda: Answer(reset=True), "reject", "connection"),
        Scenario("hang", lambda: Answer(delay=60), "reject", "within", slow=True),
        Scenario("drip-1-byte-per-second", lambda: Answer(body=good, drip=1.0), "reject", "within", slow=True),
        Scenario("50MB-body", lambda: Answer(body=b"\x30" + os.urandom(50 * 1024 * 1024)), "reject", "limit"),
        # no Content-Length (the body ends when the connection closes) and chunked: only the cap
        # counted while reading can stop these
        Scenario("50MB-body-no-length",
                 lambda: Answer(body=b"\x30" + os.urandom(50 * 1024 * 1024), framing="close"), "reject", "limit"),
        Scenario("50MB-body-chunked",
                 lambda: Answer(body=b"\x30" + os.urandom(50 * 1024 * 1024), framing="chunked"), "reject", "limit"),
        Scenario("wrong-content-type-html", ocsp(b"<html>busy</html>", content_type="text/html"),
                 "reject", "not a DER OCSP response"),
        # the header is not authenticated, the DER is: a valid response is used whatever the label
        Scenario("valid-response-as-text-html", ocsp(good, content_type="text/html"), "replace", "good"),
        Scenario("empty-body", ocsp(b""), "reject", "empty"),
        Scenario("random-bytes", ocsp(bytes(rng.getrandbits(8) for _ in range(700))), "reject", "OCSP"),
        Scenario("truncated-der", ocsp(good[: len(good) // 2]), "reject", "OCSP"),
        Scenario("tryLater", ocsp(status_only("tryLater")), "reject", "tryLater"),
        Scenario("unauthorized", ocsp(status_only("unauthorized")), "reject", "unauthorized"),
        Scenario("malformedRequest", ocsp(status_only("malformedRequest")), "reject", "malformedRequest"),
        Scenario("internalError", ocsp(status_only("internalError")), "reject", "internalError"),
        Scenario("sigRequired", ocsp(status_only("sigRequired")), "reject", "sigRequired"),
        Scenario("another-serial", ocsp(f.response([other.cert])), "reject", "not a response for this certificate"),
        Scenario("right-serial-other-issuer",
                 ocsp(f.response([], serials=(leaf.serial,), issuer=pki.other_inter_cert,
                                 ca=pki.other_inter_cert, signer=(pki.other_inter_cert, pki.other_inter_key),
                                 index=f.index_for(leaf.serial))), "reject", "issuer"),
        # `good` for our serial, CertID of another issuer, signed by OUR legitimate delegated
        # signer: openssl's OCSP_basic_verify requires the signer's issuer to match the CertIDs
        # (ocsp_check_issuer), so this fails as a signer that does not belong to the issuer
        Scenario("right-serial-other-issuer-legit-signer",
                 ocsp(f.response([], serials=(leaf.serial,), issuer=pki.other_inter_cert,
                                 ca=pki.other_inter_cert, index=f.index_for(leaf.serial))),
                 "reject", "does not chain to the issuer"),
        Scenario("several-responses-ours-last", ocsp(f.response([other.cert, revoked.cert, leaf.cert])),
                 "replace", "good"),
        Scenario("bad-signature", ocsp(f.response([leaf.cert], extra=("-badsig",))), "reject", "signature"),
        Scenario("delegated-without-ocspsigning", ocsp(f.response([leaf.cert], signer=nosign)), "reject",
                 "OCSPSigning"),
        Scenario("delegated-not-embedded", ocsp(f.response([leaf.cert], extra=("-resp_no_certs",))), "reject",
                 "not embedded"),
        Scenario("delegated-signer-expired", ocsp(f.response([leaf.cert], signer=expired_signer)), "reject",
                 "expired"),
        Scenario("signer-expires-before-nextupdate", ocsp(f.response([leaf.cert], signer=short_signer)),
                 "replace", "good", signer=short_signer[0]),
        Scenario("no-nextupdate", ocsp(f.response([leaf.cert], ndays=None)), "reject", "nextUpdate"),
        Scenario("older-than-installed", ocsp(f.response([leaf.cert], faketime="-1h")), "reject", "older"),
        Scenario("thisupdate-one-hour-ahead", ocsp(f.response([leaf.cert], faketime="+1h")), "reject", "future"),
        Scenario("nextupdate-already-past", ocsp(f.response([leaf.cert], faketime="-3d")), "reject", "expired"),
        Scenario("revoked", ocsp(f.response([leaf.cert], index=_revoked_index(f, leaf))), "revoked", "REVOKED"),
        Scenario("unknown", ocsp(f.response([leaf.cert], index=f.index_without(leaf.serial))), "reject", "unknown"),
    ]
    return out


def _revoked_index(f: ResponseFactory, leaf) -> Path:
    idx = f._tmp("-index.txt")
    lines = []
    for line in f.pki.index_lines():
        cols = line.split("\t")
        if cols[3] == leaf.serial:
            cols[0], cols[2] = "R", "261101000000Z,keyCompromise"
        lines.append("\t".join(cols) + "\n")
    idx.write_text("".join(lines))
    Path(str(idx) + ".attr").write_text("unique_subject = no\n")
    return idx


class MintingResponder:
    """A ``FakeResponder`` handler that answers every OCSP request (GET or POST) with a freshly
    minted response from the real openssl responder code, dated ``start`` + N seconds for the
    N-th request: each answer is strictly newer than every earlier one, however fast the runs
    come, so every renewal really writes.  ``served`` keeps every body handed out."""

    def __init__(self, pki: "pkimod.PKI", workdir: Path, start) -> None:
        import threading
        self.pki = pki
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.start = start
        self.n = 0
        self.served: set = set()
        self._lock = threading.Lock()

    def __call__(self, req) -> Answer:
        import base64
        import urllib.parse
        if req.method == "POST":
            der = req.body
        else:
            der = base64.b64decode(urllib.parse.unquote(req.path.rsplit("/", 1)[-1]))
        with self._lock:
            self.n += 1
            n = self.n
        when = (self.start + timedelta(seconds=n)).strftime("%Y-%m-%d %H:%M:%S")
        reqf, out = self.dir / f"{n}-req.der", self.dir / f"{n}-resp.der"
        reqf.write_bytes(der)
        argv = ["faketime", "-f", f"@{when}", "openssl", "ocsp", "-index", str(self.pki.index),
                "-rsigner", str(self.pki.ocsp_cert), "-rkey", str(self.pki.ocsp_key),
                "-CA", str(self.pki.inter_cert), "-reqin", str(reqf), "-respout", str(out),
                "-ndays", "1"]
        subprocess.run(argv, check=True, env=dict(ENV, TZ="UTC"), capture_output=True)
        body = out.read_bytes()
        reqf.unlink()
        out.unlink()
        with self._lock:
            self.served.add(body)
        return Answer(body=body)
