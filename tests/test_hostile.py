"""Every hostile responder scenario against `ocsp-fetch -o`: right exit status, one clear line,
the installed staple byte-identical (or correctly replaced when the scenario is benign), no temp
files left, and the whole matrix in bounded time."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

import hostile_responder as hostile
from conftest import assert_one_line_error, run_cmd

pytestmark = pytest.mark.skipif(shutil.which("faketime") is None,
                                reason="needs faketime (Debian package faketime) to date responses")

EXIT = {"reject": 1, "revoked": 4, "replace": 0}
TIMEOUT = 2          # --timeout for the fetch; the slow scenarios must end near it


@pytest.fixture(scope="module")
def matrix(pki, tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile")
    leaf, other, revoked = pki.leaves["good1"], pki.leaves["good2"], pki.leaves["revoked1"]
    installed = hostile.installed_staple(pki, leaf, work)
    return {s.name: s for s in hostile.scenarios(pki, leaf, other, revoked, work)}, installed


def scenario_names():
    # names only (the matrix itself needs the PKI): keep in step with hostile_responder.scenarios
    return ["http-500", "http-404", "http-301", "connection-reset", "hang", "drip-1-byte-per-second",
            "50MB-body", "wrong-content-type-html", "empty-body", "random-bytes", "truncated-der",
            "tryLater", "unauthorized", "malformedRequest", "internalError", "sigRequired",
            "another-serial", "right-serial-other-issuer", "several-responses-ours-last", "bad-signature",
            "delegated-without-ocspsigning", "delegated-not-embedded", "delegated-signer-expired",
            "signer-expires-before-nextupdate", "no-nextupdate", "older-than-installed",
            "thisupdate-one-hour-ahead", "nextupdate-already-past", "revoked", "unknown"]


def test_scenario_list_complete(matrix):
    assert sorted(matrix[0]) == sorted(scenario_names())


@pytest.mark.parametrize("name", scenario_names())
def test_ocsp_fetch_against_hostile_responder(name, matrix, pki, fake, tmp_path):
    scenarios, installed = matrix
    sc = scenarios[name]
    staple = tmp_path / "site.pem.ocsp"
    staple.write_bytes(installed)
    fake.set(handler=lambda req: sc.answer())
    start = time.monotonic()
    res = run_cmd("ocsp-fetch", "--timeout", TIMEOUT, "-u", fake.url, "-o", staple,
                  pki.leaves["good1"].fullchain)
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT + 6, f"{name} took {elapsed:.1f} s"
    assert res.returncode == EXIT[sc.expect], (name, res.stderr)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != staple.name]
    assert leftovers == [], leftovers
    if sc.expect == "replace":
        assert staple.read_bytes() != installed
        check = subprocess.run(["openssl", "ocsp", "-respin", str(staple), "-issuer", str(pki.inter_cert),
                                "-cert", str(pki.leaves["good1"].cert), "-CAfile", str(pki.root_cert),
                                "-no_nonce"], capture_output=True, text=True, env=hostile.ENV)
        assert "Response verify OK" in check.stderr and ": good" in check.stdout
        assert "Traceback" not in res.stderr.decode()
    else:
        line = assert_one_line_error(res.stderr)
        assert sc.needle.lower() in line.lower(), line
        assert staple.read_bytes() == installed
