"""The --watch daemon's voice: one line per event on stderr and syslog; its state to systemd.

``text`` lines carry an ISO UTC time unless stderr is systemd's journal (which
stamps lines itself); ``json`` lines always do.  ``--syslog`` also sends each
event to syslog (facility daemon) without ever blocking the daemon.
``OCSPTOOLS_SYSLOG_SOCKET`` (for tests) replaces ``/dev/log``.  ``sd_notify``
tells systemd (``Type=notify``) READY, STATUS and STOPPING.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
from datetime import datetime
from typing import Dict, Optional

from ..errors import UsageError
from ..staple import iso
from .options import Clock, utcnow


class SyslogSender:
    """RFC 3164-style datagrams (``<PRI>ident[pid]: text``, facility daemon) to the syslog socket.

    Never blocks: the socket is non-blocking and a message the syslog daemon has no room for
    is dropped (and counted) rather than stopping renewals; a restarted syslog daemon is
    reconnected to.  (logging's SysLogHandler blocks on a full queue.)"""

    FACILITY = 3                            # daemon
    SEVERITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                logging.CRITICAL: 2}

    def __init__(self, address: str, ident: str) -> None:
        self.address = address
        self.ident = ident
        self.sock: Optional[socket.socket] = None
        self.dropped = 0
        self._connect()                     # OSError at start: the caller says what to do

    def _connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.setblocking(False)
        try:
            s.connect(self.address)
        except OSError:
            s.close()
            raise
        self.sock = s

    def send(self, level: int, text: str) -> None:
        pri = self.FACILITY * 8 + self.SEVERITY.get(level, 6)
        msg = f"<{pri}>{self.ident}[{os.getpid()}]: {text}".encode("utf-8", "replace")[:8192]
        for _ in range(2):
            try:
                if self.sock is None:
                    self._connect()
                assert self.sock is not None
                self.sock.send(msg)
                return
            except BlockingIOError:
                break                       # the syslog daemon is behind: drop this one
            except OSError:
                if self.sock is not None:
                    self.sock.close()
                self.sock = None            # restarted syslog daemon: connect again, once
        self.dropped += 1

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class EventLog:
    """One line per event: stderr (text or json), and syslog with --syslog."""

    def __init__(self, prog: str, fmt: str = "text", *, syslog: bool = False,
                 stream=None, clock: Clock = utcnow) -> None:
        self.prog = prog
        self.fmt = fmt
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.stamp = not os.environ.get("JOURNAL_STREAM")     # the journal stamps lines itself
        self._lock = threading.Lock()
        self.syslog: Optional[SyslogSender] = None
        if syslog:
            address = os.environ.get("OCSPTOOLS_SYSLOG_SOCKET") or "/dev/log"
            try:
                self.syslog = SyslogSender(address, prog)
            except OSError as exc:
                raise UsageError(f"--syslog: cannot reach the syslog socket {address}: "
                                 f"{exc.strerror or exc} (is a syslog daemon running? under "
                                 f"systemd stderr already goes to the journal)") from None

    def event(self, event: str, text: str = "", *, level: int = logging.INFO, **fields) -> None:
        now = self.clock()
        fields = {k: v for k, v in fields.items() if v is not None and v != ""}
        if self.fmt == "json":
            record: Dict[str, object] = {"time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                      "event": event}
            if text:
                record["message"] = text
            for k, v in fields.items():
                record[k] = iso(v) if isinstance(v, datetime) else v
            line = json.dumps(record, sort_keys=False)
        else:
            line = f"{event} {text}".rstrip().replace("\n", " ")
            if self.stamp:
                line = f"{iso(now)} {line}"
        plain = f"{event} {text}".rstrip().replace("\n", " ")
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            if self.syslog is not None:
                self.syslog.send(level, plain)

    def close(self) -> None:
        if self.syslog is not None:
            self.syslog.close()


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) about READY=1 / STOPPING=1 / STATUS=...; no-op elsewhere."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(address)
            s.sendall(state.encode())
    except OSError:
        pass
