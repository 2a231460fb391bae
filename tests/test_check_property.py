"""Property: whatever bytes a staple file holds (random, truncated, bit-flipped, re-encoded), ocsp-check
answers with a state line and exit 0-3, never a traceback or an internal error."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import command
from ocsptools.cli.check import entry

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "check"))
import build  # noqa: E402

STATE = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


@pytest.fixture(scope="module")
def material(tmp_path_factory, pki):
    d = tmp_path_factory.mktemp("prop")
    staple = build.respond(pki, pki.leaves["good1"].cert, d / "good.der")
    cert = d / "cert.pem"
    shutil.copy(pki.leaves["good1"].fullchain, cert)
    return staple, cert


def run_in_process(args) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = entry([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def assert_state_line(rc, out, err):
    assert rc in STATE, (rc, out, err)
    # "internal error:" is how a bug of ours is reported (a responder's internalError status is not)
    assert "Traceback" not in out + err and "internal error:" not in out + err, out + err
    first = out.splitlines()[0]
    assert first.startswith(f"OCSP {STATE[rc]} - "), out
    assert first.count("|") <= 1
    assert err == "", err                  # a bad staple is a state, not an error of the run


def mutate(data: bytes, how: str, n: int, flips) -> bytes:
    if how == "truncate":
        return data[: n % (len(data) + 1)]
    if how == "flip":
        buf = bytearray(data)
        for pos, bit in flips:
            buf[pos % len(buf)] ^= 1 << (bit % 8)
        return bytes(buf)
    if how == "pem":
        return b"-----BEGIN OCSP RESPONSE-----\n" + base64.encodebytes(data[: n % (len(data) + 1)]) \
            + b"-----END OCSP RESPONSE-----\n"
    if how == "base64":
        return base64.b64encode(data)[: n % (len(data) * 2 + 1)]
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=st.sampled_from(["truncate", "flip", "pem", "base64", "asis"]),
       n=st.integers(min_value=0, max_value=5000),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1, max_size=8),
       with_cert=st.booleans())
def test_mutated_real_staples(material, how, n, flips, with_cert):
    staple, cert = material
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.ocsp"
        path.write_bytes(mutate(staple, how, n, flips))
        args = (["--cert", cert] if with_cert else []) + [path]
        assert_state_line(*run_in_process(args))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3000), with_cert=st.booleans())
@example(data=b"", with_cert=True)
@example(data=b"\x30", with_cert=False)
@example(data=b"\x30\x82\xff\xff" + b"\x00" * 20, with_cert=True)
@example(data=b"\x30\x03\x0a\x01\x07", with_cert=False)          # responseStatus 7: not in RFC 6960
@example(data=b"-----BEGIN OCSP RESPONSE-----\n!!!\n", with_cert=False)
def test_random_bytes(material, data, with_cert):
    _, cert = material
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.ocsp"
        path.write_bytes(data)
        args = (["--cert", cert] if with_cert else []) + [path]
        assert_state_line(*run_in_process(args))


@pytest.mark.parametrize("data", [bytes(random.Random(64).getrandbits(8) for _ in range(64)), b"\x30\x80" * 100, b"\xff" * 10])
def test_console_script_on_garbage(material, data, tmp_path):
    """The same through the installed console script and stdin (a real process, real exit code)."""
    _, cert = material
    res = subprocess.run([command("ocsp-check"), "--cert", str(cert), "-"], input=data,
                         capture_output=True, timeout=60)
    assert res.returncode == 2
    assert res.stdout.decode().startswith("OCSP CRITICAL - standard input: ")
    assert res.stderr == b""
