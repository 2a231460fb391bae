#!/usr/bin/env python3
"""ocsp-proxy: cached answers over keep-alive at 64 connections (wrk), beside nginx serving the same bytes.

Target (issue 7): >= 5,000 requests/s and p99 < 20 ms for cached answers on
the 2-core machine.  In the same run, nginx serves the identical response
bytes as a static file: that is the baseline the numbers are read against.

Installs wrk and nginx with apt-get when they are missing and this runs as
root (they are not test dependencies: CI stays lean).  Only 127.0.0.1 is used.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

from common import write_section  # noqa: E402
import pki as pkimod  # noqa: E402

DURATION = int(os.environ.get("BENCH_PROXY_SECONDS", "10"))
CONNECTIONS = 64
THREADS = 2
TARGET_RPS = 5000
TARGET_P99_MS = 20.0


def ensure(program: str, package: str) -> str:
    path = shutil.which(program) or (f"/usr/sbin/{program}" if os.path.exists(f"/usr/sbin/{program}") else None)
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        policy = Path("/usr/sbin/policy-rc.d")
        created = False
        if not policy.exists():
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
            created = True
        try:
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                           env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            if created:
                policy.unlink()
        path = shutil.which(program) or (f"/usr/sbin/{program}" if os.path.exists(f"/usr/sbin/{program}") else None)
    if not path:
        sys.exit(f"bench proxy: {program} is missing (apt-get install {package})")
    return path


def parse_wrk(text: str) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = {}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        lat[pct] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: (.*)", text)
    return {"rps": rps, "p50": lat.get("50"), "p99": lat.get("99"),
            "requests": int(re.search(r"(\d+) requests in ", text).group(1)),
            "non2xx": int(errors.group(1)) if errors else 0, "socket_errors": sock.group(1) if sock else ""}


def wrk(wrk_bin: str, url: str, script: str | None = None) -> dict:
    args = [wrk_bin, "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{DURATION}s", "--latency"]
    if script:
        args += ["-s", script]
    res = subprocess.run(args + [url], capture_output=True, text=True, timeout=DURATION + 60)
    if res.returncode != 0:
        sys.exit(f"bench proxy: wrk failed: {res.stderr.strip()}")
    return parse_wrk(res.stdout)


def counters(base: str) -> dict:
    """The proxy's cache hit and miss counters from /metrics (the wrk runs must raise the hits
    by the requests they made: an HTTP 200 alone could be a tryLater or a pass-through)."""
    metrics = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    return {name: int(float(re.search(rf"^ocsp_proxy_cache_{name}_total (\S+)", metrics, re.M).group(1)))
            for name in ("hits", "misses")}


def wait_line(proc: subprocess.Popen, pattern: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if re.search(pattern, line):
            return line
    sys.exit(f"bench proxy: the proxy did not start ({pattern!r} not seen)")


def main() -> int:
    wrk_bin = ensure("wrk", "wrk")
    nginx_bin = ensure("nginx", "nginx")
    venv_bin = Path(sys.executable).parent
    proxy_cmd = str(venv_bin / "ocsp-proxy") if (venv_bin / "ocsp-proxy").exists() else "ocsp-proxy"
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        tmp = Path(tmp)
        pki = pkimod.build_pki(tmp / "pki")
        leaf = pki.leaves["good1"]
        allow = tmp / "allow"
        allow.mkdir()
        shutil.copy(leaf.fullchain, allow / "good1.pem")
        req = tmp / "req.der"
        pkimod.openssl("ocsp", "-issuer", pki.inter_cert, "-cert", leaf.cert, "-no_nonce", "-reqout", req)
        request = req.read_bytes()
        get_path = "/" + urllib.parse.quote(base64.b64encode(request).decode(), safe="")
        procs = []
        with pkimod.Responder(pki):
            proxy = subprocess.Popen([proxy_cmd, "serve", "--listen", "127.0.0.1:0", "--cache",
                                      f"sqlite:///{tmp}/cache.sqlite", "--allow-from", str(allow), "-q"],
                                     stderr=subprocess.PIPE, text=True)
            procs.append(proxy)
            try:
                # -q hides the listening line: find the port through /proc instead
                port = None
                deadline = time.monotonic() + 15
                while port is None and time.monotonic() < deadline:
                    time.sleep(0.1)
                    port = _listening_port(proxy.pid)
                if port is None:
                    sys.exit("bench proxy: the proxy did not start listening")
                base = f"http://127.0.0.1:{port}"
                body = urllib.request.urlopen(base + get_path, timeout=10).read()   # miss: fills the cache
                body2 = urllib.request.urlopen(base + get_path, timeout=10).read()
                assert body == body2 and body[:1] == b"\x30", "proxy did not answer from its cache"
                docroot = tmp / "www"
                docroot.mkdir()
                (docroot / "resp.der").write_bytes(body)
                for path in (tmp, docroot, docroot / "resp.der"):    # nginx workers run as nobody
                    os.chmod(path, 0o755 if path.is_dir() else 0o644)
                nport = pkimod.free_port()
                conf = tmp / "nginx.conf"
                conf.write_text(f"""
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/ngx-body;
    proxy_temp_path {tmp}/ngx-proxy;
    fastcgi_temp_path {tmp}/ngx-fcgi;
    uwsgi_temp_path {tmp}/ngx-uwsgi;
    scgi_temp_path {tmp}/ngx-scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{nport};
        root {docroot};
        default_type application/ocsp-response;
    }}
}}
""")
                ngx = subprocess.Popen([nginx_bin, "-c", str(conf), "-e", str(tmp / "nginx-error.log")],
                                       stderr=subprocess.DEVNULL)
                procs.append(ngx)
                time.sleep(0.5)
                post_lua = tmp / "post.lua"
                post_lua.write_text('wrk.method = "POST"\n'
                                    'wrk.headers["Content-Type"] = "application/ocsp-request"\n'
                                    'wrk.body = "' + "".join(f"\\{b}" for b in request) + '"\n')
                results = {"nginx static file (baseline)": wrk(wrk_bin, f"http://127.0.0.1:{nport}/resp.der")}
                for name, url, script in (("ocsp-proxy GET (cached)", base + get_path, None),
                                          ("ocsp-proxy POST (cached)", base, str(post_lua))):
                    before = counters(base)["hits"]
                    results[name] = wrk(wrk_bin, url, script)
                    final = counters(base)
                    results[name]["hits"] = final["hits"] - before
            finally:
                for p in reversed(procs):
                    p.send_signal(signal.SIGTERM)
                for p in reversed(procs):
                    try:
                        p.wait(10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
    hits, misses = final["hits"], final["misses"]
    if results["nginx static file (baseline)"]["non2xx"]:
        sys.exit("bench proxy: nginx did not serve the baseline file (see its error log)")
    ok = all(r["rps"] >= TARGET_RPS and r["p99"] is not None and r["p99"] < TARGET_P99_MS
             and r["non2xx"] == 0 and r["hits"] >= 0.99 * r["requests"]
             for k, r in results.items() if k.startswith("ocsp-proxy"))
    lines = [
        "## ocsp-proxy: cached answers",
        "",
        f"wrk, {THREADS} threads, {CONNECTIONS} keep-alive connections, {DURATION} s each, on "
        f"{os.cpu_count()} CPU(s); the response is {len(body)} bytes. Target: >= {TARGET_RPS} req/s "
        f"and p99 < {TARGET_P99_MS:g} ms for the proxy.",
        "",
        "| server | requests/s | p50 ms | p99 ms | non-2xx | cache hits / requests |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        hit_share = f"{r['hits'] / max(1, r['requests']):.2%}" if "hits" in r else "-"
        lines.append(f"| {name} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['non2xx']} "
                     f"| {hit_share} |")
    lines += ["", f"Proxy counters after the run: {hits} hits, {misses} miss(es) (the one that filled "
                  f"the cache). Target {'met' if ok else 'NOT met'} (including cache hits >= 99% of each "
                  f"proxy run's requests, so tryLater or pass-through answers do not count)."]
    md = "\n".join(lines)
    print(md)
    write_section("proxy", md)
    return 0 if ok else 1


def _listening_port(pid: int):
    """The TCP port PID listens on (from /proc/net/tcp and its socket inodes)."""
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        with open("/proc/net/tcp") as fh:
            for line in fh.readlines()[1:]:
                f = line.split()
                if f[3] == "0A" and f[9] in inodes:
                    return int(f[1].split(":")[1], 16)
    except OSError:
        return None
    return None


if __name__ == "__main__":
    sys.exit(main())
