"""The ocsp-check command (ocsptools/cli/check.py): usage errors and failures of the whole run are UNKNOWN
(exit 3, never argparse's 2), said first on stdout as the Nagios line unless stdout carries machine
output, and on stderr as one line; --help and --version exit 3; -t bounds the run; the bin/ shim
and the README's pipe from ocsp-fetch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, command
from ocsptools.cli.check import nagios_output_wanted

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "check"))
import build  # noqa: E402


def run(*args, **kw) -> subprocess.CompletedProcess:
    return build.run_at(None, [command("ocsp-check"), *map(str, args)], **kw)


@pytest.mark.parametrize("args, fragment", [
    ([], "give STAPLE file(s) or -H HOST"),
    (["--bogus", "x"], "unrecognized arguments: --bogus"),
    (["-w", "3 fortnights", "x"], "unknown unit 'fortnights'"),
    (["-w", "120%", "x"], "percentage out of range"),
    (["--renew-failing", "soon", "x"], "--renew-failing: not a duration"),
    (["-t", "0", "x"], "must be positive"),
    (["-p", "443", "x"], "-p/--port needs -H/--hostname"),
    (["--servername", "a", "x"], "--servername needs -H/--hostname"),
    (["-H", "127.0.0.1", "-p", "99999"], "port out of range"),
    (["-H", "a b"], "not a host name or address: 'a b'"),
    (["--starttls", "gopher", "-H", "127.0.0.1"], "invalid choice: 'gopher'"),
    (["x", "-c"], "expected one argument"),
    (["-", "-"], "standard input (-) can be read only once"),
    (["--cert", "-", "-"], "--cert - and STAPLE - cannot both read standard input"),
    (["--quie", "x"], "unrecognized arguments: --quie"),
])
def test_usage_errors_are_unknown_never_argparse_2(args, fragment):
    res = run(*args)
    assert res.returncode == 3
    out = res.stdout.decode().splitlines()
    assert len(out) == 1 and out[0].startswith("OCSP UNKNOWN - ") and fragment in out[0], out
    assert fragment in assert_one_line_error(res.stderr)


@pytest.mark.parametrize("warning, critical", [("1d", "3d"), ("86400", "3d"), ("12h", "1 day"),
                                               ("5%", "10%"), ("9.5%", "10%")])
def test_warning_below_critical_is_a_usage_error(tmp_path, warning, critical):
    """-w below -c (evaluate.thresholds_inverted): UNKNOWN, one line, before any staple is looked at."""
    res = run("-w", warning, "-c", critical, tmp_path / "site.ocsp")
    want = (f"-w {warning} is below -c {critical}: the warning threshold must be at least the "
            f"critical one (see --help)")
    assert res.returncode == 3 and res.stdout.decode().splitlines() == [f"OCSP UNKNOWN - {want}"]
    assert assert_one_line_error(res.stderr) == f"ocsp-check: {want}"


@pytest.mark.parametrize("warning, critical", [("3d", "3d"), ("10%", "3d"), ("0", "0%")])
def test_thresholds_that_may_stand_go_on_to_the_staple(tmp_path, warning, critical):
    missing = tmp_path / "site.ocsp"
    res = run("-w", warning, "-c", critical, missing)
    assert res.returncode == 2 and res.stderr == b""
    assert res.stdout.decode().splitlines() == [f"OCSP CRITICAL - {missing}: no such file | '{missing}'=U"]


def test_output_modes_exclude_each_other():
    res = run("--json", "--prometheus", "x")
    assert res.returncode == 3 and res.stdout == b""
    assert "not allowed with argument" in assert_one_line_error(res.stderr)


@pytest.mark.parametrize("arg, stdout", [("--help", b"usage: ocsp-check"), ("-V", b"ocsp-check (ocsptools) ")])
def test_help_and_version_exit_unknown(arg, stdout):
    res = run(arg)
    assert res.returncode == 3 and res.stdout.startswith(stdout) and res.stderr == b""


def test_openssl_missing_is_unknown(tmp_path):
    staple = tmp_path / "site.der"
    staple.write_bytes(b"\x30\x03\x0a\x01\x00")
    res = run("--openssl", "/nonexistent/openssl", staple)
    assert res.returncode == 3
    assert res.stdout.decode().startswith("OCSP UNKNOWN - openssl not found ('/nonexistent/openssl')")
    assert_one_line_error(res.stderr)


@pytest.mark.parametrize("mode", [["-q"], ["--json"], ["--prometheus"], ["--print", "state"]])
def test_usage_error_in_machine_modes_prints_only_the_stderr_line(mode):
    """stdout stays parseable (JSON, .prom file, $(...)) or empty (-q); stderr says why."""
    res = run(*mode, "-w", "nonsense", "x")
    assert res.returncode == 3 and res.stdout == b""
    assert "not a duration" in assert_one_line_error(res.stderr)


@pytest.mark.parametrize("args, wanted", [
    (["-w", "3d", "x"], True), (["-wq"], True), (["--", "-q"], True), ([], True),
    (["-q", "x"], False), (["-vq"], False), (["--quiet"], False), (["--json", "x"], False),
    (["--prometheus"], False), (["--print", "state"], False), (["--print=state"], False),
])
def test_error_line_only_where_stdout_is_the_nagios_output(args, wanted):
    assert nagios_output_wanted(args) is wanted


def test_hung_stdin_ends_with_the_timeout():
    """A pipe that never closes cannot hold the check beyond -t."""
    r, w = os.pipe()
    start = time.monotonic()
    try:
        proc = subprocess.Popen([command("ocsp-check"), "-t", "1", "-"], stdin=r,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(r)
        out, err = proc.communicate(timeout=20)
    finally:
        os.close(w)
    assert time.monotonic() - start < 5
    assert proc.returncode == 3
    assert out.decode() == "OCSP UNKNOWN - no result within the 1 s timeout (-t)\n"
    assert_one_line_error(err)


def test_bin_shim_runs_the_command(pki, tmp_path):
    build.respond(pki, pki.leaves["good1"].cert, tmp_path / "good.der")
    shim = Path(__file__).resolve().parent.parent / "bin" / "ocsp-check"
    res = build.run_at(None, [sys.executable, str(shim), "--cert", str(pki.leaves["good1"].fullchain),
                              str(tmp_path / "good.der")])
    assert res.returncode == 0 and res.stdout.startswith(b"OCSP OK - "), res.stdout


def test_pipe_from_ocsp_fetch_with_the_network_responder(pki, responder):
    """The README pipeline, against the real `openssl ocsp` responder on 127.0.0.1."""
    leaf = pki.leaves["good1"]
    fetch = subprocess.Popen([command("ocsp-fetch"), str(leaf.fullchain)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    res = subprocess.run([command("ocsp-check"), "--cert", str(leaf.fullchain), "-"],
                         stdin=fetch.stdout, capture_output=True, timeout=60)
    fetch.stdout.close()
    assert fetch.wait(30) == 0, fetch.stderr.read()
    assert res.returncode == 0, res.stdout
    line = res.stdout.decode().splitlines()[0]
    # ocsp-check reads its clock once, as it starts: the answer fetched meanwhile may be dated a
    # second or two later (within the skew), so a little more than the lifetime may be left
    assert re.fullmatch(r"OCSP OK - standard input: good, (1d|23h59m) left \(next update \S+Z\) "
                        r"\| 'standard input'=(8640[0-5]|8639\d|8638\d)s;21600:;8640:;0;86400", line), line
