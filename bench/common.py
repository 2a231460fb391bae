"""Helpers shared by the benchmarks: medians, peak RSS of a child, BENCHMARKS.md sections."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"


def timed(argv: Sequence[str], **kwargs) -> Tuple[float, int, subprocess.CompletedProcess]:
    """Run ARGV; return (wall seconds, peak RSS of the child in KiB, result).

    The child is reaped with wait4(), so the peak RSS is exactly this
    child's (ru_maxrss of the process itself; children it waited for
    are included by the kernel only if they were larger)."""
    import tempfile
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, **kwargs)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(list(argv), proc.returncode, out.read(), err.read())
    return wall, usage.ru_maxrss, result


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
