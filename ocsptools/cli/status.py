"""The exit statuses of every command: one ``ExitStatus`` enum, and the ``ExitTable`` that maps exceptions to it.

Every number a command exits with is a member of ``ExitStatus`` (the man pages' EXIT STATUS
sections document the same numbers):

======  ================  ==========================================================
status  member            meaning
======  ================  ==========================================================
0       OK                success (ocsp-check: the Monitoring Plugins state OK)
1       FAILED            a fetch, verification, renewal or server failure
2       USAGE             usage, input or configuration error (a lock held elsewhere)
3       NOT_APPLICABLE    ocsp-fetch: the certificate names no OCSP responder
4       REVOKED           the certificate is revoked
130     INTERRUPTED       SIGINT (Control-C) ended the run
======  ================  ==========================================================

``ocsp-check`` is a monitoring plugin: its statuses are the Monitoring Plugins states, and
they are the same numbers, so they are aliases in the one enum: ``WARNING`` is 1 (``FAILED``),
``CRITICAL`` is 2 (``USAGE``), ``UNKNOWN`` is 3 (``NOT_APPLICABLE``); ``OK`` is 0 for both.
An alias is the same member (``ExitStatus.WARNING is ExitStatus.FAILED``): each command names
the members after its own documentation, and ``ExitStatus(nagios.worst(...))`` turns a
Nagios state into its exit status.  ``ocsptools.nagios`` keeps its plain-int states (0-3)
for the judgement; tests/test_cli_status.py checks that the two agree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Tuple, Type


class ExitStatus(enum.IntEnum):
    """What a command's process exits with (an ``int``: ``sys.exit`` takes it as is)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    NOT_APPLICABLE = 3
    REVOKED = 4
    INTERRUPTED = 130
    # ocsp-check: the Monitoring Plugins states, aliases of the members with the same number
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class ExitTable:
    """How one command maps the exception tree to its documented exit statuses.

    ``codes`` is searched in order; the first class the error is an instance
    of decides.  ``help`` is the status for --help/--version (OK for most
    commands, UNKNOWN for the Nagios-style ocsp-check)."""

    codes: Tuple[Tuple[Type[BaseException], ExitStatus], ...]
    internal: ExitStatus
    help: ExitStatus = ExitStatus.OK
    interrupted: ExitStatus = ExitStatus.INTERRUPTED

    def code_for(self, exc: BaseException) -> ExitStatus:
        for cls, code in self.codes:
            if isinstance(exc, cls):
                return code
        return self.internal
