"""Pure parsers of openssl's text about certificates: times, serials, errors, ``-text``, ``verify``.

openssl runs with ``LC_ALL=C``, so its text is stable: these functions take it (stdout, stderr)
and return values from ``ocsptools.staple`` or plain fields, or raise ValueError.  The tests feed
them outputs recorded from real openssl runs (``tests/fixtures/openssl``).  The OCSP parsers
(``parse_ocsp``) and the s_client ones (``s_client``) build on these.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Dict, List, Optional, Sequence, Tuple

from dateutil import parser as dateparser
from dateutil import tz

from ..codec import der as der_codec
from ..staple import Certificate, normalize_hex

__all__ = ["parse_time", "serial_from_text", "indent", "parse_cert_text", "cert_block_fields",
           "split_cert_blocks", "parse_storeutl_text", "to_certificate", "ERR_LINE",
           "openssl_error_reasons", "first_reason", "parse_verify_one", "parse_verify_many"]

UTC = tz.UTC

_TIME_RE = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})"
    r"(?:\.(?P<frac>\d+))? (?P<year>\d{4}) GMT$")
_MONTHS = {name: i + 1 for i, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))}


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


def serial_from_text(text: str) -> int:
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


def indent(line: str) -> int:
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
            fields["serial"] = serial_from_text(rest)
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
            depth = indent(block[i])
            body: List[str] = []
            j = i + 1
            while j < n and indent(block[j]) > depth and block[j].strip():
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
def cert_block_fields(block: Tuple[str, ...]) -> dict:
    """parse_cert_text, remembered: every response of a responder embeds the same signer
    certificate, so a batch parses its text once.  Callers must not modify the result."""
    return parse_cert_text(block)


def split_cert_blocks(lines: Sequence[str]) -> List[List[str]]:
    """Split text into ``Certificate:`` blocks (each up to the next one or a PEM/summary)."""
    blocks: List[List[str]] = []
    current: Optional[List[str]] = None
    for line in lines:
        if line.rstrip() == "Certificate:" and indent(line) == 0:
            current = []
            blocks.append(current)
        elif current is not None:
            if indent(line) == 0 and line.strip():
                current = None
            else:
                current.append(line)
    return blocks


def parse_storeutl_text(text: str) -> List[dict]:
    """Parse ``openssl storeutl -noout -text -certs`` output into per-certificate fields."""
    lines = text.splitlines()
    return [parse_cert_text(b) for b in split_cert_blocks(lines)]


def to_certificate(der: bytes, fields: dict) -> Certificate:
    """The Certificate of DER with the FIELDS openssl printed for it (the key hash from the DER)."""
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


#: An OpenSSL error-queue line: ``4007AEA1107F0000:error:1380007D:OCSP routines:...:reason:...``.
ERR_LINE = re.compile(r"^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:(?P<reason>[^:]+):")


def openssl_error_reasons(stderr: str) -> List[str]:
    """The reason strings of OpenSSL error-queue lines, deduplicated, in order."""
    seen: List[str] = []
    for line in stderr.splitlines():
        m = ERR_LINE.match(line.strip())
        if not m:
            continue
        reason = m.group("reason")
        if "Verify error:" in line:       # certificate verify error:...:Verify error:<the real reason>
            reason = line.split("Verify error:", 1)[1].strip()
        if reason not in seen:
            seen.append(reason)
    return seen


def first_reason(stderr: str) -> str:
    """The first error-queue reason of STDERR, or ""."""
    reasons = openssl_error_reasons(stderr)
    return reasons[0] if reasons else ""


_VERIFY_ERROR = re.compile(r"^error \d+ at \d+ depth lookup: (.*)$")


def _verify_error(text: str) -> str:
    for line in text.splitlines():
        m = _VERIFY_ERROR.match(line.strip())
        if m:
            return m.group(1)
    return ""


def parse_verify_one(returncode: int, stdout: str, stderr: str) -> Tuple[bool, str]:
    """Interpret ``openssl verify ... -- LEAF``: (verified, why not).  Only exit 0 with the line
    ``LEAF: OK`` is a success; the detail is the ``error N at D depth lookup: ...`` line."""
    ok = returncode == 0 and stdout.strip().endswith(": OK")
    return ok, "" if ok else (_verify_error(stdout + stderr) or "signature does not verify")


def parse_verify_many(stdout: str, stderr: str, paths: Sequence[str]) -> Dict[str, Tuple[bool, str]]:
    """Interpret ``openssl verify ... -- P1 P2 ...``: path -> (ok, detail).

    A path is OK only when stdout has the exact line ``P: OK``; a failure is
    the stderr line ``error P: verification failed``, whose detail is the
    ``error N at D depth lookup: ...`` line printed before it.  A path with
    neither line has no verdict and counts as a failure."""
    wanted = set(paths)
    result: Dict[str, Tuple[bool, str]] = {}
    for line in stdout.splitlines():
        if line.endswith(": OK") and line[:-4] in wanted:
            result[line[:-4]] = (True, "")
    detail = ""
    for line in stderr.splitlines():
        text = line.strip()
        m = _VERIFY_ERROR.match(text)
        if m:
            detail = m.group(1)
            continue
        if text.startswith("error ") and text.endswith(": verification failed"):
            path = text[len("error "):-len(": verification failed")]
            if path in wanted:
                result[path] = (False, detail or "signature does not verify")
            detail = ""
    for path in paths:          # a failure line overrides an OK line above; no line: no verdict
        result.setdefault(path, (False, "no verdict from openssl"))
    return result
