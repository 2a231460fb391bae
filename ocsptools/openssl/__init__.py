"""The openssl facade: ``OpenSSL`` runs openssl on Certificates and DER, and owns the files it reads.

openssl is treated as an untrusted oracle (see ``../shared/notes/openssl-cli.md``): it runs from
an argument list with ``LC_ALL=C`` and the system CA bundle hidden, under a timeout that kills it
(``runner``); every command line is written in ``argv``; both streams are interpreted by pure
parsers tested on recorded outputs (``parse``, ``parse_ocsp``, ``s_client``); DER travels through
files only, never ``-respout``.  This is the only package that runs openssl or reads its text.

Callers pass Certificates and DER and get values back; the files openssl needs are the facade's
(``files``).  Inside ``with ossl.batch():`` every call, from any thread, shares one set of input
files in which each certificate is written once as PEM (``ocsp-renew-dir`` renews thousands of
staples against a handful of issuers); a call made outside a batch uses a private set, removed
when it returns.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from ..codec.der import split_ocsp_request
from ..codec.pem import pem_encode, split_pem_certs
from ..errors import OpensslError
from ..parallel import batches, parallel_map
from ..staple import Certificate, ResponseInfo
from . import argv
from .argv import HASHES, STARTTLS
from .files import InputFiles, Scratch, clean_stale_scratch, read_if_exists
from .parse import (first_reason, parse_storeutl_text, parse_verify_many,
                    parse_verify_one, to_certificate)
from .parse_ocsp import Verdict, hash_algorithms, parse_nonce, read_examined
from .runner import Completed, Runner, interpret_version
from .s_client import LiveHandshake, interpret_s_client

__all__ = ["OpenSSL", "Verdict", "LiveHandshake", "Completed", "HASHES", "STARTTLS", "Scratch",
           "clean_stale_scratch", "hash_algorithms", "interpret_version"]


class OpenSSL(Runner):
    """A handle on one openssl binary.  One instance per run; safe to share across threads."""

    def __init__(self, binary: str = "openssl", timeout: float = 10.0,
                 deadline: Optional[float] = None) -> None:
        super().__init__(binary, timeout, deadline)
        self._files_lock = threading.Lock()
        self._files: Optional[InputFiles] = None
        self._users = 0

    # -- the input files ---------------------------------------------------
    @contextmanager
    def batch(self) -> Iterator[None]:
        """Share one set of input files across the calls made until the outermost batch ends
        (batches nest; calls may come from any thread): each certificate is written once."""
        with self._inputs():
            yield

    @contextmanager
    def _inputs(self) -> Iterator[InputFiles]:
        with self._files_lock:
            if self._files is None:
                self._files = InputFiles()
            files = self._files
            self._users += 1
        try:
            yield files
        finally:
            with self._files_lock:
                self._users -= 1
                last = self._users == 0
                if last:
                    self._files = None
            if last:
                files.close()

    # -- TLS: ocsp-check's live mode ---------------------------------------
    def s_client(self, host: str, port: int, *, servername: Optional[str] = None,
                 starttls: Optional[str] = None, timeout: Optional[float] = None) -> LiveHandshake:
        """Connect with ``openssl s_client -status`` and return what the server presented.

        The handshake messages are dumped in hex (``-msg -msgfile`` into a
        private file) so that the staple's exact DER and the presented chain
        come from the bytes the server sent, not from openssl's text; the
        ``-showcerts`` chain and the ``OCSP response:`` line are kept to
        cross-check.  ``Q`` on stdin makes s_client close once the handshake
        is done; a child that overstays TIMEOUT (or the handle's deadline) is
        killed and ``timed_out`` is set (the partial output is still parsed).
        No certificate store is loaded: the staple is verified separately."""
        if starttls is not None and starttls not in STARTTLS:
            raise ValueError(f"unsupported STARTTLS protocol {starttls!r}")
        self.budget(timeout)
        self.probe()                        # the probe first: its time is not s_client's
        budget = self.budget(timeout)
        with self._inputs() as files:
            msgfile = files.output("msg.txt")
            try:
                args = argv.s_client(host, port, msgfile, servername=servername, starttls=starttls)
                completed, timed_out = self.run_killable(args, b"Q\n", budget)
                msg = read_if_exists(msgfile).decode("utf-8", "replace")
            finally:
                files.remove(msgfile)
        return interpret_s_client(completed.stdout, completed.stderr, msg,
                                  timed_out=timed_out, budget=budget)

    # -- certificates ------------------------------------------------------
    def certificate_ders(self, data: bytes) -> List[bytes]:
        """The DER of every certificate in DATA: PEM (one or many), DER, or PKCS#7 (PEM or DER).

        An empty list means DATA holds no certificate at all."""
        ders = split_pem_certs(data)
        if ders:
            return ders
        if b"-----BEGIN PKCS7-----" in data:
            res = self.run(argv.pkcs7_certs("PEM"), stdin=data)
            return split_pem_certs(res.stdout.encode("ascii", "replace"))
        if b"-----BEGIN" in data or not data.startswith(b"\x30"):
            return []
        res = self.run(argv.store_certs(), stdin=data)
        ders = split_pem_certs(res.stdout.encode("ascii", "replace"))
        if ders:
            return ders
        res = self.run(argv.pkcs7_certs("DER"), stdin=data)
        return split_pem_certs(res.stdout.encode("ascii", "replace"))

    def parse_certificates(self, ders: Sequence[bytes]) -> List[Certificate]:
        """Parse certificates (given as DER) with one ``openssl storeutl`` process."""
        if not ders:
            return []
        pem = "".join(pem_encode(d) for d in ders).encode("ascii")
        res = self.run(argv.store_text(), stdin=pem)
        if res.returncode != 0:
            raise ValueError(first_reason(res.stderr) or "openssl could not read the certificates")
        try:
            parsed = parse_storeutl_text(res.stdout)
        except ValueError as exc:
            raise ValueError(f"unparsable certificate text from openssl: {exc}") from None
        if len(parsed) != len(ders):
            raise ValueError(f"openssl read {len(parsed)} of {len(ders)} certificates "
                             f"(a block is corrupt)")
        return [to_certificate(d, f) for d, f in zip(ders, parsed)]

    def verify_issued(self, leaf: Certificate, issuer: Certificate) -> Tuple[bool, str]:
        """Does ISSUER's key verify LEAF's signature?  (verified, why not)"""
        with self._inputs() as files:
            res = self.run(argv.verify_issued(files.pem(issuer), [files.pem(leaf)]))
        return parse_verify_one(res.returncode, res.stdout, res.stderr)

    def verify_issued_many(self, issuer: Certificate, leaves: Sequence[Certificate], *,
                           workers: int = 1) -> List[Tuple[bool, str]]:
        """``verify_issued`` for each of LEAVES, in order: one ``openssl verify`` per piece of at
        most ``parallel.BATCH`` leaves (up to WORKERS at once), anchored at ISSUER alone."""
        with self._inputs() as files:
            issuer_file = files.pem(issuer)
            paths = [files.pem(leaf) for leaf in leaves]

            def one(chunk: List[str]) -> dict:
                res = self.run(argv.verify_issued(issuer_file, chunk),
                               timeout=self.timeout + 0.05 * len(chunk))
                return parse_verify_many(res.stdout, res.stderr, chunk)
            result: dict = {}
            for part in parallel_map(one, batches(paths, workers), workers):
                result.update(part)
        return [result[p] for p in paths]

    # -- OCSP requests -----------------------------------------------------
    def build_request(self, leaf: Certificate, issuer: Certificate, *, hash_alg: str = "sha1",
                      nonce: bool = False) -> bytes:
        """The DER OCSP request for LEAF issued by ISSUER (through ``-reqout`` into a private file)."""
        data, res = self._request(issuer, [leaf], hash_alg, nonce=nonce)
        if res.returncode != 0 or not data:
            raise OpensslError("openssl could not build the OCSP request: "
                               + (first_reason(res.stderr) or res.stderr.strip() or "no output"))
        return data

    def build_request_with_nonce(self, leaf: Certificate, issuer: Certificate, *,
                                 hash_alg: str = "sha1") -> Tuple[bytes, str]:
        """A request carrying a fresh nonce, and that nonce (hex) for checking the echo."""
        data, res = self._request(issuer, [leaf], hash_alg, nonce=True, req_text=True)
        nonce = parse_nonce(res.stdout, "Request Extensions")
        if res.returncode != 0 or not data or nonce is None:
            raise OpensslError("openssl could not build the OCSP request with a nonce: "
                               + (first_reason(res.stderr) or res.stderr.strip() or "no output"))
        return data, nonce

    def build_requests(self, issuer: Certificate, leaves: Sequence[Certificate], *,
                       hash_alg: str = "sha1", workers: int = 1) -> List[bytes]:
        """One DER OCSP request (no nonce) per certificate of LEAVES, all issued by ISSUER.

        openssl builds one request holding every CertID (``-issuer I -cert C1 -cert C2 ...
        -reqout``; one process per piece of at most ``parallel.BATCH`` certificates, up to
        WORKERS at once), which is then split into single requests; each part must carry the
        serial of its certificate, in order, or nothing is returned (OpensslError)."""
        argv.check_hash(hash_alg)
        with self._inputs():
            def one(chunk: List[Certificate]) -> List[bytes]:
                data, res = self._request(issuer, chunk, hash_alg,
                                          timeout=self.timeout + 0.05 * len(chunk))
                if res.returncode != 0 or not data:
                    raise OpensslError("openssl could not build the OCSP requests: "
                                       + (first_reason(res.stderr) or res.stderr.strip() or "no output"))
                try:
                    parts = split_ocsp_request(data)
                except ValueError as exc:
                    raise OpensslError(f"openssl built an unusable OCSP request ({exc})") from None
                if [serial for _, serial in parts] != [leaf.serial for leaf in chunk]:
                    raise OpensslError("openssl's batched OCSP request does not hold the expected "
                                       "certificates in order; refusing it")
                return [der for der, _ in parts]
            pieces = batches(list(leaves), workers)
            return [der for part in parallel_map(one, pieces, workers) for der in part]

    def _request(self, issuer: Certificate, leaves: Sequence[Certificate], hash_alg: str, *,
                 nonce: bool = False, req_text: bool = False,
                 timeout: Optional[float] = None) -> Tuple[bytes, Completed]:
        """openssl's request for LEAVES (``-reqout``), and its run."""
        argv.check_hash(hash_alg)
        with self._inputs() as files:
            issuer_file = files.pem(issuer)
            cert_files = [files.pem(leaf) for leaf in leaves]
            req = files.output("request.der")
            try:
                res = self.run(argv.ocsp_request(issuer_file, cert_files, hash_alg, req,
                                                 nonce=nonce, req_text=req_text), timeout=timeout)
                return read_if_exists(req), res
            finally:
                files.remove(req)

    # -- OCSP responses ----------------------------------------------------
    def read_response(self, der: bytes) -> ResponseInfo:
        """What a DER response says, without any verification (ValueError if it is none)."""
        info, _ = self._examine(der, lambda files, resp: (argv.read_response(resp), None))
        return info

    def verify_response(self, der: bytes, leaf: Certificate, issuer: Certificate, *,
                        hash_alg: str = "sha1") -> Tuple[ResponseInfo, Optional[Verdict]]:
        """Read DER and verify it for LEAF issued by ISSUER (``argv.verify_response``: trust is
        anchored at the issuer alone); the verdict is None for a status-only response."""
        argv.check_hash(hash_alg)

        def args(files: InputFiles, resp: str) -> Tuple[List[str], Optional[str]]:
            cert_file = files.pem(leaf)         # also the label of openssl's summary line
            return argv.verify_response(resp, files.pem(issuer), hash_alg,
                                        cert_file=cert_file), cert_file
        return self._examine(der, args)

    def verify_response_serial(self, der: bytes, serial: int, issuer: Certificate, *,
                               hash_alg: str = "sha1") -> Tuple[ResponseInfo, Optional[Verdict]]:
        """``verify_response`` for the CertID (ISSUER, SERIAL) when the leaf itself is unknown
        (ocsp-proxy): ``-serial 0xHEX``, whose summary line starts with that argument."""
        argv.check_hash(hash_alg)
        label = argv.serial_label(serial)
        return self._examine(der, lambda files, resp: (argv.verify_response(
            resp, files.pem(issuer), hash_alg, serial=label), label))

    def _examine(self, der: bytes, args: Callable[[InputFiles, str], Tuple[List[str], Optional[str]]]
                 ) -> Tuple[ResponseInfo, Optional[Verdict]]:
        """Run ``openssl ocsp -respin`` with the argument list ARGS makes of the input files and
        the response's file, and read what it said about the label ARGS names (if any)."""
        with self._inputs() as files:
            resp = files.data(der, "response.der")
            try:
                cmd, label = args(files, resp)
                res = self.run(cmd)
            finally:
                files.remove(resp)
        return read_examined(res.stdout, res.stderr, label)
