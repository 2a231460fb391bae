"""ocsp-renew-dir end to end: real trees in each layout, the real `openssl ocsp` responder, the real command."""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import stat
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import assert_one_line_error, command, run_cmd
from fake_responder import Answer, FakeResponder, status_only
from hostile_responder import ResponseFactory

from ocsptools import verify
from ocsptools.certs import load_file
from ocsptools.openssl import OpenSSL

LAYOUTS = ("certbot", "lego", "acme.sh", "bundle")


# ---------------------------------------------------------------------------
# trees

def place(root: Path, layout: str, name: str, leaf, pki) -> tuple[Path, Path]:
    """Put LEAF into ROOT in LAYOUT under NAME; return (certificate path, expected staple path)."""
    cert_pem = Path(leaf.cert).read_text()
    inter = Path(pki.inter_cert).read_text()
    key = Path(leaf.key).read_text()
    if layout == "certbot":
        d = root / "live" / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "cert.pem").write_text(cert_pem)
        (d / "chain.pem").write_text(inter)
        (d / "fullchain.pem").write_text(cert_pem + inter)
        (d / "privkey.pem").write_text(key)
        cert = d / "cert.pem"
    elif layout == "lego":
        d = root / "certificates"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.crt").write_text(cert_pem + inter)
        (d / f"{name}.issuer.crt").write_text(inter)
        (d / f"{name}.key").write_text(key)
        cert = d / f"{name}.crt"
    elif layout == "acme.sh":
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.cer").write_text(cert_pem)
        (d / "ca.cer").write_text(inter)
        (d / "fullchain.cer").write_text(cert_pem + inter)
        (d / f"{name}.key").write_text(key)
        cert = d / f"{name}.cer"
    else:
        root.mkdir(parents=True, exist_ok=True)
        (root / f"{name}.pem").write_text(cert_pem + inter)
        (root / f"{name}-key.pem").write_text(key)          # a key: never a leaf
        (root / "ca.pem").write_text(inter)                 # CA only: never a leaf
        cert = root / f"{name}.pem"
    return cert, Path(str(cert) + ".ocsp")


@pytest.fixture
def wrapper(tmp_path):
    """An openssl that logs every call: the count cannot lie."""
    log = tmp_path / "openssl-calls.log"
    script = tmp_path / "openssl-logged"
    real = shutil.which("openssl")
    script.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{real}" "$@"\n')
    script.chmod(0o755)

    class W:
        path = str(script)

        @staticmethod
        def calls() -> list[str]:
            return log.read_text().split() if log.exists() else []

        @staticmethod
        def reset() -> None:
            if log.exists():
                log.unlink()
    return W


def renew(state, *args, **kw):
    return run_cmd("ocsp-renew-dir", "--state", str(state), *args, **kw)


def lines(res) -> list[list[str]]:
    return [l.split("\t") for l in res.stdout.decode().splitlines()]


def actions(res) -> dict:
    return {Path(cert).name if False else cert: action for action, cert, *_ in lines(res)}


def check_good(staple: Path, cert: Path, pki) -> None:
    ossl = OpenSSL()
    leaf = load_file(str(cert), ossl)[0]
    issuer = load_file(str(pki.inter_cert), ossl)[0]
    st = verify.verify(staple.read_bytes(), leaf, issuer, ossl)
    assert st.cert_status == "good"


def fresh_leaf(pki, responder, prefix="t", **kw):
    leaf = pki.make_leaf(f"{prefix}{secrets.token_hex(4)}", **kw)
    responder.restart()        # the responder sees index.txt changes only a request later
    return leaf


# ---------------------------------------------------------------------------
# each layout: first run renews all, the second prints nothing and spawns no openssl

@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_first_run_renews_all_second_is_silent(tmp_path, pki, responder, wrapper, layout):
    root = tmp_path / "tree"
    placed = [place(root, layout, n, pki.leaves[n], pki) for n in ("good1", "good2")]
    state = tmp_path / "state.json"
    res = renew(state, "--openssl", wrapper.path, root)
    assert res.returncode == 0, res.stderr
    assert res.stderr == b""
    got = lines(res)
    assert sorted(l[0] for l in got) == ["renewed", "renewed"], got
    assert sorted(l[2] for l in got) == sorted(str(s) for _, s in placed)
    for cert, staple in placed:
        check_good(staple, cert, pki)
    wrapper.reset()
    res2 = renew(state, "--openssl", wrapper.path, root)
    assert res2.returncode == 0 and res2.stdout == b"" and res2.stderr == b""
    assert wrapper.calls() == []                      # no openssl at all
    # explicit layout gives the same result as auto
    res3 = renew(state, "--layout", layout, "-v", "--openssl", wrapper.path, root)
    assert sorted(l[0] for l in lines(res3) if l[0] != "skipped") == ["fresh", "fresh"]
    skipped = {Path(l[1]).name: l[3] for l in lines(res3) if l[0] == "skipped"}
    if layout == "bundle":      # -v names what was not taken for a leaf, and why
        assert skipped == {"good1-key.pem": "not a leaf certificate (holds a private key)",
                           "good2-key.pem": "not a leaf certificate (holds a private key)",
                           "ca.pem": "not a leaf certificate (a CA certificate, not a leaf)"}
    else:
        assert skipped == {}


@pytest.mark.skipif(shutil.which("faketime") is None, reason="needs faketime")
def test_a_staple_dated_in_the_future_is_replaced(tmp_path, pki, responder):
    """A staple whose thisUpdate lies beyond the skew is renewed at once, and it must not block
    its own replacement: the responder's answer of now is installed, not called older."""
    cert, staple = place(tmp_path / "tree", "bundle", "good1", pki.leaves["good1"], pki)
    future = ResponseFactory(pki, tmp_path / "made").response([pki.leaves["good1"].cert],
                                                            faketime="+1h")
    staple.write_bytes(future)
    res = renew(tmp_path / "state.json", tmp_path / "tree")
    assert res.returncode == 0, res.stdout + res.stderr
    assert [l[0] for l in lines(res)] == ["renewed"], lines(res)
    assert staple.read_bytes() != future
    check_good(staple, cert, pki)


def test_touching_or_reissuing_renews_only_that_one(tmp_path, pki, responder, wrapper):
    root = tmp_path / "tree"
    a = fresh_leaf(pki, responder, "ta")
    b = fresh_leaf(pki, responder, "tb")
    c = fresh_leaf(pki, responder, "tc")
    (ca, sa), (cb, sb), (cc, sc) = (place(root, "certbot", n, l, pki)
                                    for n, l in (("a", a), ("b", b), ("c", c)))
    state = tmp_path / "s.json"
    assert renew(state, root).returncode == 0
    before = {p: p.read_bytes() for p in (sa, sb, sc)}
    time.sleep(1.1)                    # a new response gets a later thisUpdate
    os.utime(ca)                       # touched: now newer than its staple
    res = renew(state, "--openssl", wrapper.path, root)
    assert res.returncode == 0, res.stderr
    assert [(l[0], l[1]) for l in lines(res)] == [("renewed", str(ca))]
    assert sa.read_bytes() != before[sa]
    assert sb.read_bytes() == before[sb] and sc.read_bytes() == before[sc]
    # re-issued: a new certificate (new serial) in b's place
    b2 = fresh_leaf(pki, responder, "tb")
    shutil.copy(b2.cert, cb)
    res = renew(state, root)
    assert [(l[0], l[1]) for l in lines(res)] == [("renewed", str(cb))], res.stdout
    check_good(sb, cb, pki)
    assert sc.read_bytes() == before[sc]
    # re-issued again, and the cache deleted: the stale staple (other serial) is still replaced
    b3 = fresh_leaf(pki, responder, "tb")
    shutil.copy(b3.cert, cb)
    os.utime(cb, (time.time() - 3600, time.time() - 3600))   # even when it looks older
    state.unlink()
    res = renew(state, "-n", root)
    assert [(l[0], l[1]) for l in lines(res)] == [("would-renew", str(cb))]
    assert "re-issued" in lines(res)[0][3]


def test_dead_responder_keeps_every_staple_byte_identical(tmp_path, pki, responder, fake):
    root = tmp_path / "tree"
    placed = [place(root, "bundle", n, pki.leaves[n], pki) for n in ("good1", "good2")]
    state = tmp_path / "s.json"
    assert renew(state, root).returncode == 0
    before = {s: s.read_bytes() for _, s in placed}
    modes = {s: stat.S_IMODE(s.stat().st_mode) for _, s in placed}
    for answer in (dict(body=status_only("tryLater")), dict(status=500, body=b"oops"),
                   dict(body=b"garbage, not DER")):
        fake.set(**answer)
        res = renew(state, "-B", "-u", fake.url, root)
        assert res.returncode == 1, res.stdout
        got = lines(res)
        assert [l[0] for l in got] == ["failed", "failed"]
        assert all("kept, valid until" in l[3] for l in got), got
        for _, s in placed:
            assert s.read_bytes() == before[s] and stat.S_IMODE(s.stat().st_mode) == modes[s]
    # nothing listening at all
    import pki as pkimod
    port = pkimod.free_port()
    res = renew(state, "-B", "--timeout", "2", "-u", f"http://127.0.0.1:{port}/", root)
    assert res.returncode == 1
    assert all(l[0] == "failed" and "connection refused" in l[3] for l in lines(res))
    assert not list(root.glob("*.ocsptools-tmp")) and not list(root.glob(".*tmp"))
    for _, s in placed:
        assert s.read_bytes() == before[s]


def test_dry_run_and_question_change_nothing(tmp_path, pki, responder, wrapper):
    root = tmp_path / "tree"
    placed = [place(root, "acme.sh", n, pki.leaves[n], pki) for n in ("good1", "good2")]
    state = tmp_path / "s.json"
    res = renew(state, "-n", root)
    assert res.returncode == 0
    assert sorted(l[0] for l in lines(res)) == ["would-renew", "would-renew"]
    assert all(l[3] == "no staple yet" for l in lines(res))
    assert not any(s.exists() for _, s in placed)
    res = renew(state, "-q", root)
    assert res.returncode == 1 and res.stdout == b"" and res.stderr == b""
    assert not any(s.exists() for _, s in placed)
    assert renew(state, root).returncode == 0
    res = renew(state, "-q", "--openssl", wrapper.path, root)
    assert res.returncode == 0 and res.stdout == b""
    assert renew(state, "-n", root).stdout == b""
    # -q sees a due staple through the freshness rule alone
    res = renew(state, "-q", "--renew-at", "0", root)
    assert res.returncode == 1
    res = renew(state, "-n", "--min-validity", "2d", root)
    assert [l[0] for l in lines(res)] == ["would-renew", "would-renew"]
    assert "less than 2d" in lines(res)[0][3]


def test_dry_run_and_question_never_write_the_state_and_q_prints_nothing(tmp_path, pki, responder):
    """-n and -q take no lock, so they must not save the state cache either (an overlapping -n
    would overwrite what a locked run saved); -q prints nothing, not even configuration warnings."""
    root = tmp_path / "tree"
    place(root, "bundle", "good1", pki.leaves["good1"], pki)
    place(root, "bundle", "good2", pki.leaves["good2"], pki)
    state = tmp_path / "s.json"
    cfg = tmp_path / "ocsptools.yaml"
    cfg.write_text(f"dirs: [{root}]\nincludes: [{tmp_path / 'missing.d'}]\n")
    assert "does not exist" in renew(state, "--config", cfg, "-n").stderr.decode()   # a warning
    assert not state.exists()               # no cache yet: -n created none
    assert renew(state, "--config", cfg, "-q").returncode == 1 and not state.exists()
    assert renew(state, "--config", cfg).returncode == 0
    saved = state.read_bytes()
    (root / "good2.pem.ocsp").unlink()      # something to decide differently, and to load
    os.utime(root / "good1.pem", None)      # a changed identity: the entry is rebuilt in memory
    res = renew(state, "--config", cfg, "-n", "-v")
    assert "would-renew" in res.stdout.decode() and state.read_bytes() == saved
    res = renew(state, "--config", cfg, "-q", "-v")
    assert res.returncode == 1 and res.stdout == b"" and res.stderr == b""
    assert state.read_bytes() == saved
    # while another run holds the lock, -q and -n still answer (they never wait or exit 2)
    fd = os.open(str(state) + ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert renew(state, "--config", cfg, "-q").returncode == 1
        assert renew(state, "--config", cfg, "-n").returncode == 0
    finally:
        os.close(fd)
    assert state.read_bytes() == saved


def test_always_renew_and_on_change(tmp_path, pki, responder):
    root = tmp_path / "tree"
    placed = [place(root, "lego", n, pki.leaves[n], pki) for n in ("good1", "good2")]
    state = tmp_path / "s.json"
    out = tmp_path / "changed.txt"
    hook = f'printf "%s" "$OCSP_CHANGED" > {out}; echo hook-ran'
    res = renew(state, "--on-change", hook, root)
    assert res.returncode == 0
    assert sorted(out.read_text().split("\n")) == sorted(str(s) for _, s in placed)
    assert b"hook-ran" not in res.stdout            # the hook's output never mixes into the TSV
    out.unlink()
    res = renew(state, "--on-change", hook, root)   # nothing changed: the hook does not run
    assert res.stdout == b"" and not out.exists()
    time.sleep(1.1)
    before = {s: s.read_bytes() for _, s in placed}
    res = renew(state, "-B", "--on-change", "exit 3", root)
    assert [l[0] for l in lines(res)] == ["renewed", "renewed"]
    assert all(s.read_bytes() != before[s] for _, s in placed)
    assert res.returncode == 1
    assert "--on-change command exited with status 3" in assert_one_line_error(res.stderr)


def test_file_names_never_reach_the_shell(tmp_path, pki, responder):
    root = tmp_path / "tree"
    d = root / "live" / "x$(touch PWNED)'\";"
    d.mkdir(parents=True)
    shutil.copy(pki.leaves["good1"].cert, d / "cert.pem")
    shutil.copy(pki.inter_cert, d / "chain.pem")
    state = tmp_path / "s.json"
    out = tmp_path / "changed.txt"
    res = renew(state, "--on-change", f'printf "%s" "$OCSP_CHANGED" > {out}', root, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert out.read_text() == str(d / "cert.pem.ocsp")
    assert not (tmp_path / "PWNED").exists()


def test_stop_on_error_and_keep_going(tmp_path, pki, responder, fake):
    root = tmp_path / "tree"
    for n in ("good1", "good2"):
        place(root, "bundle", n, pki.leaves[n], pki)
    fake.set(body=status_only("tryLater"))
    state = tmp_path / "s.json"
    res = renew(state, "-j", "1", "-S", "-u", fake.url, root)
    assert res.returncode == 1
    assert [l[0] for l in lines(res)] == ["failed"]
    assert len(fake.requests) == 1
    res = renew(state, "-j", "1", "-k", "-u", fake.url, root)
    assert [l[0] for l in lines(res)] == ["failed", "failed"]


def test_jobs_and_per_responder_bound_concurrency(tmp_path, pki, responder):
    """A delaying relay in front of the real responder measures how many fetches are in flight."""
    root = tmp_path / "tree"
    leaves = [fresh_leaf(pki, responder, "j") for _ in range(6)]
    for i, leaf in enumerate(leaves):
        place(root, "bundle", f"s{i}", leaf, pki)
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def relay(req):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        try:
            time.sleep(0.2)
            if req.method == "POST":
                r = urllib.request.Request(responder.url, data=req.body,
                                           headers={"Content-Type": "application/ocsp-request"})
            else:
                r = urllib.request.Request(responder.url.rstrip("/") + req.path)
            with lock:    # the real responder answers one request at a time
                body = urllib.request.urlopen(r, timeout=5).read()
            return Answer(body=body)
        finally:
            with lock:
                state["now"] -= 1

    with FakeResponder() as relay_srv:
        relay_srv.set(handler=relay)
        for jobs, per, expect in (("1", "4", 1), ("4", "2", 2), ("3", "4", 3)):
            state["max"] = 0
            for old in root.glob("*.ocsp"):
                old.unlink()
            res = renew(tmp_path / f"s{jobs}{per}.json", "-j", jobs, "--per-responder", per,
                        "-u", relay_srv.url, root)
            assert res.returncode == 0, res.stdout + res.stderr
            assert len(lines(res)) == 6
            assert state["max"] == expect, (jobs, per, state["max"])


def test_revoked_certificate(tmp_path, pki, responder):
    root = tmp_path / "tree"
    cert, staple = place(root, "certbot", "rv", pki.leaves["revoked1"], pki)
    place(root, "certbot", "ok", pki.leaves["good1"], pki)
    state = tmp_path / "s.json"
    res = renew(state, root)
    assert res.returncode == 1
    got = {l[1]: l for l in lines(res)}
    assert got[str(cert)][0] == "revoked"
    assert "REVOKED at" in got[str(cert)][3] and "keyCompromise" in got[str(cert)][3]
    assert "no staple installed" in got[str(cert)][3]
    assert not staple.exists()
    assert renew(state, root).returncode == 1          # still news on the next run


def test_revoked_keeps_old_staple_and_says_until_when(tmp_path, pki, responder):
    leaf = fresh_leaf(pki, responder, "rk")
    root = tmp_path / "tree"
    cert, staple = place(root, "bundle", "rk", leaf, pki)
    state = tmp_path / "s.json"
    assert renew(state, root).returncode == 0
    good = staple.read_bytes()
    pki.revoke(leaf, "superseded")
    responder.restart()
    time.sleep(1.1)
    res = renew(state, "-B", root)
    assert res.returncode == 1
    (action, _, _, detail), = lines(res)
    assert action == "revoked" and "superseded" in detail
    assert "the installed staple was kept, valid until" in detail
    assert staple.read_bytes() == good


def test_no_ocsp_certificate_quiet_and_stale_staple_reported_once(tmp_path, pki, responder):
    root = tmp_path / "tree"
    quiet = fresh_leaf(pki, responder, "nq", ocsp_urls=[])
    stale = fresh_leaf(pki, responder, "ns", ocsp_urls=[])
    place(root, "bundle", "quiet", quiet, pki)
    cert, staple = place(root, "bundle", "stale", stale, pki)
    staple.write_bytes(b"an old staple from when the CA still had OCSP")
    state = tmp_path / "s.json"
    assert renew(state, "-q", root).returncode == 0           # -q: nothing due, nothing said
    assert len(lines(renew(state, "-n", root))) == 1          # -n shows it, and does not use it up
    res = renew(state, root)
    assert res.returncode == 0
    assert lines(res) == [["stale-staple", str(cert), str(staple),
                           "stale staple for a certificate without OCSP; servers may still serve "
                           "it: delete it or run with --prune"]]
    res = renew(state, root)
    assert res.returncode == 0 and res.stdout == b""         # reported once
    assert staple.exists()
    state.unlink()                                          # the cache only changes how often
    res = renew(state, "-n", "--prune", root)
    assert [l[0] for l in lines(res)] == ["stale-staple"] and "would delete" in lines(res)[0][3]
    assert staple.exists()
    res = renew(state, "--prune", root)
    assert [l[0] for l in lines(res)] == ["stale-staple"] and "deleted" in lines(res)[0][3]
    assert not staple.exists()
    assert renew(state, "--prune", root).stdout == b""


def test_expired_certificate_skipped_with_a_message(tmp_path, pki, responder):
    from datetime import timedelta
    old = fresh_leaf(pki, responder, "ex", not_before=timedelta(days=-30), not_after=timedelta(days=-1))
    root = tmp_path / "tree"
    cert, staple = place(root, "bundle", "ex", old, pki)
    state = tmp_path / "s.json"
    res = renew(state, root)
    assert res.returncode == 0
    (action, c, _, detail), = lines(res)
    assert action == "skipped" and c == str(cert) and "certificate expired at" in detail
    assert not staple.exists()
    assert renew(state, root).stdout == b""


def test_lock_second_run_exits_2_or_waits(tmp_path, pki, responder):
    root = tmp_path / "tree"
    place(root, "bundle", "good1", pki.leaves["good1"], pki)
    state = tmp_path / "s.json"
    lockfile = tmp_path / "s.json.lock"
    fd = os.open(lockfile, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"pid 4242 since 2026-01-01T00:00:00Z\n")
    try:
        res = renew(state, root)
        assert res.returncode == 2 and res.stdout == b""
        msg = assert_one_line_error(res.stderr)
        assert str(lockfile) in msg and "pid 4242" in msg and "--lock-timeout" in msg
        threading.Timer(0.5, lambda: os.close(fd)).start()
        res = renew(state, "--lock-timeout", "10", root)
        assert res.returncode == 0, res.stderr
        assert [l[0] for l in lines(res)] == ["renewed"]
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


def test_backup_and_backup_keep(tmp_path, pki, responder):
    root = tmp_path / "tree"
    cert, staple = place(root, "bundle", "good2", pki.leaves["good2"], pki)
    state = tmp_path / "s.json"
    assert renew(state, "--backup", root).returncode == 0
    backups = sorted(root.glob("good2.pem.ocsp-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == staple.read_bytes()
    for day in range(1, 6):
        (root / f"good2.pem.ocsp-202001{day:02}-120000").write_bytes(b"old")
    (root / "good2.pem.ocsp-notabackup").write_bytes(b"x")
    time.sleep(1.1)
    first = staple.read_bytes()
    res = renew(state, "-B", "--backup-keep", "2", root)
    assert res.returncode == 0
    backups = sorted(root.glob("good2.pem.ocsp-2*"))
    assert len(backups) == 2
    assert backups[-1].read_bytes() == staple.read_bytes() != first
    assert backups[0].read_bytes() == first
    assert (root / "good2.pem.ocsp-notabackup").exists()


def test_stdin_paths_and_nul(tmp_path, pki, responder):
    root = tmp_path / "tree"
    c1, s1 = place(root, "bundle", "good1", pki.leaves["good1"], pki)
    c2, s2 = place(root / "sub dir", "bundle", "good2", pki.leaves["good2"], pki)
    found = subprocess.run(["find", str(root), "-name", "*.pem"], capture_output=True).stdout
    res = renew(tmp_path / "a.json", "-", input=found)
    assert res.returncode == 0, res.stderr
    assert sorted(l[1] for l in lines(res)) == sorted([str(c1), str(c2)])   # keys and CA files ignored
    s1.unlink()
    s2.unlink()
    found0 = subprocess.run(["find", str(root), "-name", "*.pem", "-print0"], capture_output=True).stdout
    res = renew(tmp_path / "b.json", "-0", "-", input=found0)
    assert sorted(l[2] for l in lines(res)) == sorted([str(s1), str(s2)])
    res = renew(tmp_path / "c.json", "-", input=str(root / "missing.pem").encode() + b"\n")
    assert res.returncode == 1 and "no such file" in lines(res)[0][3]


def test_out_dir_and_collisions(tmp_path, pki, responder):
    root = tmp_path / "tree"
    out = tmp_path / "staples"
    out.mkdir()
    place(root, "certbot", "site-a", pki.leaves["good1"], pki)
    place(root, "certbot", "site-b", pki.leaves["good2"], pki)
    res = renew(tmp_path / "s.json", "--out-dir", out, root)
    assert res.returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["site-a.ocsp", "site-b.ocsp"]
    flat = tmp_path / "flat"
    place(flat / "a", "bundle", "same", pki.leaves["good1"], pki)
    place(flat / "b", "bundle", "same", pki.leaves["good2"], pki)
    res = renew(tmp_path / "t.json", "-r", "--out-dir", out, flat)
    assert res.returncode == 1
    assert [l[0] for l in lines(res)] == ["failed", "failed"]
    assert "would share the staple" in lines(res)[0][3]
    res = renew(tmp_path / "u.json", "--out-dir", tmp_path / "nope", root)
    assert res.returncode == 2 and "--out-dir" in assert_one_line_error(res.stderr)


def test_a_failed_renewal_says_what_it_kept(tmp_path, pki, responder, fake):
    """Issue 15 item 9: an expired staple was "kept (it is not valid)": say it expired, and when;
    a file that is no staple says why; no file says so."""
    from test_proxy_support import faketime_lib
    lib = faketime_lib()
    root = tmp_path / "tree"
    (cert, staple), (cert2, staple2) = [place(root, "bundle", n, pki.leaves[n], pki)
                                        for n in ("good1", "good2")]
    state = tmp_path / "s.json"
    assert renew(state, root).returncode == 0
    staple2.write_bytes(b"not a staple")
    fake.set(body=status_only("tryLater"))
    later = {"LD_PRELOAD": lib, "FAKETIME": "+2d", "TZ": "UTC"}     # the 1-day staple expired
    res = renew(state, "-u", fake.url, root, env=later)
    got = {row[1]: row[3] for row in lines(res)}
    assert res.returncode == 1, res.stderr
    assert re.search(r"; the installed staple was kept, but it expired at \S+Z \(servers stop "
                     r"stapling it\)$", got[str(cert)]), got
    assert got[str(cert2)].endswith("; the installed file was kept (not a valid staple: not a DER "
                                    "OCSP response (not enough data))"), got
    staple2.unlink()
    res = renew(state, "-u", fake.url, root)
    assert {row[1]: row[3] for row in lines(res)}[str(cert2)].endswith("; no staple installed")


def renewed_tree_with_cache(tmp_path, pki, responder) -> tuple[Path, Path]:
    """A certbot tree (two leaves and one without OCSP) renewed once: (root, state cache)."""
    root = tmp_path / "tree"
    for n in ("good1", "good2"):
        place(root, "certbot", n, pki.leaves[n], pki)
    nocsp = fresh_leaf(pki, responder, "nc", ocsp_urls=[])
    place(root, "certbot", "nocsp", nocsp, pki)
    state = tmp_path / "s.json"
    assert renew(state, root).returncode == 0
    return root, state


def test_state_cache_deleted_midway_changes_no_decision(tmp_path, pki, responder, wrapper):
    root, state = renewed_tree_with_cache(tmp_path, pki, responder)
    backup = state.read_bytes()
    # the same decisions with and without the cache, at several thresholds; without -v, which
    # would bypass the cache's fast path (the path a cron -q really takes)
    for extra in ((), ("--renew-at", "0"), ("--min-validity", "30h"), ("-B",)):
        wrapper.reset()
        with_cache = [renew(state, flag, "--openssl", wrapper.path, *extra, root) for flag in ("-n", "-q")]
        if not extra:
            assert wrapper.calls() == []    # decided by the fast path alone
        state.unlink()
        without = [renew(state, flag, *extra, root) for flag in ("-n", "-q")]
        assert not state.exists()
        assert [r.returncode for r in with_cache] == [r.returncode for r in without] \
            == [0, 0 if not extra else 1], extra
        assert sorted(lines(with_cache[0])) == sorted(lines(without[0])), extra
        assert bool(lines(with_cache[0])) == bool(extra)
        state.write_bytes(backup)
    # deleted between runs: the next real run still does nothing
    state.unlink()
    res = renew(state, root)
    assert res.returncode == 0 and res.stdout == b""
    # a corrupt cache is ignored, not fatal
    state.write_text("{not json")
    res = renew(state, root)
    assert res.returncode == 0 and res.stdout == b""


@pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime not installed (Debian package faketime)")
def test_state_cache_past_due_says_would_renew(tmp_path, pki, responder):
    """Past the due instant (half of the 1-day staples) with the cache intact: its fresh window
    has closed, so the cached facts say would-renew, as a run without the cache does."""
    root, state = renewed_tree_with_cache(tmp_path, pki, responder)
    backup = state.read_bytes()

    def later(*args):
        return subprocess.run(["faketime", "-f", "+13h", command("ocsp-renew-dir"), "--state",
                               str(state), *map(str, args)], capture_output=True, timeout=60)
    for cached in (True, False):
        n, q = later("-n", root), later("-q", root)
        assert sorted(l[0] for l in lines(n)) == ["would-renew", "would-renew"], (cached, n)
        assert all("50% of its lifetime elapsed" in l[3] for l in lines(n)), lines(n)
        assert q.returncode == 1 and q.stdout == b"" and q.stderr == b""
        assert state.exists() == cached and (not cached or state.read_bytes() == backup)
        state.unlink(missing_ok=True)


def test_unusable_state_directory_is_a_setup_error(tmp_path, pki):
    (tmp_path / "plainfile").write_text("x")
    root = tmp_path / "tree"
    place(root, "bundle", "good1", pki.leaves["good1"], pki)
    res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "plainfile" / "s.json", root)
    assert res.returncode == 2
    assert "lock file" in assert_one_line_error(res.stderr)


def test_usage_errors_exit_2_with_one_line(tmp_path):
    for args in ((), ("--renew-at", "150", "x"), ("-j", "0", "x"), (str(tmp_path / "missing"),),
                 ("-n", "-q", str(tmp_path)), ("--layout", "nginx", str(tmp_path)),
                 ("-u", "ftp://x/", str(tmp_path)), ("--config", str(tmp_path / "none.yaml"))):
        res = renew(tmp_path / "s.json", *args)
        assert res.returncode == 2, args
        assert_one_line_error(res.stderr)


@pytest.mark.slow
def test_256_renewals_exit_0_and_failures_exit_1(tmp_path, pki, responder, fake):
    """ocspbot returned the number of renewals: 256 of them exited 0 (and negative codes 252-255)."""
    root = tmp_path / "tree"
    root.mkdir()
    leaf = pki.leaves["good1"]
    bundle = Path(leaf.cert).read_text() + Path(pki.inter_cert).read_text()
    for i in range(256):
        (root / f"c{i:03}.pem").write_text(bundle)
    res = renew(tmp_path / "s.json", "-j", "8", root, timeout=300)
    assert res.returncode == 0, res.stderr
    assert len(lines(res)) == 256 and {l[0] for l in lines(res)} == {"renewed"}
    fake.set(body=status_only("unauthorized"))
    res = renew(tmp_path / "s.json", "-B", "-j", "8", "-u", fake.url, root, timeout=300)
    assert res.returncode == 1
    assert len(lines(res)) == 256 and {l[0] for l in lines(res)} == {"failed"}


def test_progress_only_on_a_terminal(tmp_path, pki, responder):
    import pty
    root = tmp_path / "tree"
    root.mkdir()
    bundle = Path(pki.leaves["good1"].cert).read_text() + Path(pki.inter_cert).read_text()
    for i in range(12):
        (root / f"p{i:02}.pem").write_text(bundle)
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([str(Path(__import__("sys").executable).parent / "ocsp-renew-dir"),
                               "--state", str(tmp_path / "s.json"), str(root)],
                              stdout=subprocess.PIPE, stderr=slave, timeout=60)
        os.close(slave)
        slave = -1
        err = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    assert b"12/12" in err                                  # progress on the terminal
    assert all(l.startswith(b"renewed\t") for l in proc.stdout.splitlines())
    for s in root.glob("*.ocsp"):
        s.unlink()
    res = renew(tmp_path / "s2.json", root)                  # not a terminal: no progress at all
    assert res.returncode == 0 and res.stderr == b""


def test_proxy_from_the_environment_and_no_proxy(tmp_path, pki, responder, fake):
    root = tmp_path / "tree"
    place(root, "bundle", "good1", pki.leaves["good1"], pki)
    fake.set(body=status_only("tryLater"))          # plays the proxy
    env = {"http_proxy": fake.url}
    res = renew(tmp_path / "a.json", root, env=env)
    assert res.returncode == 1 and lines(res)[0][0] == "failed"
    assert fake.requests and fake.requests[0].path.startswith(responder.url)   # absolute URI
    seen = len(fake.requests)
    res = renew(tmp_path / "b.json", root, env={**env, "no_proxy": "127.0.0.1"})
    assert res.returncode == 0 and lines(res)[0][0] == "renewed"
    assert len(fake.requests) == seen
