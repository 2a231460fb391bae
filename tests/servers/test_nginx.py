"""nginx (``ssl_stapling_file``) serving what ocsp-renew-dir produces.

Observed on nginx 1.22 (these tests keep checking it): nginx reads the
staple file once, at start and at reload, and never looks at its times: a
file that is already expired is served, and one that expires while nginx
runs is served until the next reload.  A missing, empty or garbage file
makes nginx refuse to start, and a reload with one is refused (the old
configuration, old staple included, keeps running).  So the toolkit's part
is: never write such a file, renew well before nextUpdate, and reload nginx
after each change (``--on-change 'nginx -s reload'``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import pki as pkimod
from conftest import command
from fake_responder import FakeResponder

from .harness import (ENV, Site, binary, Nginx, assert_serves, need_faketime, assert_check_ok,
                      probe, proxy_answer, response_time, run_tool, verify_staple, wait_until)

pytestmark = pytest.mark.servers


@pytest.fixture(autouse=True)
def _installed():
    """Skip before any work when nginx is not installed."""
    binary("nginx", "nginx")

HOOK = Path(__file__).resolve().parents[2] / "contrib" / "certbot" / "deploy-hook"


@pytest.fixture
def nginx(tmp_path, servers):
    def start(*sites, **kw) -> Nginx:
        server = servers.add(Nginx(tmp_path / f"nginx{len(sites)}-{time.monotonic_ns()}",
                                   pkimod.free_port(), sites, **kw))
        return server.start()
    return start


def served_staple(server, site, **kw):
    return probe(server.port, site.name, **kw)


def test_initial_staple_is_served_and_verifies(pki, make_site, renew, nginx, scratch, srv_leaves):
    a, b = make_site("srv-a"), make_site("srv-b")
    for site in (a, b):
        cp = renew(site.fullchain.parent)
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout.decode().startswith("renewed\t"), cp.stdout
    server = nginx(a, b)
    for site, leaf in ((a, srv_leaves["srv-a"]), (b, srv_leaves["srv-b"])):
        for tls in ("tls1_3", "tls1_2"):
            assert_serves(probe(server.port, site.name, tls=tls), site.staple, pki, leaf.cert, scratch)
    assert_check_ok(server.port, "srv-a", pki.inter_cert)


def test_fetches_through_ocsp_proxy_with_ssl_stapling_responder(pki, make_site, nginx, ocsp_proxy, scratch,
                                                                 srv_leaves, tmp_path):
    """The README's nginx variant without a staple file: ``ssl_stapling_responder`` pointing at
    ocsp-proxy, ``ssl_stapling_verify on``.  nginx fetches lazily (the first handshake after a
    start goes out unstapled); once it has the proxy's answer it sends it, and it verifies."""
    site = make_site("srv-a")
    leaf = srv_leaves["srv-a"]
    proxy = ocsp_proxy([site])
    # warm the cache as the README does: nginx waits 5 minutes after a failed fetch before it
    # tries again, so its first fetch should not depend on the upstream responder's speed
    cp = run_tool("ocsp-proxy", "warm", "--cache", proxy.cache, site.fullchain)
    assert cp.returncode == 0, cp.stderr
    trusted = tmp_path / "trusted.pem"
    trusted.write_text(pki.inter_cert.read_text() + pki.root_cert.read_text())
    server = nginx(site, responder=proxy.url, trusted=trusted)
    assert not site.staple.exists()
    first = probe(server.port, site.name)           # starts nginx's fetch, does not wait for it
    assert first.ok and first.staple is None, first.describe()
    served = wait_until(lambda: (lambda s: s if s.staple else None)(probe(server.port, site.name)),
                        timeout=20, step=0.3)
    assert served, "nginx never stapled through ocsp-proxy:\n" + server.log() + proxy.log()
    assert proxy.asked() >= 1, "nginx did not ask the proxy"
    verify_staple(pki, leaf.cert, served.staple, scratch)
    assert served.staple == proxy_answer(pki, proxy, leaf, scratch)       # the proxy's cached answer
    assert probe(server.port, site.name, tls="tls1_2").staple == served.staple
    assert_check_ok(server.port, site.name, pki.inter_cert)


def test_renewal_runs_the_reload_hook_and_the_newer_staple_is_served(
        pki, make_site, renew, nginx, factory, scratch, srv_leaves):
    """A staple 20 h into its 24 h life is due under the default schedule (renew at 50%):
    ocsp-renew-dir replaces it while it is still valid and reloads nginx, which then serves
    the new one.  A second run finds everything fresh and does not reload."""
    need_faketime()
    leaf = srv_leaves["srv-a"]
    site = make_site("srv-a")
    site.staple.write_bytes(factory.response([leaf.cert], faketime="-20h"))
    server = nginx(site)
    old = assert_serves(probe(server.port, site.name), site.staple, pki, leaf.cert, scratch)
    master = server.pid
    marker = site.fullchain.parent / "reloaded"
    hook = f"{server.reload_command} && echo \"$OCSP_CHANGED\" >> {marker}"

    cp = renew(site.fullchain.parent, "--on-change", hook)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.decode().startswith("renewed\t"), cp.stdout
    assert marker.read_text().split() == [str(site.staple)]
    new = site.staple.read_bytes()
    assert response_time(new, scratch) > response_time(old, scratch)
    served = wait_until(lambda: (lambda s: s if s.staple == new else None)(probe(server.port, site.name)),
                        timeout=10)
    assert served, "nginx still serves the old staple after the reload:\n" + server.log()
    assert_serves(served, site.staple, pki, leaf.cert, scratch)
    assert server.pid == master and server.alive()          # a reload, not a restart

    cp = renew(site.fullchain.parent, "--on-change", hook)
    assert cp.returncode == 0 and cp.stdout == b"", cp.stdout + cp.stderr
    assert marker.read_text().split() == [str(site.staple)], "reloaded although nothing changed"
    # what the schedule promises: the next renewal (and so the next reload) is due half-way
    # through the new staple's life, well before nginx would go on serving it expired
    cp = renew(site.fullchain.parent, "-n", "-v")
    line = cp.stdout.decode()
    assert line.startswith("fresh\t"), line
    m = re.search(r"good until (\S+), renewal due at (\S+)", line)
    assert m, line
    until, due = (datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
                  for t in m.groups())
    this_update, next_update = response_time(new, scratch), response_time(new, scratch, "Next Update")
    assert until == next_update, line
    life = next_update - this_update
    assert life >= timedelta(hours=1), life
    assert due <= this_update + life / 2, line
    assert until - due >= life / 2, line


def test_expired_staple_is_served_until_the_toolkit_reloads_nginx(
        pki, make_site, renew, nginx, factory, scratch, srv_leaves):
    """nginx never looks at a staple's times: a staple that expires while nginx runs is still
    sent afterwards, and one that is already expired when nginx starts is sent too.  Only the
    renewal plus the reload hook puts a valid staple back."""
    need_faketime()
    leaf = srv_leaves["srv-a"]
    site = make_site("srv-a")
    # a 1-day response made 1 day minus 4 seconds ago: valid for 4 more seconds
    site.staple.write_bytes(factory.response([leaf.cert], faketime="-86396s"))
    expires = response_time(site.staple.read_bytes(), scratch, "Next Update")
    server = nginx(site)
    assert_serves(probe(server.port, site.name), site.staple, pki, leaf.cert, scratch)
    time.sleep(max(0.0, expires.timestamp() - time.time()) + 1.5)
    after = probe(server.port, site.name)
    assert after.ok and after.staple == site.staple.read_bytes(), "nginx stopped sending it"
    assert response_time(after.staple, scratch, "Next Update").timestamp() < time.time()
    text = verify_text_after_expiry(pki, leaf, after.staple, scratch)
    assert "Status times invalid" in text, text             # what a client makes of it

    # already expired at start: still served
    server.stop()
    site.staple.write_bytes(factory.response([leaf.cert], faketime="-3d"))
    server.restart()
    cold = probe(server.port, site.name)
    assert cold.ok and cold.staple == site.staple.read_bytes(), cold.describe()

    # the toolkit: an expired staple is due; the hook reloads nginx; a valid staple is served
    cp = renew(site.fullchain.parent, "--on-change", server.reload_command)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.decode().startswith("renewed\t"), cp.stdout
    new = site.staple.read_bytes()
    served = wait_until(lambda: (lambda s: s if s.staple == new else None)(probe(server.port, site.name)))
    assert served, server.log()
    assert_serves(served, site.staple, pki, leaf.cert, scratch)


def test_staple_for_another_certificate_is_served_until_replaced(pki, make_site, renew, nginx, factory,
                                                                  scratch, srv_leaves):
    """nginx sends whatever the file holds, even a staple for another certificate (clients
    reject it); ocsp-renew-dir sees the wrong serial, renews at once and reloads."""
    site = make_site("srv-a")
    site.staple.write_bytes(factory.response([srv_leaves["srv-b"].cert]))
    server = nginx(site)
    wrong = probe(server.port, site.name)
    assert wrong.ok and wrong.staple == site.staple.read_bytes(), wrong.describe()
    cp = renew(site.fullchain.parent, "--on-change", server.reload_command)
    assert cp.returncode == 0 and cp.stdout.decode().startswith("renewed\t"), cp.stdout + cp.stderr
    new = site.staple.read_bytes()
    served = wait_until(lambda: (lambda s: s if s.staple == new else None)(probe(server.port, site.name)))
    assert served, server.log()
    assert_serves(served, site.staple, pki, srv_leaves["srv-a"].cert, scratch)


def test_staple_with_a_bad_signature_is_served(pki, make_site, renew, nginx, factory, scratch, srv_leaves):
    """nginx does not check the signature either; ocsp-renew-dir does, and replaces the file."""
    leaf = srv_leaves["srv-a"]
    site = make_site("srv-a")
    site.staple.write_bytes(factory.response([leaf.cert], extra=("-badsig",)))
    server = nginx(site)
    forged = probe(server.port, site.name)
    assert forged.ok and forged.staple == site.staple.read_bytes(), forged.describe()
    assert "Response verify OK" not in verify_text_after_expiry(pki, leaf, forged.staple, scratch)
    cp = renew(site.fullchain.parent, "--on-change", server.reload_command)
    assert cp.returncode == 0 and cp.stdout.decode().startswith("renewed\t"), cp.stdout + cp.stderr
    new = site.staple.read_bytes()
    served = wait_until(lambda: (lambda s: s if s.staple == new else None)(probe(server.port, site.name)))
    assert served, server.log()
    assert_serves(served, site.staple, pki, leaf.cert, scratch)


def verify_text_after_expiry(pki, leaf, der: bytes, scratch: Path) -> str:
    f = scratch / "expired.der"
    f.write_bytes(der)
    cp = pkimod.openssl("ocsp", "-respin", f, "-issuer", pki.inter_cert, "-cert", leaf.cert,
                        "-CAfile", pki.root_cert, "-no-CApath", "-no-CAstore", "-no_nonce",
                        "-validity_period", "0", check=False)
    return cp.stdout + cp.stderr


@pytest.mark.parametrize("bad", ["missing", "empty", "garbage"])
def test_bad_staple_file_stops_nginx_and_the_toolkit_never_writes_one(
        pki, make_site, renew, nginx, scratch, srv_leaves, tmp_path, bad):
    """nginx refuses to start with a missing, empty or garbage staple file, and refuses a reload
    with one (the running configuration and its staple stay).  ocsp-renew-dir facing a responder
    that answers garbage keeps the installed file byte-identical and does not run the hook."""
    leaf = srv_leaves["srv-a"]
    site = make_site("srv-a")
    assert renew(site.fullchain.parent).returncode == 0
    good = site.staple.read_bytes()
    server = nginx(site)
    assert_serves(probe(server.port, site.name), site.staple, pki, leaf.cert, scratch)

    def spoil():
        if bad == "missing":
            site.staple.unlink()
        elif bad == "empty":
            site.staple.write_bytes(b"")
        else:
            site.staple.write_bytes(good[:200] + os.urandom(300))

    # a reload with the spoiled file is refused; the old staple is still sent.  `nginx -s
    # reload` reads the configuration (staple included) itself and exits 1 without signalling;
    # a bare SIGHUP makes the master try, log the error and keep the running configuration.
    spoil()
    assert run_tool_shell(server.reload_command) == 1
    server.signal(signal.SIGHUP)

    def refused() -> bool:
        after = server.log().rpartition("reconfiguring")[2]
        return "d2i_OCSP_RESPONSE_bio" in after or "BIO_new_file" in after
    assert wait_until(refused, 10), server.log()
    kept = probe(server.port, site.name)
    assert kept.ok and kept.staple == good, kept.describe()
    # a fresh start with it fails
    server.stop()
    failure = server.try_start()
    assert failure is not None and ("d2i_OCSP_RESPONSE_bio" in failure or "BIO_new_file" in failure), failure

    # the toolkit never writes a bad file: a garbage answer leaves the installed staple alone
    site.staple.write_bytes(good)
    with FakeResponder() as fake:
        fake.set(body=b"\x30\x03garbage" if bad == "garbage" else b"")
        marker = tmp_path / "hook-ran"
        cp = renew(site.fullchain.parent, "-B", "-u", fake.url, "--on-change", f"touch {marker}")
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert cp.stdout.decode().startswith("failed\t"), cp.stdout
    assert site.staple.read_bytes() == good
    assert not marker.exists()
    assert server.try_start() is None, server.log()
    assert_serves(probe(server.port, site.name), site.staple, pki, leaf.cert, scratch)


def run_tool_shell(line: str) -> int:
    """Exit status of LINE run through the shell, as ocsp-renew-dir runs --on-change."""
    return subprocess.run(line, shell=True, env=ENV, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=30).returncode


def test_certbot_deploy_hook_staples_the_renewed_certificate(
        pki, srv_leaves, renew, nginx, scratch, tmp_path):
    """A certbot tree (live/NAME -> archive/NAME symlinks) served by nginx.  When certbot renews
    the certificate it runs contrib/certbot/deploy-hook, which fetches the staple for the NEW
    certificate and reloads nginx: nginx then sends the new certificate with its own staple."""
    old, new = srv_leaves["srv-a"], srv_leaves["srv-a-v2"]
    root = tmp_path / "letsencrypt"
    archive, live = root / "archive" / "srv-a", root / "live" / "srv-a"
    archive.mkdir(parents=True)
    live.mkdir(parents=True)

    def certbot_issue(leaf, n: int) -> None:
        shutil.copy(leaf.cert, archive / f"cert{n}.pem")
        shutil.copy(leaf.chain, archive / f"chain{n}.pem")
        shutil.copy(leaf.fullchain, archive / f"fullchain{n}.pem")
        shutil.copy(leaf.key, archive / f"privkey{n}.pem")
        for kind in ("cert", "chain", "fullchain", "privkey"):
            link = live / f"{kind}.pem"
            tmp = live / f".{kind}.tmp"
            tmp.symlink_to(f"../../archive/srv-a/{kind}{n}.pem")
            os.replace(tmp, link)

    site = Site(name="srv-a", fullchain=live / "fullchain.pem", key=live / "privkey.pem",
                staple=live / "cert.pem.ocsp")
    conf = tmp_path / "hook.conf"
    env = {"OCSPTOOLS_HOOK_CONF": str(conf), "RENEWED_LINEAGE": str(live),
           "RENEWED_DOMAINS": "srv-a"}

    certbot_issue(old, 1)
    conf.write_text(f"OCSP_RENEW_DIR={command('ocsp-renew-dir')}\n"
                    f"OCSP_RENEW_ARGS=\"--state {tmp_path / 'hook-state.json'}\"\n")
    cp = run_hook(env)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.decode().startswith("renewed\t"), cp.stdout
    server = nginx(site)
    assert_serves(probe(server.port, "srv-a"), site.staple, pki, old.cert, scratch)

    # certbot renews: new key and certificate behind the same live/ names, then runs the hook
    certbot_issue(new, 2)
    conf.write_text(conf.read_text() + f"OCSP_ON_CHANGE='{server.reload_command}'\n")
    cp = run_hook(env)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.decode().startswith("renewed\t"), cp.stdout
    verify_staple(pki, new.cert, site.staple.read_bytes(), scratch)
    served = wait_until(lambda: (lambda s: s if s.staple == site.staple.read_bytes() else None)(
        probe(server.port, "srv-a")))
    assert served, server.log()
    assert_serves(served, site.staple, pki, new.cert, scratch)

    # a certificate without an OCSP URL: nothing to do, quietly, exit 0, no staple file
    noocsp = root / "live" / "plain"
    noocsp.mkdir()
    leaf = srv_leaves["srv-noocsp"]
    shutil.copy(leaf.cert, noocsp / "cert.pem")
    shutil.copy(leaf.chain, noocsp / "chain.pem")
    cp = run_hook(dict(env, RENEWED_LINEAGE=str(noocsp)))
    assert cp.returncode == 0 and cp.stdout == b"" and cp.stderr == b"", cp.stdout + cp.stderr
    assert not (noocsp / "cert.pem.ocsp").exists()

    # run outside certbot it says what is wrong, in one line
    env.pop("RENEWED_LINEAGE")
    cp = run_hook(env)
    assert cp.returncode == 2
    assert b"RENEWED_LINEAGE" in cp.stderr and len(cp.stderr.splitlines()) == 1


def run_hook(env: dict):
    full = dict(ENV)
    full.update(env)
    return subprocess.run([str(HOOK)], env=full, capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=60)
