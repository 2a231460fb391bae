"""lighttpd (mod_openssl, ``ssl.stapling-file``): a new file is used after SIGUSR1.

Observed on lighttpd 1.4.69 (kept checked here): the staple file is read at
start and on SIGUSR1 (``systemctl reload lighttpd`` sends it); a replaced
file is otherwise not noticed while the loaded staple is still valid, so the
renewal hook sends the signal.  An expired or unparsable file is not
stapled; a staple for another certificate is sent as it is.
"""

from __future__ import annotations

import os
import time

import pytest

import pki as pkimod

from .conftest import next_second
from .harness import (binary, Lighttpd, assert_serves, need_faketime, assert_check_ok,
                      probe, response_time, wait_until)

pytestmark = pytest.mark.servers


@pytest.fixture(autouse=True)
def _installed():
    """Skip before any work when lighttpd is not installed."""
    binary("lighttpd", "lighttpd")


@pytest.fixture
def lighttpd(tmp_path, servers):
    def start(*sites) -> Lighttpd:
        server = servers.add(Lighttpd(tmp_path / f"lighttpd-{time.monotonic_ns()}", pkimod.free_port(), sites))
        return server.start()
    return start


def test_initial_staples_are_served_per_name(pki, make_site, renew, lighttpd, scratch, srv_leaves):
    a, b = make_site("srv-a"), make_site("srv-b")
    for site in (a, b):
        cp = renew(site.fullchain.parent)
        assert cp.returncode == 0 and cp.stdout.decode().startswith("renewed\t"), cp.stdout + cp.stderr
    server = lighttpd(a, b)
    for site, leaf in ((a, srv_leaves["srv-a"]), (b, srv_leaves["srv-b"])):
        for tls in ("tls1_3", "tls1_2"):
            assert_serves(probe(server.port, site.name, tls=tls), site.staple, pki, leaf.cert, scratch)
    assert_check_ok(server.port, "srv-b", pki.inter_cert)


def test_new_file_is_used_after_sigusr1_which_the_hook_sends(pki, make_site, renew, lighttpd, factory,
                                                            scratch, srv_leaves):
    need_faketime()
    leaf = srv_leaves["srv-a"]
    site = make_site("srv-a")
    site.staple.write_bytes(factory.response([leaf.cert], faketime="-20h"))
    server = lighttpd(site)
    old = assert_serves(probe(server.port, site.name), site.staple, pki, leaf.cert, scratch)
    pid = server.pid

    # renewed on disk, no signal: lighttpd keeps sending the staple it loaded
    cp = renew(site.fullchain.parent)
    assert cp.returncode == 0 and cp.stdout.decode().startswith("renewed\t"), cp.stdout + cp.stderr
    renewed = site.staple.read_bytes()
    assert renewed != old
    time.sleep(2)
    assert probe(server.port, site.name).staple == old

    # SIGUSR1 (what the hook and `systemctl reload lighttpd` send): the new file is used
    server.signal(__import__("signal").SIGUSR1)
    served = wait_until(lambda: (lambda s: s if s.staple == renewed else None)(probe(server.port, site.name)))
    assert served, server.log()
    assert_serves(served, site.staple, pki, leaf.cert, scratch)

    # the next renewal runs the hook itself
    next_second()
    cp = renew(site.fullchain.parent, "-B", "--on-change", server.reload_command)
    assert cp.returncode == 0 and cp.stdout.decode().startswith("renewed\t"), cp.stdout + cp.stderr
    newest = site.staple.read_bytes()
    assert response_time(newest, scratch) > response_time(renewed, scratch)
    served = wait_until(lambda: (lambda s: s if s.staple == newest else None)(probe(server.port, site.name)))
    assert served, server.log()
    assert_serves(served, site.staple, pki, leaf.cert, scratch)
    assert server.pid == pid and server.alive()


@pytest.mark.parametrize("bad,stapled", [("expired", False), ("garbage", False), ("other-certificate", True),
                                        ("bad-signature", True)])
def test_bad_staple_files(pki, make_site, renew, lighttpd, factory, scratch, srv_leaves, bad, stapled):
    """What lighttpd does with a bad file at start, and the toolkit's renewal plus SIGUSR1 fixing it."""
    need_faketime()
    site = make_site("srv-a")
    if bad == "expired":
        site.staple.write_bytes(factory.response([srv_leaves["srv-a"].cert], faketime="-3d"))
    elif bad == "garbage":
        site.staple.write_bytes(b"\x30\x82\x02\x00" + os.urandom(300))
    elif bad == "bad-signature":
        site.staple.write_bytes(factory.response([srv_leaves["srv-a"].cert], extra=("-badsig",)))
    else:
        site.staple.write_bytes(factory.response([srv_leaves["srv-b"].cert]))
    server = lighttpd(site)
    served = probe(server.port, site.name)
    assert served.ok, served.describe()
    if stapled:
        assert served.staple == site.staple.read_bytes()
    else:
        assert served.staple is None, served.describe()
    cp = renew(site.fullchain.parent, "--on-change", server.reload_command)
    assert cp.returncode == 0 and cp.stdout.decode().startswith("renewed\t"), cp.stdout + cp.stderr
    fixed = wait_until(lambda: (lambda s: s if s.staple == site.staple.read_bytes() else None)(
        probe(server.port, site.name)))
    assert fixed, server.log()
    assert_serves(fixed, site.staple, pki, srv_leaves["srv-a"].cert, scratch)
