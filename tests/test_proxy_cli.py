"""ocsp-proxy warm / purge / stats / usage errors, run as the installed console script."""

from __future__ import annotations

import shutil

import pytest

import pki as pkimod
from conftest import assert_one_line_error, run_cmd
from test_proxy_support import ProxyProc, received, request_der


@pytest.fixture
def cache_url(tmp_path):
    return f"sqlite:///{tmp_path}/cache.sqlite"


def test_warm_then_serve_with_the_responder_down(pki, responder, tmp_path, cache_url):
    tree = tmp_path / "certs"
    (tree / "a").mkdir(parents=True)
    shutil.copy(pki.leaves["good1"].fullchain, tree / "a" / "cert.pem")
    shutil.copy(pki.leaves["good2"].fullchain, tree / "good2.pem")
    noocsp = pki.make_leaf("noocsp-proxy", ocsp_urls=[])
    shutil.copy(noocsp.fullchain, tree / "noocsp.pem")
    shutil.copy(pki.inter_cert, tree / "inter.pem")              # a CA file: skipped quietly
    before = received(responder)
    res = run_cmd("ocsp-proxy", "warm", "--cache", cache_url, "--hash", "sha1", "--hash", "sha256", tree)
    assert res.returncode == 0, res.stderr
    assert res.stderr == b""                                      # not applicable is quiet
    assert res.stdout.decode().count(": good, next update ") == 4
    assert received(responder) - before == 4
    stats = run_cmd("ocsp-proxy", "stats", "--cache", cache_url, "--list")
    assert stats.returncode == 0
    out = stats.stdout.decode()
    assert "entries: 4" in out and "valid: 4" in out and "status good: 4" in out
    assert out.count(" sha256 good ") == 2 and responder.url in out
    responder.stop()
    try:
        issuer_dir = tmp_path / "issuer"
        issuer_dir.mkdir()
        shutil.copy(pki.inter_cert, issuer_dir / "inter.pem")
        with ProxyProc("--allow-from", str(issuer_dir), cache=cache_url) as proxy:
            for alg in ("sha1", "sha256"):
                status, _, body = proxy.post(request_der(pki, pki.leaves["good2"], hash_alg=alg, tmp=tmp_path))
                assert status == 200 and body[:1] == b"\x30"
            assert proxy.metrics()["ocsp_proxy_cache_hits_total"] == 2
    finally:
        responder.ensure_running()
    res = run_cmd("ocsp-proxy", "purge", "--cache", cache_url, pki.leaves["good1"].cert)
    assert res.returncode == 0 and b"purged 2" in res.stdout
    res = run_cmd("ocsp-proxy", "purge", "--cache", cache_url, "--serial", "0x" + pki.leaves["good2"].serial)
    assert res.returncode == 0 and b"purged 2" in res.stdout
    assert b"entries: 0" in run_cmd("ocsp-proxy", "stats", "--cache", cache_url).stdout


def test_warm_revoked_exits_4_and_failure_exits_1(pki, responder, tmp_path, cache_url):
    res = run_cmd("ocsp-proxy", "warm", "--cache", cache_url, pki.leaves["revoked1"].fullchain)
    assert res.returncode == 4 and b": revoked" in res.stdout
    dead = pki.make_leaf("dead-responder", ocsp_urls=[f"http://127.0.0.1:{pkimod.free_port()}/"])
    res = run_cmd("ocsp-proxy", "warm", "--cache", cache_url, "--timeout", "2", dead.fullchain)
    assert res.returncode == 1
    assert "connection refused" in assert_one_line_error(res.stderr)


@pytest.mark.parametrize("args, needle", [
    (["serve", "--listen", "nonsense"], "--listen nonsense"),
    (["serve", "--refresh-at", "150%"], "--refresh-at"),
    (["serve", "--cache", "memcached://x"], "memcached://x"),
    (["serve", "--allow", "ftp://x/"], "ftp://x/"),
    (["serve", "--allow-from", "/nonexistent-dir"], "/nonexistent-dir"),
    (["purge", "--cache", "sqlite:///tmp/x.sqlite"], "name what to purge"),
    (["stats", "--cache", "sqlite:///nonexistent-dir/c.sqlite"], "does not exist"),
    ([], "subcommand"),
])
def test_usage_errors_are_one_line(args, needle, tmp_path):
    res = run_cmd("ocsp-proxy", *args)
    assert res.returncode in (1, 2), res
    assert needle in assert_one_line_error(res.stderr)


def test_listen_conflict_and_token_checks(tmp_path, cache_url):
    with ProxyProc(cache=cache_url) as proxy:
        res = run_cmd("ocsp-proxy", "serve", "--cache", cache_url, "--listen", f"127.0.0.1:{proxy.port}",
                      "--allow", "http://127.0.0.1:9/")
        assert res.returncode == 1
        assert f"127.0.0.1:{proxy.port}" in assert_one_line_error(res.stderr)
    short = tmp_path / "short"
    short.write_text("abc\n")
    res = run_cmd("ocsp-proxy", "serve", "--cache", cache_url, "--admin-token-file", short)
    assert res.returncode == 2 and "at least 16" in assert_one_line_error(res.stderr)


def test_help_and_version():
    res = run_cmd("ocsp-proxy", "--help")
    assert res.returncode == 0 and b"serve" in res.stdout and b"exit status" in res.stdout
    res = run_cmd("ocsp-proxy", "serve", "--help")
    assert res.returncode == 0 and b"--allow-from" in res.stdout
    assert run_cmd("ocsp-proxy", "--version").stdout.startswith(b"ocsp-proxy (ocsptools)")
