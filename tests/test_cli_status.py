"""One ExitStatus for every command (ocsptools/cli/status.py): its numbers are the ones the man
pages document, ocsp-check's Nagios states are aliases of the same numbers, and every command's
ExitTable maps exceptions to documented statuses only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ocsptools import nagios
from ocsptools.cli import check, fetch, proxy, renew_dir
from ocsptools.cli.status import ExitStatus, ExitTable
from ocsptools.errors import (ConfigError, FetchError, InputError, LockBusy, NotApplicable,
                              OcspToolsError, OpensslError, Revoked, StoreError, UsageError)

MAN = Path(__file__).resolve().parent.parent / "man"
COMMANDS = {"ocsp-check": check, "ocsp-fetch": fetch, "ocsp-proxy": proxy,
            "ocsp-renew-dir": renew_dir}


def documented(command: str) -> set:
    """The statuses of COMMAND's man page EXIT STATUS section (its ``.B N`` items)."""
    text = (MAN / f"{command}.1").read_text()
    section = text.split(".SH EXIT STATUS", 1)[1].split("\n.SH", 1)[0]
    return {int(n) for n in re.findall(r"^\.B (\d+)$", section, re.M)}


@pytest.mark.parametrize("member, value", [
    ("OK", 0), ("FAILED", 1), ("USAGE", 2), ("NOT_APPLICABLE", 3), ("REVOKED", 4),
    ("INTERRUPTED", 130), ("WARNING", 1), ("CRITICAL", 2), ("UNKNOWN", 3)])
def test_members_and_their_numbers(member, value):
    assert ExitStatus[member] == value and isinstance(ExitStatus[member], int)


@pytest.mark.parametrize("state, status", [(nagios.OK, ExitStatus.OK),
                                           (nagios.WARNING, ExitStatus.WARNING),
                                           (nagios.CRITICAL, ExitStatus.CRITICAL),
                                           (nagios.UNKNOWN, ExitStatus.UNKNOWN)])
def test_nagios_states_are_the_aliases(state, status):
    assert ExitStatus(state) is status


def test_aliases_are_the_same_members():
    assert ExitStatus.WARNING is ExitStatus.FAILED
    assert ExitStatus.CRITICAL is ExitStatus.USAGE
    assert ExitStatus.UNKNOWN is ExitStatus.NOT_APPLICABLE


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_status_of_a_table_is_documented(command):
    table: ExitTable = COMMANDS[command].EXITS
    used = {code for _, code in table.codes} | {table.internal, table.help}
    assert all(isinstance(code, ExitStatus) for code in used)
    assert used <= documented(command), (command, used, documented(command))


@pytest.mark.parametrize("command, exc, status", [
    ("ocsp-fetch", UsageError("x"), 2), ("ocsp-fetch", InputError("x"), 2),
    ("ocsp-fetch", NotApplicable("x"), 3), ("ocsp-fetch", Revoked("x"), 4),
    ("ocsp-fetch", FetchError("x"), 1), ("ocsp-fetch", StoreError("x"), 1),
    ("ocsp-fetch", OpensslError("x"), 1), ("ocsp-fetch", OSError(), 1),
    ("ocsp-fetch", LockBusy("x"), 1),
    ("ocsp-renew-dir", UsageError("x"), 2), ("ocsp-renew-dir", ConfigError("x"), 2),
    ("ocsp-renew-dir", InputError("x"), 2), ("ocsp-renew-dir", LockBusy("x"), 2),
    ("ocsp-renew-dir", StoreError("x"), 1), ("ocsp-renew-dir", OpensslError("x"), 1),
    ("ocsp-renew-dir", OSError(), 1), ("ocsp-renew-dir", FetchError("x"), 1),
    ("ocsp-proxy", UsageError("x"), 2), ("ocsp-proxy", InputError("x"), 2),
    ("ocsp-proxy", FetchError("x"), 1), ("ocsp-proxy", Revoked("x"), 1),
    ("ocsp-proxy", StoreError("x"), 1), ("ocsp-proxy", OpensslError("x"), 1),
    ("ocsp-proxy", OSError(), 1),
    ("ocsp-check", UsageError("x"), 3), ("ocsp-check", OcspToolsError("x"), 3),
    ("ocsp-check", OSError(), 3), ("ocsp-check", RuntimeError(), 3),
])
def test_tables(command, exc, status):
    assert COMMANDS[command].EXITS.code_for(exc) == status


@pytest.mark.parametrize("command, help_status, interrupted", [
    ("ocsp-check", 3, 3), ("ocsp-fetch", 0, 130), ("ocsp-proxy", 0, 130), ("ocsp-renew-dir", 0, 130)])
def test_help_and_interrupt(command, help_status, interrupted):
    table = COMMANDS[command].EXITS
    assert (table.help, table.interrupted) == (help_status, interrupted)
