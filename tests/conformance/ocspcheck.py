"""The product's opinion on a corpus case: ``ocsp-check --json``, mapped into the verdict classes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple

if TYPE_CHECKING:
    from .corpus import Case


def command() -> str:
    """The installed console script beside the running interpreter (the virtualenv's)."""
    return str(Path(sys.executable).parent / "ocsp-check")


@dataclass(frozen=True)
class Verdict:
    verdict: str                 # good | revoked | unknown | refuse | error
    report: Optional[dict]       # the JSON object, None when there was none
    argv: Tuple[str, ...]
    rc: int
    stderr: str


def argv(case: "Case") -> list:
    return [command(), "--json", "--cert", str(case.leaf), "-i", str(case.issuer), str(case.response)]


def run(case: "Case", timeout: float = 30) -> Verdict:
    args = argv(case)
    cp = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                        env=dict(os.environ, LC_ALL="C"))
    try:
        report = json.loads(cp.stdout.splitlines()[0])
    except (IndexError, ValueError):
        return Verdict("error", None, tuple(args), cp.returncode, cp.stderr)
    return Verdict(classify(report), report, tuple(args), cp.returncode, cp.stderr)


def classify(report: dict) -> str:
    """good: verified, status good and state OK; revoked/unknown: that verified status; else refuse."""
    status = report.get("cert_status")
    if not report.get("verified") or status not in ("good", "revoked", "unknown"):
        return "refuse"
    if status == "good":
        return "good" if report.get("state") == "OK" else "refuse"
    return status
