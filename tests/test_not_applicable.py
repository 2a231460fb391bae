"""A certificate without an OCSP URL is "not applicable", decided before anything else is looked up.

Issue 15 item 1: ``cp nourl.pem t/; ocsp-renew-dir t`` said ``failed ... issuer not found`` and exited
1 on every run.  Here the certificate has no issuer anywhere but an AIA caIssuers URL pointing
at a loopback server that records requests: every consumer must say "not applicable" quietly,
without asking it (and without an issuer error).  ocsp-check and ocsp-proxy have their own
tests (tests/test_check*.py, tests/test_proxy*.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

import ocsptools
from conftest import command, run_cmd
from ocsptools.stapler import NOT_APPLICABLE, Stapler


@pytest.fixture
def nourl(pki, fake, tmp_path):
    """(tree holding only a no-URL leaf without its issuer, the recording caIssuers server)."""
    leaf = pki.make_leaf(f"na{time.monotonic_ns() % 10**9}", ocsp_urls=[], ca_issuers=fake.url + "ca.der")
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(leaf.cert, tree / "site.pem")          # the leaf alone: no chain, no .issuer
    return tree, fake


def test_renew_dir_is_quiet_and_succeeds(nourl, tmp_path):
    tree, fake = nourl
    res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", tree)
    assert (res.returncode, res.stdout, res.stderr) == (0, b"", b"")
    res = run_cmd("ocsp-renew-dir", "-v", "--state", tmp_path / "s.json", tree)
    assert res.returncode == 0
    action, _, _, detail = res.stdout.decode().splitlines()[0].split("\t")
    assert action == "skipped" and "not applicable" in detail
    assert fake.requests == []


def test_watch_reports_no_failure(nourl, tmp_path):
    tree, fake = nourl
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(20)
    proc = subprocess.Popen([command("ocsp-renew-dir"), "--watch", "--log-format", "json",
                             "--state", str(tmp_path / "s.json"), str(tree)],
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock")))
    try:
        assert json.loads(proc.stderr.readline())["event"] == "start"
        assert notify.recv(1024).startswith(b"READY=1")
        assert notify.recv(1024).endswith(b"(first pass done)")     # its verdicts are given
    finally:
        notify.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    events = [json.loads(line) for line in err.splitlines()]
    assert proc.returncode == 0 and events[-1]["event"] == "exit", events
    assert not [e for e in events if e["event"] in ("failed", "error", "warning")], events
    assert fake.requests == []


def test_api_fetch_staple_raises_not_applicable_first(nourl):
    tree, fake = nourl
    with pytest.raises(ocsptools.NotApplicable):
        ocsptools.fetch_staple(tree / "site.pem")
    assert fake.requests == []


def test_stapler_keeps_it_quietly(nourl):
    tree, fake = nourl
    with Stapler() as st:
        assert st.add(tree / "site.pem").state == NOT_APPLICABLE
        st.refresh_due()
    assert fake.requests == []
