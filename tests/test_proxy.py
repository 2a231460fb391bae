"""ocsp-proxy end to end: the real openssl responder behind a real `ocsp-proxy serve` (sqlite cache)."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import threading
import time
import urllib.parse
from email.utils import parsedate_to_datetime

import pytest

import pki as pkimod
from conftest import assert_one_line_error, run_cmd
from test_proxy_support import (TRY_LATER, ProxyProc, check_response, faketime_lib, received,
                                request_der, wait_for)


@pytest.fixture
def allow_dir(tmp_path, pki):
    d = tmp_path / "allow"
    d.mkdir()
    shutil.copy(pki.leaves["good1"].fullchain, d / "good1.pem")
    shutil.copy(pki.leaves["revoked1"].fullchain, d / "revoked1.pem")
    return d


@pytest.fixture
def issuer_dir(tmp_path, pki):
    """Only the issuing CA: its answers can be verified, but no leaf names a responder."""
    d = tmp_path / "issuer-only"
    d.mkdir()
    shutil.copy(pki.inter_cert, d / "inter.pem")
    return d


@pytest.fixture
def start_proxy(tmp_path):
    procs = []

    def start(*args, cache=None, **kw):
        p = ProxyProc(*args, cache=cache or f"sqlite:///{tmp_path}/cache.sqlite", **kw)
        procs.append(p)
        return p
    yield start
    for p in procs:
        p.stop()


def openssl_via(pki, leaf, url, *extra):
    return pkimod.openssl("ocsp", "-issuer", pki.inter_cert, "-cert", leaf.cert, "-url", url,
                          "-CAfile", pki.root_cert, "-no-CApath", "-no-CAstore", "-timeout", "10",
                          *extra, check=False)


def test_openssl_client_through_proxy_verifies_then_hits(pki, responder, allow_dir, start_proxy):
    proxy = start_proxy("--allow-from", str(allow_dir))
    leaf = pki.leaves["good1"]
    before = received(responder)
    first = openssl_via(pki, leaf, proxy.url, "-no_nonce")
    second = openssl_via(pki, leaf, proxy.url, "-no_nonce")
    for cp in (first, second):
        assert "Response verify OK" in cp.stderr, cp.stderr
        assert f"{leaf.cert}: good" in cp.stdout
    assert received(responder) - before == 1            # the second came from the cache
    m = proxy.metrics()
    assert m["ocsp_proxy_cache_misses_total"] == 1
    assert m["ocsp_proxy_cache_hits_total"] == 1
    assert m["ocsp_proxy_cache_entries"] == 1
    revoked = openssl_via(pki, pki.leaves["revoked1"], proxy.url, "-no_nonce")
    assert "Response verify OK" in revoked.stderr and ": revoked" in revoked.stdout


def test_get_forms_and_absolute_uri(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir))
    leaf = pki.leaves["good1"]
    req = request_der(pki, leaf, tmp=tmp_path)
    status, headers, body = proxy.get(req)
    assert status == 200 and headers["content-type"] == "application/ocsp-response"
    assert "good" in check_response(pki, leaf, body, tmp_path)
    # Apache SSLOCSPProxyURL: absolute URI in the request line, POST
    status, _, body2 = proxy.post(req, target=responder.url)
    assert status == 200 and body2 == body
    # absolute URI with a GET path under the responder
    b64 = urllib.parse.quote(base64.b64encode(req).decode(), safe="")
    status, _, body3 = proxy.request("GET", responder.url + b64)
    assert status == 200 and body3 == body
    # base64 with '/' left unencoded, as some clients send it
    leaves = [l for l in pki.leaves.values() if l.issuer == "inter"]
    n = 0
    while True:
        found = [(l, a) for l in leaves for a in ("sha1", "sha256")
                 if "/" in base64.b64encode(request_der(pki, l, hash_alg=a, tmp=tmp_path)).decode()]
        if found:
            break
        n += 1
        leaves.append(pki.make_leaf(f"slash{n}"))
    slash_leaf, alg = found[0]
    raw = request_der(pki, slash_leaf, hash_alg=alg, tmp=tmp_path)
    shutil.copy(slash_leaf.fullchain, tmp_path / "allow" / "slash.pem")
    status, _, body4 = proxy.get(raw, encode=False)
    assert status == 200, body4
    verdict = check_response(pki, slash_leaf, body4, tmp_path, extra=[f"-{alg}"] if alg != "sha1" else [])
    assert "Response verify OK" in verdict


def test_caching_headers_and_etag(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir))
    req = request_der(pki, pki.leaves["good1"], tmp=tmp_path)
    proxy.get(req)
    status, h, body = proxy.get(req)
    assert status == 200
    for name in ("date", "expires", "last-modified"):
        assert h[name].endswith(" GMT"), h[name]
    now = parsedate_to_datetime(h["date"])
    expires = parsedate_to_datetime(h["expires"])
    assert expires - now > __import__("datetime").timedelta(hours=23)      # nextUpdate = +1 day
    max_age = int(h["cache-control"].split("max-age=")[1].split(",")[0])
    assert abs(max_age - (expires - now).total_seconds()) <= 2
    assert "public" in h["cache-control"] and "no-transform" in h["cache-control"]
    assert h["etag"].startswith('"')
    status, h2, body2 = proxy.get(req, headers={"If-None-Match": h["etag"]})
    assert status == 304 and body2 == b""


def test_restart_keeps_the_cache(pki, responder, allow_dir, start_proxy, tmp_path):
    leaf = pki.leaves["good1"]
    req = request_der(pki, leaf, tmp=tmp_path)
    first = start_proxy("--allow-from", str(allow_dir))
    status, _, body = first.post(req)
    assert status == 200
    assert first.stop() == 0
    responder.stop()                     # the CA is down while the proxy restarts
    try:
        second = start_proxy("--allow-from", str(allow_dir))
        status, _, again = second.post(req)
        assert status == 200 and again == body
        assert "Response verify OK" in check_response(pki, leaf, again, tmp_path)
        assert second.metrics()["ocsp_proxy_cache_hits_total"] == 1
    finally:
        responder.ensure_running()


def test_upstream_killed_clients_keep_valid_answers(pki, issuer_dir, start_proxy, tmp_path):
    leaf = pki.leaves["good1"]
    req = request_der(pki, leaf, tmp=tmp_path)
    upstream = pkimod.Responder(pki, port=0, nmin=5).start()     # 5-minute answers
    try:
        proxy = start_proxy("--allow", upstream.url, "--allow-from", str(issuer_dir),
                            "--refresh-at", "1%", "--timeout", "2")   # refresh due after 3 s
        status, _, body = proxy.post(req, target=upstream.url)
        assert status == 200
    finally:
        upstream.stop()
    answers, errors = [], []

    def client():
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                answers.append(proxy.post(req, target=upstream.url))
            except Exception as exc:      # pragma: no cover - reported below
                errors.append(exc)
            time.sleep(0.02)
    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(answers) > 50
    assert all(s == 200 and b == body for s, _, b in answers), ({s for s, _, _ in answers}, proxy.log)
    m = wait_for(lambda: (lambda m: m if m['ocsp_proxy_refreshes_total{result=failed}'] >= 1 else None)(proxy.metrics()))
    assert m["ocsp_proxy_upstream_errors_total{kind=connect}"] >= 1
    assert "refresh failed" in proxy.log and "still valid until" in proxy.log


def test_expired_entry_gives_try_later(pki, issuer_dir, start_proxy, tmp_path):
    lib = faketime_lib()
    leaf = pki.leaves["good1"]
    req = request_der(pki, leaf, tmp=tmp_path)
    upstream = pkimod.Responder(pki, port=0, nmin=1).start()     # nextUpdate = +1 minute
    try:
        proxy = start_proxy("--allow", upstream.url, "--allow-from", str(issuer_dir), "--timeout", "2")
        status, _, body = proxy.post(req, target=upstream.url)
        assert status == 200 and body[:1] == b"\x30" and body != TRY_LATER
        proxy.stop()
    finally:
        upstream.stop()
    later = start_proxy("--allow", upstream.url, "--allow-from", str(issuer_dir), "--timeout", "2",
                        env={"LD_PRELOAD": lib, "FAKETIME": "+3m"})   # no wrapper process
    status, headers, body = later.post(req, target=upstream.url)
    assert status == 200 and body == TRY_LATER
    assert "no-store" in headers["cache-control"]
    assert later.metrics()["ocsp_proxy_expired_total"] == 1
    assert wait_for(lambda: "expired" in later.log and "tryLater" in later.log), later.log


def test_disallowed_upstream_is_403(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir))
    req = request_der(pki, pki.leaves["good1"], tmp=tmp_path)
    status, _, body = proxy.post(req, target="http://127.0.0.2:9/ocsp")
    assert status == 403 and b"not allowed" in body
    status, _, _ = proxy.request("GET", "http://127.0.0.2:9/" + urllib.parse.quote(
        base64.b64encode(req).decode(), safe=""))
    assert status == 403
    # a certificate whose issuer the proxy does not know, with a Host it does not allow
    stranger = pki.make_leaf("stranger", issuer="other", ocsp_urls=["http://127.0.0.2:9/"])
    out = tmp_path / "stranger.der"
    pkimod.openssl("ocsp", "-issuer", pki.other_inter_cert, "-cert", stranger.cert, "-no_nonce", "-reqout", out)
    status, _, _ = proxy.post(out.read_bytes(), headers={"Host": "evil.example"})
    assert status == 403
    assert proxy.metrics()["ocsp_proxy_forbidden_total"] == 3


def test_nonce_and_multi_certificate_requests_pass_through(pki, responder, allow_dir, start_proxy):
    proxy = start_proxy("--allow-from", str(allow_dir))
    leaf = pki.leaves["good1"]
    before = received(responder)
    for _ in range(2):
        cp = openssl_via(pki, leaf, proxy.url, "-nonce")
        assert "Response verify OK" in cp.stderr and "WARNING: no nonce" not in cp.stderr, cp.stderr
    assert received(responder) - before == 2
    for _ in range(2):
        cp = pkimod.openssl("ocsp", "-issuer", pki.inter_cert, "-cert", leaf.cert, "-cert",
                            pki.leaves["revoked1"].cert, "-url", proxy.url, "-no_nonce",
                            "-CAfile", pki.root_cert, "-no-CApath", "-no-CAstore", check=False)
        assert f"{leaf.cert}: good" in cp.stdout and ": revoked" in cp.stdout
    assert received(responder) - before == 4
    m = proxy.metrics()
    assert m["ocsp_proxy_cache_entries"] == 0
    assert m["ocsp_proxy_passthrough_total{reason=nonce}"] == 2
    assert m["ocsp_proxy_passthrough_total{reason=several certificates}"] == 2


def test_unknown_leaf_of_known_issuer_is_verified_and_cached(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir))       # good2 itself is not under allow_dir
    leaf = pki.leaves["good2"]
    for alg in ("sha1", "sha256"):
        req = request_der(pki, leaf, hash_alg=alg, tmp=tmp_path)
        before = received(responder)
        s1, _, b1 = proxy.post(req)
        s2, _, b2 = proxy.post(req)
        assert s1 == s2 == 200 and b1 == b2
        assert received(responder) - before == 1
    assert proxy.metrics()["ocsp_proxy_cache_entries"] == 2


def test_unverifiable_answer_is_passed_through_uncached(pki, issuer_dir, start_proxy, tmp_path):
    bad = pkimod.Responder(pki, port=0, signer="nosign").start()    # signer lacks OCSPSigning
    try:
        proxy = start_proxy("--allow", bad.url, "--allow-from", str(issuer_dir))
        req = request_der(pki, pki.leaves["good1"], tmp=tmp_path)
        for _ in range(2):
            status, headers, body = proxy.post(req, target=bad.url)
            assert status == 200 and body[:1] == b"\x30" and "no-store" in headers["cache-control"]
        assert received(bad) == 2
        m = proxy.metrics()
        assert m["ocsp_proxy_cache_entries"] == 0
        assert m["ocsp_proxy_passthrough_total{reason=unverifiable}"] == 2
        assert m["ocsp_proxy_upstream_errors_total{kind=verify}"] == 2
    finally:
        bad.stop()


def test_http_errors(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir), "--max-request-size", "1024")
    status, _, _ = proxy.post(b"\x30" + b"\x00" * 2000)
    assert status == 413
    status, _, body = proxy.post(b"not DER at all")
    assert status == 400 and b"malformed" in body
    status, _, _ = proxy.request("GET", "/not-base64!")
    assert status == 400
    status, h, _ = proxy.request("PUT", "/", b"x")
    assert status == 405 and "GET" in h["allow"]
    status, _, _ = proxy.request("DELETE", "/")
    assert status == 405
    status, _, _ = proxy.post(request_der(pki, pki.leaves["good1"], tmp=tmp_path),
                              headers={"Content-Type": "text/plain"})
    assert status == 400
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 431")
    assert proxy.alive()
    assert proxy.request("GET", "/healthz")[0] == 200


def test_slow_idle_and_dropping_clients_cannot_block_others(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir), "--request-timeout", "1", "--idle-timeout", "2")
    req = request_der(pki, pki.leaves["good1"], tmp=tmp_path)
    assert proxy.post(req)[0] == 200
    for _ in range(20):                                   # connect and drop, reset, half requests
        s = socket.create_connection(("127.0.0.1", proxy.port))
        s.close()
        s = socket.create_connection(("127.0.0.1", proxy.port))
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n\x30")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    idle = socket.create_connection(("127.0.0.1", proxy.port))
    slow = socket.create_connection(("127.0.0.1", proxy.port))
    slow.settimeout(5)
    start = time.monotonic()
    closed_at = None
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
    latencies = []
    for byte in request:                                  # one byte every 0.1 s
        try:
            slow.sendall(bytes([byte]))
        except OSError:
            closed_at = time.monotonic()
            break
        t0 = time.monotonic()
        assert proxy.post(req)[0] == 200                  # others are served meanwhile
        latencies.append(time.monotonic() - t0)
        time.sleep(0.1)
        if time.monotonic() - start > 3:
            break
    try:
        data = slow.recv(200)
    except OSError:
        data = b""
    assert closed_at is not None or data.startswith(b"HTTP/1.1 408") or data == b""
    assert time.monotonic() - start < 4
    assert max(latencies) < 1.0
    idle.settimeout(5)
    assert idle.recv(10) == b""                           # the idle connection was closed
    idle.close()
    slow.close()
    assert proxy.alive()
    m = proxy.metrics()
    assert m["ocsp_proxy_client_timeouts_total"] >= 2


def test_metrics_healthz_and_purge_over_http(pki, responder, allow_dir, start_proxy, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("0123456789abcdef0123456789abcdef\n")
    token_file.chmod(0o600)
    proxy = start_proxy("--allow-from", str(allow_dir), "--admin-token-file", str(token_file))
    leaf = pki.leaves["good1"]
    req = request_der(pki, leaf, tmp=tmp_path)
    proxy.post(req)
    status, _, body = proxy.request("GET", "/healthz")
    assert status == 200 and body == b"ok\n"
    m = proxy.metrics()
    assert m["ocsp_proxy_cache_entries"] == 1 and m["ocsp_proxy_known_issuers"] == 1
    assert 0 <= m["ocsp_proxy_oldest_entry_age_seconds"] < 120
    assert proxy.request("POST", f"/admin/purge?serial={leaf.serial}", b"")[0] == 401
    assert proxy.request("POST", f"/admin/purge?serial={leaf.serial}", b"",
                         headers={"Authorization": "Bearer wrong-token-wrong-token"})[0] == 403
    auth = {"Authorization": "Bearer 0123456789abcdef0123456789abcdef"}
    status, _, body = proxy.request("POST", f"/admin/purge?serial={leaf.serial}", b"", headers=auth)
    assert status == 200 and body == b"purged 1\n"
    before = received(responder)
    assert proxy.post(req)[0] == 200
    assert received(responder) - before == 1             # purged: asked the responder again
    # the CLI through the running proxy, by certificate
    res = run_cmd("ocsp-proxy", "purge", "--via", proxy.url, "--admin-token-file", token_file, leaf.cert)
    assert res.returncode == 0, res.stderr
    assert b"purged 1" in res.stdout
    res = run_cmd("ocsp-proxy", "purge", "--via", proxy.url, "--admin-token-file", tmp_path / "missing",
                  leaf.cert)
    assert res.returncode == 2
    assert "missing" in assert_one_line_error(res.stderr)


def test_purge_over_http_is_off_without_a_token_file(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir))
    leaf = pki.leaves["good1"]
    assert proxy.post(request_der(pki, leaf, tmp=tmp_path))[0] == 200
    auth = {"Authorization": "Bearer 0123456789abcdef0123456789abcdef"}
    status, _, body = proxy.request("POST", f"/admin/purge?serial={leaf.serial}", b"", headers=auth)
    assert status == 404 and b"--admin-token-file" in body
    assert proxy.metrics()["ocsp_proxy_cache_entries"] == 1                 # nothing purged


def test_half_closed_client_still_gets_its_answer(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir))
    req = request_der(pki, pki.leaves["good1"], tmp=tmp_path)          # a miss: answered asynchronously
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"POST / HTTP/1.0\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(req) + req)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"\r\n\r\n\x30" in data


def test_sighup_rereads_allow_from(pki, responder, tmp_path, start_proxy):
    tree = tmp_path / "later"
    tree.mkdir()
    proxy = start_proxy("--allow-from", str(tree))
    req = request_der(pki, pki.leaves["good1"], tmp=tmp_path)
    assert proxy.post(req)[0] == 403
    shutil.copy(pki.leaves["good1"].fullchain, tree / "good1.pem")
    proxy.proc.send_signal(__import__("signal").SIGHUP)
    assert wait_for(lambda: "reloaded" in proxy.log)
    assert proxy.post(req)[0] == 200


def test_concurrent_misses_share_one_upstream_fetch(pki, responder, allow_dir, start_proxy, tmp_path):
    proxy = start_proxy("--allow-from", str(allow_dir))
    req = request_der(pki, pki.leaves["revoked1"], hash_alg="sha256", tmp=tmp_path)
    barrier = threading.Barrier(12)
    results = []

    def client():
        barrier.wait()
        results.append(proxy.post(req))
    before = received(responder)
    threads = [threading.Thread(target=client) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert received(responder) - before == 1
    assert len({b for _, _, b in results}) == 1 and all(s == 200 for s, _, _ in results)
    m = proxy.metrics()
    assert m["ocsp_proxy_cache_misses_total"] + m["ocsp_proxy_cache_hits_total"] == 12


@pytest.fixture
def short_lived(pki):
    """A leaf whose AIA names its own responder giving 5-minute answers (1% refresh: after 3 s)."""
    port = pkimod.free_port()
    leaf = pki.make_leaf(f"short{port}", ocsp_urls=[f"http://127.0.0.1:{port}/"])
    upstream = pkimod.Responder(pki, port=port, nmin=5).start()
    yield leaf, upstream
    upstream.stop()


def warm(cache_url, *args):
    res = run_cmd("ocsp-proxy", "warm", "--cache", cache_url, "--refresh-at", "1%", *args)
    assert res.returncode == 0, res.stderr


def not_allowed_refreshes(proxy):
    return proxy.metrics()["ocsp_proxy_refreshes_total{result=not allowed}"]


def test_cached_urls_obey_the_allow_list(pki, short_lived, issuer_dir, start_proxy, tmp_path):
    """Warmed from a responder the proxy may not contact (only the issuer under --allow-from): the
    refresher leaves it alone and the entry is served while valid; once expired, a client's miss
    is refused instead of being sent to the URL stored in the cache."""
    leaf, upstream = short_lived
    cache_url = f"sqlite:///{tmp_path}/cache.sqlite"
    warm(cache_url, leaf.fullchain)
    assert received(upstream) == 1
    req = request_der(pki, leaf, tmp=tmp_path)
    proxy = start_proxy("--allow-from", str(issuer_dir), "--timeout", "2")
    assert wait_for(lambda: not_allowed_refreshes(proxy) >= 1, timeout=15), proxy.log
    assert "not allowed" in proxy.log and upstream.url in proxy.log
    status, _, body = proxy.post(req)
    assert status == 200 and body[:1] == b"\x30" and body != TRY_LATER      # still valid: served
    assert received(upstream) == 1
    proxy.stop()
    later = start_proxy("--allow-from", str(issuer_dir), "--timeout", "2",
                        env={"LD_PRELOAD": faketime_lib(), "FAKETIME": "+6m"})    # past nextUpdate
    status, _, _ = later.post(req)
    assert status == 403
    assert received(upstream) == 1


def test_sighup_shrinking_the_allow_list_stops_refreshes(pki, short_lived, start_proxy, tmp_path):
    leaf, upstream = short_lived
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(leaf.fullchain, tree / "leaf.pem")
    shutil.copy(pki.inter_cert, tree / "inter.pem")
    proxy = start_proxy("--allow-from", str(tree), "--refresh-at", "1%", "--timeout", "2")
    req = request_der(pki, leaf, tmp=tmp_path)
    assert proxy.post(req)[0] == 200
    assert wait_for(lambda: proxy.metrics()["ocsp_proxy_refreshes_total{result=ok}"] >= 1, timeout=15)
    os.unlink(tree / "leaf.pem")                     # the issuer stays trusted, its responder goes
    proxy.proc.send_signal(__import__("signal").SIGHUP)
    assert wait_for(lambda: "reloaded" in proxy.log)
    time.sleep(0.5)                                   # a refresh already in flight may finish
    before = received(upstream)
    assert wait_for(lambda: not_allowed_refreshes(proxy) >= 1, timeout=15), proxy.log
    assert received(upstream) == before
    assert proxy.post(req)[0] == 200                  # the refreshed answer is still served


def test_host_header_naming_the_responder(pki, responder, issuer_dir, start_proxy, tmp_path):
    """DNS pointing the CA's responder name at the proxy: POST / with `Host: <responder>`."""
    proxy = start_proxy("--allow", responder.url, "--allow-from", str(issuer_dir))
    leaf = pki.leaves["good1"]
    req = request_der(pki, leaf, tmp=tmp_path)
    host = {"Host": f"127.0.0.1:{responder.port}"}
    before = received(responder)
    status, headers, body = proxy.post(req, headers=host)
    assert status == 200 and "no-store" not in headers["cache-control"]
    assert "Response verify OK" in check_response(pki, leaf, body, tmp_path)
    assert proxy.post(req, headers=host)[2] == body
    assert received(responder) - before == 1
    m = proxy.metrics()
    assert m["ocsp_proxy_cache_misses_total"] == 1 and m["ocsp_proxy_cache_hits_total"] == 1
    # a Host the allow-list does not name: the cached answer is served, a miss is refused
    assert proxy.post(req, headers={"Host": f"127.0.0.2:{responder.port}"})[2] == body
    other = request_der(pki, pki.leaves["revoked1"], tmp=tmp_path)
    assert proxy.post(other, headers={"Host": f"127.0.0.2:{responder.port}"})[0] == 403
    assert received(responder) - before == 1


def test_nginx_style_get_with_a_host_without_port(pki, responder, allow_dir, start_proxy, tmp_path):
    """nginx's ssl_stapling_responder sends `GET /<base64> HTTP/1.0` and `Host: NAME` without the
    port: port 80 is neither the proxy nor an allowed responder, so the CertID routes it."""
    proxy = start_proxy("--allow-from", str(allow_dir))
    leaf = pki.leaves["good1"]
    path = "/" + urllib.parse.quote(base64.b64encode(request_der(pki, leaf, tmp=tmp_path)).decode(), safe="")
    before = received(responder)
    answers = []
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head, head
        answers.append(body)
    assert answers[0] == answers[1]
    assert "Response verify OK" in check_response(pki, leaf, answers[0], tmp_path)
    assert received(responder) - before == 1
    assert proxy.metrics()["ocsp_proxy_cache_hits_total"] == 1
