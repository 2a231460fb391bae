"""ocsptools.openssl.runner (OpenSSL.run): the binary is probed once before its first command, the
child runs with the promised environment and is killed when it overstays."""

from __future__ import annotations

import os
import threading
import time

import pytest

from ocsptools.errors import OpensslError
from ocsptools.openssl import OpenSSL, interpret_version

#: What a real openssl prints for ``openssl version`` (the probe), for fakes that must pass it.
VERSION = "OpenSSL 3.0.19 27 Jan 2026 (Library: OpenSSL 3.0.19 27 Jan 2026)"


@pytest.fixture
def fake_openssl(tmp_path):
    """An openssl script: BODY runs for every command; with PROBE it answers ``version`` like
    OpenSSL 3.0 first (and logs each call's first argument to tmp/calls)."""
    def make(body: str, *, probe: bool = True) -> str:
        path = tmp_path / "openssl"
        head = f'echo "$1" >> "{tmp_path / "calls"}"\n'
        if probe:
            head += f'if [ "$1" = version ]; then echo "{VERSION}"; exit 0; fi\n'
        path.write_text("#!/bin/sh\n" + head + body + "\n")
        path.chmod(0o755)
        return str(path)
    return make


def calls(tmp_path) -> list:
    log = tmp_path / "calls"
    return log.read_text().split() if log.exists() else []


def test_overdue_child_is_killed(fake_openssl, tmp_path):
    pidfile = tmp_path / "pid"
    ossl = OpenSSL(fake_openssl(f'echo $$ > "{pidfile}"; exec sleep 30'), timeout=1)
    start = time.monotonic()
    with pytest.raises(OpensslError, match="ocsp timed out after 1 s and was killed"):
        ossl.run(["ocsp"])
    assert time.monotonic() - start < 5
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)                     # gone (killed and reaped), not left running


def test_a_killed_s_client_still_yields_what_it_printed(fake_openssl, tmp_path):
    """run_killable (s_client): the same watchdog kills it; the partial output is kept."""
    pidfile = tmp_path / "pid"
    ossl = OpenSSL(fake_openssl(f'echo $$ > "{pidfile}"; echo "CONNECTED(00000003)"; '
                                f'echo "depth=1" >&2; exec sleep 30'), timeout=30)
    start = time.monotonic()
    done, killed = ossl.run_killable(["s_client"], b"Q\n", 1.0)
    assert killed and time.monotonic() - start < 5
    assert (done.stdout, done.stderr) == ("CONNECTED(00000003)\n", "depth=1\n")
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)
    quick = OpenSSL(fake_openssl('cat; echo "DONE"'), timeout=30)
    done, killed = quick.run_killable(["s_client"], b"Q\n", 5.0)
    assert not killed and (done.returncode, done.stdout) == (0, "Q\nDONE\n")


def test_deadline_bounds_every_child(fake_openssl):
    ossl = OpenSSL(fake_openssl("exec sleep 30"), timeout=10, deadline=time.monotonic() + 1)
    start = time.monotonic()
    with pytest.raises(OpensslError):
        ossl.run(["ocsp"])
    assert time.monotonic() - start < 5
    with pytest.raises(OpensslError, match="time limit reached"):
        ossl.run(["ocsp"])


def test_child_environment(fake_openssl):
    ossl = OpenSSL(fake_openssl('echo "$LC_ALL|$SSL_CERT_FILE|$SSL_CERT_DIR"; echo err >&2; exit 3'))
    res = ossl.run(["x"], stdin=b"ignored")
    assert res.stdout.strip() == f"C|{os.devnull}|{os.devnull}"
    assert res.stderr.strip() == "err" and res.returncode == 3
    assert ossl.spawned == 2                # the probe, then the command


def test_arguments_are_never_a_shell_string(fake_openssl, tmp_path):
    out = tmp_path / "args"
    ossl = OpenSSL(fake_openssl(f'for a in "$@"; do printf "%s\\n" "$a"; done > "{out}"'))
    nasty = ["ocsp", "-cert", "a b; rm -rf /tmp/x $(id)", "-issuer", "`touch /tmp/pwned`"]
    ossl.run(nasty)
    assert out.read_text().splitlines() == nasty
    assert not os.path.exists("/tmp/pwned")


# ---------------------------------------------------------------------------
# the probe: a missing, failing or foreign binary is an OpensslError before any real command

@pytest.mark.parametrize("rc, stdout, stderr, fragment", [
    (1, "", "", "openssl does not work: '/x/openssl version' exited with status 1, printing nothing"),
    (127, "", "exec: not found\n", "exited with status 127 ('exec: not found')"),
    (-11, "", "", "was killed by signal 11, printing nothing"),
    (0, "", "", "openssl does not work: '/x/openssl version' printed nothing"),
    (0, "\n  \n", "OpenSSL 3.0.19 on stderr only\n", "printed nothing"),
    (0, "version\n", "", "not openssl: '/x/openssl version' printed 'version'"),
    (0, "Python 3.11.7\n", "", "not openssl: '/x/openssl version' printed 'Python 3.11.7'"),
    (0, "LibreSSL 3.8.2\n", "", "not openssl: '/x/openssl version' printed 'LibreSSL 3.8.2'"),
    (0, "OpenSSLx 3.0.0\n", "", "not openssl"),
    (0, "OpenSSL 1.0.2u  20 Dec 2019\n", "", "openssl too old: '/x/openssl version' printed "
                                               "'OpenSSL 1.0.2u  20 Dec 2019'; ocsptools needs OpenSSL 1.1"),
    (0, "x" * 200 + "\n", "", "printed '" + "x" * 57 + "...'"),
])
def test_interpret_version_refuses(rc, stdout, stderr, fragment):
    with pytest.raises(OpensslError) as info:
        interpret_version("/x/openssl", rc, stdout, stderr)
    message = str(info.value)
    assert fragment in message and "\n" not in message and "--openssl PATH" in message


@pytest.mark.parametrize("stdout", [
    VERSION + "\n",
    "OpenSSL 3.5.0 8 Apr 2025 (Library: OpenSSL 3.5.0 8 Apr 2025)\n",
    "OpenSSL 1.1.1w  11 Sep 2023\n",
    "OpenSSL 3.0.2-fips 15 Mar 2022\n",
    "\nOpenSSL 3.2.1 30 Jan 2024\n",
])
def test_interpret_version_accepts(stdout):
    assert interpret_version("openssl", 0, stdout, "") == stdout.strip().splitlines()[0]


def test_real_openssl_passes_the_probe():
    ossl = OpenSSL()
    assert ossl.run(["version"]).stdout.startswith("OpenSSL ")
    assert ossl.spawned == 2                # the probe, then the command
    ossl.run(["version"])
    assert ossl.spawned == 3 and ossl.unusable is None


def test_probe_runs_once_per_handle_lazily_and_thread_safe(fake_openssl, tmp_path):
    ossl = OpenSSL(fake_openssl("echo ran"))
    assert calls(tmp_path) == [] and ossl.spawned == 0      # nothing before the first command
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        assert ossl.run(["x509"]).stdout == "ran\n"
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(calls(tmp_path)) == ["version"] + ["x509"] * 8
    assert ossl.spawned == 9
    OpenSSL(ossl.binary).run(["x509"])                      # a new handle probes again
    assert calls(tmp_path).count("version") == 2


def test_failed_probe_is_remembered_and_no_command_runs(fake_openssl, tmp_path):
    ossl = OpenSSL(fake_openssl('echo "frob: no such command $1"', probe=False))
    for args in (["ocsp", "-respin", "x"], ["storeutl", "-certs", "/dev/stdin"]):
        with pytest.raises(OpensslError, match=r"^not openssl: '.*/openssl version' printed "
                                               r"'frob: no such command version'"):
            ossl.run(args)
    with pytest.raises(OpensslError, match="not openssl"):
        ossl.s_client("127.0.0.1", 1, timeout=5)
    assert calls(tmp_path) == ["version"] and ossl.spawned == 1
    assert ossl.unusable is not None and "frob" in str(ossl.unusable)


@pytest.mark.parametrize("binary, fragment", [
    ("/bin/false", "'/bin/false version' exited with status 1"),
    ("/bin/true", "'/bin/true version' printed nothing"),
    ("/bin/echo", "'/bin/echo version' printed 'version'"),
    ("/nonexistent/openssl", "openssl not found ('/nonexistent/openssl')"),
])
def test_system_programs_in_openssls_place(binary, fragment):
    with pytest.raises(OpensslError) as info:
        OpenSSL(binary).run(["storeutl", "-noout", "-text", "-certs", "/dev/stdin"], stdin=b"x")
    assert fragment in str(info.value)


def test_hanging_probe_is_killed_at_the_timeout(fake_openssl):
    ossl = OpenSSL(fake_openssl("exec sleep 30", probe=False), timeout=1)
    start = time.monotonic()
    with pytest.raises(OpensslError, match=r"openssl version timed out after 1 s and was killed"):
        ossl.run(["ocsp"])
    with pytest.raises(OpensslError, match="timed out"):      # remembered: not waited for again
        ossl.run(["ocsp"])
    assert time.monotonic() - start < 5 and ossl.spawned == 1
