"""examples/Makefile: plain make renews a tree with ocsp-check -q as the predicate and ocsp-fetch as the recipe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKEFILE = ROOT / "examples" / "Makefile"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


def make(certdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return subprocess.run(["make", "-f", str(MAKEFILE), f"CERTDIR={certdir}", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def fetched(res) -> list[str]:
    return sorted(Path(l.split(" -o ")[1].split()[0]).name
                  for l in res.stdout.splitlines() if l.startswith("ocsp-fetch"))


def test_make_renews_a_tree(tmp_path, pki, responder):
    from test_renew import check_good, fresh_leaf
    inter = Path(pki.inter_cert).read_text()
    d = tmp_path / "certs"
    d.mkdir()
    for name in ("good1", "good2"):
        (d / f"{name}.pem").write_text(Path(pki.leaves[name].cert).read_text() + inter)
    nocsp = fresh_leaf(pki, responder, "mk", ocsp_urls=[])
    (d / "nocsp.pem").write_text(Path(nocsp.cert).read_text() + inter)
    res = make(d, "-j4")
    assert res.returncode == 0, res.stdout + res.stderr
    assert fetched(res) == ["good1.pem.ocsp", "good2.pem.ocsp", "nocsp.pem.ocsp"]
    for name in ("good1", "good2"):
        check_good(d / f"{name}.pem.ocsp", d / f"{name}.pem", pki)
    assert not (d / "nocsp.pem.ocsp").exists()
    # fresh staples: nothing to do for them (only the not-applicable one is retried, quietly)
    res = make(d, "-j4")
    assert res.returncode == 0 and fetched(res) == ["nocsp.pem.ocsp"]
    (d / "nocsp.pem").unlink()
    res = make(d, "-q")
    assert res.returncode == 0, res.stdout
    # a touched certificate: only its staple
    time.sleep(1.1)
    os.utime(d / "good1.pem")
    res = make(d, "-j4")
    assert fetched(res) == ["good1.pem.ocsp"]
    # the predicate: with the whole lifetime required, every staple is due
    time.sleep(1.1)
    res = make(d, "-n", "LEFT=100%")
    assert fetched(res) == ["good1.pem.ocsp", "good2.pem.ocsp"]
    # a broken staple is replaced
    (d / "good2.pem.ocsp").write_bytes(b"garbage")
    os.utime(d / "good2.pem.ocsp", (time.time() + 60, time.time() + 60))
    res = make(d, "-j4")
    assert fetched(res) == ["good2.pem.ocsp"]
    check_good(d / "good2.pem.ocsp", d / "good2.pem", pki)


def test_make_keeps_the_old_staple_when_the_responder_fails(tmp_path, pki, responder, fake):
    from fake_responder import status_only
    d = tmp_path / "certs"
    d.mkdir()
    (d / "good1.pem").write_text(Path(pki.leaves["good1"].cert).read_text()
                                 + Path(pki.inter_cert).read_text())
    assert make(d).returncode == 0
    before = (d / "good1.pem.ocsp").read_bytes()
    fake.set(body=status_only("tryLater"))
    time.sleep(1.1)
    res = make(d, "LEFT=100%", f"FETCHOPTS=-u {fake.url}")
    assert res.returncode != 0
    assert (d / "good1.pem.ocsp").read_bytes() == before
