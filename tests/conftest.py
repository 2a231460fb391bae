"""Shared fixtures: a test PKI built with the openssl CLI and a real `openssl ocsp` responder.

Only loopback addresses are ever contacted.  Proxy variables are removed
from the environment so a CI proxy setting cannot divert loopback traffic.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import pki as pkimod  # noqa: E402
from fake_responder import FakeResponder  # noqa: E402

for _var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
             "no_proxy", "NO_PROXY"):
    os.environ.pop(_var, None)

BIN = Path(sys.executable).parent


def command(name: str) -> str:
    """Path of an installed console script (ocsp-fetch, ocsp-check, ...)."""
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or name


def run_cmd(name: str, *args, input: bytes | None = None, env: dict | None = None,
            timeout: float = 60, cwd=None, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """Run a real ocsptools command as a user would, after PREFIX (e.g. ``unprivileged()``);
    both streams captured as bytes."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([*prefix, command(name), *map(str, args)], input=input, capture_output=True,
                          env=full_env, timeout=timeout, cwd=cwd)


#: Root without the capabilities that let it ignore file modes: a process run through this obeys
#: permission bits like any user, yet still reaches the checkout and its virtualenv, wherever they
#: are (a clone in a mode-0700 ``mktemp -d`` directory is out of another uid's reach).
_NO_DAC = "-dac_override,-dac_read_search"


def unprivileged() -> list:
    """A command prefix under which file modes apply: none for an ordinary user; for root,
    ``setpriv`` dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (skips without setpriv)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv (util-linux) is missing: modes would not apply")
    return ["setpriv", "--bounding-set", _NO_DAC, "--inh-caps", _NO_DAC]


def assert_one_line_error(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text, text
    lines = [l for l in text.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {text!r}"
    return lines[0]


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """root -> inter -> {ocsp signer, nosign, leaves good1, good2, revoked1 (revoked)}."""
    return pkimod.build_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def _session_responder(pki):
    with pkimod.Responder(pki) as r:
        yield r


@pytest.fixture
def responder(_session_responder):
    """The PKI's real responder (delegated signer, 1-day responses), restarted if a test killed it."""
    _session_responder.ensure_running()
    return _session_responder


@pytest.fixture
def fake():
    with FakeResponder() as f:
        yield f


@pytest.fixture
def leaf_dir(tmp_path, pki):
    """Copy a leaf into a private directory: returns a function name -> (cert path, dir)."""
    def make(name: str, *, layout: str = "plain"):
        leaf = pki.leaves[name]
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        cert = d / "cert.pem"
        shutil.copy(leaf.cert, cert)
        if layout == "fullchain":
            shutil.copy(leaf.fullchain, cert)
        elif layout == "issuer":
            shutil.copy(leaf.chain, d / "cert.pem.issuer")
        elif layout == "certbot":
            shutil.copy(leaf.chain, d / "chain.pem")
        return cert
    return make
