"""What every command shares: ``run`` (errors to one line and an exit status), argparse, the clock.

The argparse never exits on its own (``UsageError``); the exit statuses are ``.status``."""

from __future__ import annotations

import argparse
import math
import os
import sys
from datetime import datetime
from typing import Callable, List, Optional, Sequence

from dateutil import tz

from .. import __version__
from ..errors import OcspToolsError, UsageError
from .status import ExitTable     # the statuses themselves: .status (ExitStatus, ExitTable)


def utcnow() -> datetime:
    """The one clock the commands read; everything below takes ``now`` as an argument."""
    return datetime.now(tz.UTC).replace(microsecond=0)


class _Exit(Exception):
    """argparse wanted to exit (--help, --version): carry its status out to ``run``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting with 2."""

    def error(self, message: str) -> "None":  # type: ignore[override]
        raise UsageError(f"{message} (see --help)")

    def exit(self, status: int = 0, message: Optional[str] = None) -> "None":  # type: ignore[override]
        if message:
            sys.stderr.write(message)
        raise _Exit(status)


def version_string(prog: str) -> str:
    return f"{prog} (ocsptools) {__version__}"


def run(prog: str, main: Callable[[List[str]], int], table: ExitTable,
        argv: Optional[Sequence[str]] = None,
        format_error: Optional[Callable[[str, BaseException], str]] = None) -> int:
    """Run MAIN and turn every failure into one line on stderr and a documented status."""
    args = list(sys.argv[1:] if argv is None else argv)
    fmt = format_error or (lambda p, e: f"{p}: {e}")
    try:
        return main(args)
    except _Exit as exc:
        return table.help if exc.status == 0 else table.code_for(UsageError(""))
    except OcspToolsError as exc:
        _emit(fmt(prog, exc))
        return table.code_for(exc)
    except KeyboardInterrupt:
        _emit(f"{prog}: interrupted")
        return table.interrupted
    except BrokenPipeError:
        _quiet_broken_pipe()
        return table.code_for(OSError())
    except OSError as exc:      # an environment failure no service translated: still one line
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _emit(fmt(prog, RuntimeError(f"{where}{exc.strerror or exc}")))
        return table.code_for(exc)
    except Exception as exc:  # a bug: still one line, never a traceback
        _emit(fmt(prog, RuntimeError(f"internal error: {type(exc).__name__}: {exc} "
                                     f"(please report this; set OCSPTOOLS_DEBUG=1 for a traceback)")))
        if os.environ.get("OCSPTOOLS_DEBUG"):
            raise
        return table.internal


def _emit(line: str) -> None:
    try:
        sys.stderr.write(line.replace("\n", " ") + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass


def _quiet_broken_pipe() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def finite_float(text: str, *, allow_zero: bool = False) -> float:
    """A finite number above zero (or at least zero with ALLOW_ZERO), for argparse ``type=``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):                    # nan and inf parse as floats
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}" if allow_zero
                                         else f"must be positive: {text!r}")
    return value


def positive_float(text: str) -> float:
    return finite_float(text)


def nonnegative_float(text: str) -> float:
    return finite_float(text, allow_zero=True)
