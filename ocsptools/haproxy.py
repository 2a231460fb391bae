"""HAProxy's runtime API: hand a running HAProxy a renewed staple without a reload.

HAProxy reads ``<crt>.ocsp`` only when it starts (or reloads); the running
process takes a new response only through its runtime API (an admin-level
``stats socket``)::

    set ssl ocsp-response <base64 of the DER response>

It matches the response to a loaded certificate by its CertID and answers
``OCSP Response updated!``; anything else (``Certificate ID does not match
any certificate``, ``OCSP single response: ... no longer valid``,
``Unable to parse OCSP response``, ``Permission denied``) is a refusal.

``push(socket, der)`` returns a ``PushResult``; it never raises for a refusal
or an unreachable socket (the caller reports it as part of the staple's
line), so one bad HAProxy cannot hide the other staples' results.  This is
the built-in form of ``contrib/haproxy/haproxy-ocsp-push``.  ``pusher(sockets,
timeout)`` is ``--haproxy-socket``: the driver's ``after_install`` hook, the same
for a one-shot run and for ``--watch``.

SOCKET is a unix socket path (``unix@/path`` also accepted) or ``HOST:PORT``
(``ipv4@``/``ipv6@`` prefixes accepted) of a TCP stats socket.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from .staple import Staple

UPDATED = "OCSP Response updated"
#: HAProxy answers in well under a kilobyte; anything longer is not its runtime API.
MAX_ANSWER = 64 * 1024


@dataclass(frozen=True)
class PushResult:
    socket: str
    ok: bool
    message: str            # HAProxy's answer (first line), or why it could not be asked

    def describe(self) -> str:
        """One clause for a TSV detail or a log line."""
        if self.ok:
            return f"pushed to HAProxy {self.socket}"
        return f"HAProxy {self.socket} did not take it: {self.message}"


def _address(spec: str) -> Tuple[int, object]:
    """(address family, address) of a stats socket spec."""
    raw = spec
    for prefix in ("unix@", "ipv4@", "ipv6@"):
        if raw.startswith(prefix):
            raw = raw[len(prefix):]
            break
    if spec.startswith("unix@") or "/" in raw or os.path.exists(raw):
        return socket.AF_UNIX, raw
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"{spec}: not a socket path or HOST:PORT")
    return socket.AF_UNSPEC, (host.strip("[]"), int(port))


def check_spec(spec: str) -> None:
    """Raise ValueError (with a one-line message) when SPEC cannot name a stats socket."""
    _address(spec)


def command(spec: str, line: str, *, timeout: float = 10.0) -> str:
    """Send one runtime-API command; return HAProxy's whole answer.  OSError on failure."""
    family, addr = _address(spec)
    deadline = time.monotonic() + timeout
    if family == socket.AF_UNIX:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(addr)              # type: ignore[arg-type]
        except OSError:
            sock.close()
            raise
    else:
        sock = socket.create_connection(addr, timeout=timeout)  # type: ignore[arg-type]
    with sock:
        sock.sendall(line.encode("ascii") + b"\n")
        chunks = []
        total = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no complete answer in time")
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                break
            total += len(data)
            if total > MAX_ANSWER:
                raise OSError("answer too long; is this HAProxy's stats socket?")
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def push(spec: str, der: bytes, *, timeout: float = 10.0) -> PushResult:
    """``set ssl ocsp-response <base64>``: did HAProxy take the response DER?"""
    try:
        answer = command(spec, "set ssl ocsp-response " + base64.b64encode(der).decode("ascii"),
                         timeout=timeout)
    except ValueError as exc:
        return PushResult(spec, False, str(exc))
    except socket.timeout:
        return PushResult(spec, False, f"no answer within {timeout:g} s")
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return PushResult(spec, False, f"cannot reach the runtime API ({reason}); check the "
                                       f"'stats socket ... level admin' line and the path")
    lines = [l.strip() for l in answer.splitlines() if l.strip()]
    first = lines[0] if lines else ""
    if first.startswith(UPDATED):
        return PushResult(spec, True, first)
    text = " ".join(lines) or "no answer"
    if "Permission denied" in text:
        text += " (the stats socket needs 'level admin')"
    return PushResult(spec, False, f"refused: {text}")


def pusher(sockets: Sequence[str], timeout: float,
           on_result: Optional[Callable[[PushResult], None]] = None
           ) -> Callable[[object, "Staple"], Optional[str]]:
    """The driver's ``after_install`` hook for ``--haproxy-socket``: push each installed staple
    to every socket in turn; return why HAProxy did not take it (one clause per socket that
    refused, ``; ``-joined), or None.  ON_RESULT sees every push (the daemon counts them); the
    hook runs in the driver's worker threads."""
    specs = tuple(sockets)

    def after_install(_item: object, staple: "Staple") -> Optional[str]:
        problems: List[str] = []
        for spec in specs:
            res = push(spec, staple.der, timeout=timeout)
            if on_result is not None:
                on_result(res)
            if not res.ok:
                problems.append(res.describe())
        return "; ".join(problems) or None
    return after_install
