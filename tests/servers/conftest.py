"""Fixtures for the server tests: the session PKI's leaves laid out as servers want them,
``ocsp-renew-dir`` run as a user runs it, and servers that are always stopped."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Dict

import pytest

import pki as pkimod
from hostile_responder import ResponseFactory

from .harness import OcspProxy, Site, run_tool


def pytest_collection_modifyitems(items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.servers)


@pytest.fixture(scope="session")
def srv_leaves(pki, _session_responder) -> Dict[str, "pkimod.Leaf"]:
    """Two leaves of the session PKI for the server tests (SNI names srv-a, srv-b), plus
    srv-a's successor (same name, new key and serial: a certificate renewal), and srv-noocsp
    without an OCSP URL (Let's Encrypt since 2025).  srv-a and srv-b were
    issued 30 days ago, so staples dated hours back are plausible for them."""
    issued = timedelta(days=-30)
    leaves = {name: pki.make_leaf(name, not_before=issued) for name in ("srv-a", "srv-b")}
    leaves["srv-a-v2"] = pki.make_leaf("srv-a-v2", dns_names=["srv-a", "localhost"],
                                       not_before=timedelta(minutes=-5))
    leaves["srv-noocsp"] = pki.make_leaf("srv-noocsp", ocsp_urls=[])      # no AIA OCSP URL
    _session_responder.ensure_running()
    _session_responder.resync()         # the next answer must know the new serials
    return leaves


@pytest.fixture
def make_site(tmp_path, pki, srv_leaves):
    """LEAF_NAME -> Site in its own directory, as ocsp-renew-dir's bundle layout sees it:
    ``site.pem`` (leaf + intermediate; HAProxy: key + leaf + intermediate), ``site.key``;
    the staple is ``site.pem.ocsp``."""
    def make(leaf_name: str, *, haproxy: bool = False, directory: Path = None) -> Site:
        leaf = srv_leaves[leaf_name]
        d = directory or tmp_path / f"site-{leaf_name}"
        d.mkdir(parents=True, exist_ok=True)
        pem = d / "site.pem"
        key = d / "site.key"
        shutil.copy(leaf.key, key)
        if haproxy:
            pem.write_text(leaf.key.read_text() + leaf.fullchain.read_text())
            key.unlink()
            key = pem
        else:
            shutil.copy(leaf.fullchain, pem)
        sni = "srv-a" if leaf_name.startswith("srv-a") else leaf_name
        return Site(name=sni, fullchain=pem, key=key, staple=Path(str(pem) + ".ocsp"),
                    crt=pem if haproxy else None)
    return make


@pytest.fixture
def renew(tmp_path, responder):
    """Run ``ocsp-renew-dir`` with a private state file; returns the CompletedProcess."""
    state = tmp_path / "renew-state.json"

    def run(*args, env=None, timeout=60):
        return run_tool("ocsp-renew-dir", "--state", state, *args, env=env, timeout=timeout)
    return run


@pytest.fixture
def factory(tmp_path, pki):
    """Real responses made offline by openssl's responder code (dated with faketime)."""
    return ResponseFactory(pki, tmp_path / "responses")


@pytest.fixture
def servers():
    """Register started servers here; they are stopped (whole process group) whatever happens."""
    started = []

    class Registry:
        def add(self, server):
            started.append(server)
            return server

    yield Registry()
    for server in reversed(started):
        try:
            server.stop()
        finally:
            remove = getattr(server, "remove", None)
            if remove is not None:
                remove()


@pytest.fixture
def ocsp_proxy(tmp_path, servers, responder):
    """SITES -> a started ``ocsp-proxy serve`` whose ``--allow-from`` holds their certificates."""
    def start(sites) -> OcspProxy:
        allow = tmp_path / f"allow-{time.monotonic_ns()}"
        allow.mkdir()
        for s in sites:
            (allow / f"{s.name}.pem").write_text(s.fullchain.read_text())
        proxy = servers.add(OcspProxy(tmp_path / f"proxy-{time.monotonic_ns()}", pkimod.free_port(),
                                      "--allow-from", str(allow)))
        return proxy.start()
    return start


@pytest.fixture
def scratch(tmp_path) -> Path:
    d = tmp_path / "scratch"
    d.mkdir(exist_ok=True)
    return d


def next_second() -> None:
    """Sleep into the next wall-clock second (responses carry second-precision times, so a
    response fetched after this has a strictly newer thisUpdate)."""
    time.sleep(1.05 - (time.time() % 1.0))
