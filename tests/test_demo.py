"""`make demo` proves what it shows, installs the runtime only, and the man pages are reachable.

The demo (scripts/demo.py) checks each step's claims: its exit status and the output or files
that prove what it says.  These tests run it whole, and run its step checker on steps whose
claim is false (real commands, a real responder) to show that the demo then fails, naming the step.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cmd

_spec = importlib.util.spec_from_file_location("demo", ROOT / "scripts" / "demo.py")
assert _spec is not None and _spec.loader is not None
demo = importlib.util.module_from_spec(_spec)
sys.modules["demo"] = demo          # dataclasses look their module up while it is executed
_spec.loader.exec_module(demo)

MAN_PAGES = sorted(p.name for p in (ROOT / "man").iterdir() if re.fullmatch(r".+\.[15]", p.name))


def test_the_five_man_pages_are_known():
    assert MAN_PAGES == ["ocsp-check.1", "ocsp-fetch.1", "ocsp-proxy.1", "ocsp-renew-dir.1",
                         "ocsptools.yaml.5"]


# --------------------------------------------------------------------------- #
# the demo, whole
# --------------------------------------------------------------------------- #

def test_demo_runs_every_step_and_every_claim_holds(tmp_path):
    run = tmp_path / "run"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--dir", str(run)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    assert res.stderr == ""
    assert "FAILED" not in res.stdout
    assert re.search(r"^Demo finished: \d+ steps, every claim checked and true", res.stdout, re.M)
    # the step that used to show a replaced staple now proves that nothing changed
    refetch = res.stdout.split("fetching again changes nothing", 1)[1].split("\n== ", 1)[0]
    assert f"ok: its stderr says '{demo.UNCHANGED}'" in refetch
    assert "ok: certs/good1.pem.ocsp: byte-identical, not rewritten (same inode)" in refetch
    assert "ok: it asked http://127.0.0.1:" in refetch
    second = res.stdout.split("a second run has nothing to do", 1)[1].split("\n== ", 1)[0]
    assert "ok: it prints nothing" in second
    # every step checked more than its exit status
    blocks = re.split(r"\n== \d+\. ", res.stdout)[1:]
    assert len(blocks) >= 15
    for block in blocks:
        assert block.count("   ok: ") >= 2, block


# --------------------------------------------------------------------------- #
# false claims make the demo fail, naming the step
# --------------------------------------------------------------------------- #

def _certs(tmp_path, pki, *names):
    certs = tmp_path / "certs"
    certs.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(pki.leaves[name].fullchain, certs / f"{name}.pem")
    return certs


def _past_the_second():
    """Sleep until the wall clock's second has changed: a responder that signs now gives a
    strictly later thisUpdate than any response produced before this call."""
    time.sleep(1.05 - time.time() % 1)


def test_refetch_claim_holds_for_the_pre_produced_answer_and_fails_for_a_newer_one(
        tmp_path, pki, responder, capsys):
    """The original defect: the live `openssl ocsp` responder signs a newer thisUpdate once the
    second has changed, so "fetching again changes nothing" was false; the demo's step now
    catches it, and the pre-produced answer makes the step hold whatever the clock does."""
    _certs(tmp_path, pki, "good1")
    first = run_cmd("ocsp-fetch", "-o", "certs/good1.pem.ocsp", "certs/good1.pem", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    d = demo.Demo(tmp_path)
    _past_the_second()
    with demo.StaticResponder((tmp_path / "certs/good1.pem.ocsp").read_bytes()) as cdn:
        demo.refetch_step(d, cdn.url, server=cdn)
        assert cdn.requests >= 1
    assert d.failures == []

    demo.refetch_step(d, responder.url)
    assert len(d.failures) == 2, d.failures
    unchanged, bytes_ = d.failures
    assert unchanged.startswith("step 2 (fetching again changes nothing")
    assert demo.UNCHANGED in unchanged
    assert "certs/good1.pem.ocsp changed" in bytes_
    assert d.finish() == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("demo: FAILED: step 2 (fetching again changes nothing")
    assert err[-1].startswith("demo: 2 claim(s) of 2 steps did not hold")


def test_nothing_written_claim_fails_when_a_revoked_staple_is_written(tmp_path, pki, responder, capsys):
    certs = _certs(tmp_path, pki, "revoked1")
    d = demo.Demo(tmp_path)
    d.step("a revoked certificate: exit 4, nothing written",
           ("ocsp-fetch", "--allow-revoked", "-o", "certs/revoked1.pem.ocsp", "certs/revoked1.pem"),
           expect=4, claims=[demo.nothing_written(certs, certs / "revoked1.pem.ocsp", root=tmp_path)])
    assert d.failures == ["step 1 (a revoked certificate: exit 4, nothing written): nothing written "
                          "in certs/ (no certs/revoked1.pem.ocsp): new: revoked1.pem.ocsp"]
    assert d.finish() == 1
    assert "FAILED" in capsys.readouterr().out


def test_untouched_claim_fails_when_the_staple_is_rewritten_with_the_same_bytes(tmp_path, pki, responder):
    """--force rewrites the staple; the claim compares bytes and inode, so even an identical
    rewrite does not pass for "untouched"."""
    certs = _certs(tmp_path, pki, "good1")
    staple = certs / "good1.pem.ocsp"
    assert run_cmd("ocsp-fetch", "-o", staple, certs / "good1.pem").returncode == 0
    d = demo.Demo(tmp_path)
    with demo.StaticResponder(staple.read_bytes()) as cdn:
        d.step("the staple is untouched", ("ocsp-fetch", "--force", "-u", cdn.url, "-o",
                                           "certs/good1.pem.ocsp", "certs/good1.pem"),
               claims=[demo.untouched(staple, root=tmp_path)])
    assert d.failures == ["step 1 (the staple is untouched): certs/good1.pem.ocsp: byte-identical, "
                          "not rewritten (same inode): certs/good1.pem.ocsp was rewritten "
                          "(same bytes, new inode)"]


def test_exit_status_and_silence_claims_fail(tmp_path, capsys):
    d = demo.Demo(tmp_path)
    d.step("openssl says nothing", ("openssl", "version"), claims=[demo.silent()])
    d.step("openssl fails", ("openssl", "version"), expect=1)
    d.step("a pipe: both commands fail", ("openssl", "version"), pipe_to=("cat",), expect=1)
    assert [f.split(":", 1)[0] for f in d.failures] == [
        "step 1 (openssl says nothing)", "step 2 (openssl fails)", "step 3 (a pipe"]
    assert "it prints nothing: it printed b'OpenSSL" in d.failures[0]
    assert d.failures[1].endswith("exit status 1: exited 0")
    assert d.failures[2].endswith("exit status 1 | 1 (each command of the pipe): exited 0 | 0")
    assert d.finish() == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and all(line.startswith("demo: ") for line in err)


def test_tsv_claim_wants_exactly_the_lines_it_names(tmp_path, pki, responder):
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(pki.leaves["good1"].fullchain, tree / "good1.pem")
    d = demo.Demo(tmp_path)
    renew = ("ocsp-renew-dir", "--state", "state.json", "tree")
    d.step("renews good1", renew, claims=[demo.tsv({"tree/good1.pem": "renewed"})])
    d.step("renews good1 again", renew, claims=[demo.tsv({"tree/good1.pem": "renewed"})])
    assert d.failures == ["step 2 (renews good1 again): stdout is exactly: renewed tree/good1.pem: "
                          "got no lines"]


# --------------------------------------------------------------------------- #
# man pages from the checkout's environment
# --------------------------------------------------------------------------- #

def _man_w(page: str, path: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MANPATH", "MANOPT")}
    env["PATH"] = path
    return subprocess.run(["man", "-w", page.rsplit(".", 1)[0]], capture_output=True, text=True,
                          env=env, timeout=30)


@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_finds_each_page_through_the_environments_bin_on_path(page):
    """After `. .venv/bin/activate` (the venv's bin first on PATH, MANPATH unset) man-db derives
    the venv's share/man from PATH and finds the checkout's page there."""
    if shutil.which("man") is None:
        pytest.skip("man (man-db) is missing: run 'sudo scripts/install-sysdeps'")
    venv = Path(sys.prefix)
    section = page.rsplit(".", 1)[1]
    link = venv / "share" / "man" / f"man{section}" / page
    assert link.resolve() == (ROOT / "man" / page).resolve(), f"{link} is not the checkout's page"
    found = _man_w(page, f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin")
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).resolve() == (ROOT / "man" / page).resolve()
    # and it is the environment that makes it found: without its bin on PATH, not this page
    without = _man_w(page, "/usr/local/bin:/usr/bin:/bin")
    assert without.returncode != 0 or Path(without.stdout.strip()).resolve() != (ROOT / "man" / page).resolve()


# --------------------------------------------------------------------------- #
# what `make demo` installs
# --------------------------------------------------------------------------- #

def _make_n(target: str, venv: Path) -> list:
    if shutil.which("make") is None:
        pytest.skip("make is missing")
    # not the flags of a make that runs this suite (`make test` exports MAKEFLAGS and MAKELEVEL)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    res = subprocess.run(["make", "--no-print-directory", "-n", target, f"VENV={venv}"], cwd=ROOT,
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


def test_make_demo_installs_the_runtime_only_and_links_the_man_pages(tmp_path):
    """On a fresh clone (no venv yet) `make demo` runs `pip install -e .`: setup.cfg's
    install_requires, none of the test extra; `make test` adds the test extra."""
    venv = tmp_path / "venv"
    lines = _make_n("demo", venv)
    installs = [line for line in lines if "pip install" in line]
    assert installs == [f"{venv}/bin/python -m pip install --quiet --disable-pip-version-check -e ."]
    links = "\n".join(line for line in lines if "ln -s" in line or "for page" in line)
    for page in MAN_PAGES:
        assert f"man/{page}" in links
    assert lines[-1] == f"{venv}/bin/python scripts/demo.py"

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    runtime = cfg["options"]["install_requires"].lower()
    for tool in ("pytest", "mypy", "hypothesis", "pyopenssl", "redis"):
        assert tool not in runtime

    test_installs = [line for line in _make_n("test", venv) if "pip install" in line]
    assert test_installs[-1].endswith("-e '.[test]'")
