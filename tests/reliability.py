"""The reliability table (docs/reliability.md), written from what the tests observed.

Tests call ``record(area, scenario, command, expected, observed, lost)`` after their assertions
have passed.  Recording is off unless ``OCSPTOOLS_RELIABILITY_LOG`` names a file, so a normal
``make test`` writes nothing.

Regenerate the table (runs the hardening tests, slow ones included, about 5 minutes)::

    .venv/bin/python tests/reliability.py            # rewrites docs/reliability.md

``--log FILE [--junit FILE]`` only rebuilds the table from an existing log (and junit XML); extra
arguments after ``--`` go to pytest.
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
              "tests/test_check_property.py", "tests/test_security.py",
              "tests/test_renew.py::test_256_renewals_exit_0_and_failures_exit_1"]

# Tests that do not call record() themselves (property tests, other engineers' files): a row
# each, observed = their pytest outcome in the same run (from --junitxml).
# (module, test name, area, scenario, command, expected)
FROM_OUTCOMES = [
    ("test_fuzz_parsers", "test_response_parsers_on_mutated_real_output", "fuzzing",
     "openssl-output parsers on mutated recorded outputs (hypothesis, 300 examples)",
     "ocsptools.openssl parse_*", "a value or ValueError, never another exception; the verdict "
     "and every time keep the promises below (checked)"),
    ("test_fuzz_parsers", "test_verdict_on_arbitrary_text", "fuzzing",
     "verification verdict parser on real openssl lines (verify OK/Failure, look-alikes, label "
     "lines) mixed with arbitrary text (hypothesis, 300)", "ocsptools.openssl.parse_ocsp.parse_verdict",
     "a verdict or ValueError; 'verified' only with the exact line 'Response verify OK' and no "
     "'Response Verify Failure'; a status only from the exact label's line; times aware UTC (asserted)"),
    ("test_fuzz_parsers", "test_verdict_on_random_text", "fuzzing",
     "verification verdict parser on arbitrary stdout/stderr/label (hypothesis, 300)",
     "ocsptools.openssl.parse_ocsp.parse_verdict", "the same (asserted)"),
    ("test_fuzz_parsers", "test_parse_time_arbitrary", "fuzzing",
     "openssl time parser on arbitrary text and on openssl-shaped times (hypothesis, 300)",
     "ocsptools.openssl.parse.parse_time", "an aware datetime at UTC offset 0, or ValueError (asserted)"),
    ("test_fuzz_parsers", "test_pem_and_staple_decoding_arbitrary_bytes", "fuzzing",
     "PEM/base64/DER staple decoding of arbitrary bytes", "ocsptools.staple", "bytes or ValueError"),
    ("test_fuzz_parsers", "test_duration_and_threshold_parsers", "fuzzing",
     "duration and threshold parsers on arbitrary text", "ocsptools.durations",
     "a value in range or ValueError (asserted: durations 0 to ten years, threshold percent 0-100, "
     "--percent (0, 100])"),
    ("test_fuzz_parsers", "test_duration_round_trip", "fuzzing", "duration format/parse round trip",
     "ocsptools.durations", "parse(format(d)) == d"),
    ("test_fuzz_config", "test_random_yaml_documents", "fuzzing",
     "config loader on random YAML documents built from the real keys with hostile values and "
     "structures, truncated or with junk inserted (hypothesis, 300 + 12 explicit examples)",
     "ocsptools.config.load", "a configuration with every value in its domain, or a one-line "
     "ConfigError naming the file (and line and key)"),
    ("test_fuzz_config", "test_random_bytes", "fuzzing",
     "config loader on random bytes (hypothesis, 200 + alias bomb, deep nesting, 2 MB, ...)",
     "ocsptools.config.load", "the same"),
    ("test_fuzz_config", "test_ocsp_renew_dir_config_never_a_traceback", "fuzzing",
     "random YAML documents through the command (hypothesis, 120)", "ocsp-renew-dir -n --config",
     "exit 0-2, exit 2 with one line, never a traceback or internal error"),
    ("test_check_property", "test_mutated_real_staples", "fuzzing",
     "ocsp-check on truncated, bit-flipped, PEM/base64-wrapped real responses (hypothesis, 150)",
     "ocsp-check", "a state line, exit 0-3, nothing on stderr, never a traceback"),
    ("test_check_property", "test_random_bytes", "fuzzing",
     "ocsp-check on random bytes (hypothesis, 150, with and without --cert)", "ocsp-check",
     "a state line, exit 0-3, nothing on stderr, never a traceback"),
    ("test_check_property", "test_console_script_on_garbage", "fuzzing",
     "ocsp-check console script on garbage from stdin", "ocsp-check", "CRITICAL, exit 2"),
    ("test_environment", "test_time_zone_does_not_shift_anything", "environment",
     "TZ America/New_York, Asia/Kolkata, Pacific/Kiritimati, UTC", "ocsp-fetch -o",
     "the summary shows the response's own UTC times"),
    ("test_environment", "test_non_c_locale", "environment", "non-C locales (compiled, active)",
     "ocsp-fetch -o", "exit 0, same summary"),
    ("test_environment", "test_odd_file_names", "environment",
     "file names with spaces, leading dash, non-ASCII, quotes, $(...)", "ocsp-fetch -o",
     "exit 0, staple written beside, nothing else created"),
    ("test_environment", "test_symlinked_certbot_tree", "environment",
     "certbot live/ -> archive/ tree, staple path a symlink", "ocsp-fetch -o",
     "the link kept, its target replaced"),
    ("test_environment", "test_read_only_staple_directory", "environment", "read-only staple directory",
     "ocsp-fetch -o", "exit 1, one line, staple byte-identical"),
    ("test_environment", "test_full_disk", "environment", "full file system", "ocsp-fetch -o",
     "exit 1, 'no space left', staple byte-identical, no temp file"),
    ("test_environment", "test_staple_path_is_a_directory", "environment", "staple path is a directory",
     "ocsp-fetch -o", "exit 1, one line"),
    ("test_environment", "test_missing_openssl_is_one_line", "environment", "openssl missing",
     "ocsp-fetch", "exit 1, one line"),
    ("test_renew", "test_256_renewals_exit_0_and_failures_exit_1", "environment",
     "256 renewals in one run, then 256 failures", "ocsp-renew-dir",
     "exit 0 (not 256 % 256 by luck), then exit 1"),
]

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

Generated from one test run: the hardening tests record what they observed after their
assertions passed (`tests/reliability.py` `record()`), and the property tests (hypothesis) and
a few tests of other files are listed with their pytest outcome.  "Staples lost" counts installed
staples that were destroyed, truncated or replaced by anything other than a fully verified, newer
response for their certificate: it must be 0, and the tests fail otherwise.

Regenerate with `.venv/bin/python tests/reliability.py` (runs the hardening tests, slow ones
included; a few minutes).  The tests themselves run in `make test`; the crash loop is marked
`slow` and also runs in CI through `.ci/run`.

"""


def outcome_rows(junit: Path) -> list:
    import xml.etree.ElementTree as ET
    cases: dict = {}
    for case in ET.parse(junit).iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        name = case.get("name", "").split("[", 1)[0]
        failed = any(child.tag in ("failure", "error") for child in case)
        skipped = any(child.tag == "skipped" for child in case)
        c = cases.setdefault((module, name), {"passed": 0, "failed": 0, "skipped": 0})
        c["failed" if failed else "skipped" if skipped else "passed"] += 1
    out = []
    for module, name, area, scenario, command, expected in FROM_OUTCOMES:
        c = cases.get((module, name))
        if c is None:
            continue
        observed = f"{c['passed']} case{'s' if c['passed'] != 1 else ''} passed" + \
            (f", {c['skipped']} skipped" if c["skipped"] else "") + \
            (f", {c['failed']} FAILED" if c["failed"] else "") + f" ({module}.py::{name})"
        out.append({"area": area, "scenario": scenario, "command": command, "expected": expected,
                    "observed": observed, "lost": 0})
    return out


def main(argv: list) -> int:
    args = list(argv)
    extra = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1:]
    if args[:1] == ["--log"]:
        log = Path(args[1])
        junit = Path(args[3]) if args[2:3] == ["--junit"] else None
    else:
        work = Path(tempfile.mkdtemp(prefix="reliability-"))
        log, junit = work / "log.jsonl", work / "junit.xml"
        env = dict(os.environ, **{ENV_VAR: str(log)})
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              f"--junitxml={junit}", *TEST_FILES, *extra], cwd=ROOT, env=env)
        if rc != 0:
            print(f"reliability: the tests failed (pytest exit {rc}); docs/reliability.md not "
                  f"rewritten (log in {log})", file=sys.stderr)
            return 1
    rows = [json.loads(l) for l in log.read_text().splitlines() if l.strip()]
    if junit is not None and junit.exists():
        rows += outcome_rows(junit)
    (ROOT / "docs" / "reliability.md").write_text(PREAMBLE + table(rows))
    print(f"docs/reliability.md: {len(rows)} observations")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
