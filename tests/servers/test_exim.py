"""Exim (exim4-daemon-heavy, GnuTLS): ``tls_ocsp_file`` over STARTTLS on a high port.

Observed on Exim 4.96 (kept checked here): Exim re-reads the staple file by
itself, so an atomic replace is sent without a restart or signal; but when
the file is missing (unguarded), expired, unparsable or for another
certificate, the TLS handshake after STARTTLS fails, for every client.  The
configuration therefore guards the path
(``${if exists{FILE}{FILE}{}}``), and the toolkit must never leave such a
file: it replaces expired and foreign staples, keeps a good one when the
responder misbehaves, and renews half-way through the lifetime.

With ``-C`` Exim runs as Debian-exim: its files live outside pytest's
private temp directory, readable by that user.
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import stat
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import pki as pkimod
from fake_responder import FakeResponder

from .harness import (binary, EXIM_NEEDS_ROOT, EXIM_USER, Exim, assert_serves, need_faketime,
                      assert_check_ok, probe, response_time, wait_until)

pytestmark = pytest.mark.servers


@pytest.fixture(autouse=True)
def _installed():
    """Skip before any work when exim4 is not installed."""
    binary("exim4", "exim4-daemon-heavy")
    if os.geteuid() != 0:
        pytest.skip(EXIM_NEEDS_ROOT)


@pytest.fixture
def exim_site(make_site, servers):
    """A Site under a directory Exim's user can read (pytest's tmp is root-only)."""
    made = []

    def make(leaf_name: str = "srv-a"):
        import tempfile
        d = Path(tempfile.mkdtemp(prefix="ocsptools-exim-site-"))
        os.chmod(d, 0o755)
        made.append(d)
        site = make_site(leaf_name, directory=d / "certs")
        os.chmod(d / "certs", 0o755)
        gid = grp.getgrnam(EXIM_USER).gr_gid
        os.chown(site.key, 0, gid)
        os.chmod(site.key, 0o640)
        return site
    yield make
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def exim(servers):
    def start(site, *, guard: bool = True, check: bool = True) -> Exim:
        server = servers.add(Exim(pkimod.free_port(), [site], guard=guard))
        if check:
            server.start()
        return server
    return start


def tls_errors(server) -> str:
    """Exim's "TLS error on connection ..." log lines (the reason STARTTLS failed)."""
    return "\n".join(l for l in server.log().splitlines() if "TLS error on connection" in l)


def smtp(server, site, **kw):
    return probe(server.port, site.name, starttls="smtp", **kw)


def test_initial_staple_is_served_over_starttls(pki, exim_site, renew, exim, scratch, srv_leaves):
    site = exim_site()
    cp = renew(site.fullchain.parent)
    assert cp.returncode == 0 and cp.stdout.decode().startswith("renewed\t"), cp.stdout + cp.stderr
    server = exim(site)
    for tls in ("tls1_3", "tls1_2"):
        assert_serves(smtp(server, site, tls=tls), site.staple, pki, srv_leaves["srv-a"].cert, scratch)
    assert_check_ok(server.port, site.name, pki.inter_cert, starttls="smtp")


def test_atomic_replace_is_picked_up_without_restart(pki, exim_site, renew, exim, factory, scratch,
                                                     srv_leaves):
    """The renewed file (atomic rename, owner and mode kept: root:Debian-exim 0640) is sent on
    a later connection by the same daemon, with no signal and no restart."""
    need_faketime()
    leaf = srv_leaves["srv-a"]
    site = exim_site()
    site.staple.write_bytes(factory.response([leaf.cert], faketime="-20h"))
    gid = grp.getgrnam(EXIM_USER).gr_gid
    os.chown(site.staple, 0, gid)
    os.chmod(site.staple, 0o640)
    server = exim(site)
    old = assert_serves(smtp(server, site), site.staple, pki, leaf.cert, scratch)
    pid = server.pid

    cp = renew(site.fullchain.parent)                   # due: 20 of 24 hours elapsed
    assert cp.returncode == 0 and cp.stdout.decode().startswith("renewed\t"), cp.stdout + cp.stderr
    st = os.stat(site.staple)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid, 0o640)
    new = site.staple.read_bytes()
    assert response_time(new, scratch) > response_time(old, scratch)
    t0 = time.monotonic()
    served = wait_until(lambda: (lambda s: s if s.staple == new else None)(smtp(server, site)), timeout=30,
                        step=0.2)
    latency = time.monotonic() - t0
    assert served, f"Exim still sends the old staple after 30 s:\n{server.log()}"
    assert_serves(served, site.staple, pki, leaf.cert, scratch)
    assert server.pid == pid and server.alive()
    print(f"exim picked up the replaced staple after {latency:.2f} s")
    # far enough ahead: the new 1-day staple falls due again 12 hours before it expires
    cp = renew(site.fullchain.parent, "-n", "-v")
    line = cp.stdout.decode()
    assert line.startswith("fresh\t"), line
    m = re.search(r"good until (\S+), renewal due at (\S+)", line)
    assert m, line
    until, due = (datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ") for t in m.groups())
    assert until - due >= timedelta(hours=11, minutes=59), line


def test_missing_file_guarded_and_unguarded(pki, exim_site, exim, renew, scratch, srv_leaves):
    """Unguarded, a missing staple file breaks STARTTLS; with the ${if exists} guard Exim does
    TLS without a staple, and starts sending one once the toolkit writes the file."""
    site = exim_site()
    unguarded = exim(site, guard=False)
    broken = smtp(unguarded, site)
    assert not broken.ok, broken.describe()
    assert wait_until(lambda: "set_ocsp_status_request_file" in tls_errors(unguarded), 5), unguarded.log()
    unguarded.stop()

    guarded = exim(site)
    plain = smtp(guarded, site)
    assert plain.ok and plain.staple is None, plain.describe()
    cp = renew(site.fullchain.parent)
    assert cp.returncode == 0, cp.stderr
    served = wait_until(lambda: (lambda s: s if s.staple else None)(smtp(guarded, site)), timeout=30, step=0.2)
    assert served, guarded.log()
    assert_serves(served, site.staple, pki, srv_leaves["srv-a"].cert, scratch)


@pytest.mark.parametrize("bad", ["expired", "other-certificate", "garbage"])
def test_bad_staple_breaks_starttls_and_the_toolkit_replaces_it(pki, exim_site, exim, renew, factory,
                                                                scratch, srv_leaves, bad):
    """An expired, foreign or unparsable staple file makes the handshake after STARTTLS fail
    (the guard only helps for a missing file).  ocsp-renew-dir treats each as due and
    replaces it with a verified one, after which STARTTLS works again with a staple."""
    need_faketime()
    site = exim_site()
    if bad == "expired":
        site.staple.write_bytes(factory.response([srv_leaves["srv-a"].cert], faketime="-3d"))
    elif bad == "other-certificate":
        site.staple.write_bytes(factory.response([srv_leaves["srv-b"].cert]))
    else:
        site.staple.write_bytes(b"\x30\x82\x02\x00" + os.urandom(300))
    server = exim(site)
    broken = smtp(server, site)
    assert not broken.ok, broken.describe()
    assert wait_until(lambda: "set_ocsp_status_request_file" in tls_errors(server), 5), server.log()

    cp = renew(site.fullchain.parent)
    assert cp.returncode == 0 and cp.stdout.decode().startswith("renewed\t"), cp.stdout + cp.stderr
    served = wait_until(lambda: (lambda s: s if s.ok else None)(smtp(server, site)), timeout=30, step=0.2)
    assert served, server.log()
    assert_serves(served, site.staple, pki, srv_leaves["srv-a"].cert, scratch)


def test_staple_with_a_bad_signature_is_served(pki, exim_site, exim, renew, factory, scratch, srv_leaves):
    """Exim (GnuTLS) checks dates and CertID but not the signature: a forged staple is sent.
    ocsp-renew-dir does check it and replaces it."""
    site = exim_site()
    leaf = srv_leaves["srv-a"]
    site.staple.write_bytes(factory.response([leaf.cert], extra=("-badsig",)))
    server = exim(site)
    forged = smtp(server, site)
    assert forged.ok and forged.staple == site.staple.read_bytes(), forged.describe()
    cp = renew(site.fullchain.parent)
    assert cp.returncode == 0 and cp.stdout.decode().startswith("renewed\t"), cp.stdout + cp.stderr
    served = wait_until(lambda: (lambda s: s if s.staple == site.staple.read_bytes() else None)(
        smtp(server, site)), timeout=30, step=0.2)
    assert served, server.log()
    assert_serves(served, site.staple, pki, leaf.cert, scratch)


def test_toolkit_keeps_the_good_staple_when_the_responder_misbehaves(pki, exim_site, exim, renew, factory,
                                                                   scratch, srv_leaves):
    """Answers that would break Exim (expired, for another certificate, garbage) are never
    written: the installed staple stays byte-identical and Exim keeps stapling it."""
    need_faketime()
    site = exim_site()
    assert renew(site.fullchain.parent).returncode == 0
    good = site.staple.read_bytes()
    server = exim(site)
    assert_serves(smtp(server, site), site.staple, pki, srv_leaves["srv-a"].cert, scratch)
    answers = [factory.response([srv_leaves["srv-a"].cert], faketime="-3d"),
               factory.response([srv_leaves["srv-b"].cert]),
               b"\x30\x82\x02\x00" + os.urandom(300)]
    with FakeResponder() as fake:
        for body in answers:
            fake.set(body=body)
            cp = renew(site.fullchain.parent, "-B", "-u", fake.url)
            assert cp.returncode == 1 and cp.stdout.decode().startswith("failed\t"), cp.stdout + cp.stderr
            assert site.staple.read_bytes() == good
    assert_serves(smtp(server, site), site.staple, pki, srv_leaves["srv-a"].cert, scratch)
