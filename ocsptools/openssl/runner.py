"""Running the openssl binary: plumbum, the child's environment, timeouts, watchdog, version probe.

Every child runs from an argument list (never a shell string) with ``LC_ALL=C`` and the system
CA bundle hidden (``SSL_CERT_FILE=/dev/null``; the argument lists add ``-no-CApath -no-CAstore``),
which also saves 20-30 ms per process.  Every run has a time budget (the handle's timeout, bounded
by its deadline); one watchdog thread kills a child that overstays it.  Both streams are read and
returned decoded: interpreting them is the parsers' job.  Before its first real command a handle
probes the binary once (``openssl version``): a missing, failing or foreign program is an
OpensslError then, before any output of it could be misread as a verdict on the user's files.
"""

from __future__ import annotations

import heapq
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from ..errors import OpensslError
from . import argv

__all__ = ["CHILD_ENV", "MIN_VERSION", "Completed", "Runner", "interpret_version"]

CHILD_ENV = {
    "LC_ALL": "C",
    "LANG": "C",
    "LANGUAGE": "C",
    # Hide the system bundle: every verification names its own -CAfile.
    "SSL_CERT_FILE": os.devnull,
    "SSL_CERT_DIR": os.devnull,
}


@dataclass(frozen=True)
class Completed:
    argv: Tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


#: What ``openssl version`` prints first: ``OpenSSL 3.0.19 27 Jan 2026 (Library: ...)``.
_VERSION_RE = re.compile(r"^OpenSSL (\d+)\.(\d+)\.(\d+)\S*(?:\s|$)")
#: The oldest openssl whose ``ocsp``, ``storeutl`` and ``s_client`` ocsptools drives.
MIN_VERSION = (1, 1)
_FIX = "give a working one with --openssl PATH"


def interpret_version(binary: str, returncode: int, stdout: str, stderr: str) -> str:
    """The version line of ``BINARY version``, or OpensslError saying what BINARY did (pure).

    A missing, failing or foreign program in openssl's place is an environment problem, never
    a verdict on the user's files: it must be told apart before any real command runs (a
    ``/bin/true`` answers every command with exit 0 and no output, which would otherwise read as
    "not a certificate" or "not an OCSP response")."""
    first = next((line.strip() for line in stdout.splitlines() if line.strip()), "")
    call = f"'{binary} version'"
    if returncode != 0:
        how = (f"was killed by signal {-returncode}" if returncode < 0
               else f"exited with status {returncode}")
        said = next((line.strip() for line in (stderr + "\n" + stdout).splitlines() if line.strip()), "")
        said = f" ({_clip(said)!r})" if said else ", printing nothing"
        raise OpensslError(f"openssl does not work: {call} {how}{said}; {_FIX}")
    if not first:
        raise OpensslError(f"openssl does not work: {call} printed nothing; {_FIX}")
    m = _VERSION_RE.match(first)
    if m is None:
        raise OpensslError(f"not openssl: {call} printed {_clip(first)!r}; give the openssl binary "
                           f"with --openssl PATH")
    if (int(m.group(1)), int(m.group(2))) < MIN_VERSION:
        raise OpensslError(f"openssl too old: {call} printed {_clip(first)!r}; ocsptools needs "
                           f"OpenSSL {MIN_VERSION[0]}.{MIN_VERSION[1]} or later (--openssl PATH)")
    return first


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Watch:
    __slots__ = ("deadline", "proc", "killed", "done")

    def __init__(self, deadline: float, proc: "subprocess.Popen[bytes]") -> None:
        self.deadline, self.proc, self.killed, self.done = deadline, proc, False, False

    def __lt__(self, other: "_Watch") -> bool:
        return self.deadline < other.deadline


class _Watchdog:
    """One daemon thread that kills children past their deadline (started on first use)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: List[_Watch] = []
        self._thread: Optional[threading.Thread] = None

    def watch(self, proc: "subprocess.Popen[bytes]", deadline: float) -> _Watch:
        w = _Watch(deadline, proc)
        with self._cond:
            heapq.heappush(self._heap, w)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="openssl-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0] is w:
                self._cond.notify()
        return w

    def unwatch(self, w: _Watch) -> None:
        with self._cond:
            w.done = True           # lazily dropped from the heap

    def _loop(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                first = self._heap[0]
                delay = first.deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                first.killed = True
                try:
                    first.proc.kill()
                except OSError:
                    pass


_WATCHDOG = _Watchdog()


class Runner:
    """A handle on one openssl binary that runs it.  One instance per run; safe to share across
    threads.  ``spawned`` counts the children it started (the probe included)."""

    def __init__(self, binary: str = "openssl", timeout: float = 10.0,
                 deadline: Optional[float] = None) -> None:
        self.binary = binary
        self.timeout = timeout
        self.deadline = deadline            # time.monotonic() value bounding every child
        self._cmd: Optional[Any] = None
        self.spawned = 0                    # how many children this handle started (probe included)
        # The probe (``openssl version``) runs once, before the first real command: its version
        # line, or the OpensslError that says why this binary cannot be used.
        self._probe_lock = threading.Lock()
        self._version: Optional[str] = None
        self._unusable: Optional[OpensslError] = None

    def _command(self) -> Any:
        if self._cmd is None:
            from plumbum import local
            from plumbum.commands.processes import CommandNotFound
            try:
                if os.sep in self.binary:
                    if not os.access(self.binary, os.X_OK) or os.path.isdir(self.binary):
                        raise CommandNotFound(self.binary, [])
                    cmd = local[local.path(self.binary)]
                else:
                    cmd = local[self.binary]
            except CommandNotFound:
                raise OpensslError(
                    f"openssl not found ({self.binary!r}): install the openssl package "
                    f"or name the binary with --openssl PATH") from None
            self._cmd = cmd.with_env(**CHILD_ENV)
        return self._cmd

    @property
    def name(self) -> str:
        """The binary as messages name it: ``openssl``, ``/opt/bin/openssl``, ``openssl (/bin/true)``."""
        base = os.path.basename(self.binary)
        return self.binary if base == "openssl" else f"openssl ({self.binary})"

    def budget(self, timeout: Optional[float] = None) -> float:
        """Seconds a child may run now: TIMEOUT (default: the handle's), bounded by the deadline;
        OpensslError once the deadline has passed."""
        budget = self.timeout if timeout is None else timeout
        if self.deadline is not None:
            budget = min(budget, self.deadline - time.monotonic())
        if budget <= 0:
            raise OpensslError("time limit reached before openssl could run")
        return budget

    def probe(self) -> str:
        """Probe the binary once per handle (thread-safe), before its first real command; the
        version line, or the same OpensslError on every call once it failed.  A run that needs
        no openssl never calls this: nothing is spawned for it."""
        if self._version is not None:
            return self._version
        with self._probe_lock:
            if self._version is None and self._unusable is None:
                try:
                    res = self._spawn(argv.version(), None, self.budget())
                    self._version = interpret_version(self.binary, res.returncode, res.stdout,
                                                      res.stderr)
                except OpensslError as exc:
                    self._unusable = exc
            if self._unusable is not None:
                raise OpensslError(str(self._unusable), path=self._unusable.path)
            assert self._version is not None
            return self._version

    @property
    def unusable(self) -> Optional[OpensslError]:
        """Why the probe found this binary unusable; None if it passed or has not run."""
        return self._unusable

    def run(self, args: Sequence[str], *, stdin: Optional[bytes] = None,
            timeout: Optional[float] = None) -> Completed:
        """Run ``openssl ARGS``; kill it if it overstays; return both streams decoded.

        The first call of a handle probes the binary (``probe``): a missing, failing or foreign
        program raises OpensslError here, before any command whose output would be misread."""
        self.budget(timeout)                # past the deadline: say so, probe or not
        self.probe()
        return self._spawn(args, stdin, self.budget(timeout))

    def _popen(self, args: Sequence[str], stdin: Optional[bytes]) -> "subprocess.Popen[bytes]":
        cmd = self._command()
        try:
            proc = cmd.popen(list(args), stdin=subprocess.PIPE if stdin is not None else
                             subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise OpensslError(f"cannot run {self.name}: {exc.strerror or exc}") from None
        self.spawned += 1
        return proc

    def _spawn(self, args: Sequence[str], stdin: Optional[bytes], budget: float) -> Completed:
        completed, killed = self._exchange(args, stdin, budget)
        if killed:
            raise OpensslError(f"{self.name} {args[0]} timed out after {budget:.0f} s and was killed")
        return completed

    def _exchange(self, args: Sequence[str], stdin: Optional[bytes],
                  budget: float) -> Tuple[Completed, bool]:
        """Run ``openssl ARGS`` with STDIN; the watchdog kills it after BUDGET seconds: (what it
        printed, whether it was killed)."""
        proc = self._popen(args, stdin)
        # The watchdog kills an overdue child; communicate() then waits for it blocking.
        # (communicate(timeout=) makes CPython poll for the exit with sleeps, and a timer
        # thread per run costs a thread start: both add up over thousands of certificates.)
        watch = _WATCHDOG.watch(proc, time.monotonic() + budget)
        try:
            out, err = proc.communicate(stdin)
        except BaseException:
            proc.kill()
            proc.communicate()
            raise
        finally:
            _WATCHDOG.unwatch(watch)
        return (Completed(tuple(args), proc.returncode, out.decode("utf-8", "replace"),
                          err.decode("utf-8", "replace")), watch.killed)

    def run_killable(self, args: Sequence[str], stdin: bytes, budget: float) -> Tuple[Completed, bool]:
        """Like ``run`` (probe first), but a child killed after BUDGET seconds still yields what it
        printed so far: (completed, timed out)."""
        self.probe()
        return self._exchange(args, stdin, budget)
