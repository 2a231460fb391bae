"""ocsptools/watch/watchers.py: the debouncing Batch (pure), the inotify watcher and the polling
fallback on a real tree, and what is watched, ignored and compared."""

from __future__ import annotations

import os
import threading
import time

import pytest

from ocsptools import store
from ocsptools.discovery import Candidate
from ocsptools.watch.watchers import (Batch, InotifyWatcher, PollWatcher, input_files, make_watcher,
                                      own_file, roots_for, signature)

# ---------------------------------------------------------------------------
# Batch: times in, decisions out


def test_batch_runs_once_after_quiet_or_at_the_latest():
    b = Batch(quiet=1.0, longest=10.0)
    assert b.deadline() is None and not b.ready(100.0)
    b.add(["/a.ocsp"], 0.0)
    b.add(["/b.ocsp", "/a.ocsp"], 0.5)
    assert not b.ready(1.4) and b.ready(1.5)
    assert b.take() == ["/a.ocsp", "/b.ocsp"] and b.deadline() is None
    # a steady trickle still completes a batch after `longest`
    for t in range(0, 20):
        b.add([f"/{t}.ocsp"], t * 0.9)
        if b.ready(t * 0.9):
            break
    assert b.first == 0.0 and b.deadline() == 10.0


def test_adding_nothing_starts_no_batch():
    b = Batch(quiet=1.0, longest=10.0)
    b.add([], 5.0)
    assert b.deadline() is None and b.take() == []


# ---------------------------------------------------------------------------
# the watchers on a real tree

class Hits:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0

    def __call__(self, overflow: bool) -> None:
        self.count += 1
        self.event.set()

    def wait(self, timeout: float = 3.0) -> bool:
        ok = self.event.wait(timeout)
        self.event.clear()
        return ok


@pytest.mark.parametrize("watcher_cls,kw", [(InotifyWatcher, {}), (PollWatcher, {"interval": 0.2})],
                         ids=["inotify", "poll"])
def test_watcher_sees_creates_swaps_new_dirs_deletes_touches(tmp_path, watcher_cls, kw):
    root = tmp_path / "tree"
    (root / "live" / "a").mkdir(parents=True)
    (root / "archive" / "a").mkdir(parents=True)
    hits = Hits()
    ignore = lambda p: p.endswith(".ocsp")  # noqa: E731
    w = watcher_cls([(str(root), True)], hits, ignore, **kw).start()
    try:
        time.sleep(0.2)
        (root / "live" / "a" / "cert.pem").write_text("one")          # a new file, deep down
        assert hits.wait(), "new file not seen"
        (root / "archive" / "a" / "cert2.pem").write_text("two")       # certbot: new archive file,
        os.symlink("../../archive/a/cert2.pem", root / "live" / "a" / ".tmp-link")
        os.replace(root / "live" / "a" / ".tmp-link", root / "live" / "a" / "cert.pem")  # swap
        assert hits.wait(), "symlink swap not seen"
        (root / "new").mkdir()                                          # a new directory...
        time.sleep(0.3)
        hits.wait(0.5)
        (root / "new" / "site.pem").write_text("x")                      # ...is watched too
        assert hits.wait(), "file in a new directory not seen"
        (root / "live" / "a" / "cert.pem").unlink()
        assert hits.wait(), "deletion not seen"
        before = hits.count
        (root / "live" / "a" / "x.ocsp").write_text("ours")              # ignored
        time.sleep(1.0 if watcher_cls is InotifyWatcher else 0.6)
        assert hits.count == before, "an ignored file woke the watcher"
        os.utime(root / "new" / "site.pem", (1, 1))                      # touch: attributes
        assert hits.wait(), "touch not seen"
    finally:
        w.stop()


def test_make_watcher_prefers_inotify_and_polls_on_request(tmp_path):
    w, why = make_watcher([(str(tmp_path), True)], lambda o: None, lambda p: False, lambda: ())
    assert w.mode == "inotify" and why == ""
    w.start()
    w.stop()
    w, why = make_watcher([(str(tmp_path), True)], lambda o: None, lambda p: False, lambda: (),
                          force_poll=True)
    assert w.mode == "poll" and why == "polling requested"


def test_inotify_watcher_stops_at_once(tmp_path):
    w = InotifyWatcher([(str(tmp_path), True)], lambda o: None, lambda p: False).start()
    start = time.monotonic()
    w.stop()
    assert time.monotonic() - start < 1.0
    assert w._thread is not None and not w._thread.is_alive()


def test_the_poller_also_stats_files_outside_its_roots(tmp_path):
    outside = tmp_path / "elsewhere.pem"
    outside.write_text("one")
    (tmp_path / "tree").mkdir()
    w = PollWatcher([(str(tmp_path / "tree"), True)], lambda o: None, lambda p: False,
                    extra=lambda: [str(outside)])
    before = w.snapshot()
    outside.write_text("two, longer")
    assert w.snapshot() != before and str(outside) in before


# ---------------------------------------------------------------------------
# what is watched, ignored, compared

STAPLE = "/certs/a.pem.ocsp"


@pytest.mark.parametrize("path,own", [
    (STAPLE, True),                                 # a staple the daemon writes
    ("/certs/a.pem.ocsp-20260101-120000", True),    # its backup
    ("/state/s.json", True),                        # the state file
    ("/certs/.a.pem.ocsp.1.0123abcd" + store.TEMP_SUFFIX, True),    # a temp file being written
    ("/certs/b.pem.ocsp-20260101-120000", False),   # a backup of a staple not ours
    ("/certs/a.pem", False),                        # a certificate: a real change
    ("/certs/b.pem.ocsp", False),
])
def test_own_files_are_never_certificate_changes(path, own):
    assert own_file(path, {STAPLE}, ("/state/s.json",)) is own


def test_roots_for_adds_the_directories_of_files_outside_the_watched_trees(tmp_path):
    tree, other, target = tmp_path / "tree", tmp_path / "other", tmp_path / "target"
    for d in (tree / "sub", other, target):
        d.mkdir(parents=True)
    (target / "real.pem").write_text("x")
    os.symlink(target / "real.pem", other / "link.pem")
    cands = [Candidate(cert=str(tree / "sub" / "in.pem"), staple=str(tree / "sub" / "in.pem.ocsp"),
                       name="in"),
             Candidate(cert=str(other / "link.pem"), staple=str(other / "link.pem.ocsp"), name="l",
                       issuer=str(tree / "issuer.pem"))]
    roots = [(str(tree), True)]
    got = roots_for(roots, cands)
    assert got[0] == (str(tree), True)
    assert sorted(got[1:]) == [(str(other), False), (str(target), False)]   # the link and its target
    assert roots_for([(str(tree), False)], cands[:1]) == [(str(tree), False), (str(tree / "sub"), False)]
    assert roots == [(str(tree), True)]             # not changed in place


def test_input_files_and_signature(tmp_path):
    cert, issuer = tmp_path / "a.pem", tmp_path / "ca.pem"
    cert.write_text("one")
    issuer.write_text("ca")
    c = Candidate(cert=str(cert), staple=str(tmp_path / "a.pem.ocsp"), name="a", issuer=str(issuer))
    assert input_files([c]) == [str(cert), str(issuer)]
    before = signature(c)
    assert signature(c) == before
    (tmp_path / "a.pem.ocsp").write_bytes(b"staple")        # a staple appeared
    after = signature(c)
    assert after != before
    os.replace(tmp_path / "a.pem", tmp_path / "b.pem")
    (tmp_path / "a.pem").write_text("one")                  # same content, new file
    assert signature(c) != after
