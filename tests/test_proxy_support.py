"""Helpers for the ocsp-proxy tests (no tests here): a real `ocsp-proxy serve` process, a real
`redis-server`, HTTP and metrics helpers; for in-process tests, a clock the test moves, a
``Proxy`` on a sqlite cache, requests, entries and response parsing.  Only 127.0.0.1 is used."""

from __future__ import annotations

import base64
import contextlib
import http.client
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

from conftest import command
import pki as pkimod

TRY_LATER = bytes.fromhex("30030a0103")
LISTEN_RE = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/")


class ProxyProc:
    """`ocsp-proxy serve --listen 127.0.0.1:0 ...`, started and stopped by the test."""

    def __init__(self, *args: str, cache: str, prefix: Sequence[str] = (), env: Optional[dict] = None) -> None:
        self.args = ["serve", "--listen", "127.0.0.1:0", "--cache", cache, *args]
        self.lines: List[str] = []
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen([*prefix, command("ocsp-proxy"), *self.args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=full_env)
        self._ready = threading.Event()
        self.port = 0
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        if not self._ready.wait(20):
            self.stop()
            raise RuntimeError("ocsp-proxy did not start: " + self.log)
        self.url = f"http://127.0.0.1:{self.port}/"

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            m = LISTEN_RE.search(line)
            if m:
                self.port = int(m.group(1))
                self._ready.set()
        self._ready.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._t.join(5)
        return self.proc.returncode

    def __enter__(self) -> "ProxyProc":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- talking to it ---------------------------------------------------------------
    def request(self, method: str, target: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None, timeout: float = 15):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if body is not None and method == "POST":
                hdrs.setdefault("Content-Type", "application/ocsp-request")
            conn.request(method, target, body=body, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def post(self, der: bytes, target: str = "/", **kw):
        return self.request("POST", target, der, **kw)

    def get(self, der: bytes, prefix: str = "/", encode: bool = True, **kw):
        b64 = base64.b64encode(der).decode()
        return self.request("GET", prefix + (urllib.parse.quote(b64, safe="") if encode else b64), **kw)

    def metrics(self) -> Dict[str, float]:
        from prometheus_client.parser import text_string_to_metric_families
        status, headers, body = self.request("GET", "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        out: Dict[str, float] = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out[sample.name + (f"{{{label}}}" if label else "")] = sample.value
        return out


def request_der(pki, leaf, *, hash_alg: str = "sha1", nonce: bool = False, extra_certs=(), tmp: Path) -> bytes:
    out = tmp / f"req-{leaf.name}-{hash_alg}-{nonce}-{len(extra_certs)}.der"
    args = ["ocsp", "-issuer", pki.inter_cert, f"-{hash_alg}", "-cert", leaf.cert]
    for other in extra_certs:
        args += ["-cert", other.cert]
    args += ["-nonce" if nonce else "-no_nonce", "-reqout", out]
    pkimod.openssl(*args)
    return out.read_bytes()


def check_response(pki, leaf, body: bytes, tmp: Path, *, extra: Sequence[str] = ()) -> str:
    """openssl's own verdict on BODY for LEAF (full chain to the test root)."""
    resp = tmp / "check-resp.der"
    resp.write_bytes(body)
    cp = pkimod.openssl("ocsp", "-respin", resp, "-issuer", pki.inter_cert, "-cert", leaf.cert,
                        "-CAfile", pki.root_cert, "-no-CApath", "-no-CAstore", "-no_nonce", *extra,
                        check=False)
    return cp.stdout + cp.stderr


def faketime_lib() -> str:
    """libfaketime's path (preloaded directly: no wrapper process), or skip the test."""
    for path in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
                 "/usr/lib/faketime/libfaketime.so.1"):
        if os.path.exists(path):
            return path
    pytest.skip("libfaketime not installed (Debian faketime)")


def received(responder) -> int:
    """How many requests an openssl responder has logged so far."""
    return responder.output.count("Received request")


def wait_for(predicate, timeout: float = 10.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """A redis-server on 127.0.0.1 for the test module (import this fixture to use it)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server not installed (Debian redis-server; scripts/install-sysdeps)")
        self.port = pkimod.free_port()
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(workdir),
                                      "--protected-mode", "yes"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        import redis
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
        self.client = client
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- fixtures of the tests against a running proxy (import them to use them) -------------------

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


# -- in-process helpers ------------------------------------------------------------------------

class FakeClock:
    """A wall clock and a monotonic clock that move only when the test says so."""

    def __init__(self, wall: float = 1_800_000_000.0, mono: float = 1_000.0) -> None:
        self.now, self.mono = wall, mono

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


def make_entry(key="k1", serial="AB12", this_update=None, next_update=None, produced_at=None, due=None,
               valid_until=None, *, now=None, url="http://127.0.0.1:1/", request=b"\x30\x00",
               response=b"\x30\x03\x0a\x01\x00", hash_alg="sha1", name_hash="00" * 20,
               key_hash="11" * 20, failures=0):
    """An Entry valid for an hour from NOW (default: the wall clock), refresh due in 30 minutes."""
    from ocsptools.proxy.entry import Entry
    now = time.time() if now is None else now
    tu = now - 60 if this_update is None else this_update
    nu = now + 3600 if next_update is None else next_update
    return Entry(key=key, url=url, hash_alg=hash_alg, name_hash=name_hash, key_hash=key_hash,
                 serial=serial, request=request, response=response, cert_status="good",
                 this_update=tu, next_update=nu, produced_at=tu if produced_at is None else produced_at,
                 fetched_at=now, valid_until=nu if valid_until is None else valid_until,
                 due=now + 1800 if due is None else due, failures=failures)


def entries_around_keep(now):
    """A valid entry, one past nextUpdate (kept, never served) and one whose keep ends in 1 s
    (Redis drops it by itself: PXAT); the dying one is also the oldest."""
    from ocsptools.proxy.rules import KEEP_EXPIRED
    return [make_entry("live", serial="01", this_update=now - 600),
            make_entry("kept", serial="02", this_update=now - 7200, next_update=now - 60),
            make_entry("dying", serial="03", this_update=now - 3 * KEEP_EXPIRED,
                       next_update=now - KEEP_EXPIRED + 1.0)]


def entry_for(cid, **kw):
    """An Entry cached under CertID CID (its key, hashes, serial and canonical request)."""
    from ocsptools.codec import der
    return make_entry(cid.key, cid.serial_hex, hash_alg=cid.hash_alg, name_hash=cid.name_hash.hex(),
                      key_hash=cid.key_hash.hex(), request=der.encode_request(cid), **kw)


def http_request(method: str = "POST", target: str = "/", body: bytes = b"",
                 headers: Optional[Dict[str, str]] = None, *, keep_alive: bool = True,
                 peer: str = "127.0.0.1:40000"):
    """A parsed request as the front end hands it to ``Proxy.handle`` (header names lower-case)."""
    from ocsptools.proxy.server import Request
    hdrs = {"content-type": "application/ocsp-request"} if method == "POST" else {}
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    return Request(method, target, "HTTP/1.1", hdrs, body, keep_alive, peer)


async def answer(proxy, req) -> bytes:
    """PROXY's answer to REQ, from the fast path (bytes) or the slow one (awaited)."""
    result = proxy.handle(req)
    return result if isinstance(result, bytes) else await result


def parse_http(raw: bytes) -> Tuple[int, Dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of one HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ")[1]), headers, body


@contextlib.contextmanager
def in_process(tmp_path: Path, *, known=None, clock: Optional[FakeClock] = None, cache=None,
               ossl=None, **settings) -> Iterator:
    """A ``Proxy`` on a sqlite cache under TMP_PATH (or CACHE), the allow-list KNOWN (default:
    nothing allowed) and CLOCK's time."""
    from ocsptools.openssl import OpenSSL
    from ocsptools.proxy.cache import open_cache
    from ocsptools.proxy.issuers import Known
    from ocsptools.proxy.service import Proxy, Settings
    clock = clock or FakeClock()
    own = cache is None
    cache = cache or open_cache(f"sqlite:///{tmp_path}/inproc.sqlite", now=clock.wall())
    proxy = Proxy(cache, known or Known(), ossl or OpenSSL("openssl", timeout=10), Settings(**settings),
                  logging.getLogger("test-proxy"), clock=clock.wall, monotonic=clock.monotonic)
    try:
        yield proxy
    finally:
        proxy.executor.shutdown(wait=True)
        if own:
            cache.close()


class BrokenCache:
    """A cache backend whose every read and write fails (as ``proxy.cache.Cache`` says: CacheError)."""

    url = "broken://"

    def _fail(self, *args):
        from ocsptools.proxy.cache import CacheError
        raise CacheError("broken://: cannot read: it is broken; check the cache (--cache)", path=self.url)

    get = put = summary = ping = purge_serial = due = lock = unlock = reschedule = delete = sweep = _fail


def dead_url() -> str:
    """A loopback URL nothing listens on (connection refused at once)."""
    return f"http://127.0.0.1:{pkimod.free_port()}/"
