"""The only module that runs openssl (through plumbum) and reads its text.

openssl is treated as an untrusted oracle (see ``../shared/notes/openssl-cli.md``):

* it always runs with an argument list, never a shell string, with
  ``LC_ALL=C`` and with the system CA bundle hidden (``SSL_CERT_FILE=/dev/null``
  plus ``-no-CApath -no-CAstore``; every verification names its own
  ``-CAfile``), which also saves 20-30 ms per process;
* every run has a timeout, and a child that overstays it is killed;
* stdout and stderr are read separately and both are interpreted: exit
  codes lie (revoked exits 0, a failed verification still prints ``good``);
* DER never passes through decoded stdout: requests and responses travel
  through files (``-reqout``, ``-respin``);
* ``-respout`` is never used (it writes before checking anything).

The parsing functions (``parse_*``) are pure: they take openssl's text and
return values from ``ocsptools.staple``; the tests feed them recorded
outputs from ``tests/fixtures/openssl``.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, List, Optional, Sequence, Tuple

from dateutil import parser as dateparser
from dateutil import tz

from .errors import OpensslError
from .staple import Certificate, ResponseInfo, SingleResponse, normalize_hex, pem_encode

UTC = tz.UTC

CHILD_ENV = {
    "LC_ALL": "C",
    "LANG": "C",
    "LANGUAGE": "C",
    # Hide the system bundle: every verification names its own -CAfile.
    "SSL_CERT_FILE": os.devnull,
    "SSL_CERT_DIR": os.devnull,
}
NO_DEFAULT_STORE = ["-no-CApath", "-no-CAstore"]
HASHES = ("sha1", "sha256", "sha384", "sha512")
PEM_CERT_RE = re.compile(
    rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----\s*(.*?)\s*-----END (?:X509 |TRUSTED )?CERTIFICATE-----",
    re.S)


@dataclass(frozen=True)
class Completed:
    argv: Tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


# --------------------------------------------------------------------------
# Pure parsers
# --------------------------------------------------------------------------

_TIME_RE = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})"
    r"(?:\.(?P<frac>\d+))? (?P<year>\d{4}) GMT$")


def parse_time(text: str) -> datetime:
    """Parse openssl's ``Nov  1 12:00:00 2026 GMT`` (space-padded day, optional fraction).

    The shape is checked strictly first (openssl runs with LC_ALL=C, so
    month names are English); dateutil then builds the aware UTC value."""
    text = text.strip()
    m = _TIME_RE.match(text)
    if not m:
        raise ValueError(f"not an openssl GMT time: {text!r}")
    value = dateparser.parse(text.replace(" GMT", ""), default=datetime(1970, 1, 1))
    return value.replace(microsecond=0, tzinfo=UTC)


def _serial_from_text(text: str) -> int:
    """``43794 (0xab12)``, ``(Negative)43794 (-0xab12)``, ``36:9c:a8`` or ``AB12`` to an int."""
    text = text.strip()
    negative = "Negative" in text or text.startswith("-")
    m = re.search(r"\((?:-)?0x([0-9a-fA-F]+)\)", text)
    if m:
        value = int(m.group(1), 16)
    else:
        digits = re.sub(r"[^0-9a-fA-F]", "", text.replace("(Negative)", ""))
        if not digits:
            raise ValueError(f"not a serial number: {text!r}")
        value = int(digits, 16)
    return -value if negative else value


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def parse_cert_text(block: Sequence[str]) -> dict:
    """Parse the lines of one ``Certificate:`` block of ``-text`` output into fields."""
    fields: dict = {"ocsp_urls": [], "ca_issuers_urls": [], "is_ca": False,
                    "must_staple": False, "ocsp_signing": False, "ski": None, "aki": None}
    i = 0
    n = len(block)
    while i < n:
        line = block[i].strip()
        if line.startswith("Serial Number:"):
            rest = line[len("Serial Number:"):].strip()
            if not rest and i + 1 < n:
                i += 1
                rest = block[i].strip()
            fields["serial"] = _serial_from_text(rest)
        elif line.startswith("Issuer:") and "issuer" not in fields:
            fields["issuer"] = line[len("Issuer:"):].strip()
        elif line.startswith("Subject:") and "subject" not in fields:
            fields["subject"] = line[len("Subject:"):].strip()
        elif line.startswith("Not Before:"):
            fields["not_before"] = parse_time(line.split(":", 1)[1])
        elif line.startswith("Not After"):
            fields["not_after"] = parse_time(line.split(":", 1)[1])
        else:
            ext = line.split(":", 1)[0]
            depth = _indent(block[i])
            body: List[str] = []
            j = i + 1
            while j < n and _indent(block[j]) > depth and block[j].strip():
                body.append(block[j].strip())
                j += 1
            if ext == "Authority Information Access":
                for entry in body:
                    if entry.startswith("OCSP - URI:"):
                        fields["ocsp_urls"].append(entry[len("OCSP - URI:"):].strip())
                    elif entry.startswith("CA Issuers - URI:"):
                        fields["ca_issuers_urls"].append(entry[len("CA Issuers - URI:"):].strip())
                i = j - 1
            elif ext == "X509v3 Basic Constraints":
                fields["is_ca"] = any(b.startswith("CA:TRUE") for b in body)
                i = j - 1
            elif ext == "TLS Feature":
                fields["must_staple"] = any("status_request" in b for b in body)
                i = j - 1
            elif ext == "X509v3 Extended Key Usage":
                fields["ocsp_signing"] = any("OCSP Signing" in b for b in body)
                i = j - 1
            elif ext == "X509v3 Subject Key Identifier" and body:
                fields["ski"] = normalize_hex(body[0])
                i = j - 1
            elif ext == "X509v3 Authority Key Identifier" and body:
                aki = body[0]
                if aki.startswith("keyid:"):
                    aki = aki[len("keyid:"):]
                fields["aki"] = normalize_hex(aki) if re.fullmatch(r"[0-9A-Fa-f:]+", aki) else None
                i = j - 1
        i += 1
    missing = [k for k in ("serial", "issuer", "subject", "not_before", "not_after") if k not in fields]
    if missing:
        raise ValueError("certificate text lacks " + ", ".join(missing))
    return fields


def _split_cert_blocks(lines: Sequence[str]) -> List[List[str]]:
    """Split text into ``Certificate:`` blocks (each up to the next one or a PEM/summary)."""
    blocks: List[List[str]] = []
    current: Optional[List[str]] = None
    for line in lines:
        if line.rstrip() == "Certificate:" and _indent(line) == 0:
            current = []
            blocks.append(current)
        elif current is not None:
            if _indent(line) == 0 and line.strip():
                current = None
            else:
                current.append(line)
    return blocks


def parse_storeutl_text(text: str) -> List[dict]:
    """Parse ``openssl storeutl -noout -text -certs`` output into per-certificate fields."""
    lines = text.splitlines()
    return [parse_cert_text(b) for b in _split_cert_blocks(lines)]


#: openssl prints response statuses in lower case; these are RFC 6960's names.
RESPONSE_STATUSES = {
    "successful": "successful",
    "malformedrequest": "malformedRequest",
    "internalerror": "internalError",
    "trylater": "tryLater",
    "sigrequired": "sigRequired",
    "unauthorized": "unauthorized",
}


def _status_name(word: str) -> str:
    return RESPONSE_STATUSES.get(word.lower(), word)


def parse_responder_error(stdout: str) -> Optional[str]:
    """The status of ``Responder Error: trylater (3)`` (openssl prints no dump for those), RFC-named."""
    for line in stdout.splitlines():
        m = re.match(r"^Responder Error: (\S+)", line.strip())
        if m:
            return _status_name(m.group(1))
    return None


def parse_resp_text(text: str) -> Tuple[ResponseInfo, List[dict]]:
    """Parse ``openssl ocsp -resp_text`` output.

    Returns the ResponseInfo (without embedded certificates) and the parsed
    fields of each embedded certificate, in order; ``ResponseInfo.certs`` is
    filled by the caller, which has the certificates' DER from the PEM that
    openssl printed after each block."""
    lines = text.splitlines()
    status = None
    produced_at = None
    responder_id = None
    singles: List[SingleResponse] = []
    cur: Optional[dict] = None

    def close() -> None:
        nonlocal cur
        if cur is not None:
            if "cert_status" not in cur or "this_update" not in cur:
                raise ValueError("incomplete SingleResponse in response text")
            singles.append(SingleResponse(**cur))
        cur = None

    in_data = False
    for raw in lines:
        line = raw.strip()
        if raw.startswith("OCSP Response Data:"):
            in_data = True
            continue
        if not in_data:
            continue
        if _indent(raw) == 0 and line:
            break                       # end of the response dump (certificate or summary)
        if line.startswith("OCSP Response Status:"):
            m = re.match(r"OCSP Response Status:\s*(\S+)", line)
            status = _status_name(m.group(1)) if m else None
        elif line.startswith("Responder Id:"):
            responder_id = line[len("Responder Id:"):].strip()
        elif line.startswith("Produced At:"):
            produced_at = parse_time(line.split(":", 1)[1])
        elif line == "Certificate ID:":
            close()
            cur = {}
        elif cur is not None:
            key, _, value = line.partition(":")
            value = value.strip()
            if key == "Hash Algorithm":
                cur["hash_algorithm"] = value
            elif key == "Issuer Name Hash":
                cur["issuer_name_hash"] = normalize_hex(value)
            elif key == "Issuer Key Hash":
                cur["issuer_key_hash"] = normalize_hex(value)
            elif key == "Serial Number":
                cur["serial"] = _serial_from_text(value)
            elif key == "Cert Status":
                cur["cert_status"] = value
            elif key == "This Update":
                cur["this_update"] = parse_time(value)
            elif key == "Next Update":
                cur["next_update"] = parse_time(value)
            elif key == "Revocation Time":
                cur["revocation_time"] = parse_time(value)
            elif key == "Revocation Reason":
                cur["revocation_reason"] = value.split(" (")[0]
            elif line.startswith("Signature Algorithm"):
                close()
    close()
    if status is None:
        raise ValueError("no 'OCSP Response Status' in openssl output")
    certs = _split_cert_blocks(lines[_index_after_response(lines):])
    info = ResponseInfo(response_status=status, produced_at=produced_at,
                        responder_id=responder_id, responses=tuple(singles))
    return info, [parse_cert_text(b) for b in certs]


def parse_nonce(text: str, section: str) -> Optional[str]:
    """The hex value of ``OCSP Nonce:`` under SECTION (``Request Extensions`` or ``Response Extensions``)."""
    lines = text.splitlines()
    for idx, line in enumerate(lines):
        if line.strip() != f"{section}:":
            continue
        for j in range(idx + 1, len(lines) - 1):
            if lines[j].strip() == "OCSP Nonce:":
                value = lines[j + 1].strip()
                return normalize_hex(value) if re.fullmatch(r"[0-9A-Fa-f:]+", value) else None
            if _indent(lines[j]) <= _indent(line):
                break
    return None


def parse_response(stdout: str) -> ResponseInfo:
    """``-resp_text`` output to a ResponseInfo including the embedded certificates.

    openssl prints each embedded certificate as text followed by its PEM; the
    DER comes from the PEM, the fields from the text.  If the two do not pair
    up, no certificate is trusted to be the signer (``certs`` stays empty)."""
    info, cert_fields = parse_resp_text(stdout)
    info = dataclasses.replace(info, nonce=parse_nonce(stdout, "Response Extensions"))
    ders = split_pem_certs(stdout.encode("ascii", "replace"))
    if not cert_fields or len(ders) != len(cert_fields):
        return info
    certs = tuple(to_certificate(d, f) for d, f in zip(ders, cert_fields))
    return dataclasses.replace(info, certs=certs)


def _index_after_response(lines: Sequence[str]) -> int:
    for idx, line in enumerate(lines):
        if line.startswith("OCSP Response Data:"):
            return idx + 1
    return len(lines)


@dataclass(frozen=True)
class Verdict:
    """What one ``openssl ocsp -respin ... -cert LABEL`` run said about LABEL.

    ``signature_ok`` comes only from stderr's ``Response verify OK``; the
    status comes only from the summary line that starts with the exact
    ``-cert`` argument.  Neither alone means anything."""

    signature_ok: bool
    verify_errors: Tuple[str, ...] = ()
    responder_error: Optional[str] = None     # tryLater, unauthorized, ...
    no_status_found: bool = False
    times_invalid: bool = False
    cert_status: Optional[str] = None
    this_update: Optional[datetime] = None
    next_update: Optional[datetime] = None
    revocation_time: Optional[datetime] = None
    revocation_reason: Optional[str] = None
    errors: Tuple[str, ...] = field(default=())


_ERR_LINE = re.compile(r"^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:(?P<reason>[^:]+):")


def openssl_error_reasons(stderr: str) -> List[str]:
    """The reason strings of OpenSSL error-queue lines, deduplicated, in order."""
    seen: List[str] = []
    for line in stderr.splitlines():
        m = _ERR_LINE.match(line.strip())
        if not m:
            continue
        reason = m.group("reason")
        if "Verify error:" in line:       # certificate verify error:...:Verify error:<the real reason>
            reason = line.split("Verify error:", 1)[1].strip()
        if reason not in seen:
            seen.append(reason)
    return seen


def parse_verdict(stdout: str, stderr: str, label: str) -> Verdict:
    """Interpret the summary of ``openssl ocsp -respin R -issuer I -cert LABEL``.

    Both streams are read: stderr decides whether the signature verified,
    stdout (the lines after the one starting with ``LABEL: ``, matched
    literally) gives the status and times."""
    err_lines = [l.strip() for l in stderr.splitlines()]
    signature_ok = "Response verify OK" in err_lines
    failed = "Response Verify Failure" in err_lines
    if signature_ok and failed:
        signature_ok = False
    responder_error = parse_responder_error(stdout)
    out = stdout.splitlines()
    prefix = label + ": "
    start = None
    for idx, line in enumerate(out):
        if line.startswith(prefix):
            start = idx
    values: dict = {}
    no_status = False
    times_invalid = False
    if start is not None:
        head = out[start][len(prefix):].strip()
        rest = out[start + 1:]
        if head == "ERROR: No Status found.":
            no_status = True
        else:
            if head == "WARNING: Status times invalid.":
                times_invalid = True
                # the status word follows, possibly after an error-queue line
                while rest and (not rest[0].strip() or _ERR_LINE.match(rest[0].strip())):
                    rest = rest[1:]
                head = rest[0].strip() if rest else ""
                rest = rest[1:]
            if head in ("good", "revoked", "unknown"):
                values["cert_status"] = head
            for line in rest:
                if not line.startswith("\t"):
                    break
                key, _, value = line.strip().partition(":")
                value = value.strip()
                if key == "This Update":
                    values["this_update"] = parse_time(value)
                elif key == "Next Update":
                    values["next_update"] = parse_time(value)
                elif key == "Revocation Time":
                    values["revocation_time"] = parse_time(value)
                elif key == "Reason":
                    values["revocation_reason"] = value
    reasons = openssl_error_reasons(stderr)
    return Verdict(signature_ok=signature_ok, verify_errors=tuple(reasons) if failed else (),
                   responder_error=responder_error, no_status_found=no_status,
                   times_invalid=times_invalid, errors=tuple(reasons), **values)


def split_pem_certs(data: bytes) -> List[bytes]:
    """The DER of each CERTIFICATE block in PEM text, in order (pure; no openssl)."""
    ders = []
    for m in PEM_CERT_RE.finditer(data):
        try:
            ders.append(base64.b64decode(b"".join(m.group(1).split()), validate=True))
        except ValueError:
            raise ValueError("a CERTIFICATE block is not valid base64") from None
    return ders


def to_certificate(der: bytes, fields: dict) -> Certificate:
    return Certificate(der=der, subject=fields["subject"], issuer=fields["issuer"],
                       serial=fields["serial"], not_before=fields["not_before"],
                       not_after=fields["not_after"], ocsp_urls=tuple(fields["ocsp_urls"]),
                       ca_issuers_urls=tuple(fields["ca_issuers_urls"]), is_ca=fields["is_ca"],
                       must_staple=fields["must_staple"], ocsp_signing=fields["ocsp_signing"],
                       ski=fields["ski"], aki=fields["aki"])


# --------------------------------------------------------------------------
# Running openssl
# --------------------------------------------------------------------------

class Scratch:
    """A private temp directory for the files openssl reads (mode 0700, removed on exit)."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="ocsptools-")
        self.dir = self._tmp.name
        self._n = 0

    def file(self, data: bytes, name: str = "f") -> str:
        self._n += 1
        path = os.path.join(self.dir, f"{self._n}-{name}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return path

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> "Scratch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OpenSSL:
    """A handle on one openssl binary.  One instance per run; safe to share across threads."""

    def __init__(self, binary: str = "openssl", timeout: float = 10.0,
                 deadline: Optional[float] = None) -> None:
        self.binary = binary
        self.timeout = timeout
        self.deadline = deadline            # time.monotonic() value bounding every child
        self._cmd = None
        self.spawned = 0                    # how many children this handle started

    # -- plumbing ----------------------------------------------------------
    def _command(self):
        if self._cmd is None:
            from plumbum import local
            from plumbum.commands.processes import CommandNotFound
            try:
                cmd = local[self.binary] if os.sep not in self.binary else local[local.path(self.binary)]
            except CommandNotFound:
                raise OpensslError(
                    f"openssl not found ({self.binary!r}): install the openssl package "
                    f"or name the binary with --openssl PATH") from None
            self._cmd = cmd.with_env(**CHILD_ENV)
        return self._cmd

    def _budget(self, timeout: Optional[float]) -> float:
        budget = self.timeout if timeout is None else timeout
        if self.deadline is not None:
            budget = min(budget, self.deadline - time.monotonic())
        if budget <= 0:
            raise OpensslError("time limit reached before openssl could run")
        return budget

    def run(self, args: Sequence[str], *, stdin: Optional[bytes] = None,
            timeout: Optional[float] = None) -> Completed:
        """Run ``openssl ARGS``; kill it if it overstays; return both streams decoded."""
        budget = self._budget(timeout)
        cmd = self._command()
        try:
            proc = cmd.popen(list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        except OSError as exc:
            raise OpensslError(f"cannot run {self.binary}: {exc.strerror or exc}") from None
        self.spawned += 1
        try:
            out, err = proc.communicate(stdin, timeout=budget)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise OpensslError(f"openssl {args[0]} timed out after {budget:.0f} s and was killed") from None
        return Completed(tuple(args), proc.returncode,
                         out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def version(self) -> str:
        res = self.run(["version"])
        return res.stdout.strip()

    # -- certificates ------------------------------------------------------
    def certificate_ders(self, data: bytes) -> List[bytes]:
        """The DER of every certificate in DATA: PEM (one or many), DER, or PKCS#7 (PEM or DER).

        An empty list means DATA holds no certificate at all."""
        ders = split_pem_certs(data)
        if ders:
            return ders
        if b"-----BEGIN PKCS7-----" in data:
            res = self.run(["pkcs7", "-print_certs", "-inform", "PEM"], stdin=data)
            return split_pem_certs(res.stdout.encode("ascii", "replace"))
        if b"-----BEGIN" in data or not data.startswith(b"\x30"):
            return []
        res = self.run(["storeutl", "-certs", "/dev/stdin"], stdin=data)
        ders = split_pem_certs(res.stdout.encode("ascii", "replace"))
        if ders:
            return ders
        res = self.run(["pkcs7", "-print_certs", "-inform", "DER"], stdin=data)
        return split_pem_certs(res.stdout.encode("ascii", "replace"))

    def parse_certificates(self, ders: Sequence[bytes]) -> List[Certificate]:
        """Parse certificates (given as DER) with one ``openssl storeutl`` process."""
        if not ders:
            return []
        pem = "".join(pem_encode(d) for d in ders).encode("ascii")
        res = self.run(["storeutl", "-noout", "-text", "-certs", "/dev/stdin"], stdin=pem)
        if res.returncode != 0:
            raise ValueError(_first_reason(res.stderr) or "openssl could not read the certificates")
        try:
            parsed = parse_storeutl_text(res.stdout)
        except ValueError as exc:
            raise ValueError(f"unparsable certificate text from openssl: {exc}") from None
        if len(parsed) != len(ders):
            raise ValueError(f"openssl read {len(parsed)} of {len(ders)} certificates "
                             f"(a block is corrupt)")
        return [to_certificate(d, f) for d, f in zip(ders, parsed)]

    def verify_issued(self, leaf_file: str, issuer_file: str) -> Tuple[bool, str]:
        """Does the (first) certificate in ISSUER_FILE verify LEAF_FILE's signature?"""
        res = self.run(["verify", "-partial_chain", "-no_check_time", "-CAfile", issuer_file,
                        *NO_DEFAULT_STORE, "--", leaf_file])
        ok = res.returncode == 0 and res.stdout.strip().endswith(": OK")
        detail = "" if ok else (_verify_error(res.stdout + res.stderr) or "signature does not verify")
        return ok, detail

    # -- OCSP --------------------------------------------------------------
    def build_request(self, issuer_file: str, cert_file: str, *, hash_alg: str = "sha1",
                      nonce: bool = False) -> bytes:
        """The DER OCSP request for one certificate (through ``-reqout`` into a private file)."""
        if hash_alg not in HASHES:
            raise ValueError(f"unsupported CertID hash {hash_alg!r}")
        with Scratch() as scratch:
            req = os.path.join(scratch.dir, "request.der")
            # -issuer and the digest must precede -cert: the CertID is built while -cert is parsed.
            args = ["ocsp", "-issuer", issuer_file, f"-{hash_alg}", "-cert", cert_file,
                    "-nonce" if nonce else "-no_nonce", "-reqout", req]
            res = self.run(args)
            data = _read_if_exists(req)
            if res.returncode != 0 or not data:
                raise OpensslError("openssl could not build the OCSP request: "
                                   + (_first_reason(res.stderr) or res.stderr.strip() or "no output"))
            return data

    def build_request_with_nonce(self, issuer_file: str, cert_file: str, *,
                                 hash_alg: str = "sha1") -> Tuple[bytes, str]:
        """A request carrying a fresh nonce, and that nonce (hex) for checking the echo."""
        with Scratch() as scratch:
            req = os.path.join(scratch.dir, "request.der")
            res = self.run(["ocsp", "-issuer", issuer_file, f"-{hash_alg}", "-cert", cert_file,
                            "-nonce", "-reqout", req, "-req_text"])
            data = _read_if_exists(req)
            nonce = parse_nonce(res.stdout, "Request Extensions")
            if res.returncode != 0 or not data or nonce is None:
                raise OpensslError("openssl could not build the OCSP request with a nonce: "
                                   + (_first_reason(res.stderr) or res.stderr.strip() or "no output"))
            return data, nonce

    def examine_response(self, resp_file: str, *, issuer_file: Optional[str] = None,
                         cert_file: Optional[str] = None, hash_alg: str = "sha1",
                         ) -> Tuple[ResponseInfo, Optional[Verdict]]:
        """Read a DER response; with ISSUER and CERT also verify it for that certificate.

        Verification anchors trust at the issuer itself (``-CAfile ISSUER
        -partial_chain``): the response must be signed by the issuer, or by a
        certificate the issuer issued that carries id-kp-OCSPSigning and is
        embedded in the response.  Nothing else is trusted, not even the root.
        """
        if cert_file is not None:
            if hash_alg not in HASHES:
                raise ValueError(f"unsupported CertID hash {hash_alg!r}")
            args = ["ocsp", "-respin", resp_file, "-issuer", issuer_file, f"-{hash_alg}",
                    "-cert", cert_file, "-CAfile", issuer_file, "-partial_chain",
                    *NO_DEFAULT_STORE, "-no_nonce", "-resp_text"]
        else:
            args = ["ocsp", "-respin", resp_file, "-noverify", "-no-CAfile", *NO_DEFAULT_STORE,
                    "-resp_text"]
        res = self.run(args)
        if "OCSP Response Data:" not in res.stdout:
            status = parse_responder_error(res.stdout)
            if status is not None:      # a status-only response: openssl prints no dump
                return ResponseInfo(response_status=status), None
            reason = _first_reason(res.stderr)
            raise ValueError("not a DER OCSP response" + (f" ({reason})" if reason else ""))
        info = parse_response(res.stdout)
        verdict = parse_verdict(res.stdout, res.stderr, cert_file) if cert_file is not None else None
        return info, verdict


def _read_if_exists(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return b""


def _first_reason(stderr: str) -> str:
    reasons = openssl_error_reasons(stderr)
    return reasons[0] if reasons else ""


def _verify_error(text: str) -> str:
    for line in text.splitlines():
        m = re.match(r"^error \d+ at \d+ depth lookup: (.*)$", line.strip())
        if m:
            return m.group(1)
    return ""


def hash_algorithms(info: ResponseInfo) -> Iterable[str]:
    """The CertID hash algorithms used in a response, in order, as openssl digest names."""
    seen: List[str] = []
    for single in info.responses:
        name = single.hash_algorithm.lower().replace("-", "")
        if name in HASHES and name not in seen:
            seen.append(name)
    return seen
