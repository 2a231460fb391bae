"""Helpers shared by the benchmarks: medians, peak RSS of a child, BENCHMARKS.md sections."""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import time
from pathlib import Path
from typing import Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"


def timed(argv: Sequence[str], **kwargs) -> Tuple[float, int, subprocess.CompletedProcess]:
    """Run ARGV; return (wall seconds, peak RSS of the child in KiB, result).

    Peak RSS comes from wait4()'s rusage for exactly this child (and what it waited for)."""
    start = time.monotonic()
    proc = subprocess.Popen(list(argv), stdout=kwargs.pop("stdout", subprocess.PIPE),
                            stderr=kwargs.pop("stderr", subprocess.PIPE), **kwargs)
    out, err = proc.communicate()
    _, status, usage = os.wait4(proc.pid, 0) if proc.returncode is None else (0, 0, None)
    wall = time.monotonic() - start
    rss = usage.ru_maxrss if usage else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, rss, subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) this benchmark's section of BENCHMARKS.md."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n\nRun with `make bench`; every ratio is measured side by side in one run.\n"
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{markdown.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.write_text(text)
