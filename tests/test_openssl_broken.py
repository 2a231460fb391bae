"""A missing, failing or foreign --openssl is an environment problem, never a verdict on the user's
certificate or staple (issue 15, item 2): every command says so in one line naming openssl and what
it did, exits with its documented status for it, and writes nothing."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import assert_one_line_error, command, run_cmd


def script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


#: (id, how to make the binary, what the one line must say it did)
BROKEN = [
    ("false", lambda d: "/bin/false", "'/bin/false version' exited with status 1, printing nothing"),
    ("true", lambda d: "/bin/true", "'/bin/true version' printed nothing"),
    ("echo", lambda d: "/bin/echo", "not openssl: '/bin/echo version' printed 'version'"),
    ("missing", lambda d: str(d / "no" / "openssl"), f"openssl not found ("),
    ("other-program", lambda d: script(d / "frob", 'echo "frob 2.1: unknown command $1"'),
     "not openssl: '{bin} version' printed 'frob 2.1: unknown command version'"),
    ("crashes", lambda d: script(d / "openssl", 'echo "Segmentation fault" >&2; exit 139'),
     "'{bin} version' exited with status 139 ('Segmentation fault')"),
    ("libressl", lambda d: script(d / "openssl", 'echo "LibreSSL 3.8.2"'),
     "not openssl: '{bin} version' printed 'LibreSSL 3.8.2'"),
    ("too-old", lambda d: script(d / "openssl", 'echo "OpenSSL 1.0.2u  20 Dec 2019"'),
     "openssl too old: '{bin} version' printed 'OpenSSL 1.0.2u  20 Dec 2019'"),
]


@pytest.fixture(params=BROKEN, ids=[b[0] for b in BROKEN])
def broken(request, tmp_path):
    """(binary, the fragment the error line must hold)."""
    _, make, said = request.param
    d = tmp_path / "bin"
    d.mkdir()
    binary = make(d)
    return binary, said.format(bin=binary)


def assert_names_openssl(stderr: bytes, prog: str, binary: str, said: str) -> str:
    line = assert_one_line_error(stderr)
    assert line.startswith(f"{prog}: ") and "openssl" in line and binary in line, line
    assert said in line, line
    for verdict in ("not a valid certificate", "not a DER OCSP response", "no certificate",
                    "issuer not found", "CRITICAL"):
        assert verdict not in line, line          # never a verdict on the user's files
    return line


@pytest.fixture
def site(tmp_path, pki):
    """site.pem (leaf + chain) with an installed staple site.pem.ocsp beside it."""
    d = tmp_path / "site"
    d.mkdir()
    shutil.copy(pki.leaves["good1"].fullchain, d / "site.pem")
    (d / "site.pem.ocsp").write_bytes((Path(__file__).parent / "fixtures" / "openssl" / "good.der")
                                      .read_bytes())
    return d


def snapshot(d: Path) -> dict:
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("how", ["convention", "--cert", "no-certificate"])
def test_check_files_is_unknown(broken, site, how):
    binary, said = broken
    staple = site / "site.pem.ocsp"
    if how == "--cert":
        args = ["--cert", site / "site.pem", staple]
    elif how == "no-certificate":
        args = [shutil.copy(staple, site / "lone.der")]
    else:
        args = [staple]
    before = snapshot(site)
    res = subprocess.run([command("ocsp-check"), "--openssl", binary, *map(str, args)],
                         capture_output=True, timeout=60)
    assert res.returncode == 3, res.stdout
    line = assert_names_openssl(res.stderr, "ocsp-check", binary, said)
    assert res.stdout.decode().splitlines() == ["OCSP UNKNOWN - " + line[len("ocsp-check: "):]]
    assert snapshot(site) == before


def test_check_live_is_unknown(broken):
    binary, said = broken
    res = subprocess.run([command("ocsp-check"), "--openssl", binary, "-H", "127.0.0.1", "-p", "1"],
                         capture_output=True, timeout=60)
    assert res.returncode == 3, res.stdout
    assert_names_openssl(res.stderr, "ocsp-check", binary, said)
    assert res.stdout.startswith(b"OCSP UNKNOWN - ")


@pytest.mark.parametrize("stdin", [False, True])
def test_fetch_fails_with_status_1_and_keeps_the_staple(broken, site, stdin):
    binary, said = broken
    before = snapshot(site)
    cert = site / "site.pem"
    res = run_cmd("ocsp-fetch", "--openssl", binary, "-o", site / "site.pem.ocsp",
                  "-" if stdin else cert, input=cert.read_bytes() if stdin else None)
    assert res.returncode == 1
    assert_names_openssl(res.stderr, "ocsp-fetch", binary, said)
    assert snapshot(site) == before                 # the staple byte-identical, no temp file


def test_renew_dir_fails_with_status_1_and_writes_nothing(broken, site, tmp_path):
    binary, said = broken
    shutil.copy(site / "site.pem", site / "other.pem")      # a second certificate, no staple yet
    before = snapshot(site)
    state = tmp_path / "state" / "s.json"
    res = run_cmd("ocsp-renew-dir", "--state", state, "--openssl", binary, site)
    assert res.returncode == 1, res.stdout
    assert_names_openssl(res.stderr, "ocsp-renew-dir", binary, said)
    assert res.stdout == b""                        # no per-certificate verdict
    assert snapshot(site) == before
    assert not state.exists()


def test_proxy_warm_fails_with_status_1_and_caches_nothing(broken, site, tmp_path):
    binary, said = broken
    cache = tmp_path / "cache.sqlite"
    res = run_cmd("ocsp-proxy", "warm", "--cache", f"sqlite:///{cache}", "--openssl", binary,
                  site / "site.pem")
    assert res.returncode == 1, res.stdout
    assert_names_openssl(res.stderr, "ocsp-proxy", binary, said)
    if cache.exists():
        with sqlite3.connect(cache) as db:
            tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
            assert all(db.execute(f"select count(*) from {t}").fetchone()[0] == 0 for t in tables
                       if not t.startswith("sqlite_"))


def test_renewal_pass_that_needs_no_openssl_never_probes(tmp_path, pki, responder):
    """The probe is lazy: a no-op pass over an unchanged tree (state cache) spawns nothing, so even
    a broken --openssl goes unnoticed there; the first run that needs openssl reports it."""
    root = tmp_path / "tree"
    root.mkdir()
    shutil.copy(pki.leaves["good1"].fullchain, root / "site.pem")
    state = tmp_path / "s.json"
    res = run_cmd("ocsp-renew-dir", "--state", state, root)
    assert res.returncode == 0 and res.stdout.startswith(b"renewed\t"), res.stdout
    before, cache = snapshot(root), state.read_bytes()
    res = run_cmd("ocsp-renew-dir", "--state", state, "--openssl", "/bin/false", root)
    assert (res.returncode, res.stdout, res.stderr) == (0, b"", b"")
    for due in (["--renew-at", "0"], ["-B"]):       # now openssl is needed: one line, status 1
        res = run_cmd("ocsp-renew-dir", "--state", state, "--openssl", "/bin/false", *due, root)
        assert res.returncode == 1 and res.stdout == b""
        assert_names_openssl(res.stderr, "ocsp-renew-dir", "/bin/false", "exited with status 1")
        assert snapshot(root) == before and state.read_bytes() == cache
