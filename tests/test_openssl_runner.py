"""OpenSSL.run: the child runs with the promised environment and is killed when it overstays."""

from __future__ import annotations

import os
import time

import pytest

from ocsptools.errors import OpensslError
from ocsptools.openssl import OpenSSL


@pytest.fixture
def fake_openssl(tmp_path):
    def make(body: str) -> str:
        path = tmp_path / "openssl"
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(0o755)
        return str(path)
    return make


def test_overdue_child_is_killed(fake_openssl, tmp_path):
    pidfile = tmp_path / "pid"
    ossl = OpenSSL(fake_openssl(f'echo $$ > "{pidfile}"; exec sleep 30'), timeout=1)
    start = time.monotonic()
    with pytest.raises(OpensslError, match="timed out after 1 s and was killed"):
        ossl.run(["version"])
    assert time.monotonic() - start < 5
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)                     # gone (killed and reaped), not left running


def test_deadline_bounds_every_child(fake_openssl):
    ossl = OpenSSL(fake_openssl("exec sleep 30"), timeout=10, deadline=time.monotonic() + 1)
    start = time.monotonic()
    with pytest.raises(OpensslError):
        ossl.run(["version"])
    assert time.monotonic() - start < 5
    with pytest.raises(OpensslError, match="time limit reached"):
        ossl.run(["version"])


def test_child_environment(fake_openssl):
    ossl = OpenSSL(fake_openssl('echo "$LC_ALL|$SSL_CERT_FILE|$SSL_CERT_DIR"; echo err >&2; exit 3'))
    res = ossl.run(["x"], stdin=b"ignored")
    assert res.stdout.strip() == f"C|{os.devnull}|{os.devnull}"
    assert res.stderr.strip() == "err" and res.returncode == 3
    assert ossl.spawned == 1


def test_arguments_are_never_a_shell_string(fake_openssl, tmp_path):
    out = tmp_path / "args"
    ossl = OpenSSL(fake_openssl(f'for a in "$@"; do printf "%s\\n" "$a"; done > "{out}"'))
    nasty = ["ocsp", "-cert", "a b; rm -rf /tmp/x $(id)", "-issuer", "`touch /tmp/pwned`"]
    ossl.run(nasty)
    assert out.read_text().splitlines() == nasty
    assert not os.path.exists("/tmp/pwned")
