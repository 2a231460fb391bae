"""proxy/server.py: the HTTP/1.1 front end against a running proxy.  Malformed and oversized
requests get their error; slow, idle, dropping and half-closed clients, and clients sending
garbage that once took the event loop quadratic time, only ever affect their own connection.

Hostile clients run as separate processes, so their work does not share this process's GIL with
the poller; the bounds are generous (a loaded 2-core CI machine): the old code missed them by an
order of magnitude.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import time

import pytest

from ocsptools.codec import der
from test_proxy_support import ProxyProc, allow_dir, request_der, start_proxy  # noqa: F401 (fixtures)

REQUEST = der.encode_request(der.CertID("sha1", b"\x01" * 20, b"\x02" * 20, 5))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A proxy taking request bodies of at most 1024 bytes."""
    tmp = tmp_path_factory.mktemp("server")
    with ProxyProc("--allow", "http://127.0.0.1:9/", "--max-request-size", "1024",
                   cache=f"sqlite:///{tmp}/c.sqlite") as proxy:
        yield proxy


#: (case, method, target, body, headers, status, what the body or the Allow header says)
ERRORS = [
    ("a body over --max-request-size", "POST", "/", b"\x30" + b"\x00" * 2000, {}, 413, None),
    ("not DER", "POST", "/", b"not DER at all", {}, 400, b"malformed"),
    ("not base64", "GET", "/not-base64!", None, {}, 400, b"malformed request"),
    ("PUT", "PUT", "/", b"x", {}, 405, "GET, POST, HEAD"),
    ("DELETE", "DELETE", "/", None, {}, 405, "GET, POST, HEAD"),
    ("another Content-Type", "POST", "/", REQUEST, {"Content-Type": "text/plain"}, 400, b"Content-Type"),
]


@pytest.mark.parametrize("case, method, target, body, headers, status, says", ERRORS, ids=[e[0] for e in ERRORS])
def test_http_errors(small, case, method, target, body, headers, status, says):
    got, h, answer = small.request(method, target, body, headers=headers)
    assert got == status
    if isinstance(says, bytes):
        assert says in answer
    elif says:
        assert h["allow"] == says
    assert small.alive() and small.request("GET", "/healthz")[0] == 200


#: (case, raw request, the status line it gets)
RAW = [
    ("garbage", b"GARBAGE\r\n\r\n", b"HTTP/1.1 400"),
    ("a header line over 16 KiB", b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n",
     b"HTTP/1.1 431"),
    ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 400"),
    ("Transfer-Encoding", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", b"HTTP/1.1 501"),
    ("POST without Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 411"),
    ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", b"HTTP/1.1 505"),
]


@pytest.mark.parametrize("case, raw, status", RAW, ids=[r[0] for r in RAW])
def test_malformed_requests(small, case, raw, status):
    with socket.create_connection(("127.0.0.1", small.port), timeout=5) as s:
        s.sendall(raw)
        assert s.recv(100).startswith(status)
    assert small.alive() and small.request("GET", "/healthz")[0] == 200


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


#: A client that sends the request read from stdin again and again (a new connection each time)
#: for DURATION seconds, then prints how many answers of each HTTP status it got.
HOSTILE = r"""
import json, socket, sys, time
port, duration = int(sys.argv[1]), float(sys.argv[2])
request = sys.stdin.buffer.read()
counts = {}
end = time.monotonic() + duration
while time.monotonic() < end:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else "none"
    counts[status] = counts.get(status, 0) + 1
    time.sleep(0.01)
print(json.dumps(counts))
"""


def _get(target: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def _post(body: bytes) -> bytes:
    return (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/ocsp-request\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    head = bytes([tag, n]) if n < 0x80 else bytes([tag, 0x82, n >> 8, n & 0xFF])
    return head + content


_CERT_ID = _der(0x30, _der(0x30, bytes.fromhex("06052b0e03021a0500")) + _der(0x04, b"\x01" * 20)
               + _der(0x04, b"\x02" * 20) + b"\x02\x01\x05")

#: (garbage, request bytes, the statuses it may get): the head stays under the server's 16 KiB.
GARBAGE = [
    ("GET / and 16,000 slashes", _get(b"/" * 16000), {"400", "414"}),
    ("GET 4,000 base64 groups between slashes", _get(b"/" + b"AAA/" * 4000), {"400", "414"}),
    ("GET absolute URI, 16,000 slashes", _get(b"http://127.0.0.1:9/" + b"/" * 16000), {"400", "403", "414"}),
    ("POST 60 KB SEQUENCE of NULLs", _post(_der(0x30, _der(0x30, b"\x05\x00" * 30000))), {"400"}),
    ("POST 9,000 request extensions", _post(_der(0x30, _der(0x30, _der(0x30, _der(0x30, _CERT_ID)) + _der(
        0xA2, _der(0x30, _der(0x30, b"\x06\x01\x2b\x04\x00") * 9000))))), {"400", "403"}),
]

POLL_FOR = 4.0
#: Measured on 2 cores: the old code had a median poll of 0.9 s and a slowest of 1.3 s (1.3 to 2.3 s
#: on the issue's machine, 4 polls in 3.5 s); now 0.9 ms and 6 ms (160 polls).
MAX_POLL = 0.25
MEDIAN_POLL = 0.05


@pytest.fixture
def proxy(tmp_path):
    with ProxyProc(cache=f"sqlite:///{tmp_path}/cache.sqlite") as p:
        yield p


def test_garbage_clients_do_not_stall_healthz(proxy):
    clients = []
    for _, request, _ in GARBAGE:
        c = subprocess.Popen([sys.executable, "-c", HOSTILE, str(proxy.port), str(POLL_FOR + 0.5)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=False)
        c.stdin.write(request)
        c.stdin.close()
        c.stdin = None
        clients.append(c)
    try:
        time.sleep(0.5)                                   # the garbage is flowing
        polls = []
        end = time.monotonic() + POLL_FOR - 0.5
        while time.monotonic() < end:
            t0 = time.monotonic()
            status, _, body = proxy.request("GET", "/healthz", timeout=30)
            polls.append(time.monotonic() - t0)
            assert status == 200 and body == b"ok\n"
            time.sleep(0.02)
        outcomes = [json.loads(c.communicate(timeout=60)[0]) for c in clients]
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
    for (name, _, allowed), counts in zip(GARBAGE, outcomes):
        assert counts and set(counts) <= allowed, (name, counts)
    assert proxy.alive()
    slowest, median = max(polls), statistics.median(polls)
    print(f"/healthz under garbage: {len(polls)} polls, median {median * 1000:.1f} ms, "
          f"max {slowest * 1000:.1f} ms; garbage answers {outcomes}")
    assert slowest < MAX_POLL and median < MEDIAN_POLL, (slowest, median)
