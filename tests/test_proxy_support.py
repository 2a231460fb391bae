"""Helpers for the ocsp-proxy tests (no tests here): a real `ocsp-proxy serve` process, a real
`redis-server`, HTTP and metrics helpers.  Only 127.0.0.1 is used."""

from __future__ import annotations

import base64
import http.client
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

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
