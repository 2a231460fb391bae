"""HAProxy (``crt site.pem`` with ``site.pem.ocsp`` beside it) and its runtime API.

Observed on HAProxy 2.6 (kept checked here): ``<crt>.ocsp`` is read only at
start; an empty one enables stapling for later runtime updates; an expired
or unparsable one is ignored with a warning (no staple); once the file
exists the issuer must be in the crt bundle (or ``<crt>.issuer``) or HAProxy
refuses to start.  ``set ssl ocsp-response <base64>`` on an admin-level
stats socket replaces the staple in the running process ("OCSP Response
updated!") and refuses responses that are expired, unparsable or for a
certificate it has not loaded.

The renewal tests push with ``ocsp-renew-dir --haproxy-socket``; the
``contrib/haproxy/haproxy-ocsp-push`` hook (for other renewal tools) is tested
directly too.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pki as pkimod

from .harness import binary, ENV, HAProxy, assert_serves, need_faketime, assert_check_ok, \
    probe, response_time, run_tool

pytestmark = pytest.mark.servers


@pytest.fixture(autouse=True)
def _installed():
    """Skip before any work when haproxy is not installed."""
    binary("haproxy", "haproxy")

PUSH = Path(__file__).resolve().parents[2] / "contrib" / "haproxy" / "haproxy-ocsp-push"


@pytest.fixture
def haproxy(tmp_path, servers):
    def make(*sites) -> HAProxy:
        return servers.add(HAProxy(tmp_path / f"haproxy-{time.monotonic_ns()}", pkimod.free_port(), sites))
    return make


def push_args(server: HAProxy) -> list:
    """ocsp-renew-dir's built-in push over the runtime API."""
    return ["--haproxy-socket", str(server.socket)]


def push_hook(server: HAProxy) -> str:
    return f"{sys.executable} {PUSH} -s {server.socket}"


def push(server: HAProxy, *files, env=None) -> subprocess.CompletedProcess:
    full = dict(ENV)
    full.update(env or {})
    return subprocess.run([sys.executable, str(PUSH), "-s", str(server.socket), *map(str, files)],
                          capture_output=True, env=full, timeout=30, stdin=subprocess.DEVNULL)


def test_initial_staple_is_served(pki, make_site, renew, haproxy, scratch, srv_leaves):
    site = make_site("srv-a", haproxy=True)
    cp = renew(site.crt.parent)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.decode().startswith("renewed\t"), cp.stdout
    server = haproxy(site).start()
    assert int(server.pidfile.read_text()) == server.pid        # its own pid file, not a service's
    for tls in ("tls1_3", "tls1_2"):
        assert_serves(probe(server.port, site.name, tls=tls), site.staple, pki,
                      srv_leaves["srv-a"].cert, scratch)
    assert_check_ok(server.port, site.name, pki.inter_cert)


def test_empty_file_bootstrap_then_push_without_reload(pki, make_site, renew, haproxy, scratch, srv_leaves):
    """An empty <crt>.ocsp starts HAProxy with stapling on and nothing to send; ocsp-renew-dir
    fills the file and its hook pushes it into the running process, which sends it at once."""
    site = make_site("srv-a", haproxy=True)
    site.staple.write_bytes(b"")
    server = haproxy(site).start()
    nothing = probe(server.port, site.name)
    assert nothing.ok and nothing.staple is None, nothing.describe()
    pid, workers = server.pid, server.worker_pids()
    assert workers, server.log()

    cp = renew(site.crt.parent, *push_args(server))
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.decode().startswith("renewed\t"), cp.stdout
    assert b"did not take it" not in cp.stdout, cp.stdout
    assert_serves(probe(server.port, site.name), site.staple, pki, srv_leaves["srv-a"].cert, scratch)
    assert server.pid == pid and server.worker_pids() == workers and server.alive()   # no reload
    # the file is what the next start uses
    server.restart()
    assert_serves(probe(server.port, site.name), site.staple, pki, srv_leaves["srv-a"].cert, scratch)


def test_issuer_is_required_once_the_ocsp_file_exists(make_site, haproxy, srv_leaves, tmp_path):
    site = make_site("srv-a", haproxy=True)
    leaf = srv_leaves["srv-a"]
    site.crt.write_text(leaf.key.read_text() + leaf.cert.read_text())      # no intermediate
    site.staple.write_bytes(b"")
    failure = haproxy(site).try_start()
    assert failure is not None and "impossible to compute the OCSP certificate ID" in failure, failure
    # <crt>.issuer (ocsp-renew-dir's bundle layout finds the issuer there too) fixes it
    Path(str(site.crt) + ".issuer").write_text(leaf.chain.read_text())
    assert haproxy(site).try_start() is None


def test_renewal_is_pushed_and_the_newer_staple_served(pki, make_site, renew, haproxy, factory, scratch,
                                                       srv_leaves):
    need_faketime()
    leaf = srv_leaves["srv-a"]
    site = make_site("srv-a", haproxy=True)
    site.staple.write_bytes(factory.response([leaf.cert], faketime="-20h"))
    server = haproxy(site).start()
    old = assert_serves(probe(server.port, site.name), site.staple, pki, leaf.cert, scratch)
    pid, workers = server.pid, server.worker_pids()
    assert workers, server.log()

    cp = renew(site.crt.parent, *push_args(server))       # due by the default schedule
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.decode().startswith("renewed\t"), cp.stdout
    new = assert_serves(probe(server.port, site.name), site.staple, pki, leaf.cert, scratch)
    assert response_time(new, scratch) > response_time(old, scratch)
    assert server.pid == pid and server.worker_pids() == workers     # no reload

    # the pipeline form: ocsp-fetch --format base64 straight into the runtime API
    time.sleep(1.05 - time.time() % 1.0)
    cp = run_tool("ocsp-fetch", leaf.cert, "-i", pki.inter_cert, "--format", "base64", "-q")
    assert cp.returncode == 0, cp.stderr
    answer = server.api("set ssl ocsp-response " + cp.stdout.decode().strip())
    assert answer.startswith("OCSP Response updated!"), answer
    served = probe(server.port, site.name)
    assert served.staple == base64.b64decode(cp.stdout)
    assert response_time(served.staple, scratch) > response_time(new, scratch)


def test_a_push_haproxy_refuses_is_reported(pki, make_site, renew, haproxy, factory, scratch, srv_leaves,
                                            tmp_path):
    """Two certificates under the renewal tree, only one loaded into HAProxy: the push of the
    other is refused, its TSV line says which file and why, and ocsp-renew-dir exits 1.
    (The contrib hook's own refusals are checked below.)
    Garbage, expired and empty files are refused too; the staple being served is unchanged."""
    need_faketime()
    a = make_site("srv-a", haproxy=True, directory=tmp_path / "certs")
    (tmp_path / "certs" / "other.pem").write_text(srv_leaves["srv-b"].fullchain.read_text())
    assert renew(tmp_path / "certs").returncode == 0
    server = haproxy(a).start()
    assert_serves(probe(server.port, a.name), a.staple, pki, srv_leaves["srv-a"].cert, scratch)

    time.sleep(1.05 - time.time() % 1.0)
    cp = renew(tmp_path / "certs", "-B", *push_args(server))
    assert cp.returncode == 1, cp.stdout + cp.stderr
    lines = (cp.stdout + cp.stderr).decode().splitlines()
    refused = [l for l in lines if "Certificate ID does not match" in l]
    assert refused and all("other.pem" in l for l in refused), lines
    assert len(refused) == 1 and refused[0].startswith("renewed\t"), lines
    assert "did not take it" in refused[0], lines
    # srv-a's staple was still pushed and is served
    assert_serves(probe(server.port, a.name), a.staple, pki, srv_leaves["srv-a"].cert, scratch)

    before = probe(server.port, a.name).staple
    garbage = tmp_path / "garbage.ocsp"
    garbage.write_bytes(b"\x30\x82\x01\x00" + os.urandom(40))
    expired = tmp_path / "expired.ocsp"
    expired.write_bytes(factory.response([srv_leaves["srv-a"].cert], faketime="-3d"))
    empty = tmp_path / "empty.ocsp"
    empty.write_bytes(b"")
    for path, status, why in ((garbage, 1, "Unable to parse OCSP response"),
                              (expired, 1, "no longer valid"),
                              (empty, 2, "empty staple file")):
        cp = push(server, path)
        assert cp.returncode == status, cp.stderr
        line = cp.stderr.decode().strip()
        assert len(line.splitlines()) == 1 and str(path) in line and why in line, line
        assert probe(server.port, a.name).staple == before
    # an unreachable socket is one line too
    cp = subprocess.run([sys.executable, str(PUSH), "-s", str(tmp_path / "nope.sock"), str(a.staple)],
                        capture_output=True, timeout=30)
    assert cp.returncode == 1 and b"cannot reach HAProxy's runtime API" in cp.stderr, cp.stderr


@pytest.mark.parametrize("bad", ["expired", "garbage", "other-certificate"])
def test_bad_ocsp_file_at_start_is_ignored(pki, make_site, haproxy, factory, srv_leaves, renew, scratch, bad):
    """HAProxy starts but sends no staple when <crt>.ocsp is expired, unparsable or for another
    certificate (a warning in its log); the toolkit's renewal then pushes a good one."""
    need_faketime()
    site = make_site("srv-a", haproxy=True)
    if bad == "expired":
        site.staple.write_bytes(factory.response([srv_leaves["srv-a"].cert], faketime="-3d"))
    elif bad == "garbage":
        site.staple.write_bytes(b"\x30\x82\x02\x00" + os.urandom(300))
    else:
        site.staple.write_bytes(factory.response([srv_leaves["srv-b"].cert]))
    server = haproxy(site)
    failure = server.try_start()
    assert failure is None, failure
    served = probe(server.port, site.name)
    assert served.ok and served.staple is None, served.describe()
    why = {"expired": "no longer valid", "garbage": "Unable to parse OCSP response",
           "other-certificate": "Certificate ID does not match"}[bad]
    assert why in server.log() and "Content will be ignored" in server.log(), server.log()
    cp = renew(site.crt.parent, *push_args(server))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert_serves(probe(server.port, site.name), site.staple, pki, srv_leaves["srv-a"].cert, scratch)


def test_staple_with_a_bad_signature_is_served(pki, make_site, haproxy, factory, renew, scratch, srv_leaves):
    """HAProxy does not check the signature: a forged staple is sent at start and accepted by a
    push.  ocsp-renew-dir does check, renews it and pushes the real one."""
    need_faketime()
    leaf = srv_leaves["srv-a"]
    site = make_site("srv-a", haproxy=True)
    site.staple.write_bytes(factory.response([leaf.cert], extra=("-badsig",)))
    server = haproxy(site).start()
    assert probe(server.port, site.name).staple == site.staple.read_bytes()
    forged = site.crt.parent / "forged.ocsp"
    forged.write_bytes(factory.response([leaf.cert], extra=("-badsig",), faketime="+2s"))
    cp = push(server, forged)
    assert cp.returncode == 0, cp.stderr
    assert probe(server.port, site.name).staple == forged.read_bytes()
    cp = renew(site.crt.parent, *push_args(server))
    assert cp.returncode == 0 and cp.stdout.decode().startswith("renewed\t"), cp.stdout + cp.stderr
    assert_serves(probe(server.port, site.name), site.staple, pki, leaf.cert, scratch)


def test_staple_stops_being_sent_five_minutes_before_next_update(pki, make_site, haproxy, factory, renew,
                                                                 scratch, srv_leaves):
    """HAProxy drops a staple from the handshake once less than 300 s are left before its
    nextUpdate (a staple in that state is also refused at start).  Renewing half-way through
    the lifetime (the default) stays far from that edge."""
    need_faketime()
    leaf = srv_leaves["srv-a"]
    site = make_site("srv-a", haproxy=True)
    site.staple.write_bytes(factory.response([leaf.cert], faketime="-86094s"))     # nextUpdate in ~306 s
    next_update = response_time(site.staple.read_bytes(), scratch, "Next Update")
    server = haproxy(site).start()
    if next_update.timestamp() - time.time() <= 301:
        pytest.skip("the response took too long to make; the 300 s edge has passed already")
    assert_serves(probe(server.port, site.name), site.staple, pki, leaf.cert, scratch)
    time.sleep(max(0.0, next_update.timestamp() - 300 - time.time()) + 1.5)
    gone = probe(server.port, site.name)
    assert gone.ok and gone.staple is None, gone.describe()
    # due for the toolkit long before: the renewal and push bring it back
    cp = renew(site.crt.parent, *push_args(server))
    assert cp.returncode == 0 and cp.stdout.decode().startswith("renewed\t"), cp.stdout + cp.stderr
    assert_serves(probe(server.port, site.name), site.staple, pki, leaf.cert, scratch)
