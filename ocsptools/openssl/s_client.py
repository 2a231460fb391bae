"""Reading ``openssl s_client -status -showcerts -msg`` (ocsp-check's live mode): report, -msg dump.

Pure: the facade runs s_client (``OpenSSL.s_client``) and hands its stdout, stderr and message
dump to ``interpret_s_client``.  The staple and the chain are taken from the handshake bytes the
server sent (``-msg``, decoded by ``ocsptools.codec.tls``), not from openssl's text; the text (the
``-showcerts`` PEM and the ``OCSP response:`` line) is kept to cross-check them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..codec.pem import split_pem_certs
from ..codec.tls import ServerHandshake, TlsMessage, server_handshake
from .parse import ERR_LINE, openssl_error_reasons

__all__ = ["parse_msg_dump", "SClientReport", "first_error_detail", "parse_s_client",
           "LiveHandshake", "interpret_s_client"]

_MSG_HEAD = re.compile(r"^(?P<dir><<<|>>>) (?P<version>[^,\[]+), (?P<kind>[A-Za-z ]+?) "
                       r"\[length (?P<length>[0-9a-fA-F]+)\](?:, (?P<name>.*))?$")
_HEX_BYTE = re.compile(r"^[0-9a-fA-F]{2}$")


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
        if not ERR_LINE.match(line):
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
        if starttls_error is None and not ERR_LINE.match(line.strip()) and _STARTTLS_ERROR.search(line):
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
