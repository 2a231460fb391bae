"""ocsp-renew-dir's output: the TSV report lines, the progress counter, ocspbot's log files."""

from __future__ import annotations

import os
import sys
from typing import IO, Optional

from ..errors import ConfigError
from ..renewal import Report


class Printer:
    """TSV lines to stdout (or ocspbot's output_log); progress on a terminal's stderr only."""

    def __init__(self, prog: str, out: IO[str], quiet: bool) -> None:
        self.prog = prog
        self.out = out
        self.quiet = quiet
        self.tty = isatty(sys.stderr)
        self._progress_shown = False

    def line(self, rep: Report) -> None:
        if self.quiet:
            return
        self.clear()
        self.out.write(rep.tsv() + "\n")
        self.out.flush()

    def progress(self, done: int, total: int) -> None:
        if not self.tty or total < 10:
            return
        sys.stderr.write(f"\r{self.prog}: {done}/{total} renewed or tried ")
        sys.stderr.flush()
        self._progress_shown = True

    def clear(self) -> None:
        if self._progress_shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self._progress_shown = False


def isatty(stream) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return False


class LazyFile:
    """ocspbot's output_log/error_log: opened (append) only when something is written."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fh: Optional[IO[str]] = None

    def write(self, text: str) -> None:
        if self.fh is None:
            try:
                self.fh = open(self.path, "a")
            except OSError as exc:
                raise ConfigError(f"{self.path}: cannot open the log file: {exc.strerror}") from None
        self.fh.write(text)

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
