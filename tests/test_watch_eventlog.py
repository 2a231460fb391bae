"""ocsptools/watch/eventlog.py: the event log (stderr text or JSON, syslog that never blocks) and
systemd's notify socket."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest

from ocsptools.errors import UsageError
from ocsptools.watch.eventlog import EventLog, sd_notify

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)


def test_json_lines_carry_an_iso_utc_time_and_fields():
    out = io.StringIO()
    log = EventLog("ocsp-renew-dir", "json", stream=out, clock=lambda: T0.replace(microsecond=250000))
    log.event("failed", "/c/a.pem: connection refused; retry 2 in 2m", cert="/c/a.pem",
              next=T0 + timedelta(minutes=2), failures=2, empty="", nothing=None)
    rec = json.loads(out.getvalue())
    assert rec == {"time": "2026-11-28T12:00:00.250Z", "event": "failed",
                   "message": "/c/a.pem: connection refused; retry 2 in 2m", "cert": "/c/a.pem",
                   "next": "2026-11-28T12:02:00Z", "failures": 2}


@pytest.mark.parametrize("journal,text,line", [
    (None, "a\nb", "2026-11-28T12:00:00Z renewed a b\n"),     # one line, stamped
    ("8:1234", "x", "renewed x\n"),                           # the journal stamps lines itself
])
def test_text_lines_are_one_line_with_a_time_unless_under_the_journal(monkeypatch, journal, text, line):
    if journal is None:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    else:
        monkeypatch.setenv("JOURNAL_STREAM", journal)
    out = io.StringIO()
    EventLog("p", "text", stream=out, clock=lambda: T0).event("renewed", text)
    assert out.getvalue() == line


def test_syslog_receives_each_event(tmp_path, monkeypatch):
    path = str(tmp_path / "log.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    monkeypatch.setenv("OCSPTOOLS_SYSLOG_SOCKET", path)
    try:
        log = EventLog("ocsp-renew-dir", "text", syslog=True, stream=io.StringIO())
        log.event("renewed", "/c/a.pem: good until X")
        log.event("revoked", "/c/b.pem: REVOKED", level=logging.ERROR)
        first = server.recv(4096).decode()
        second = server.recv(4096).decode()
        log.close()
    finally:
        server.close()
    # facility daemon (3): info = <30>, err = <27>
    assert first.startswith(f"<30>ocsp-renew-dir[{os.getpid()}]: renewed /c/a.pem: good until X"), first
    assert second.startswith("<27>") and "revoked /c/b.pem: REVOKED" in second, second


def test_a_syslog_daemon_that_falls_behind_never_blocks_the_log(tmp_path, monkeypatch):
    path = str(tmp_path / "slow.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)                       # bound, never read: its queue fills up
    monkeypatch.setenv("OCSPTOOLS_SYSLOG_SOCKET", path)
    try:
        log = EventLog("ocsp-renew-dir", "text", syslog=True, stream=io.StringIO())
        start = time.monotonic()
        for i in range(300):
            log.event("renewed", f"/c/{i}.pem")
        assert time.monotonic() - start < 2.0
        assert log.syslog is not None and 0 < log.syslog.dropped < 300
        log.close()
    finally:
        server.close()


def test_syslog_unreachable_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv("OCSPTOOLS_SYSLOG_SOCKET", str(tmp_path / "none.sock"))
    with pytest.raises(UsageError, match="cannot reach the syslog socket"):
        EventLog("ocsp-renew-dir", "text", syslog=True)


def test_sd_notify_sends_to_notify_socket_and_is_quiet_without_one(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        sd_notify("READY=1\nSTATUS=x")
        assert server.recv(1024) == b"READY=1\nSTATUS=x"
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
        sd_notify("STOPPING=1")             # systemd went away: nothing raised
        monkeypatch.delenv("NOTIFY_SOCKET")
        sd_notify("STOPPING=1")
    finally:
        server.close()
