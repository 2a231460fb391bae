"""ocsptools/watch/passes.py: one driver pass in a thread (what it forces, the HAProxy hook, a failure
of the run as a whole kept for the loop)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from ocsptools.discovery import Candidate
from ocsptools.renewal import RunOptions
from ocsptools.openssl import OpenSSL
from ocsptools.statecache import StateCache
from ocsptools.watch.options import Setup
from ocsptools.watch.passes import Pass
from ocsptools.watch.schedule import Slot

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)


def setup(sockets=()) -> Setup:
    return Setup(opts=RunOptions(), ossl=OpenSSL(), discover=lambda: ([], []), roots=[],
                 sockets=tuple(sockets))


SLOTS = [Slot(Candidate(cert=f"/c/{n}.pem", staple=f"/c/{n}.pem.ocsp", name=n), n) for n in "abc"]


def test_only_the_targets_whose_instant_came_are_forced():
    p = Pass(setup(), StateCache(None), lambda: T0, SLOTS, {"b", "z"}, lambda: None)
    assert p.driver.force == {"b"}
    assert p.cands == [s.cand for s in SLOTS]
    assert p.driver.after_install is None and p.driver.now == T0


def test_haproxy_sockets_get_the_pusher():
    p = Pass(setup(["/run/haproxy.sock"]), StateCache(None), lambda: T0, SLOTS, set(), lambda: None)
    assert callable(p.driver.after_install)


def test_the_run_in_its_thread_reports_its_end_and_keeps_a_failure():
    done = threading.Event()
    p = Pass(setup(), StateCache(None), lambda: T0, SLOTS[:1], set(), done.set)
    ran = []

    def run(cands, *, forget):
        ran.append((cands, forget))
        raise RuntimeError("boom")
    p.driver.run = run                      # type: ignore[method-assign]
    p.start()
    assert done.wait(5)
    p.thread.join(5)
    assert not p.running() and isinstance(p.error, RuntimeError)
    assert ran == [([SLOTS[0].cand], False)]    # a subset: the cache keeps the others
