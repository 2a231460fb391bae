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
import functools
import heapq
import itertools
import os
import re
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from dateutil import parser as dateparser
from dateutil import tz

from .codec import der as der_codec
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
    month = _MONTHS.get(m.group("mon"))
    if month is not None:       # the fields are already checked: build the value directly (fast)
        try:
            return datetime(int(m.group("year")), month, int(m.group("day")), int(m.group("h")),
                            int(m.group("m")), int(m.group("s")), tzinfo=UTC)
        except ValueError:
            pass                # e.g. Feb 30: let dateutil give its verdict
    value = dateparser.parse(text.replace(" GMT", ""), default=datetime(1970, 1, 1))
    return value.replace(microsecond=0, tzinfo=UTC)


_MONTHS = {name: i + 1 for i, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))}


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


#: The extensions parse_cert_text reads (the bodies of other headers, such as key and signature
#: dumps, are skipped line by line).
_CERT_EXTENSIONS = frozenset((
    "Authority Information Access", "X509v3 Basic Constraints", "TLS Feature",
    "X509v3 Extended Key Usage", "X509v3 Subject Key Identifier",
    "X509v3 Authority Key Identifier"))


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
            fields["not_before"] = parse_time(line.partition(":")[2])
        elif line.startswith("Not After"):
            fields["not_after"] = parse_time(line.partition(":")[2])
        elif line.split(":", 1)[0] in _CERT_EXTENSIONS:
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


@functools.lru_cache(maxsize=64)
def _cert_block_fields(block: Tuple[str, ...]) -> dict:
    """parse_cert_text, remembered: every response of a responder embeds the same signer
    certificate, so a batch parses its text once.  Callers must not modify the result."""
    return parse_cert_text(block)


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
    if "Responder Error:" not in stdout:      # the usual case, decided without splitting lines
        return None
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
            required = ("hash_algorithm", "issuer_name_hash", "issuer_key_hash", "serial",
                        "cert_status", "this_update")
            missing = [k for k in required if k not in cur]
            if missing:
                raise ValueError("incomplete SingleResponse in response text (no "
                                 + ", ".join(missing) + ")")
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
    return info, [_cert_block_fields(tuple(b)) for b in certs]


def parse_nonce(text: str, section: str) -> Optional[str]:
    """The hex value of ``OCSP Nonce:`` under SECTION (``Request Extensions`` or ``Response Extensions``)."""
    if "OCSP Nonce:" not in text:
        return None
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
    try:
        kh: Optional[str] = der_codec.key_hash(der)
    except der_codec.DerError:
        kh = None
    return Certificate(der=der, subject=fields["subject"], issuer=fields["issuer"],
                       serial=fields["serial"], not_before=fields["not_before"],
                       not_after=fields["not_after"], ocsp_urls=tuple(fields["ocsp_urls"]),
                       ca_issuers_urls=tuple(fields["ca_issuers_urls"]), is_ca=fields["is_ca"],
                       must_staple=fields["must_staple"], ocsp_signing=fields["ocsp_signing"],
                       ski=fields["ski"], aki=fields["aki"], key_hash=kh)


# --------------------------------------------------------------------------
# Pure parsers for ``openssl s_client -status -showcerts -msg`` (live checks)
# --------------------------------------------------------------------------

#: The ``-starttls`` protocols of ``openssl s_client`` (3.0) that ocsp-check offers.
STARTTLS = ("smtp", "lmtp", "imap", "pop3", "ftp", "xmpp", "xmpp-server", "sieve", "nntp",
            "ldap", "postgres", "mysql", "irc")

_MSG_HEAD = re.compile(r"^(?P<dir><<<|>>>) (?P<version>[^,\[]+), (?P<kind>[A-Za-z ]+?) "
                       r"\[length (?P<length>[0-9a-fA-F]+)\](?:, (?P<name>.*))?$")
_HEX_BYTE = re.compile(r"^[0-9a-fA-F]{2}$")

HS_CERTIFICATE = 11
HS_CERTIFICATE_STATUS = 22
EXT_STATUS_REQUEST = 5
STATUS_TYPE_OCSP = 1


@dataclass(frozen=True)
class TlsMessage:
    """One protocol message as ``s_client -msg`` printed it (header line + hex dump)."""

    received: bool          # ``<<<`` (from the server) or ``>>>`` (sent)
    version: str            # ``TLS 1.3``
    kind: str               # ``Handshake``, ``RecordHeader``, ``Alert`` ...
    name: str               # ``Certificate``, ``CertificateStatus`` ... ("" for record headers)
    data: bytes


def parse_msg_dump(text: str) -> List[TlsMessage]:
    """Parse the ``-msg`` output of s_client into messages.

    Every dump must hold exactly the number of bytes its header announces
    (``[length 0777]``); anything else is a ValueError.  Headers of another
    shape (``<<< Not TLS data or unknown version ...``) end the previous
    message and are skipped with their bytes."""
    messages: List[TlsMessage] = []
    cur: Optional[dict] = None

    def close() -> None:
        if cur is not None:
            data = bytes(cur["bytes"])
            if len(data) != cur["length"]:
                raise ValueError(f"-msg dump of {cur['kind']} {cur['name'] or ''} holds {len(data)} "
                                 f"bytes, its header says {cur['length']}")
            messages.append(TlsMessage(cur["received"], cur["version"], cur["kind"], cur["name"], data))

    skipping = False
    for raw in text.splitlines():
        if raw.startswith(("<<<", ">>>")):
            close()
            cur = None
            m = _MSG_HEAD.match(raw.rstrip())
            skipping = m is None
            if m:
                cur = {"received": m.group("dir") == "<<<", "version": m.group("version").strip(),
                       "kind": m.group("kind").strip(), "name": (m.group("name") or "").strip(),
                       "length": int(m.group("length"), 16), "bytes": bytearray()}
        elif raw.startswith((" ", "\t")) and raw.strip():
            if skipping or cur is None:
                continue
            for token in raw.split():
                if not _HEX_BYTE.match(token):
                    raise ValueError(f"unexpected token {token!r} in the -msg hex dump")
                cur["bytes"].append(int(token, 16))
        elif raw.strip():
            close()             # some other line: the dump of the current message is over
            cur = None
            skipping = False
    close()
    return messages


class _Reader:
    """Bounds-checked reading of TLS structures (ValueError on any overrun)."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"truncated {self.what}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> bytes:
        return self.take(self.uint(length_bytes))

    @property
    def done(self) -> bool:
        return self.pos == len(self.data)


def _handshake_body(msg: TlsMessage) -> Tuple[int, bytes]:
    r = _Reader(msg.data, f"{msg.name or 'handshake'} message")
    hs_type = r.uint(1)
    body = r.vector(3)
    if not r.done:
        raise ValueError(f"{msg.name or 'handshake'} message: trailing bytes after the body")
    return hs_type, body


def _certificate_status(data: bytes) -> bytes:
    """The OCSPResponse DER of a CertificateStatus structure (status_type ocsp, 24-bit length)."""
    r = _Reader(data, "CertificateStatus")
    status_type = r.uint(1)
    if status_type != STATUS_TYPE_OCSP:
        raise ValueError(f"CertificateStatus of type {status_type}, not ocsp (1)")
    der = r.vector(3)
    if not r.done:
        raise ValueError("CertificateStatus: trailing bytes after the OCSP response")
    return der


def _certificate_list(body: bytes, tls13: bool) -> Tuple[List[bytes], Optional[bytes]]:
    """The certificates of a Certificate message and, in TLS 1.3, the leaf entry's staple."""
    r = _Reader(body, "Certificate message")
    if tls13:
        r.vector(1)                              # certificate_request_context
    lst = _Reader(r.vector(3), "certificate_list")
    if not r.done:
        raise ValueError("Certificate message: trailing bytes after the certificate list")
    certs: List[bytes] = []
    staple: Optional[bytes] = None
    while not lst.done:
        certs.append(lst.vector(3))
        if tls13:
            exts = _Reader(lst.vector(2), "certificate entry extensions")
            while not exts.done:
                ext_type = exts.uint(2)
                ext_data = exts.vector(2)
                if ext_type == EXT_STATUS_REQUEST and len(certs) == 1:
                    staple = _certificate_status(ext_data)
    return certs, staple


@dataclass(frozen=True)
class ServerHandshake:
    """What the server sent, from the handshake bytes: its chain and the staple's exact DER."""

    version: Optional[str] = None           # of the Certificate message (``TLS 1.3``)
    chain: Tuple[bytes, ...] = ()
    staple: Optional[bytes] = None          # None: the server sent no staple


def server_handshake(messages: Sequence[TlsMessage]) -> ServerHandshake:
    """Find the server's Certificate and (TLS 1.2) CertificateStatus messages and decode them.

    TLS 1.2 carries the staple in a CertificateStatus message (type 22);
    TLS 1.3 in the status_request extension of the first (leaf) entry of the
    Certificate message (type 11).  The first of each counts."""
    version = None
    chain: Tuple[bytes, ...] = ()
    staple: Optional[bytes] = None
    seen_cert = seen_status = False
    for msg in messages:
        if not msg.received or msg.kind != "Handshake" or not msg.data:
            continue
        hs_type, body = _handshake_body(msg)
        if hs_type == HS_CERTIFICATE and not seen_cert:
            seen_cert = True
            version = msg.version
            certs, ext_staple = _certificate_list(body, msg.version == "TLS 1.3")
            chain = tuple(certs)
            if ext_staple is not None and staple is None:
                staple = ext_staple
        elif hs_type == HS_CERTIFICATE_STATUS and not seen_status:
            seen_status = True
            staple = _certificate_status(body)
    return ServerHandshake(version=version, chain=chain, staple=staple)


@dataclass(frozen=True)
class SClientReport:
    """What s_client printed (stdout and stderr) about one connection."""

    connected: bool = False
    protocol: Optional[str] = None          # ``TLSv1.3``; None when no handshake completed
    cipher: Optional[str] = None
    staple_said: Optional[str] = None       # sent | none | unparsable | None (no status line)
    chain: Tuple[bytes, ...] = ()           # the -showcerts PEM blocks, in order
    connect_errno: Optional[int] = None
    starttls_error: Optional[str] = None
    errors: Tuple[str, ...] = ()            # OpenSSL error-queue reasons from stderr
    usage_error: Optional[str] = None       # this s_client refused our arguments
    error_detail: Optional[str] = None      # the first error, with its data for system errors

    @property
    def handshake_ok(self) -> bool:
        return self.protocol is not None


_NEW_SESSION = re.compile(r"^(?:New|Reused), (?P<proto>\S+), Cipher is (?P<cipher>\S+)")
_STARTTLS_ERROR = re.compile(r"(?i)(starttls|stls|auth tls).*(not |n't |no )|"
                             r"(not |n't |no ).*(starttls|stls|auth tls)")


def first_error_detail(stderr: str) -> Optional[str]:
    """The reason of the first error-queue line; for a generic ``system lib`` reason, the data
    openssl appends (``...:system lib:FILE:LINE:Name or service not known``) says more."""
    for line in stderr.splitlines():
        line = line.strip()
        if not _ERR_LINE.match(line):
            continue
        parts = line.split(":")
        reason = parts[5] if len(parts) > 5 else ""
        data = ":".join(parts[8:]).strip() if len(parts) > 8 else ""
        if reason.lower() in ("system lib", "system library") and data:
            return data
        return reason or None
    return None


def parse_s_client(stdout: str, stderr: str) -> SClientReport:
    """Interpret ``openssl s_client -status -showcerts`` output (both streams)."""
    out = stdout.splitlines()
    connected = any(l.startswith("CONNECTED(") for l in out)
    protocol = cipher = None
    staple_said = None
    chain_lines: List[str] = []
    in_chain = False
    for line in out:
        if in_chain:
            if line.strip() == "---":
                in_chain = False
            else:
                chain_lines.append(line)
            continue
        if line.strip() == "Certificate chain" and not chain_lines:
            in_chain = True
            continue
        if staple_said is None and line.startswith("OCSP response:"):
            rest = line[len("OCSP response:"):].strip()
            staple_said = {"": "sent", "no response sent": "none"}.get(
                rest, "unparsable" if "parse error" in rest else rest)
            continue
        m = _NEW_SESSION.match(line)
        if m and protocol is None and cipher is None:
            if m.group("proto") != "(NONE)" and m.group("cipher") != "(NONE)":
                protocol, cipher = m.group("proto"), m.group("cipher")
    chain = tuple(split_pem_certs("\n".join(chain_lines).encode("ascii", "replace")))
    errno_ = None
    starttls_error = None
    for line in stderr.splitlines() + out:
        m = re.match(r"^connect:errno=(\d+)", line.strip())
        if m and errno_ is None:
            errno_ = int(m.group(1))
        if starttls_error is None and not _ERR_LINE.match(line.strip()) and _STARTTLS_ERROR.search(line):
            starttls_error = line.strip()
    usage_error = None
    if not connected and "Use -help for summary" in stderr:
        usage_error = next((l.strip() for l in stderr.splitlines() if "option" in l.lower()),
                           stderr.strip().splitlines()[0])
    return SClientReport(connected=connected, protocol=protocol, cipher=cipher,
                         usage_error=usage_error, error_detail=first_error_detail(stderr),
                         staple_said=staple_said, chain=chain, connect_errno=errno_,
                         starttls_error=starttls_error,
                         errors=tuple(openssl_error_reasons(stderr)))


@dataclass(frozen=True)
class LiveHandshake:
    """One ``s_client`` run, interpreted: the text report, the decoded handshake, and whether
    the two views agree."""

    report: SClientReport
    presented: ServerHandshake
    timed_out: bool = False
    budget: float = 0.0
    disagreements: Tuple[str, ...] = ()     # openssl's views that contradict each other

    @property
    def chain(self) -> Tuple[bytes, ...]:
        return self.presented.chain or self.report.chain

    @property
    def staple(self) -> Optional[bytes]:
        return self.presented.staple


def interpret_s_client(stdout: str, stderr: str, msg: str, *, timed_out: bool = False,
                       budget: float = 0.0) -> LiveHandshake:
    """Combine s_client's text and its ``-msg`` dump into one LiveHandshake (pure).

    The staple and the chain are taken from the handshake bytes.  They are
    cross-checked against the ``-showcerts`` PEM and the ``OCSP response:``
    line; a contradiction is recorded in ``disagreements`` (the caller
    refuses to judge the server on it)."""
    report = parse_s_client(stdout, stderr)
    problems: List[str] = []
    try:
        presented = server_handshake(parse_msg_dump(msg))
    except ValueError as exc:
        presented = ServerHandshake()
        if report.connected:
            problems.append(f"unreadable handshake dump ({exc})")
    if presented.chain and report.chain and presented.chain != report.chain:
        problems.append("the -showcerts chain differs from the Certificate message")
    if report.staple_said == "none" and presented.staple is not None:
        problems.append("s_client says no staple was sent, but the handshake carries one")
    if report.staple_said == "sent" and presented.staple is None:
        problems.append("s_client printed a staple that is missing from the handshake dump")
    return LiveHandshake(report=report, presented=presented, timed_out=timed_out, budget=budget,
                         disagreements=tuple(problems))


# --------------------------------------------------------------------------
# Running openssl
# --------------------------------------------------------------------------

#: What ``openssl version`` prints first: ``OpenSSL 3.0.19 27 Jan 2026 (Library: ...)``.
_VERSION_RE = re.compile(r"^OpenSSL (\d+)\.(\d+)\.(\d+)\S*(?:\s|$)")
#: The oldest openssl whose ``ocsp``, ``storeutl`` and ``s_client`` ocsptools drives.
MIN_VERSION = (1, 1)
_FIX = "give a working one with --openssl PATH"


def interpret_version(binary: str, returncode: int, stdout: str, stderr: str) -> str:
    """The version line of ``BINARY version``, or OpensslError saying what BINARY did (pure).

    A missing, failing or foreign program in openssl's place is an environment problem, never
    a verdict on the user's files: it must be told apart before any real command runs (a
    ``/bin/true`` answers every command with exit 0 and no output, which would otherwise read as
    "not a certificate" or "not an OCSP response")."""
    first = next((line.strip() for line in stdout.splitlines() if line.strip()), "")
    call = f"'{binary} version'"
    if returncode != 0:
        how = (f"was killed by signal {-returncode}" if returncode < 0
               else f"exited with status {returncode}")
        said = next((line.strip() for line in (stderr + "\n" + stdout).splitlines() if line.strip()), "")
        said = f" ({_clip(said)!r})" if said else ", printing nothing"
        raise OpensslError(f"openssl does not work: {call} {how}{said}; {_FIX}")
    if not first:
        raise OpensslError(f"openssl does not work: {call} printed nothing; {_FIX}")
    m = _VERSION_RE.match(first)
    if m is None:
        raise OpensslError(f"not openssl: {call} printed {_clip(first)!r}; give the openssl binary "
                           f"with --openssl PATH")
    if (int(m.group(1)), int(m.group(2))) < MIN_VERSION:
        raise OpensslError(f"openssl too old: {call} printed {_clip(first)!r}; ocsptools needs "
                           f"OpenSSL {MIN_VERSION[0]}.{MIN_VERSION[1]} or later (--openssl PATH)")
    return first


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


SCRATCH_PREFIX = "ocsptools-"
#: A scratch directory of a dead process this old was left by a run that was killed (SIGKILL,
#: OOM) before it could remove it.
STALE_SCRATCH_AGE = 600


class _Watch:
    __slots__ = ("deadline", "proc", "killed", "done")

    def __init__(self, deadline: float, proc: "subprocess.Popen[bytes]") -> None:
        self.deadline, self.proc, self.killed, self.done = deadline, proc, False, False

    def __lt__(self, other: "_Watch") -> bool:
        return self.deadline < other.deadline


class _Watchdog:
    """One daemon thread that kills children past their deadline (started on first use)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: List[_Watch] = []
        self._thread: Optional[threading.Thread] = None

    def watch(self, proc: "subprocess.Popen[bytes]", deadline: float) -> _Watch:
        w = _Watch(deadline, proc)
        with self._cond:
            heapq.heappush(self._heap, w)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="openssl-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0] is w:
                self._cond.notify()
        return w

    def unwatch(self, w: _Watch) -> None:
        with self._cond:
            w.done = True           # lazily dropped from the heap

    def _loop(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                first = self._heap[0]
                delay = first.deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                first.killed = True
                try:
                    first.proc.kill()
                except OSError:
                    pass


_WATCHDOG = _Watchdog()


class Scratch:
    """A private temp directory for the files openssl reads (mode 0700, removed on exit).

    Its name carries the pid (``ocsptools-<pid>-<random>``) so that ``clean_stale_scratch``
    can tell a killed run's leftovers from a live run's directory."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
        self.dir = self._tmp.name
        self._n = itertools.count(1)        # next() is atomic: threads may share one Scratch

    def file(self, data: bytes, name: str = "f") -> str:
        path = os.path.join(self.dir, f"{next(self._n)}-{name}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return path

    def remove(self, path: str) -> None:
        """Delete one file of this scratch directory now (a long run keeps it small)."""
        try:
            os.unlink(path)
        except OSError:
            pass

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> "Scratch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clean_stale_scratch(now: float, *, directory: Optional[str] = None,
                        max_age: float = STALE_SCRATCH_AGE) -> List[str]:
    """Remove scratch directories that killed runs left in DIRECTORY (default: the temp dir).

    Only ``ocsptools-<pid>-*`` directories (not symlinks) owned by this user, untouched for
    MAX_AGE seconds before NOW (epoch seconds), whose pid is not a running process, are
    removed (``shutil.rmtree`` never follows symlinks inside).  Errors are ignored."""
    import shutil
    base = directory or tempfile.gettempdir()
    removed: List[str] = []
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    for name in names:
        m = re.match(re.escape(SCRATCH_PREFIX) + r"(\d+)-[A-Za-z0-9_]+$", name)
        if not m:
            continue
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or now - st.st_mtime <= max_age:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue                    # that process is alive (or not ours to signal)
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, ValueError):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


class OpenSSL:
    """A handle on one openssl binary.  One instance per run; safe to share across threads."""

    def __init__(self, binary: str = "openssl", timeout: float = 10.0,
                 deadline: Optional[float] = None) -> None:
        self.binary = binary
        self.timeout = timeout
        self.deadline = deadline            # time.monotonic() value bounding every child
        self._cmd: Optional[Any] = None
        self.spawned = 0                    # how many children this handle started (probe included)
        # The probe (``openssl version``) runs once, before the first real command: its version
        # line, or the OpensslError that says why this binary cannot be used.
        self._probe_lock = threading.Lock()
        self._version: Optional[str] = None
        self._unusable: Optional[OpensslError] = None

    # -- plumbing ----------------------------------------------------------
    def _command(self):
        if self._cmd is None:
            from plumbum import local
            from plumbum.commands.processes import CommandNotFound
            try:
                if os.sep in self.binary:
                    if not os.access(self.binary, os.X_OK) or os.path.isdir(self.binary):
                        raise CommandNotFound(self.binary, [])
                    cmd = local[local.path(self.binary)]
                else:
                    cmd = local[self.binary]
            except CommandNotFound:
                raise OpensslError(
                    f"openssl not found ({self.binary!r}): install the openssl package "
                    f"or name the binary with --openssl PATH") from None
            self._cmd = cmd.with_env(**CHILD_ENV)
        return self._cmd

    @property
    def _name(self) -> str:
        """The binary as messages name it: ``openssl``, ``/opt/bin/openssl``, ``openssl (/bin/true)``."""
        base = os.path.basename(self.binary)
        return self.binary if base == "openssl" else f"openssl ({self.binary})"

    def _budget(self, timeout: Optional[float]) -> float:
        budget = self.timeout if timeout is None else timeout
        if self.deadline is not None:
            budget = min(budget, self.deadline - time.monotonic())
        if budget <= 0:
            raise OpensslError("time limit reached before openssl could run")
        return budget

    def _ready(self) -> str:
        """Probe the binary once per handle (thread-safe), before its first real command; the
        version line, or the same OpensslError on every call once it failed.  A run that needs
        no openssl never calls this: nothing is spawned for it."""
        if self._version is not None:
            return self._version
        with self._probe_lock:
            if self._version is None and self._unusable is None:
                try:
                    res = self._spawn(["version"], None, self._budget(None))
                    self._version = interpret_version(self.binary, res.returncode, res.stdout,
                                                      res.stderr)
                except OpensslError as exc:
                    self._unusable = exc
            if self._unusable is not None:
                raise OpensslError(str(self._unusable), path=self._unusable.path)
            assert self._version is not None
            return self._version

    @property
    def unusable(self) -> Optional[OpensslError]:
        """Why the probe found this binary unusable; None if it passed or has not run."""
        return self._unusable

    def run(self, args: Sequence[str], *, stdin: Optional[bytes] = None,
            timeout: Optional[float] = None) -> Completed:
        """Run ``openssl ARGS``; kill it if it overstays; return both streams decoded.

        The first call of a handle probes the binary (``_ready``): a missing, failing or foreign
        program raises OpensslError here, before any command whose output would be misread."""
        self._budget(timeout)               # past the deadline: say so, probe or not
        self._ready()
        return self._spawn(args, stdin, self._budget(timeout))

    def _spawn(self, args: Sequence[str], stdin: Optional[bytes], budget: float) -> Completed:
        cmd = self._command()
        try:
            proc = cmd.popen(list(args), stdin=subprocess.PIPE if stdin is not None else
                             subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise OpensslError(f"cannot run {self._name}: {exc.strerror or exc}") from None
        self.spawned += 1
        # The watchdog kills an overdue child; communicate() then waits for it blocking.
        # (communicate(timeout=) makes CPython poll for the exit with sleeps, and a timer
        # thread per run costs a thread start: both add up over thousands of certificates.)
        watch = _WATCHDOG.watch(proc, time.monotonic() + budget)
        try:
            out, err = proc.communicate(stdin)
        except BaseException:
            proc.kill()
            proc.communicate()
            raise
        finally:
            _WATCHDOG.unwatch(watch)
        if watch.killed:
            raise OpensslError(f"{self._name} {args[0]} timed out after {budget:.0f} s and was killed")
        return Completed(tuple(args), proc.returncode,
                         out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def version(self) -> str:
        """The first line of ``openssl version`` (the probe's; OpensslError if unusable)."""
        return self._ready()

    # -- TLS: ocsp-check's live mode ---------------------------------------
    def s_client(self, host: str, port: int, *, servername: Optional[str] = None,
                 starttls: Optional[str] = None, timeout: Optional[float] = None) -> "LiveHandshake":
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
        self._budget(timeout)
        self._ready()                       # the probe first: its time is not s_client's
        budget = self._budget(timeout)
        connect = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
        with Scratch() as scratch:
            msgfile = os.path.join(scratch.dir, "msg.txt")
            args = ["s_client", "-connect", connect, "-status", "-showcerts", "-msg",
                    "-msgfile", msgfile, "-no-CAfile", *NO_DEFAULT_STORE]
            args += ["-servername", servername] if servername else ["-noservername"]
            if starttls is not None:
                args += ["-starttls", starttls]
                if starttls.startswith("xmpp") and servername:
                    args += ["-xmpphost", servername]
            completed, timed_out = self._run_killable(args, b"Q\n", budget)
            msg = _read_if_exists(msgfile).decode("utf-8", "replace")
        return interpret_s_client(completed.stdout, completed.stderr, msg,
                                  timed_out=timed_out, budget=budget)

    def _run_killable(self, args: Sequence[str], stdin: bytes,
                      budget: float) -> Tuple[Completed, bool]:
        """Like ``run``, but a child killed on timeout still yields what it printed so far."""
        self._ready()
        cmd = self._command()
        try:
            proc = cmd.popen(list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        except OSError as exc:
            raise OpensslError(f"cannot run {self._name}: {exc.strerror or exc}") from None
        self.spawned += 1
        timed_out = False
        try:
            out, err = proc.communicate(stdin, timeout=budget)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            out, err = proc.communicate()
        except BaseException:           # interrupted (Ctrl-C, the command's alarm): no orphan
            proc.kill()
            proc.communicate()
            raise
        return (Completed(tuple(args), proc.returncode, out.decode("utf-8", "replace"),
                          err.decode("utf-8", "replace")), timed_out)

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
            if issuer_file is None:
                raise ValueError("verifying a response for a certificate needs its issuer")
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

    def examine_response_serial(self, resp_file: str, issuer_file: str, serial: int, *,
                                hash_alg: str = "sha1") -> Tuple[ResponseInfo, Verdict]:
        """Verify a DER response for the CertID (ISSUER, SERIAL) when the leaf itself is unknown
        (ocsp-proxy): ``-issuer I -sha* -serial 0xHEX``, trust anchored at the issuer exactly as
        in ``examine_response``.  The summary line starts with the ``-serial`` argument."""
        if hash_alg not in HASHES:
            raise ValueError(f"unsupported CertID hash {hash_alg!r}")
        if serial < 0:
            raise ValueError("negative serial numbers cannot be given to openssl -serial")
        label = "0x" + format(serial, "X")
        args = ["ocsp", "-respin", resp_file, "-issuer", issuer_file, f"-{hash_alg}",
                "-serial", label, "-CAfile", issuer_file, "-partial_chain",
                *NO_DEFAULT_STORE, "-no_nonce", "-resp_text"]
        res = self.run(args)
        if "OCSP Response Data:" not in res.stdout:
            status = parse_responder_error(res.stdout)
            if status is not None:
                return ResponseInfo(response_status=status), parse_verdict(res.stdout, res.stderr, label)
            reason = _first_reason(res.stderr)
            raise ValueError("not a DER OCSP response" + (f" ({reason})" if reason else ""))
        info, cert_fields = parse_resp_text(res.stdout)
        ders = split_pem_certs(res.stdout.encode("ascii", "replace"))
        if len(ders) == len(cert_fields):
            certs = tuple(to_certificate(d, f) for d, f in zip(ders, cert_fields))
            info = ResponseInfo(info.response_status, info.produced_at, info.responder_id,
                                info.responses, certs)
        return info, parse_verdict(res.stdout, res.stderr, label)


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


# --------------------------------------------------------------------------
# Batches (ocsp-renew-dir): one process for many certificates
# --------------------------------------------------------------------------

#: Certificates per batched openssl process (keeps argument lists and outputs modest).
BATCH = 500
#: Fewer certificates than this are not worth an openssl process of their own.
MIN_CHUNK = 50


def parse_verify_many(stdout: str, stderr: str, paths: Sequence[str]) -> dict:
    """Interpret ``openssl verify ... -- P1 P2 ...``: path -> (ok, detail).

    A path is OK only when stdout has the exact line ``P: OK``; a failure is
    the stderr line ``error P: verification failed``, whose detail is the
    ``error N at D depth lookup: ...`` line printed before it.  A path with
    neither line has no verdict and counts as a failure."""
    wanted = set(paths)
    result: dict = {}
    for line in stdout.splitlines():
        if line.endswith(": OK") and line[:-4] in wanted:
            result[line[:-4]] = (True, "")
    detail = ""
    for line in stderr.splitlines():
        text = line.strip()
        m = re.match(r"^error \d+ at \d+ depth lookup: (.*)$", text)
        if m:
            detail = m.group(1)
            continue
        if text.startswith("error ") and text.endswith(": verification failed"):
            path = text[len("error "):-len(": verification failed")]
            if path in wanted:
                result[path] = (False, detail or "signature does not verify")
            detail = ""
    for path in paths:
        if path in result and result[path][0] and any(
                l.strip() == f"error {path}: verification failed" for l in stderr.splitlines()):
            result[path] = (False, "openssl reported both OK and a failure")
        result.setdefault(path, (False, "no verdict from openssl"))
    return result


def batches(items: Sequence[Any], workers: int) -> List[List[Any]]:
    """ITEMS cut into pieces of at most BATCH, at least as many as WORKERS (when there are
    enough items to be worth a process each), so that parallel runs share the work evenly."""
    size = max(1, min(BATCH, max(MIN_CHUNK, -(-len(items) // max(1, workers)))))
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def parallel_map(fn, pieces: Sequence[Any], workers: int) -> List[Any]:
    """fn over PIECES, results in order, in up to WORKERS threads (openssl runs at once)."""
    if workers <= 1 or len(pieces) <= 1:
        return [fn(p) for p in pieces]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=min(workers, len(pieces))) as pool:
        return list(pool.map(fn, pieces))


def verify_issued_many(ossl: OpenSSL, issuer_file: str, leaf_files: Sequence[str], *,
                       workers: int = 1) -> dict:
    """Which of LEAF_FILES did the (first) certificate in ISSUER_FILE sign?  path -> (ok, detail).

    One ``openssl verify -partial_chain -no_check_time`` per chunk of at most BATCH leaves
    (up to WORKERS at once), anchored at ISSUER_FILE alone (nothing else is trusted)."""
    def one(chunk: List[str]) -> dict:
        res = ossl.run(["verify", "-partial_chain", "-no_check_time", "-CAfile", issuer_file,
                        *NO_DEFAULT_STORE, "--", *chunk],
                       timeout=ossl.timeout + 0.05 * len(chunk))
        return parse_verify_many(res.stdout, res.stderr, chunk)
    result: dict = {}
    for part in parallel_map(one, batches(leaf_files, workers), workers):
        result.update(part)
    return result


def _der_tlv(buf: bytes, off: int) -> Tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at OFF; ValueError if malformed."""
    if off + 2 > len(buf):
        raise ValueError("truncated DER")
    tag = buf[off]
    length = buf[off + 1]
    off += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or off + n > len(buf):
            raise ValueError("bad DER length")
        length = int.from_bytes(buf[off:off + n], "big")
        off += n
    if off + length > len(buf):
        raise ValueError("truncated DER")
    return tag, off, off + length


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_seq(content: bytes) -> bytes:
    return b"\x30" + _der_len(len(content)) + content


def split_ocsp_request(der: bytes) -> List[Tuple[bytes, int]]:
    """Split an unsigned OCSPRequest with N Requests into N single requests (pure).

    Returns (request DER, CertID serial) per Request, in order.  Version,
    requestorName and requestExtensions of the TBSRequest are copied into
    each; a signed request is refused."""
    tag, s, e = _der_tlv(der, 0)
    if tag != 0x30 or e != len(der):
        raise ValueError("not an OCSPRequest")
    ttag, ts, te = _der_tlv(der, s)
    if ttag != 0x30:
        raise ValueError("not an OCSPRequest (no TBSRequest)")
    if te != e:
        raise ValueError("signed OCSP requests cannot be split")
    before, after = b"", b""
    requests: List[Tuple[bytes, int]] = []
    off = ts
    seen_list = False
    while off < te:
        ctag, cs, ce = _der_tlv(der, off)
        element = der[off:ce]
        if ctag == 0x30 and not seen_list:
            seen_list = True
            roff = cs
            while roff < ce:
                rtag, rs, re_ = _der_tlv(der, roff)
                if rtag != 0x30:
                    raise ValueError("requestList holds something other than a Request")
                # Request ::= SEQUENCE { reqCert CertID, ... }; CertID's last field is the serial
                idtag, ids, ide = _der_tlv(der, rs)
                if idtag != 0x30:
                    raise ValueError("Request without a CertID")
                foff = ids
                serial = None
                for _ in range(4):
                    ftag, fs, fe = _der_tlv(der, foff)
                    if ftag == 0x02:
                        serial = int.from_bytes(der[fs:fe], "big", signed=True)
                    foff = fe
                if serial is None or foff != ide:
                    raise ValueError("malformed CertID")
                requests.append((der[roff:re_], serial))
                roff = re_
        elif not seen_list:
            before += element
        else:
            after += element
        off = ce
    if not seen_list:
        raise ValueError("OCSPRequest without a requestList")
    return [(_der_seq(_der_seq(before + _der_seq(req) + after)), serial) for req, serial in requests]


def build_requests(ossl: OpenSSL, issuer_file: str, cert_files: Sequence[str],
                   serials: Sequence[int], *, hash_alg: str = "sha1",
                   workers: int = 1) -> List[bytes]:
    """One DER OCSP request (no nonce) per certificate issued by ISSUER_FILE's certificate.

    openssl builds one request holding every CertID (``-issuer I -cert C1
    -cert C2 ... -reqout``; one process per chunk of at most BATCH certificates, up to
    WORKERS at once), which is then
    split into single requests; each part must carry the serial expected
    for its certificate, in order, or nothing is returned."""
    if hash_alg not in HASHES:
        raise ValueError(f"unsupported CertID hash {hash_alg!r}")
    if len(cert_files) != len(serials):
        raise ValueError("one serial per certificate file is needed")
    with Scratch() as scratch:
        def one(chunk: List[Tuple[str, int]]) -> List[bytes]:
            req = scratch.file(b"", "request.der")
            args = ["ocsp", "-issuer", issuer_file, f"-{hash_alg}"]
            for path, _ in chunk:
                args += ["-cert", path]
            args += ["-no_nonce", "-reqout", req]
            res = ossl.run(args, timeout=ossl.timeout + 0.05 * len(chunk))
            data = _read_if_exists(req)
            if res.returncode != 0 or not data:
                raise OpensslError("openssl could not build the OCSP requests: "
                                   + (_first_reason(res.stderr) or res.stderr.strip() or "no output"))
            try:
                parts = split_ocsp_request(data)
            except ValueError as exc:
                raise OpensslError(f"openssl built an unusable OCSP request ({exc})") from None
            if [serial for _, serial in parts] != [serial for _, serial in chunk]:
                raise OpensslError("openssl's batched OCSP request does not hold the expected "
                                   "certificates in order; refusing it")
            return [der for der, _ in parts]
        pieces = batches(list(zip(cert_files, serials)), workers)
        return [der for part in parallel_map(one, pieces, workers) for der in part]
