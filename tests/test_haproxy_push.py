"""--haproxy-socket: renewed staples pushed over HAProxy's runtime API (set ssl ocsp-response).

A fake runtime API (a unix socket answering like HAProxy 2.6) covers the refusals and faults;
a real HAProxy (Debian package haproxy; skipped when absent) shows the push reaching a running
process without a reload, and a refusal from it reaching the TSV line and the exit status.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.x509 import ocsp as x509_ocsp

import pki as pkimod
from conftest import run_cmd
from test_watch_daemon import watches  # noqa: F401 (fixture)

from ocsptools import haproxy

UPDATED = "OCSP Response updated!\n\n"
NO_MATCH = "OCSP single response: Certificate ID does not match any certificate or issuer.\n"


class FakeAPI:
    """A unix stats socket that records each command and answers with ANSWER (or hangs)."""

    def __init__(self, path: Path, answer: str = UPDATED, *, hang: bool = False, tcp: bool = False) -> None:
        self.answer = answer
        self.hang = hang
        self.commands: list[str] = []
        if tcp:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.spec = f"127.0.0.1:{self.sock.getsockname()[1]}"
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(str(path))
            self.spec = str(path)
        self.sock.listen(8)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.commands.append(data.decode().rstrip("\n"))
                if self.hang:
                    self._stop.wait(10)
                    continue
                conn.sendall(self.answer.encode())

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def api(tmp_path):
    made = []

    def make(*args, **kw) -> FakeAPI:
        f = FakeAPI(tmp_path / f"api-{len(made)}.sock", *args, **kw)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


# ---------------------------------------------------------------------------
# the client

def test_push_sends_base64_and_reads_the_answer(api):
    f = api()
    res = haproxy.push(f.spec, b"\x30\x03\x0a\x01\x00")
    assert res.ok and res.message == "OCSP Response updated!"
    assert f.commands == ["set ssl ocsp-response " + base64.b64encode(b"\x30\x03\x0a\x01\x00").decode()]
    t = api(tcp=True)
    assert haproxy.push(t.spec, b"\x30\x00").ok


@pytest.mark.parametrize("answer,needle", [
    (NO_MATCH, "refused: OCSP single response: Certificate ID does not match any certificate"),
    ("Permission denied\n\n", "(the stats socket needs 'level admin')"),
    ("Unknown command. Please enter one of the following commands only :\n  help\n", "Unknown command"),
    ("", "refused: no answer"),
])
def test_refusals_say_why(api, answer, needle):
    f = api(answer)
    res = haproxy.push(f.spec, b"\x30\x00")
    assert not res.ok and needle in res.message, res.message
    assert res.describe().startswith(f"HAProxy {f.spec} did not take it: ")
    assert "\n" not in res.describe()


def test_unreachable_and_silent_sockets(tmp_path, api):
    res = haproxy.push(str(tmp_path / "none.sock"), b"\x30\x00")
    assert not res.ok and "cannot reach the runtime API" in res.message and "level admin" in res.message
    f = api(hang=True)
    start = time.monotonic()
    res = haproxy.push(f.spec, b"\x30\x00", timeout=0.5)
    assert not res.ok and "no answer within 0.5 s" in res.message
    assert time.monotonic() - start < 3
    with pytest.raises(ValueError):
        haproxy.check_spec("not-a-socket")


# ---------------------------------------------------------------------------
# the driver's after_install hook (one-shot and --watch use the same one)

class _Staple:
    der = b"\x30\x03\x0a\x01\x00"


def test_pusher_pushes_to_every_socket_and_says_which_refused(tmp_path, api):
    ok, no = api(), api(NO_MATCH)
    gone = str(tmp_path / "gone.sock")
    seen: list = []
    hook = haproxy.pusher([ok.spec, no.spec, gone], 2.0, on_result=seen.append)
    detail = hook(None, _Staple())
    assert [r.socket for r in seen] == [ok.spec, no.spec, gone]
    assert [r.ok for r in seen] == [True, False, False]
    assert detail == "; ".join(r.describe() for r in seen[1:])
    assert len(ok.commands) == len(no.commands) == 1
    assert haproxy.pusher([ok.spec], 2.0)(None, _Staple()) is None      # taken: nothing to say
    assert len(ok.commands) == 2


# ---------------------------------------------------------------------------
# ocsp-renew-dir --haproxy-socket (one-shot) with the fake API

def test_one_shot_pushes_each_renewed_staple(tmp_path, pki, responder, api):
    certs = tmp_path / "certs"
    certs.mkdir()
    for n in ("good1", "good2"):
        shutil.copy(pki.leaves[n].fullchain, certs / f"{n}.pem")
    ok, ok2 = api(), api()
    res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", "--haproxy-socket", ok.spec,
                  "--haproxy-socket", ok2.spec, certs)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [l.split("\t") for l in res.stdout.decode().splitlines()]
    assert [l[0] for l in lines] == ["renewed", "renewed"]
    assert all("HAProxy" not in l[3] for l in lines)
    for fake in (ok, ok2):
        pushed = sorted(base64.b64decode(c.split()[-1]) for c in fake.commands)
        assert pushed == sorted((certs / f"{n}.pem.ocsp").read_bytes() for n in ("good1", "good2"))
    # nothing renewed: nothing pushed
    res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", "--haproxy-socket", ok.spec, certs)
    assert res.returncode == 0 and res.stdout == b"" and len(ok.commands) == 2


def test_one_shot_refusal_is_in_the_detail_and_exit_1(tmp_path, pki, responder, api):
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(pki.leaves["good1"].fullchain, certs / "a.pem")
    no = api(NO_MATCH)
    res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", "--haproxy-socket", no.spec,
                  "--haproxy-socket", str(tmp_path / "gone.sock"), certs)
    assert res.returncode == 1, res.stdout + res.stderr
    (line,) = res.stdout.decode().splitlines()
    action, cert, staple, detail = line.split("\t")
    assert action == "renewed" and Path(staple).exists()        # the file itself was replaced
    assert f"HAProxy {no.spec} did not take it: refused: OCSP single response: Certificate ID " \
           f"does not match" in detail, detail
    assert f"HAProxy {tmp_path / 'gone.sock'} did not take it: cannot reach the runtime API" in detail
    assert res.stderr == b""


# ---------------------------------------------------------------------------
# ocsp-renew-dir --watch --haproxy-socket with the fake API

def test_watch_pushes_once_per_renewal_and_logs_refusals(tmp_path, pki, responder, api, watches):
    certs = tmp_path / "certs"
    certs.mkdir()
    for n in ("good1", "good2"):
        shutil.copy(pki.leaves[n].fullchain, certs / f"{n}.pem")
    staples = [certs / f"{n}.pem.ocsp" for n in ("good1", "good2")]
    ok, no = api(), api(NO_MATCH)
    w = watches(tmp_path, "--state", tmp_path / "s.json", "--haproxy-socket", ok.spec,
                "--haproxy-socket", no.spec, certs)
    first = w.wait_for(lambda: (lambda r: r if len(r) == 2 else None)(w.events("renewed")), 10,
                       "the first renewals")
    for e in first:                     # the file was replaced; the refusal is in the detail
        assert f"HAProxy {no.spec} did not take it: refused: OCSP single response: " \
               f"Certificate ID does not match" in e["detail"], e
        assert ok.spec not in e["detail"]
    pushed = sorted(base64.b64decode(c.split()[-1]) for c in ok.commands)
    assert pushed == sorted(p.read_bytes() for p in staples) and len(no.commands) == 2
    # SIGUSR1: everything renewed again, one more push each; nothing else pushed
    time.sleep(1.05 - time.time() % 1.0)    # thisUpdate has 1-second resolution
    w.signal(signal.SIGUSR1)
    w.wait_for(lambda: len(w.events("renewed")) == 4, 10, "the SIGUSR1 renewals")
    time.sleep(0.5)
    assert len(ok.commands) == len(no.commands) == 4
    assert sorted(base64.b64decode(c.split()[-1]) for c in ok.commands[2:]) == \
        sorted(p.read_bytes() for p in staples)
    rc, _ = w.stop()
    assert rc == 0


# ---------------------------------------------------------------------------
# a real HAProxy

def _haproxy_bin() -> str:
    path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if path is None:
        pytest.skip("haproxy not installed (Debian package haproxy)")
    return path


class RealHAProxy:
    def __init__(self, workdir: Path, crts: list[Path]) -> None:
        self.dir = workdir
        self.port = pkimod.free_port()
        self.socket = workdir / "admin.sock"
        conf = workdir / "haproxy.cfg"
        conf.write_text(f"""\
global
    stats socket {self.socket} mode 600 level admin
defaults
    mode http
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend tls
    bind 127.0.0.1:{self.port} ssl {' '.join(f'crt {c}' for c in crts)}
    http-request return status 200 content-type text/plain string ok
""")
        self.log = open(workdir / "haproxy.log", "wb")
        self.proc = subprocess.Popen([_haproxy_bin(), "-db", "-f", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / "haproxy.log").read_text())
            time.sleep(0.05)

    def served_this_update(self, name: str) -> datetime | None:
        cp = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}", "-servername",
                             name, "-status"], input=b"", capture_output=True, timeout=20,
                            env=pkimod.openssl_env())
        for line in cp.stdout.decode().splitlines():
            line = line.strip()
            if line.startswith("This Update:"):
                text = " ".join(line.split(":", 1)[1].split())
                return datetime.strptime(text, "%b %d %H:%M:%S %Y GMT").replace(tzinfo=timezone.utc)
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.mark.servers
def test_real_haproxy_takes_the_push_without_a_reload(tmp_path, pki, responder):
    _haproxy_bin()
    name = f"hp{secrets.token_hex(3)}"
    leaf = pki.make_leaf(name)
    other = pki.make_leaf(f"hq{secrets.token_hex(3)}")
    responder.restart()
    certs = tmp_path / "certs"
    certs.mkdir()
    crt = certs / f"{name}.pem"
    crt.write_text(Path(leaf.key).read_text() + Path(leaf.fullchain).read_text())
    Path(str(crt) + ".ocsp").write_bytes(b"")                # empty: stapling on, nothing yet
    server = RealHAProxy(tmp_path, [crt])
    try:
        assert server.served_this_update(name) is None
        pid = server.proc.pid
        res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", "--haproxy-socket",
                      server.socket, certs)
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.decode().startswith("renewed\t")
        staple = x509_ocsp.load_der_ocsp_response(Path(str(crt) + ".ocsp").read_bytes())
        assert server.served_this_update(name) == staple.this_update_utc
        assert server.proc.pid == pid and server.proc.poll() is None

        # a certificate this HAProxy has not loaded: refused, said in the line, exit 1
        (certs / "other.pem").write_text(Path(other.fullchain).read_text())
        res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", "--haproxy-socket",
                      server.socket, certs)
        assert res.returncode == 1, res.stdout + res.stderr
        (line,) = res.stdout.decode().splitlines()
        action, cert, _, detail = line.split("\t")
        assert action == "renewed" and cert.endswith("other.pem")
        assert "did not take it: refused:" in detail and "Certificate ID does not match" in detail, detail
        assert server.served_this_update(name) == staple.this_update_utc     # unchanged
    finally:
        server.stop()
