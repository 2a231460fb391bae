#!/usr/bin/env python3
"""`make bench`: run every bench/bench_*.py (or those named on the command line) in order.

Each benchmark measures its subject side by side with its baseline in the
same run, prints a Markdown section, and rewrites its own section of
BENCHMARKS.md (between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`).
Benchmarks only ever contact loopback addresses.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    if not names:
        print("bench: no benchmarks yet")
        return 0
    status = 0
    for name in names:
        script = HERE / f"bench_{name}.py"
        print(f"== bench {name}", flush=True)
        rc = subprocess.call([sys.executable, str(script)])
        if rc != 0:
            print(f"bench {name}: exit status {rc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
