"""Crash safety: SIGKILL ocsp-renew-dir at random instants and check that nothing was lost.

A tree of five certificates is renewed with ``-B`` (every run renews every staple) against a
responder that mints a strictly newer response for every request, so every run that gets far
enough really writes.  Each run is killed after a random delay in [0, 90 % of a typical run
time]; runs go on until 200 of them were really killed (a run that finished first does not count;
``OCSPTOOLS_CRASH_RUNS=N`` lowers the 200 for a quick local run, and is ignored when ``CI`` is
set).  After every kill each staple must be either the file it was before the run or one of the responses
the responder handed out, complete, and verify (with openssl) for its certificate.

Temp files: a run killed between creating its O_EXCL temp file and renaming it leaves
``.<staple>.<pid>.<random>.ocsptools-tmp`` behind (the kernel cannot undo that).  Such files are
never taken for staples (servers read only the staple's own name) and a later run of
ocsp-renew-dir deletes those of its own that are older than ``store.STALE_TEMP_AGE``; the test
checks both.  Nothing else may be left behind.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import hostile_responder as hostile
import reliability
from conftest import command, run_cmd

from ocsptools import store

pytestmark = pytest.mark.skipif(shutil.which("faketime") is None,
                                reason="needs faketime (Debian package faketime) to date responses")

#: The issue asks for at least 200 SIGKILLs.  Runs that finish before their kill instant do not
#: count, so the loop goes on until KILLS runs were really killed (at most MAX_RUNS runs).
#: OCSPTOOLS_CRASH_RUNS lowers KILLS for a quick local run only: under CI (CI set) a lower value
#: is ignored, so CI always proves 200 kills.
REQUIRED_KILLS = 200
_knob = int(os.environ.get("OCSPTOOLS_CRASH_RUNS", str(REQUIRED_KILLS)))
KILLS = max(_knob, REQUIRED_KILLS) if os.environ.get("CI") else _knob
MAX_RUNS = 3 * max(KILLS, 1)
TEMP_RE = re.compile(r"^\.(?P<base>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}" + re.escape(store.TEMP_SUFFIX) + "$")


def verifies_good(staple: Path, leaf, pki) -> bool:
    res = subprocess.run(["openssl", "ocsp", "-respin", str(staple), "-issuer", str(pki.inter_cert),
                          "-cert", str(leaf.cert), "-CAfile", str(pki.root_cert), "-no_nonce"],
                         capture_output=True, text=True, env=hostile.ENV)
    return "Response verify OK" in res.stderr and f"{leaf.cert}: good" in res.stdout


@pytest.fixture(scope="module")
def crash_tree(pki, tmp_path_factory):
    work = tmp_path_factory.mktemp("crash")
    tree = work / "tree"
    tree.mkdir()
    leaves = [pki.leaves["good1"], pki.leaves["good2"]] + \
        [pki.make_leaf(f"crash{i}") for i in range(3)]
    placed = []
    for i, leaf in enumerate(leaves):
        cert = tree / f"site{i}.pem"
        cert.write_bytes(Path(leaf.fullchain).read_bytes())
        placed.append((leaf, cert, Path(str(cert) + ".ocsp")))
    return work, tree, placed


def tree_problems(tree: Path, placed, state_dir: Path) -> list:
    """Names in the tree and the state directory that are neither ours nor temp files."""
    allowed = {c.name for _, c, _ in placed} | {s.name for _, _, s in placed}
    bad = [n for n in os.listdir(tree) if n not in allowed and not TEMP_RE.match(n)]
    bad += [n for n in os.listdir(state_dir)
            if n not in ("s.json", "s.json.lock", "s.json.status") and not TEMP_RE.match(n)]
    return bad


def temp_files(*dirs: Path) -> list:
    return [d / n for d in dirs for n in os.listdir(d) if TEMP_RE.match(n)]


@pytest.mark.slow
def test_sigkill_at_random_instants_loses_nothing(crash_tree, pki, fake, tmp_path):
    work, tree, placed = crash_tree
    minter = hostile.MintingResponder(pki, work / "minted",
                                      datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2))
    fake.set(handler=minter)
    state_dir = tmp_path / "state"
    scratch = tmp_path / "scratch"          # openssl's input files: see what a kill leaves there
    state_dir.mkdir()
    scratch.mkdir()
    argv = [command("ocsp-renew-dir"), "--state", str(state_dir / "s.json"), "-B", "-u", fake.url,
            str(tree)]
    env = dict(os.environ, TMPDIR=str(scratch))

    # three complete runs: every staple installed, and the typical duration of a run
    durations = []
    for _ in range(3):
        t0 = time.monotonic()
        res = subprocess.run(argv, capture_output=True, env=env, timeout=60)
        durations.append(time.monotonic() - t0)
        assert res.returncode == 0, res.stdout + res.stderr
        assert [l.split("\t")[0] for l in res.stdout.decode().splitlines()] == ["renewed"] * len(placed)
    typical = sorted(durations)[1]
    # when the first request reaches the responder, i.e. the fetch/verify/write phase begins
    t0 = time.monotonic()
    seen = len(fake.requests)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    while len(fake.requests) == seen and proc.poll() is None:
        time.sleep(0.002)
    fetch_start = min(time.monotonic() - t0, typical)
    assert proc.wait(timeout=60) == 0
    for leaf, _, staple in placed:
        assert verifies_good(staple, leaf, pki)

    if KILLS < REQUIRED_KILLS:
        warnings.warn(f"OCSPTOOLS_CRASH_RUNS={_knob}: a quick local run with {KILLS} kills, "
                      f"not the {REQUIRED_KILLS} the issue asks for (ignored when CI is set)")
    rng = random.Random(int(os.environ.get("OCSPTOOLS_CRASH_SEED", "20261121")))
    killed = completed = replaced = partial = 0
    # the upper bound of the kill instant starts at 90 % of a typical run and adapts to the
    # machine's load: it shrinks after a run that finished first, grows back after a kill
    upper = 0.9 * typical
    for run in range(MAX_RUNS):
        if killed >= KILLS:
            break
        before = {staple: staple.read_bytes() for _, _, staple in placed}
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            # half the kills anywhere in a run, half in its fetch/verify/write phase
            lower = 0.0 if run % 2 else min(fetch_start, 0.8 * upper)
            proc.wait(timeout=rng.uniform(lower, upper))
        except subprocess.TimeoutExpired:
            pass
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        err = proc.stderr.read()
        proc.stderr.close()
        if proc.returncode == -signal.SIGKILL:
            killed += 1
            upper = min(upper * 1.02, typical)
        else:
            completed += 1
            upper *= 0.85
            assert proc.returncode == 0, err
        assert b"Traceback" not in err
        changed = 0
        for leaf, _, staple in placed:
            data = staple.read_bytes()
            if data == before[staple]:
                continue
            changed += 1
            # not the old file: it must be a whole response the responder handed out, and valid
            assert data in minter.served, f"run {run}: {staple.name} is neither the old nor a new staple"
            assert verifies_good(staple, leaf, pki), f"run {run}: {staple.name} does not verify"
            replaced += 1
        partial += 0 < changed < len(placed)        # killed in the middle of the renewals
        assert tree_problems(tree, placed, state_dir) == [], f"run {run}"
    runs = killed + completed               # every run was either killed or completed

    assert killed >= KILLS, f"only {killed} of {runs} runs were killed before they finished"
    assert replaced > 0 and partial > 0, (killed, completed, replaced, partial)
    leftovers = temp_files(tree, state_dir)
    scratch_left = list(scratch.iterdir())
    for d in scratch_left:                  # a killed run's openssl inputs: private, public data only
        assert re.match(r"ocsptools-\d+-", d.name) and (d.stat().st_mode & 0o077) == 0, d.name
    scratch_runs = len({d.name.split("-")[1] for d in scratch_left})     # by the pid in the name

    # A later run deletes its own temp files and killed runs' scratch directories once they are
    # older than STALE_TEMP_AGE ...
    long_ago = time.time() - store.STALE_TEMP_AGE - 60
    for p in leftovers + scratch_left:
        os.utime(p, (long_ago, long_ago))
    foreign = tree / ".site0.pem.ocsp.1.0123abcd.ocsptools-tmp"      # ... and not a fresh one
    foreign.write_bytes(b"a writer still at work")
    res = run_cmd("ocsp-renew-dir", "--state", state_dir / "s.json", "-u", fake.url, tree,
                  env={"TMPDIR": str(scratch)})
    assert res.returncode == 0, res.stdout + res.stderr
    assert temp_files(tree, state_dir) == [foreign]
    assert list(scratch.iterdir()) == []
    foreign.unlink()
    for leaf, _, staple in placed:
        assert verifies_good(staple, leaf, pki)
    # and the tree is consistent: nothing is due, nothing is said
    res = run_cmd("ocsp-renew-dir", "--state", state_dir / "s.json", "-q", "-u", fake.url, tree)
    assert res.returncode == 0 and res.stdout == b"" and res.stderr == b""
    reliability.record(
        "crash", f"SIGKILL at a random instant in [0, {0.9 * typical:.2f} s] until {KILLS} runs were "
        f"killed, 5 staples, -B",
        "ocsp-renew-dir",
        "every staple the old file or a whole new verified response; leftovers only our temp "
        "files and scratch directories, removed by a later run once stale",
        f"{runs} runs: {killed} killed ({partial} in the middle of the renewals), {completed} finished "
        f"first; {replaced} staple replacements, all whole and verified; {len(leftovers)} temp "
        f"files and {len(scratch_left)} scratch directories (from {scratch_runs} of the {killed} "
        f"killed runs) left by kills, all removed by the next run once stale",
        lost=0)


def test_clean_stale_temps_takes_only_our_own_stale_files(tmp_path):
    now = time.time()
    old = now - store.STALE_TEMP_AGE - 1
    stale = tmp_path / ".a.ocsp.123.0123abcd.ocsptools-tmp"
    fresh = tmp_path / ".a.ocsp.124.89abcdef.ocsptools-tmp"
    other_base = tmp_path / ".b.ocsp.125.01234567.ocsptools-tmp"
    lookalike = tmp_path / "a.ocsp.ocsptools-tmp"               # not our pattern
    link = tmp_path / ".c.ocsp.126.01234567.ocsptools-tmp"       # a symlink is never ours
    victim = tmp_path / "victim"
    for p in (stale, fresh, other_base, lookalike, victim):
        p.write_bytes(b"x")
    link.symlink_to(victim)
    for p in (stale, other_base, lookalike, victim):
        os.utime(p, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)
    assert store.clean_stale_temps(str(tmp_path), now, base="a.ocsp") == [str(stale)]
    assert store.clean_stale_temps(str(tmp_path), now) == [str(other_base)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [fresh.name, lookalike.name, link.name, victim.name])
    assert victim.read_bytes() == b"x"


def test_clean_stale_scratch_spares_live_and_fresh_directories(tmp_path):
    from ocsptools.openssl import Scratch, clean_stale_scratch
    import tempfile
    now = time.time()
    old = now - 3600
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    gone = tmp_path / f"ocsptools-{dead}-abc123"
    alive = tmp_path / f"ocsptools-{os.getpid()}-def456"
    young = tmp_path / f"ocsptools-{dead}-young1"
    other = tmp_path / "ocsptools-notapid"
    for d in (gone, alive, young, other):
        d.mkdir()
        (d / "1-cert.pem").write_text("x")
    outside = tmp_path / "outside"
    outside.write_text("keep")
    (gone / "link").symlink_to(outside)                  # rmtree must not follow it
    for d in (gone, alive, other):
        os.utime(d, (old, old))
    assert clean_stale_scratch(now, directory=str(tmp_path)) == [str(gone)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [alive.name, young.name, other.name, outside.name])
    assert outside.read_text() == "keep"
    saved = tempfile.tempdir
    tempfile.tempdir = str(tmp_path)
    try:
        with Scratch() as s:                            # the pid is in the name
            assert os.path.basename(s.dir).startswith(f"ocsptools-{os.getpid()}-")
    finally:
        tempfile.tempdir = saved
