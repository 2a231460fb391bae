"""The ``--on-change`` command: run through the shell with ``OCSP_CHANGED`` naming the staples.

File names travel only in the environment, never in the command string.
Used by ocsp-renew-dir after a run and by the --watch ``HookRunner`` per batch.
"""

from __future__ import annotations

import os
import subprocess
from typing import IO, Optional, Sequence, Tuple


def run_on_change(command: str, changed: Sequence[str], *, stdout: Optional[IO] = None,
                  new_session: bool = False) -> Tuple[Optional[int], str]:
    """Run COMMAND for the CHANGED staple paths (one a line in ``OCSP_CHANGED``); its output
    goes to STDOUT (a stream; None: ours).

    Returns (exit status, a one-line description of a failure or ""); the status is None when
    the command could not be started at all (e.g. too many names for the environment)."""
    env = dict(os.environ)
    env["OCSP_CHANGED"] = "\n".join(changed)
    try:
        proc = subprocess.run(command, shell=True, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                              start_new_session=new_session)
    except OSError as exc:
        return None, f"cannot run the --on-change command: {exc.strerror or exc}"
    if proc.returncode != 0:
        how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exited with status {proc.returncode}")
        return proc.returncode, f"the --on-change command {how}"
    return 0, ""
