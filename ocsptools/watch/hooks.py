"""``--on-change``: the command run once per batch of changed staples, in the background.

The daemon batches the staples a pass changed (``watchers.Batch``: after 1 s
without further changes, at most 10 s after the first) and submits each batch;
the runner never holds up renewals, and what the command did is logged.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import List

from ..hooks import run_on_change
from .eventlog import EventLog


class HookRunner:
    """Runs COMMAND (a shell command line) in its own thread for each submitted batch of changed
    staples (batches queued while it runs are merged into one run); ``OCSP_CHANGED`` lists them,
    one a line.  Counts runs and failures for the textfile."""

    def __init__(self, command: str, log: EventLog) -> None:
        self.command = command
        self.log = log
        self.runs = 0
        self.failures = 0
        self._queue: List[List[str]] = []
        self._cond = threading.Condition()
        self._busy = False
        self._thread = threading.Thread(target=self._loop, name="ocsp-on-change", daemon=True)
        self._thread.start()

    def submit(self, paths: List[str]) -> None:
        with self._cond:
            self._queue.append(paths)
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def wait(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue))
                paths: List[str] = []
                for batch in self._queue:
                    paths += [p for p in batch if p not in paths]
                self._queue = []
                self._busy = True
            try:
                self._run(paths)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _run(self, paths: List[str]) -> None:
        self.runs += 1
        status, problem = run_on_change(self.command, paths, stdout=sys.stderr, new_session=True)
        if status is None:
            self.failures += 1
            self.log.event("on-change-failed", problem, level=logging.ERROR, staples=len(paths))
        elif status != 0:
            self.failures += 1
            self.log.event("on-change-failed", f"{problem} ({len(paths)} changed staples)",
                           level=logging.ERROR, staples=len(paths), status=status)
        else:
            self.log.event("on-change", f"ran the --on-change command for {len(paths)} changed "
                                        f"staples", staples=len(paths))
