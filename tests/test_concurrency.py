"""Overlapping ocsp-renew-dir runs on one tree, and a certificate re-issued while a run is in flight.

A relay in front of the real ``openssl ocsp`` responder slows every answer down so that the runs
really overlap, and counts the requests: a renewal done twice would show up there.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import reliability
from conftest import assert_one_line_error, command, run_cmd
from fake_responder import Answer, FakeResponder

from ocsptools import verify
from ocsptools.certs import load_file
from ocsptools.openssl import OpenSSL


def staple_serial_ok(staple: Path, cert: Path, issuer: Path) -> bool:
    """Does STAPLE verify, status good, for the certificate in CERT?"""
    ossl = OpenSSL()
    try:
        st = verify.verify(staple.read_bytes(), load_file(str(cert), ossl)[0],
                           load_file(str(issuer), ossl)[0], ossl)
    except Exception:
        return False
    return st.cert_status == "good"


class Relay:
    """Forwards OCSP requests to the real responder after DELAY seconds; counts them.
    BEFORE(n) runs in the handler before the N-th request is forwarded."""

    def __init__(self, responder, delay: float, before=None) -> None:
        self.responder = responder
        self.delay = delay
        self.before = before
        self.count = 0
        self._lock = threading.Lock()
        self._serial = threading.Lock()          # the real responder answers one at a time
        self.srv = FakeResponder()
        self.srv.set(handler=self)

    def __call__(self, req) -> Answer:
        with self._lock:
            self.count += 1
            n = self.count
        if self.before is not None:
            self.before(n)
        time.sleep(self.delay)
        if req.method == "POST":
            r = urllib.request.Request(self.responder.url, data=req.body,
                                       headers={"Content-Type": "application/ocsp-request"})
        else:
            r = urllib.request.Request(self.responder.url.rstrip("/") + req.path)
        with self._serial:
            body = urllib.request.urlopen(r, timeout=10).read()
        return Answer(body=body)

    def __enter__(self) -> "Relay":
        self.srv.start()
        return self

    def __exit__(self, *exc) -> None:
        self.srv.stop()

    @property
    def url(self) -> str:
        return self.srv.url


def make_tree(root: Path, leaves, pki) -> list:
    root.mkdir(parents=True, exist_ok=True)
    inter = Path(pki.inter_cert).read_text()
    out = []
    for i, leaf in enumerate(leaves):
        cert = root / f"site{i}.pem"
        cert.write_text(Path(leaf.cert).read_text() + inter)
        out.append((cert, Path(str(cert) + ".ocsp")))
    return out


def spawn(*args) -> subprocess.Popen:
    return subprocess.Popen([command("ocsp-renew-dir"), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def finish(procs) -> list:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append((p.returncode, stdout.decode(), stderr.decode()))
    return out


@pytest.mark.parametrize("n", [2, 8])
def test_overlapping_runs_wait_for_the_lock_and_renew_nothing_twice(n, tmp_path, pki, responder):
    placed = make_tree(tmp_path / "tree", [pki.leaves["good1"], pki.leaves["good2"]] * 2, pki)
    state = tmp_path / "state.json"
    with Relay(responder, delay=0.3) as relay:
        start = time.monotonic()
        procs = [spawn("--state", state, "--lock-timeout", "60", "-u", relay.url, tmp_path / "tree")
                 for _ in range(n)]
        results = finish(procs)
        elapsed = time.monotonic() - start
        requests = relay.count
    for rc, out, err in results:
        assert rc == 0, (out, err)
        assert err == "", err
    outputs = [out for _, out, _ in results if out]
    # one run renewed every staple; every other one waited, then found them fresh and said nothing
    assert len(outputs) == 1, outputs
    rows = [l.split("\t") for l in outputs[0].splitlines()]
    assert sorted((r[0], r[1]) for r in rows) == sorted(("renewed", str(c)) for c, _ in placed)
    assert requests == len(placed), f"{requests} fetches for {len(placed)} staples"
    for cert, staple in placed:
        assert staple_serial_ok(staple, cert, pki.inter_cert)
    assert sorted(p.name for p in (tmp_path / "tree").iterdir()) == \
        sorted([c.name for c, _ in placed] + [s.name for _, s in placed])
    # the lock file stays (empty: nobody holds it), nothing else appears beside the state
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock", "state.json.status", "tree"]
    assert (tmp_path / "state.json.lock").read_bytes() == b""
    reliability.record("concurrency", f"{n} overlapping runs, --lock-timeout 60, {len(placed)} staples due",
                       "ocsp-renew-dir",
                       "runs serialise; one renews everything, the others find fresh staples and say "
                       "nothing; exit 0 each",
                       f"all {n} exit 0 in {elapsed:.1f} s; one run printed {len(rows)} `renewed` lines, "
                       f"{n - 1} printed nothing; {requests} fetches for {len(placed)} staples; all verify",
                       lost=0)


def test_overlapping_runs_without_lock_timeout_exit_2(tmp_path, pki, responder):
    placed = make_tree(tmp_path / "tree", [pki.leaves["good1"], pki.leaves["good2"]], pki)
    state = tmp_path / "state.json"
    lock = tmp_path / "state.json.lock"
    with Relay(responder, delay=4) as relay:
        first = spawn("--state", state, "-u", relay.url, tmp_path / "tree")
        deadline = time.monotonic() + 30
        while not (lock.exists() and lock.read_bytes().startswith(b"pid ")):
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.01)
        others = finish([spawn("--state", state, "-u", relay.url, tmp_path / "tree") for _ in range(7)])
        (rc, out, err), = finish([first])
    assert rc == 0 and err == "" and len(out.splitlines()) == len(placed), (out, err)
    for orc, oout, oerr in others:
        assert orc == 2 and oout == "", (orc, oout, oerr)
        line = assert_one_line_error(oerr.encode())
        tree = str((tmp_path / "tree").resolve())
        assert line.startswith(f"ocsp-renew-dir: {tree}: another ocsp-renew-dir is still running"), line
        assert f"pid {first.pid} since" in line and "--lock-timeout" in line, line
    assert relay.count == len(placed)
    for cert, staple in placed:
        assert staple_serial_ok(staple, cert, pki.inter_cert)
    reliability.record("concurrency", "8 overlapping runs without --lock-timeout", "ocsp-renew-dir",
                       "the first runs; the others exit 2 at once with one line naming the lock and "
                       "its holder",
                       f"first exit 0; 7 exit 2: {line.replace(str(tmp_path) + '/', '')}", lost=0)


def test_runs_with_different_state_files_still_never_corrupt(tmp_path, pki, responder):
    """Four state files (e.g. the tree named once as DIR and once through --config): the tree's
    own lock serialises the runs (--lock-timeout: they wait), while ocsp-fetch -o, which takes no
    lock, writes the same staples meanwhile; every staple stays whole and valid."""
    placed = make_tree(tmp_path / "tree", [pki.leaves["good1"], pki.leaves["good2"]], pki)
    with Relay(responder, delay=0.05) as relay:
        for rnd in range(3):
            procs = [spawn("--state", tmp_path / f"s{i}.json", "--lock-timeout", "60", "-B", "-u",
                           relay.url, tmp_path / "tree") for i in range(4)]
            fetches = [subprocess.Popen([command("ocsp-fetch"), "-q", "-u", relay.url, "-o", str(s), str(c)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                       for c, s in placed]
            for rc, out, err in finish(procs):
                assert rc in (0, 1) and "Traceback" not in err, (out, err)
                # a loser of the race may only be told its answer is not newer than what a
                # parallel run just installed
                for row in (l.split("\t") for l in out.splitlines()):
                    assert row[0] == "renewed" or "older than the installed" in row[3], row
            for rc, out, err in finish(fetches):
                assert rc in (0, 1) and "Traceback" not in err, err
                assert rc == 0 or "older than the installed" in err, err
            for cert, staple in placed:
                assert staple_serial_ok(staple, cert, pki.inter_cert), rnd
            assert sorted(p.name for p in (tmp_path / "tree").iterdir()) == \
                sorted([c.name for c, _ in placed] + [s.name for _, s in placed])
    reliability.record("concurrency", "4 runs with distinct state files (one tree lock) and "
                       "ocsp-fetch -o (no lock) on the same staples, 3 rounds, -B",
                       "ocsp-renew-dir + ocsp-fetch",
                       "the runs wait for the tree's lock; ocsp-fetch overlaps them: still every "
                       "staple whole and valid, no temp files",
                       "every run exit 0 or 1 (an answer older than a parallel run's install is "
                       "refused); every staple verifies after each round; no temp files", lost=0)


def test_certificate_reissued_while_a_run_is_in_flight(tmp_path, pki, responder):
    """certbot renews (live/ symlink moved to a new archive file) while our fetch is on the wire.
    The staple installed is for the old certificate; the next run must see that and renew it."""
    import secrets
    old = pki.make_leaf(f"cc{secrets.token_hex(4)}")
    responder.restart()
    archive = tmp_path / "etc" / "archive" / "site"
    live = tmp_path / "etc" / "live" / "site"
    archive.mkdir(parents=True)
    live.mkdir(parents=True)
    (archive / "cert1.pem").write_bytes(Path(old.cert).read_bytes())
    (archive / "chain1.pem").write_bytes(Path(pki.inter_cert).read_bytes())
    (live / "cert.pem").symlink_to("../../archive/site/cert1.pem")
    (live / "chain.pem").symlink_to("../../archive/site/chain1.pem")
    cert, staple = live / "cert.pem", live / "cert.pem.ocsp"
    state = tmp_path / "s.json"
    new = {}

    def reissue(n: int) -> None:
        if n != 1:
            return
        leaf = new["leaf"] = pki.make_leaf(f"cc{secrets.token_hex(4)}")
        (archive / "cert2.pem").write_bytes(Path(leaf.cert).read_bytes())
        tmp_link = live / ".cert.pem.new"
        tmp_link.symlink_to("../../archive/site/cert2.pem")
        os.replace(tmp_link, cert)                      # atomic, as a careful renewal client does

    with Relay(responder, delay=0, before=reissue) as relay:
        res = run_cmd("ocsp-renew-dir", "--state", state, "-u", relay.url, tmp_path / "etc")
    assert res.returncode == 0, res.stdout + res.stderr
    assert [l.split("\t")[0] for l in res.stdout.decode().splitlines()] == ["renewed"]
    first_ok_for_new = staple_serial_ok(staple, cert, pki.inter_cert)
    responder.restart()                                 # the responder now knows the new serial
    # never a staple for the old certificate presented as fresh for the new one
    q = run_cmd("ocsp-renew-dir", "--state", state, "-q", tmp_path / "etc")
    if not first_ok_for_new:
        assert q.returncode == 1, "the stale staple of the old certificate counts as up to date"
        n = run_cmd("ocsp-renew-dir", "--state", state, "-n", tmp_path / "etc")
        assert "re-issued" in n.stdout.decode() or "another certificate" in n.stdout.decode() \
            or "not a response for this certificate" in n.stdout.decode(), n.stdout
    res2 = run_cmd("ocsp-renew-dir", "--state", state, tmp_path / "etc")
    assert res2.returncode == 0, res2.stdout + res2.stderr
    if not first_ok_for_new:
        assert [l.split("\t")[0] for l in res2.stdout.decode().splitlines()] == ["renewed"]
    assert staple_serial_ok(staple, cert, pki.inter_cert)      # valid for the certificate on disk
    assert run_cmd("ocsp-renew-dir", "--state", state, "-q", tmp_path / "etc").returncode == 0
    reliability.record("concurrency", "certificate re-issued (live/ symlink moved) while the fetch "
                       "is on the wire", "ocsp-renew-dir",
                       "the staple is valid for the certificate on disk, or the next run renews it",
                       ("the run installed the old certificate's staple; -q then exits 1 and -n names "
                        "the re-issue; the next run renewed it for the new certificate"
                        if not first_ok_for_new else
                        "the run already stapled the new certificate"), lost=0)


def stale_and_slow_tree(tmp_path, pki, fake, prefix: str = "conc") -> Path:
    """A tree with a stale staple of a certificate without OCSP URL (reported once) and a
    certificate whose responder (FAKE) answers 500 after 2 s (a run holds the lock that long)."""
    import shutil
    tree = tmp_path / "tree"
    tree.mkdir()
    nourl = pki.make_leaf(f"{prefix}-nourl", ocsp_urls=[])
    shutil.copy(nourl.fullchain, tree / "nourl.pem")
    (tree / "nourl.pem.ocsp").write_bytes(b"\x30\x03\x0a\x01\x03")     # a leftover staple
    slow = pki.make_leaf(f"{prefix}-slow", ocsp_urls=[fake.url])
    shutil.copy(slow.fullchain, tree / "slow.pem")
    fake.set(delay=2.0, status=500, body=b"slow", content_type="text/plain")
    return tree


def test_a_run_that_waited_for_the_lock_sees_the_state_of_the_run_before(tmp_path, pki, fake):
    """Run A reports a stale staple (once) while a slow responder keeps it holding the lock;
    run B, waiting for the lock, must read the state A saved and not report it again."""
    tree = stale_and_slow_tree(tmp_path, pki, fake)
    state = tmp_path / "state.json"
    a = spawn("--state", state, "--timeout", "5", tree)
    time.sleep(0.8)                                   # A holds the lock now, waiting for the responder
    b = spawn("--state", state, "--timeout", "5", "--lock-timeout", "30", tree)
    (a_rc, a_out, _), (b_rc, b_out, b_err) = finish([a, b])
    assert "stale-staple\t" in a_out, a_out
    assert "stale-staple\t" not in b_out, (b_out, b_err)
    assert "failed\t" in a_out and "failed\t" in b_out      # both still tried the slow responder


def test_any_spelling_of_a_watched_tree_meets_its_lock(tmp_path, pki, responder):
    """Issue 15 item 4: while `--watch TREE` runs, a cron run over the same tree (through a
    symbolic link, as TREE/sub/.., as the parent with -r, over a subtree, with another state
    file) exits 2 with one line naming the tree and the daemon; a sibling tree goes ahead."""
    tree, sibling = tmp_path / "certs" / "tree", tmp_path / "certs" / "sibling"
    make_tree(tree, [pki.leaves["good1"]], pki)
    make_tree(tree / "sub", [pki.leaves["good2"]], pki)
    make_tree(sibling, [pki.leaves["good2"]], pki)
    (tmp_path / "link").symlink_to(tree)
    daemon = subprocess.Popen([command("ocsp-renew-dir"), "--watch", "-r", "--state",
                               str(tmp_path / "watch.json"), "-u", responder.url, str(tree)],
                              stderr=subprocess.PIPE, text=True)
    try:
        assert "start" in daemon.stderr.readline()
        spellings = {
            "symlink, -B": ["-B", tmp_path / "link"],
            "TREE/sub/..": [tree / "sub" / ".."],
            "parent, -r": ["-r", tmp_path / "certs"],
            "parent/../certs/tree": [tmp_path / "certs" / ".." / "certs" / "tree"],
            "subtree": [tree / "sub"],
            "a certificate in it": [tree / "site0.pem"],
        }
        for what, args in spellings.items():
            res = run_cmd("ocsp-renew-dir", "--state", tmp_path / f"cron-{len(what)}.json",
                          "-u", responder.url, *args)
            assert res.returncode == 2 and res.stdout == b"", (what, res)
            line = assert_one_line_error(res.stderr)
            assert f"pid {daemon.pid} since" in line and "another ocsp-renew-dir" in line, (what, line)
        res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "sib.json", "-u", responder.url, sibling)
        assert res.returncode == 0 and res.stdout.decode().startswith("renewed\t"), res
    finally:
        daemon.terminate()
        daemon.wait(10)
