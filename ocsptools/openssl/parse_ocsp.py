"""Pure parsers of ``openssl ocsp`` text: the ``-resp_text`` dump, responder errors, nonce, verdict.

openssl is an untrusted oracle (``../shared/notes/openssl-cli.md``): exit codes lie (revoked
exits 0, a failed verification still prints ``good``), so both streams are read.  The signature
verdict comes only from stderr's ``Response verify OK``; a certificate's status only from the
summary line that starts with the exact ``-cert`` (or ``-serial``) argument.  The tests feed these
functions outputs recorded from real openssl runs (``tests/fixtures/openssl``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..codec.pem import split_pem_certs
from ..staple import ResponseInfo, SingleResponse, normalize_hex
from .argv import HASHES
from .parse import (ERR_LINE, cert_block_fields, first_reason, indent, openssl_error_reasons,
                    parse_time, serial_from_text, split_cert_blocks, to_certificate)

__all__ = ["RESPONSE_STATUSES", "parse_responder_error", "parse_resp_text", "parse_nonce",
           "parse_response", "Verdict", "SIGNATURE_PROBLEMS", "parse_verdict", "read_examined",
           "hash_algorithms"]

#: openssl prints response statuses in lower case; these are RFC 6960's names.
RESPONSE_STATUSES = {
    "successful": "successful",
    "malformedrequest": "malformedRequest",
    "internalerror": "internalError",
    "trylater": "tryLater",
    "sigrequired": "sigRequired",
    "unauthorized": "unauthorized",
}

#: The lines of one SingleResponse in ``-resp_text``: openssl's label -> (our key, converter).
SINGLE_FIELDS: Dict[str, Tuple[str, Callable[[str], Any]]] = {
    "Hash Algorithm": ("hash_algorithm", str),
    "Issuer Name Hash": ("issuer_name_hash", normalize_hex),
    "Issuer Key Hash": ("issuer_key_hash", normalize_hex),
    "Serial Number": ("serial", serial_from_text),
    "Cert Status": ("cert_status", str),
    "This Update": ("this_update", parse_time),
    "Next Update": ("next_update", parse_time),
    "Revocation Time": ("revocation_time", parse_time),
    "Revocation Reason": ("revocation_reason", lambda value: value.split(" (")[0]),
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
        if indent(raw) == 0 and line:
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
            spec = SINGLE_FIELDS.get(key)
            if spec is not None:
                name, convert = spec
                cur[name] = convert(value)
            elif line.startswith("Signature Algorithm"):
                close()
    close()
    if status is None:
        raise ValueError("no 'OCSP Response Status' in openssl output")
    certs = split_cert_blocks(lines[_index_after_response(lines):])
    info = ResponseInfo(response_status=status, produced_at=produced_at,
                        responder_id=responder_id, responses=tuple(singles))
    return info, [cert_block_fields(tuple(b)) for b in certs]


def _index_after_response(lines: Sequence[str]) -> int:
    for idx, line in enumerate(lines):
        if line.startswith("OCSP Response Data:"):
            return idx + 1
    return len(lines)


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
            if indent(lines[j]) <= indent(line):
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

    @property
    def signature_problem(self) -> Optional[str]:
        """Why the signature did not verify, as a code of ``SIGNATURE_PROBLEMS`` (None: no
        reason openssl gave is one of them)."""
        errs = set(self.verify_errors)
        return next((code for reasons, code in SIGNATURE_PROBLEMS if errs.intersection(reasons)),
                    None)


#: openssl's verification error reasons and what they mean, most specific first.  openssl looks
#: for the signer among the embedded certificates, then tries the issuer: an issuer-signed
#: response with a bad signature reports "signer certificate not found" from the first attempt too.
SIGNATURE_PROBLEMS = (
    (("unknown signature algorithm",), "unsupported-algorithm"),
    (("wrong public key type",), "wrong-key-type"),
    (("signature failure", "bad signature"), "bad-signature"),
    (("signer certificate not found",), "signer-not-embedded"),
    (("missing ocspsigning usage",), "not-delegated"),
    (("certificate has expired", "certificate is not yet valid"), "signer-out-of-time"),
    (("root ca not trusted", "unable to get local issuer certificate"), "not-chained"),
)


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
                while rest and (not rest[0].strip() or ERR_LINE.match(rest[0].strip())):
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


def read_examined(stdout: str, stderr: str, label: Optional[str]) -> Tuple[ResponseInfo, Optional[Verdict]]:
    """What one ``openssl ocsp -respin`` run said: the response, and the verdict on LABEL (the
    ``-cert``/``-serial`` argument) when one was asked about.  A status-only response (openssl
    prints no dump for tryLater and the like) comes back with its status alone and no verdict;
    anything else without a dump is ValueError ("not a DER OCSP response")."""
    if "OCSP Response Data:" not in stdout:
        status = parse_responder_error(stdout)
        if status is not None:
            return ResponseInfo(response_status=status), None
        reason = first_reason(stderr)
        raise ValueError("not a DER OCSP response" + (f" ({reason})" if reason else ""))
    info = parse_response(stdout)
    return info, (parse_verdict(stdout, stderr, label) if label is not None else None)


def hash_algorithms(info: ResponseInfo) -> Iterable[str]:
    """The CertID hash algorithms used in a response, in order, as openssl digest names."""
    seen: List[str] = []
    for single in info.responses:
        name = single.hash_algorithm.lower().replace("-", "")
        if name in HASHES and name not in seen:
            seen.append(name)
    return seen
