"""Start real TLS servers in the foreground on 127.0.0.1 and see which staple they send.

Each launcher writes the server's own configuration (nothing under /etc is
read or changed, no system service is involved), binds only 127.0.0.1 on a
free high port, keeps its pid/log/runtime files in a private directory, and
starts the server as a child of the test (``start_new_session``, so stopping
it kills its whole process group; ``PR_SET_PDEATHSIG`` kills it if pytest
itself dies).  ``probe`` runs ``openssl s_client -status -msg`` (stdin
closed, time-bounded) and takes the staple's DER out of the handshake
messages itself (TLS 1.3 Certificate entry extension or TLS 1.2
CertificateStatus), independently of ocsptools' own parser.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import pytest

import pki as pkimod
from conftest import command

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
ENV = pkimod.openssl_env()
ENV["PATH"] = SBIN_PATH


def binary(name: str, package: str) -> str:
    """The server binary, or skip the calling test with the package to install."""
    path = shutil.which(name, path=SBIN_PATH)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package {package}; "
                    f"run scripts/install-sysdeps as root)")
    return path


def need_faketime() -> None:
    if shutil.which("faketime") is None:
        pytest.skip("faketime is not installed (Debian package faketime): needed to date responses")


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, step: float = 0.05):
    """Poll PREDICATE until it returns something true or TIMEOUT passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


# --------------------------------------------------------------------------- #
# processes
# --------------------------------------------------------------------------- #

def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _group_pids(pgid: int) -> List[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:          # fields after "(comm)": state ppid pgrp ...
            pids.append(int(entry))
    return pids


def non_loopback_listeners(pgid: int) -> List[str]:
    """Listening TCP sockets of process group PGID not bound to 127.0.0.0/8 or ::1."""
    inodes = set()
    for pid in _group_pids(pgid):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    bad = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state != "0A" or inode not in inodes:
                continue
            addr = local.split(":")[0]
            if v6:
                loopback = addr == "00000000000000000000000001000000"
            else:
                loopback = addr.endswith("7F")          # little-endian: first octet last
            if not loopback:
                bad.append(f"{table.rsplit('/', 1)[1]} {local}")
    return bad


class ServerProcess:
    """One server run in the foreground; ``stop`` always kills its whole process group."""

    name = "server"
    START_TIMEOUT = 15.0

    def __init__(self, workdir: Path, port: int) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.proc: Optional[subprocess.Popen] = None
        self.output = self.dir / f"{self.name}.out"

    # subclasses: argv() and optionally ready()
    def argv(self) -> List[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return _port_open(self.port)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> "ServerProcess":
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=ENV, cwd=self.dir,
                                         start_new_session=True, preexec_fn=pkimod._pdeathsig)
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                raise ServerFailed(f"{self.name} exited with status {rc} at start:\n{self.log()}")
            if self.ready():
                bad = non_loopback_listeners(self.proc.pid)
                if bad:
                    self.stop()
                    raise AssertionError(f"{self.name} listens beyond loopback: {bad}")
                return self
            time.sleep(0.02)
        self.stop()
        raise ServerFailed(f"{self.name} not ready on 127.0.0.1:{self.port} after "
                           f"{self.START_TIMEOUT:g} s:\n{self.log()}")

    def try_start(self) -> Optional[str]:
        """Start; None if it came up, else its output (the server refused to start)."""
        try:
            self.start()
            return None
        except ServerFailed as exc:
            self.stop()
            return str(exc)

    def worker_pids(self) -> List[int]:
        """The main process's children (nginx and HAProxy workers: a reload replaces them)."""
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as fh:
                return [int(p) for p in fh.read().split()]
        except OSError:
            return []

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.alive(), f"{self.name} is not running"
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        # whatever is left of the group (workers, per-connection children)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc.poll() is None:
            proc.wait(5)

    def restart(self) -> "ServerProcess":
        self.stop()
        self.proc = None
        return self.start()

    def log(self) -> str:
        parts = []
        for path in [self.output, *self.extra_logs()]:
            try:
                parts.append(f"--- {path.name} ---\n" + path.read_text(errors="replace"))
            except OSError:
                pass
        return "\n".join(parts)

    def extra_logs(self) -> List[Path]:
        return []


class ServerFailed(RuntimeError):
    pass


# --------------------------------------------------------------------------- #
# the five servers
# --------------------------------------------------------------------------- #

@dataclass
class Site:
    """A certificate as a server is given it: files and the SNI name."""

    name: str                  # SNI name (in the leaf's SAN)
    fullchain: Path            # leaf + intermediate (PEM)
    key: Path                  # private key (PEM)
    staple: Path               # where the server reads the staple from
    crt: Optional[Path] = None  # HAProxy: key + leaf + intermediate in one file


class Nginx(ServerProcess):
    """``nginx -c CONF`` with ``daemon off; master_process on``: reload with ``-s reload``."""

    name = "nginx"

    def __init__(self, workdir: Path, port: int, sites: Sequence[Site], *, stapling_file: bool = True,
                 responder: Optional[str] = None, trusted: Optional[Path] = None) -> None:
        """RESPONDER (with TRUSTED, the CA file nginx verifies the fetched responses against):
        nginx fetches the staple itself from that URL (``ssl_stapling_responder``,
        ``ssl_stapling_verify on``) instead of reading ``ssl_stapling_file``."""
        super().__init__(workdir, port)
        self.bin = binary("nginx", "nginx")
        self.sites = list(sites)
        self.conf = self.dir / "nginx.conf"
        self.pidfile = self.dir / "nginx.pid"
        self.errlog = self.dir / "error.log"
        tmp = self.dir / "tmp"
        tmp.mkdir(exist_ok=True)
        if responder is not None:
            assert trusted is not None, "ssl_stapling_verify needs the trusted CA file"
            stapling = (f"ssl_stapling_responder {responder};\n        ssl_stapling_verify on;\n"
                        f"        ssl_trusted_certificate {trusted};")
        servers = []
        for i, s in enumerate(self.sites):
            if responder is None:
                stapling = f'ssl_stapling_file {s.staple};' if stapling_file else ''
            servers.append(f"""
    server {{
        listen 127.0.0.1:{port} ssl{' default_server' if i == 0 else ''};
        server_name {s.name};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {s.fullchain};
        ssl_certificate_key {s.key};
        ssl_stapling on;
        {stapling}
        location / {{ return 200 "ok\\n"; }}
    }}""")
        temps = "".join(f"    {k}_temp_path {tmp};\n"
                        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf.write_text(f"""\
daemon off;
master_process on;
worker_processes 1;
pid {self.pidfile};
error_log {self.errlog} info;
events {{ worker_connections 64; }}
http {{
    access_log off;
{temps}{''.join(servers)}
}}
""")

    def argv(self) -> List[str]:
        return [self.bin, "-e", str(self.errlog), "-p", str(self.dir) + "/", "-c", str(self.conf)]

    def ready(self) -> bool:
        # the master writes its pid file before forking workers; the port answers once listening
        return self.pidfile.exists() and _port_open(self.port)

    @property
    def reload_command(self) -> str:
        """What ``--on-change`` runs (as on a real host: ``nginx -s reload``, here with our -c)."""
        return f"{self.bin} -e {self.errlog} -p {self.dir}/ -c {self.conf} -s reload"

    def extra_logs(self) -> List[Path]:
        return [self.errlog]


class HAProxy(ServerProcess):
    """``haproxy -W -db -f CONF``: master-worker in the foreground (HAProxy writes its pid
    file only in daemon or master-worker mode), with an admin-level stats socket (the
    runtime API, served by the worker; a reload would replace the worker)."""

    name = "haproxy"

    def __init__(self, workdir: Path, port: int, sites: Sequence[Site]) -> None:
        super().__init__(workdir, port)
        self.bin = binary("haproxy", "haproxy")
        self.sites = list(sites)
        self.conf = self.dir / "haproxy.cfg"
        # a UNIX socket path must fit in 97 bytes (HAProxy's limit): pytest's directories, under
        # xdist's popen-gwN too, may not; a short private directory of its own, removed at stop
        self._sockdir = Path(tempfile.mkdtemp(prefix="hap-", dir="/tmp"))
        self.socket = self._sockdir / "admin.sock"
        self.pidfile = self.dir / "haproxy.pid"
        crts = " ".join(f"crt {s.crt}" for s in self.sites)
        self.conf.write_text(f"""\
global
    pidfile {self.pidfile}
    stats socket {self.socket} mode 600 level admin
    log stderr format raw local0 info
defaults
    mode http
    log global
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend tls
    bind 127.0.0.1:{port} ssl {crts}
    http-request return status 200 content-type text/plain string ok
""")

    def argv(self) -> List[str]:
        return [self.bin, "-W", "-db", "-f", str(self.conf)]

    def ready(self) -> bool:
        return self.pidfile.exists() and self.socket.exists() and _port_open(self.port)

    def start(self) -> "ServerProcess":
        self._sockdir.mkdir(exist_ok=True)          # again after a stop()
        return super().start()

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self._sockdir, ignore_errors=True)

    def api(self, line: str, timeout: float = 5.0) -> str:
        """One runtime-API command over the admin socket; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.socket))
            s.sendall(line.encode("ascii") + b"\n")
            chunks = []
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode("utf-8", "replace")


EXIM_USER = "Debian-exim"
EXIM_NEEDS_ROOT = ("the Exim tests need root: Exim run with its own configuration switches to "
                   f"{EXIM_USER}, and only root can give that user the test's spool, log and "
                   "certificate directories (docs/servers.md, 'Running the server tests')")


class Exim(ServerProcess):
    """``exim4 -C CONF -bdf -oX PORT -oP PIDFILE``: a foreground daemon with its own spool.

    With ``-C`` Exim gives up root for the Exim user, so its directory (made
    outside pytest's private tmp, which that user cannot enter) belongs to it."""

    name = "exim"

    def __init__(self, port: int, sites: Sequence[Site], *, guard: bool = True,
                 workdir: Optional[Path] = None) -> None:
        self.bin = binary("exim4", "exim4-daemon-heavy")
        if os.geteuid() != 0:
            pytest.skip(EXIM_NEEDS_ROOT)
        import pwd
        try:
            self.pw = pwd.getpwnam(EXIM_USER)
        except KeyError:
            pytest.skip(f"user {EXIM_USER} missing (Debian package exim4-base)")
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="ocsptools-exim-"))
            os.chmod(workdir, 0o755)
        super().__init__(workdir, port)
        self.sites = list(sites)
        self.guard = guard
        for sub in ("spool", "log"):
            (self.dir / sub).mkdir(exist_ok=True)
            os.chown(self.dir / sub, self.pw.pw_uid, self.pw.pw_gid)
        self.conf = self.dir / "exim.conf"
        self.pidfile = self.dir / "exim.pid"
        self.write_conf()

    def write_conf(self) -> None:
        s = self.sites[0]
        ocsp = (f"${{if exists{{{s.staple}}}{{{s.staple}}}{{}}}}" if self.guard else str(s.staple))
        self.conf.write_text(f"""\
primary_hostname = {s.name}
exim_user = {EXIM_USER}
exim_group = {EXIM_USER}
keep_environment =
spool_directory = {self.dir}/spool
log_file_path = {self.dir}/log/%slog
local_interfaces = <; 127.0.0.1
daemon_smtp_ports = {self.port}
tls_advertise_hosts = *
tls_certificate = {s.fullchain}
tls_privatekey = {s.key}
tls_ocsp_file = {ocsp}
acl_smtp_rcpt = refuse
begin acl
refuse:
  deny
""")

    def argv(self) -> List[str]:
        return [self.bin, "-C", str(self.conf), "-bdf", "-oX", str(self.port), "-oP", str(self.pidfile)]

    def ready(self) -> bool:
        return self.pidfile.exists() and _port_open(self.port)

    def extra_logs(self) -> List[Path]:
        return sorted((self.dir / "log").glob("*"))

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Lighttpd(ServerProcess):
    """``lighttpd -D -f CONF`` with mod_openssl; SIGUSR1 re-reads certificates and staples."""

    name = "lighttpd"

    def __init__(self, workdir: Path, port: int, sites: Sequence[Site]) -> None:
        super().__init__(workdir, port)
        self.bin = binary("lighttpd", "lighttpd")
        modules = Path("/usr/lib/lighttpd/mod_openssl.so")
        if not modules.exists():
            pytest.skip("lighttpd's mod_openssl is not installed (Debian package lighttpd-mod-openssl)")
        self.sites = list(sites)
        self.conf = self.dir / "lighttpd.conf"
        self.pidfile = self.dir / "lighttpd.pid"
        self.errlog = self.dir / "error.log"
        www = self.dir / "www"
        www.mkdir(exist_ok=True)
        first = self.sites[0]
        sni = "".join(f"""
$HTTP["host"] == "{s.name}" {{
    ssl.pemfile = "{s.fullchain}"
    ssl.privkey = "{s.key}"
    ssl.stapling-file = "{s.staple}"
}}""" for s in self.sites[1:])
        self.conf.write_text(f"""\
server.modules = ("mod_openssl")
server.document-root = "{www}"
server.bind = "127.0.0.1"
server.port = {port}
server.pid-file = "{self.pidfile}"
server.errorlog = "{self.errlog}"
ssl.engine = "enable"
ssl.pemfile = "{first.fullchain}"
ssl.privkey = "{first.key}"
ssl.stapling-file = "{first.staple}"
{sni}
""")

    def argv(self) -> List[str]:
        return [self.bin, "-D", "-f", str(self.conf)]

    def ready(self) -> bool:
        return self.pidfile.exists() and _port_open(self.port)

    @property
    def reload_command(self) -> str:
        """What ``--on-change`` runs (``systemctl reload lighttpd`` sends the same SIGUSR1)."""
        return f"kill -USR1 $(cat {self.pidfile})"

    def extra_logs(self) -> List[Path]:
        return [self.errlog]


APACHE_MODULES = Path("/usr/lib/apache2/modules")


class Apache(ServerProcess):
    """``apache2 -DFOREGROUND -f CONF``: mod_ssl stapling through a responder URL
    (``SSLStaplingForceURL``; with PROXY, ``SSLOCSPProxyURL``: mod_ssl then asks that HTTP
    proxy for the certificate's own responder URL, an absolute-URI request), with its own
    shmcb stapling cache."""

    name = "apache"

    def __init__(self, workdir: Path, port: int, sites: Sequence[Site], *, responder_url: str,
                 cache_timeout: int = 3600, proxy: bool = False) -> None:
        super().__init__(workdir, port)
        self.bin = binary("apache2", "apache2")
        for mod in ("mod_ssl.so", "mod_mpm_event.so", "mod_socache_shmcb.so", "mod_authz_core.so"):
            if not (APACHE_MODULES / mod).exists():
                pytest.skip(f"Apache module {mod} missing (Debian package apache2)")
        self.sites = list(sites)
        self.conf = self.dir / "httpd.conf"
        self.pidfile = self.dir / "httpd.pid"
        self.errlog = self.dir / "error.log"
        run = self.dir / "run"
        run.mkdir(exist_ok=True)
        vhosts = "".join(f"""
<VirtualHost 127.0.0.1:{port}>
    ServerName {s.name}
    SSLEngine on
    SSLCertificateFile {s.fullchain}
    SSLCertificateKeyFile {s.key}
</VirtualHost>
""" for s in self.sites)
        self.conf.write_text(f"""\
ServerRoot {self.dir}
ServerName {self.sites[0].name}
PidFile {self.pidfile}
DefaultRuntimeDir {run}
Mutex file:{run} default
LoadModule mpm_event_module {APACHE_MODULES}/mod_mpm_event.so
LoadModule authz_core_module {APACHE_MODULES}/mod_authz_core.so
LoadModule socache_shmcb_module {APACHE_MODULES}/mod_socache_shmcb.so
LoadModule ssl_module {APACHE_MODULES}/mod_ssl.so
User www-data
Group www-data
ErrorLog {self.errlog}
LogLevel warn ssl:info
DocumentRoot {self.dir}
Listen 127.0.0.1:{port} https
SSLUseStapling on
SSLStaplingCache shmcb:{run}/stapling(65536)
{'SSLOCSPProxyURL' if proxy else 'SSLStaplingForceURL'} {responder_url}
SSLStaplingStandardCacheTimeout {cache_timeout}
SSLStaplingResponderTimeout 5
{vhosts}""")

    def argv(self) -> List[str]:
        return [self.bin, "-DFOREGROUND", "-f", str(self.conf)]

    def ready(self) -> bool:
        return self.pidfile.exists() and _port_open(self.port)

    def extra_logs(self) -> List[Path]:
        return [self.errlog]


class OcspProxy(ServerProcess):
    """``ocsp-proxy serve`` on 127.0.0.1 with a sqlite cache (the toolkit's part for Apache)."""

    name = "ocsp-proxy"

    def __init__(self, workdir: Path, port: int, *args: str) -> None:
        super().__init__(workdir, port)
        self.cache = f"sqlite:///{self.dir / 'cache.sqlite'}"
        self.token = self.dir / "admin-token"
        self.token.write_text("t" + os.urandom(16).hex() + "\n")
        os.chmod(self.token, 0o600)
        self.args = list(args)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def argv(self) -> List[str]:
        return [command("ocsp-proxy"), "serve", "--listen", f"127.0.0.1:{self.port}", "--cache", self.cache,
                "--admin-token-file", str(self.token), *self.args]

    def ready(self) -> bool:
        return "listening on" in self.log()

    def metric(self, name: str) -> float:
        """One unlabelled value from ``GET /metrics``."""
        import urllib.request
        with urllib.request.urlopen(self.url + "metrics", timeout=10) as resp:
            text = resp.read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no {name} in /metrics:\n" + text)

    def asked(self) -> float:
        """OCSP requests the proxy has answered from its cache or fetched for (pass-throughs aside)."""
        return self.metric("ocsp_proxy_cache_hits_total") + self.metric("ocsp_proxy_cache_misses_total")


def proxy_answer(pki, proxy: OcspProxy, leaf, scratch: Path) -> bytes:
    """What the proxy answers for LEAF's (SHA-1 CertID, no nonce) request, as Apache asks it."""
    import http.client
    req = scratch / f"req-{leaf.name}.der"
    pkimod.openssl("ocsp", "-issuer", pki.inter_cert, "-cert", leaf.cert, "-no_nonce", "-reqout", req)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=20)
    try:
        conn.request("POST", "/", body=req.read_bytes(), headers={"Content-Type": "application/ocsp-request"})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, (resp.status, body)
        return body
    finally:
        conn.close()


# --------------------------------------------------------------------------- #
# probing: which staple does the server send?
# --------------------------------------------------------------------------- #

_MSG_RE = re.compile(r"^<<< (TLS 1\.[0-3]|DTLS[^,]*), Handshake \[length ([0-9a-f]+)\], (\w+)")
_HEX_RE = re.compile(r"^    ((?:[0-9a-f]{2} ?)+)$")
_CIPHER_RE = re.compile(r"^New, (TLSv1\.[0-3]|SSLv3), Cipher is (\S+)", re.M)


@dataclass
class Served:
    """What one ``s_client`` handshake showed."""

    ok: bool                      # a full handshake with a cipher
    protocol: Optional[str]
    staple: Optional[bytes]       # the OCSP response's DER, None if the server sent none
    leaf: Optional[bytes]         # the server certificate's DER
    text: str                     # s_client's "OCSP response:" dump ('' if none)
    stdout: str = field(repr=False, default="")
    stderr: str = field(repr=False, default="")

    def describe(self) -> str:
        return (f"handshake {'ok' if self.ok else 'FAILED'} ({self.protocol}), "
                f"staple {'%d bytes' % len(self.staple) if self.staple else 'none'}\n"
                f"stderr: {self.stderr.strip()[-800:]}")


def _messages(stdout: str) -> List[tuple]:
    """(protocol, type name, bytes) of every handshake message the server sent, in order."""
    out: List[list] = []
    cur: Optional[list] = None
    for line in stdout.splitlines():
        m = _MSG_RE.match(line)
        if m:
            cur = [m.group(1), m.group(3), int(m.group(2), 16), bytearray()]
            out.append(cur)
            continue
        if cur is not None:
            h = _HEX_RE.match(line)
            if h:
                cur[3].extend(bytes.fromhex(h.group(1).replace(" ", "")))
                continue
            cur = None
    for msg in out:
        if len(msg[3]) != msg[2]:
            raise AssertionError(f"s_client -msg dump of {msg[1]} has {len(msg[3])} bytes, "
                                 f"announced {msg[2]}")
    return [(proto, name, bytes(data)) for proto, name, _, data in out]


def _u(data: bytes, off: int, n: int) -> int:
    return int.from_bytes(data[off:off + n], "big")


def _cert_status(body: bytes) -> bytes:
    """CertificateStatus: status_type ocsp(1), uint24 length, OCSPResponse."""
    assert body[0] == 1, f"status_type {body[0]} is not ocsp"
    n = _u(body, 1, 3)
    assert 4 + n == len(body), "CertificateStatus length mismatch"
    return body[4:]


def staple_from_messages(messages: Sequence[tuple]) -> tuple:
    """(leaf DER, staple DER or None) from the server's Certificate / CertificateStatus.

    TLS 1.3 (RFC 8446 4.4.2): the staple is the status_request extension of the
    first CertificateEntry.  TLS 1.2 (RFC 6066 8): a CertificateStatus message."""
    leaf = None
    staple = None
    for proto, name, data in messages:
        if name == "Certificate":
            body = data[4:]
            assert _u(data, 1, 3) == len(body), "malformed Certificate message"
            tls13 = proto == "TLS 1.3"
            off = 1 + _u(body, 0, 1) if tls13 else 0        # certificate_request_context
            total = _u(body, off, 3)
            assert off + 3 + total == len(body), "malformed certificate_list"
            off += 3
            n = _u(body, off, 3)
            leaf = body[off + 3: off + 3 + n]
            off += 3 + n
            if tls13:
                ext_len = _u(body, off, 2)
                exts = body[off + 2: off + 2 + ext_len]
                e = 0
                while e < len(exts):
                    etype, elen = _u(exts, e, 2), _u(exts, e + 2, 2)
                    if etype == 5:          # status_request
                        staple = _cert_status(exts[e + 4: e + 4 + elen])
                    e += 4 + elen
        elif name == "CertificateStatus":
            staple = _cert_status(data[4:])
    return leaf, staple


def probe(port: int, servername: str, *, starttls: Optional[str] = None, tls: Optional[str] = None,
          timeout: float = 15.0, ca: Optional[Path] = None) -> Served:
    """One ``openssl s_client -connect 127.0.0.1:PORT -servername NAME -status -msg`` handshake."""
    args = [pkimod.OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", servername,
            "-status", "-msg", "-no-CApath", "-no-CAstore"]
    if ca is not None:
        args += ["-CAfile", str(ca)]
    if starttls:
        args += ["-starttls", starttls]
    if tls:
        args.append(f"-{tls}")
    try:
        cp = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, env=ENV,
                            timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"s_client to 127.0.0.1:{port} did not finish within {timeout:g} s") from exc
    out = cp.stdout.decode("utf-8", "replace")
    err = cp.stderr.decode("utf-8", "replace")
    m = _CIPHER_RE.search(out)
    ok = cp.returncode == 0 and m is not None and m.group(2) != "(NONE)"
    leaf, staple = staple_from_messages(_messages(out))
    text = ""
    if "OCSP response: no response sent" in out:
        assert staple is None, "s_client says no staple but the handshake carried one"
    else:
        tm = re.search(r"^OCSP response: \n=+\n(.*?)\n=+$", out, re.S | re.M)
        if tm:
            text = tm.group(1)
            assert staple is not None, "s_client printed a staple the parser did not find"
    return Served(ok=ok and leaf is not None, protocol=m.group(1) if m else None, staple=staple,
                  leaf=leaf, text=text, stdout=out, stderr=err)


# --------------------------------------------------------------------------- #
# staples: what openssl says about one
# --------------------------------------------------------------------------- #

def pem_to_der(path: Path) -> bytes:
    text = Path(path).read_text()
    m = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S)
    assert m, f"no certificate in {path}"
    return base64.b64decode("".join(m.group(1).split()))


def resp_text(der: bytes, scratch: Path) -> str:
    """``openssl ocsp -respin F -resp_text -noverify`` of DER (what s_client prints)."""
    f = scratch / f".resp-{os.getpid()}-{time.monotonic_ns()}.der"
    f.write_bytes(der)
    try:
        cp = pkimod.openssl("ocsp", "-respin", f, "-resp_text", "-noverify", "-no-CAfile",
                            "-no-CApath", "-no-CAstore")
    finally:
        f.unlink()
    return cp.stdout


def verify_staple(pki, leaf_cert: Path, der: bytes, scratch: Path) -> str:
    """openssl's verdict on DER for LEAF_CERT, chained to the test root: stdout+stderr.

    Asserts the signature verifies and the status line is ``good``."""
    f = scratch / f".verify-{os.getpid()}-{time.monotonic_ns()}.der"
    f.write_bytes(der)
    try:
        cp = pkimod.openssl("ocsp", "-respin", f, "-issuer", pki.inter_cert, "-cert", leaf_cert,
                            "-CAfile", pki.root_cert, "-no-CApath", "-no-CAstore", "-no_nonce",
                            check=False)
    finally:
        f.unlink()
    verdict = cp.stdout + cp.stderr
    assert "Response verify OK" in cp.stderr, verdict
    assert f"{leaf_cert}: good" in cp.stdout, verdict
    return verdict


_TIME_FIELD = r"^\s*{}: (.+)$"


def response_time(der: bytes, scratch: Path, which: str = "This Update") -> datetime:
    """thisUpdate (or ``Next Update``) of a response, from openssl's dump."""
    m = re.search(_TIME_FIELD.format(which), resp_text(der, scratch), re.M)
    assert m, f"no {which} in the response"
    return datetime.strptime(m.group(1).strip(), "%b %d %H:%M:%S %Y GMT").replace(tzinfo=timezone.utc)


def assert_serves(served: Served, staple_file: Path, pki, leaf_cert: Path, scratch: Path) -> bytes:
    """The server sent exactly STAPLE_FILE's bytes for LEAF_CERT, and they verify."""
    assert served.ok, served.describe()
    assert served.leaf == pem_to_der(leaf_cert), "the server sent another certificate"
    want = Path(staple_file).read_bytes()
    assert served.staple is not None, "no staple sent; expected " + str(staple_file) + "\n" + served.describe()
    assert served.staple == want, f"the staple sent is not {staple_file} byte for byte"
    assert served.text.strip() and served.text.strip() in resp_text(want, scratch), \
        "s_client's dump differs from openssl's dump of the file"
    verify_staple(pki, leaf_cert, served.staple, scratch)
    return served.staple


# --------------------------------------------------------------------------- #
# the toolkit, run as a user would
# --------------------------------------------------------------------------- #

def run_tool(name: str, *args, env: Optional[dict] = None, timeout: float = 60,
             input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    full = dict(os.environ)
    full["PATH"] = SBIN_PATH
    full.update(env or {})
    return subprocess.run([command(name), *map(str, args)], capture_output=True, env=full,
                          timeout=timeout, input=input)


def ocsp_check_live(port: int, servername: str, issuer: Path, *,
                    starttls: Optional[str] = None) -> subprocess.CompletedProcess:
    """``ocsp-check -H 127.0.0.1 -p PORT --servername NAME -i ISSUER`` (the certificate
    checked is the one the server presents)."""
    args = ["-H", "127.0.0.1", "-p", port, "--servername", servername, "-i", issuer, "-t", "20"]
    if starttls:
        args += ["--starttls", starttls]
    return run_tool("ocsp-check", *args)


def assert_check_ok(port: int, servername: str, issuer: Path, *,
                    starttls: Optional[str] = None) -> str:
    """``ocsp-check -H`` on the live server says OK (exit 0, ``OCSP OK``); its output."""
    cp = ocsp_check_live(port, servername, issuer, starttls=starttls)
    out = (cp.stdout + cp.stderr).decode("utf-8", "replace")
    assert cp.returncode == 0 and cp.stdout.startswith(b"OCSP OK"), out
    return out
