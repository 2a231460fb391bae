"""The reliability table (docs/reliability.md), written from what the tests observed.

Tests call ``record(area, scenario, command, expected, observed, lost)`` after their assertions
have passed.  Recording is off unless ``OCSPTOOLS_RELIABILITY_LOG`` names a file, so a normal
``make test`` writes nothing.

Regenerate the table (runs the hardening tests, slow ones included, about 5 minutes)::

    .venv/bin/python tests/reliability.py            # rewrites docs/reliability.md

``--log FILE`` only rebuilds the table from an existing log; extra arguments after ``--`` go to
pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENV_VAR = "OCSPTOOLS_RELIABILITY_LOG"

TEST_FILES = ["tests/test_hostile.py", "tests/test_crash.py", "tests/test_concurrency.py",
              "tests/test_environment.py", "tests/test_environment_renew.py",
              "tests/test_fuzz_config.py", "tests/test_fuzz_parsers.py",
              "tests/test_check_property.py", "tests/test_security.py"]

AREAS = OrderedDict([
    ("hostile", "Hostile responder"),
    ("crash", "Crashes"),
    ("concurrency", "Concurrency"),
    ("environment", "Environment"),
    ("fuzzing", "Fuzzing"),
    ("security", "Security"),
])


def record(area: str, scenario: str, command: str, expected: str, observed: str, lost: int = 0) -> None:
    path = os.environ.get(ENV_VAR)
    if not path:
        return
    line = json.dumps({"area": area, "scenario": scenario, "command": command,
                       "expected": expected, "observed": observed, "lost": lost}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(rows: list) -> str:
    seen = OrderedDict()
    for r in rows:                           # the last observation of a scenario wins
        seen[(r["area"], r["scenario"], r["command"])] = r
    out = []
    total_lost = sum(r["lost"] for r in seen.values())
    for area, title in AREAS.items():
        group = [r for r in seen.values() if r["area"] == area]
        if not group:
            continue
        out += [f"## {title}", "",
                "| scenario | command | expected | observed | staples lost |",
                "|---|---|---|---|---|"]
        for r in group:
            out.append(f"| {_cell(r['scenario'])} | {_cell(r['command'])} | {_cell(r['expected'])} "
                       f"| {_cell(r['observed'])} | {r['lost']} |")
        out.append("")
    head = [f"**{len(seen)} scenarios tried; staples lost: {total_lost}.**", ""]
    return "\n".join(head + out)


PREAMBLE = """\
# Reliability: what was tried, and what happened

Every row below was written by a test after its assertions passed (`tests/reliability.py`
`record()`); nothing here is typed by hand.  "Staples lost" counts installed staples that were
destroyed, truncated or replaced by anything other than a fully verified, newer response for
their certificate: it must be 0, and the tests fail otherwise.

Regenerate with `.venv/bin/python tests/reliability.py` (runs the hardening tests, slow ones
included; a few minutes).  The tests themselves run in `make test`; the crash loop is marked
`slow` and also runs in CI through `.ci/run`.

"""


def main(argv: list) -> int:
    args = list(argv)
    extra = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1:]
    if args[:1] == ["--log"]:
        log = Path(args[1])
    else:
        fd, name = tempfile.mkstemp(prefix="reliability-", suffix=".jsonl")
        os.close(fd)
        log = Path(name)
        env = dict(os.environ, **{ENV_VAR: str(log)})
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              *TEST_FILES, *extra], cwd=ROOT, env=env)
        if rc != 0:
            print(f"reliability: the tests failed (pytest exit {rc}); docs/reliability.md not "
                  f"rewritten (log in {log})", file=sys.stderr)
            return 1
    rows = [json.loads(l) for l in log.read_text().splitlines() if l.strip()]
    (ROOT / "docs" / "reliability.md").write_text(PREAMBLE + table(rows))
    print(f"docs/reliability.md: {len(rows)} observations")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
