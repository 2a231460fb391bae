"""Throwaway test PKI + real ``openssl ocsp`` responders on 127.0.0.1.

Stdlib only; every certificate operation runs the ``openssl`` CLI through
``subprocess`` with argument lists (never a shell), with ``LC_ALL=C`` and the
system CA bundle hidden (``SSL_CERT_FILE=/dev/null``, ``SSL_CERT_DIR`` pointing
nowhere), so each openssl run costs ~5 ms instead of ~25 ms.

Used by the pytest suite (session fixtures) and by ``make demo``::

    sys.path.insert(0, "tests"); import pki
    p = pki.build_pki(tmpdir)                 # root, intermediate, signers, leaves
    with pki.Responder(p) as r:               # openssl ocsp -index ... -port ...
        rc, out, err = pki.ocsp_query(p, p.leaves["good1"], r.url, out=tmpdir / "good1.der")

``python tests/pki.py DIR`` builds a PKI in DIR and prints the paths
(``--serve`` also runs a responder on the PKI's OCSP URL until Ctrl-C).

Facts about OpenSSL 3.0's responder that shape this module (checked on 3.0.19):

* Start-up output (stdout+stderr, merged here)::

      ACCEPT [::]:PORT PID=NNN                          <- after listen()
      ocsp: waiting for OCSP client connections...      <- after index.txt loaded

  :meth:`Responder.start` waits for the second line (READY_LINE).  With
  ``-multi N`` every ``ocsp:`` log line goes to syslog only, so there the
  readiness check is the ACCEPT line plus "the parent has forked a child"
  (/proc/PID/task/PID/children).  ``port=0`` lets openssl pick a port; the
  real one is read back from the ACCEPT line.
* It binds ``[::]`` dual-stack = all addresses (no bind option); only ever
  connect to 127.0.0.1.
* It answers requests serially, forever (one process, one request at a time);
  each request logs ``ocsp: Received request, 1st line: POST / HTTP/1.0``.
* NEVER connect to it without sending a request: a bare TCP connect + close
  leaves the single-process responder spinning at 100% CPU on read()==0
  forever (``-timeout`` does not help); it never answers again.
* A malformed request (e.g. ``GET /garbage``) is answered with HTTP 400 /
  malformedRequest and then the single-process responder EXITS (rc 1, it
  prints ``Responder Error: malformedrequest (1)``).  Use
  :meth:`Responder.ensure_running` / :meth:`Responder.restart` after such tests.
  ``-multi`` is no safer: after a malformed request its remaining child
  wedged in the same way, so multi mode is offered but not recommended.
* index.txt IS re-read while running, but only when the responder goes back to
  ``accept()``: the check (mtime/ctime/inode/dev of the file) runs *before*
  blocking for the next connection, so the first request after a change made
  while the responder was idle is still answered from the OLD index; the one
  after that sees the change.  Call :meth:`Responder.restart` (~10 ms) or
  :meth:`Responder.resync` after :meth:`PKI.revoke` when the very next answer
  must reflect the change.  Index writes are atomic (new inode) with a strictly
  increasing mtime so the change is always detected (the check has 1-second
  mtime granularity); rapid revokes may therefore push index.txt's mtime a few
  seconds into the future, which is harmless.
* index.txt.attr gets ``unique_subject = no``: with the default (yes) a
  re-issued leaf (two V rows with the same DN) makes the responder refuse to
  start.
"""

from __future__ import annotations

import atexit
import base64
import datetime as _dt
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, TextIO, Union

__all__ = [
    "Leaf",
    "PKI",
    "Responder",
    "build_pki",
    "free_port",
    "ocsp_query",
    "openssl",
    "openssl_env",
    "READY_LINE",
    "REASONS",
]

OPENSSL = os.environ.get("OCSPTOOLS_TEST_OPENSSL", "openssl")

#: Text the single-process responder prints (stderr) once it is ready.
READY_LINE = "waiting for OCSP client connections"

#: Revocation reasons ``openssl ocsp -index`` understands (index.txt spelling).
REASONS = (
    "unspecified",
    "keyCompromise",
    "CACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "removeFromCRL",
)

MUST_STAPLE_EXT = "1.3.6.1.5.5.7.1.24=DER:30:03:02:01:05"  # TLS Feature: status_request
DN_PREFIX = "/O=ocsptools test"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

_REQ_CNF = """\
# minimal config so the distro openssl.cnf (x509_extensions etc.) is not used
[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = unused
"""

TimeSpec = Union[_dt.datetime, _dt.timedelta, str, None]


# --------------------------------------------------------------------------- #
# running openssl
# --------------------------------------------------------------------------- #

def openssl_env() -> dict:
    """Environment for openssl children: C locale, system CA bundle hidden."""
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["SSL_CERT_FILE"] = "/dev/null"
    env["SSL_CERT_DIR"] = "/nonexistent-ocsptools-test-certdir"
    return env


_ENV = openssl_env()


def openssl(*args: Union[str, os.PathLike], check: bool = True,
            timeout: float = 30) -> subprocess.CompletedProcess:
    """Run ``openssl ARGS...`` (argument list, no shell); raise on failure if *check*."""
    cmd = [OPENSSL, *map(os.fspath, args)]
    cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                        text=True, env=_ENV, timeout=timeout)
    if check and cp.returncode != 0:
        raise RuntimeError(
            f"openssl failed (rc={cp.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{cp.stdout}--- stderr ---\n{cp.stderr}")
    return cp


# --------------------------------------------------------------------------- #
# small helpers
# --------------------------------------------------------------------------- #

def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def _to_dt(value: TimeSpec) -> _dt.datetime | None:
    """datetime (naive = UTC) | timedelta (relative to now) | 'YY[YY]MMDDHHMMSSZ'."""
    if value is None:
        return None
    if isinstance(value, _dt.timedelta):
        return _utcnow() + value
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.astimezone(_dt.timezone.utc).replace(microsecond=0)
    if isinstance(value, str):
        s = value.strip()
        fmt = "%y%m%d%H%M%SZ" if len(s) == 13 else "%Y%m%d%H%M%SZ"
        return _dt.datetime.strptime(s, fmt).replace(tzinfo=_dt.timezone.utc)
    raise TypeError(f"unsupported time value: {value!r}")


def _gentime(d: _dt.datetime) -> str:
    return d.strftime("%Y%m%d%H%M%SZ")


def _utctime(d: _dt.datetime) -> str:
    return d.strftime("%y%m%d%H%M%SZ")


def _norm_serial(serial: Union[int, str]) -> str:
    """Serial as ``openssl ocsp -index`` looks it up: uppercase hex, even length."""
    if isinstance(serial, str):
        s = serial.strip()
        s = s[2:] if s.lower().startswith("0x") else s
        n = int(s, 16)
    else:
        n = int(serial)
    if n <= 0:
        raise ValueError("serial must be positive")
    h = format(n, "X")
    return h if len(h) % 2 == 0 else "0" + h


def _der_tlv(buf: bytes, off: int) -> tuple[int, int, int]:
    """Return (tag, content_start, content_end) of the DER element at *off*."""
    tag = buf[off]
    ln = buf[off + 1]
    off += 2
    if ln & 0x80:
        n = ln & 0x7F
        ln = int.from_bytes(buf[off:off + n], "big")
        off += n
    return tag, off, off + ln


def cert_info(path: Union[str, os.PathLike]) -> dict:
    """Serial (hex, index.txt form) and raw notBefore/notAfter strings of a PEM cert.

    The dates are the DER UTCTime/GeneralizedTime text exactly as ``openssl ca``
    copies it into index.txt.  Pure Python (no openssl process).
    """
    text = Path(path).read_text()
    m = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S)
    if not m:
        raise ValueError(f"no PEM certificate in {path}")
    der = base64.b64decode("".join(m.group(1).split()))
    _, c0, _ = _der_tlv(der, 0)          # Certificate
    _, t0, _ = _der_tlv(der, c0)         # tbsCertificate
    off = t0
    tag, s, e = _der_tlv(der, off)
    if tag == 0xA0:                      # [0] version
        off = e
        tag, s, e = _der_tlv(der, off)
    serial = _norm_serial(int.from_bytes(der[s:e], "big", signed=True))
    off = e
    _, _, off = _der_tlv(der, off)       # signature AlgorithmIdentifier
    _, _, off = _der_tlv(der, off)       # issuer Name
    _, v0, _ = _der_tlv(der, off)        # validity
    _, nb0, nb1 = _der_tlv(der, v0)
    _, na0, na1 = _der_tlv(der, nb1)
    return {"serial": serial,
            "not_before": der[nb0:nb1].decode("ascii"),
            "not_after": der[na0:na1].decode("ascii")}


# --------------------------------------------------------------------------- #
# PKI objects
# --------------------------------------------------------------------------- #

@dataclass
class Leaf:
    name: str
    cert: Path
    key: Path
    fullchain: Path          # leaf + issuing intermediate
    chain: Path              # issuing intermediate only
    serial: str              # uppercase hex, as in index.txt
    ocsp_urls: list[str]
    issuer: str = "inter"    # "inter" | "other"
    issuer_cert: Path | None = None
    must_staple: bool = False


@dataclass
class _Row:
    status: str        # V | R
    expiry: str        # raw notAfter text (YYMMDDHHMMSSZ)
    revinfo: str       # "" or "YYMMDDHHMMSSZ[,reason]"
    serial: str
    dn: str

    def line(self) -> str:
        return "\t".join([self.status, self.expiry, self.revinfo, self.serial,
                          "unknown", self.dn]) + "\n"


@dataclass
class PKI:
    dir: Path
    root_cert: Path
    root_key: Path
    inter_cert: Path         # issuer of all leaves (and of ocsp/nosign signers)
    inter_key: Path
    ocsp_cert: Path          # delegated responder: EKU OCSPSigning + OCSP No Check
    ocsp_key: Path
    nosign_cert: Path        # issued by inter, WITHOUT OCSPSigning
    nosign_key: Path
    other_inter_cert: Path   # second intermediate under the same root ("wrong issuer")
    other_inter_key: Path
    index: Path              # index.txt of inter, read by `openssl ocsp -index`
    ocsp_url: str            # http://127.0.0.1:<port>/ baked into the leaves' AIA
    leaves: dict[str, Leaf] = field(default_factory=dict)
    _rows: dict[str, _Row] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _defer_index: bool = field(default=False, repr=False)

    # ---------------------------------------------------------------- basics
    @property
    def port(self) -> int:
        m = re.match(r"^https?://[^/:]+:(\d+)", self.ocsp_url)
        if not m:
            raise ValueError(f"no port in {self.ocsp_url}")
        return int(m.group(1))

    @property
    def cnf(self) -> Path:
        return self.dir / "openssl.cnf"

    def _issuer(self, issuer: str) -> tuple[Path, Path]:
        if issuer == "inter":
            return self.inter_cert, self.inter_key
        if issuer == "other":
            return self.other_inter_cert, self.other_inter_key
        if issuer == "root":
            return self.root_cert, self.root_key
        raise ValueError(f"issuer must be 'inter', 'other' or 'root', not {issuer!r}")

    def _new_serial(self, serial: Union[int, str, None] = None) -> str:
        if serial is not None:
            return _norm_serial(serial)
        while True:
            # 63 random bits with bit 62 set: positive, always 16 hex digits
            s = _norm_serial(secrets.randbits(63) | (1 << 62))
            if s not in self._rows:
                return s

    # ------------------------------------------------------------- issuing
    def _issue(self, cert: Path, key: Path, subject: str, *, issuer: str,
               exts: Sequence[str], days: int, serial: str,
               not_before: TimeSpec = None, not_after: TimeSpec = None) -> None:
        """Create key + certificate; one `openssl req` normally, req + `openssl ca`
        when explicit dates are wanted (openssl 3.0 req/x509 only have -days)."""
        cert.parent.mkdir(parents=True, exist_ok=True)
        ca_cert, ca_key = self._issuer(issuer)
        nb, na = _to_dt(not_before), _to_dt(not_after)
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc",
                  "-keyout", key]
        if nb is None and na is None:
            args = ["req", "-config", self.cnf, "-new", *newkey, "-out", cert,
                    "-subj", subject, "-CA", ca_cert, "-CAkey", ca_key,
                    "-set_serial", "0x" + serial, "-days", str(days), "-sha256"]
            for e in exts:
                args += ["-addext", e]
            openssl(*args)
            return
        if nb is None:
            nb = _utcnow()
        if na is None:
            na = nb + _dt.timedelta(days=days)
        with tempfile.TemporaryDirectory(dir=self.dir, prefix=".ca-") as td:
            t = Path(td)
            csr = t / "req.csr"
            openssl("req", "-config", self.cnf, "-new", *newkey, "-out", csr,
                    "-subj", subject)
            (t / "db.txt").write_text("")
            (t / "db.txt.attr").write_text("unique_subject = no\n")
            (t / "serial").write_text(serial + "\n")
            (t / "ca.cnf").write_text(
                "[ca]\ndefault_ca = tca\n"
                "[tca]\n"
                f"database = {t / 'db.txt'}\n"
                f"new_certs_dir = {t}\n"
                f"serial = {t / 'serial'}\n"
                "default_md = sha256\npolicy = tpol\nunique_subject = no\n"
                "email_in_dn = no\npreserve = yes\n"
                "[tpol]\norganizationName = optional\ncommonName = supplied\n"
                "[ext]\n" + "".join(e + "\n" for e in
                                    [*exts, "subjectKeyIdentifier=hash",
                                     "authorityKeyIdentifier=keyid"]))
            openssl("ca", "-config", t / "ca.cnf", "-batch", "-notext",
                    "-in", csr, "-out", cert, "-cert", ca_cert, "-keyfile", ca_key,
                    "-startdate", _gentime(nb), "-enddate", _gentime(na),
                    "-extfile", t / "ca.cnf", "-extensions", "ext", "-subj", subject)

    def _record(self, cert: Path, subject: str) -> str:
        info = cert_info(cert)
        with self._lock:
            self._rows[info["serial"]] = _Row("V", info["not_after"], "", info["serial"], subject)
            self._write_index()
        return info["serial"]

    def _write_index(self) -> None:
        if not self._defer_index:
            self._write_index_now()

    def _write_index_now(self) -> None:
        """Atomically replace index.txt: new inode + strictly newer mtime, so a
        running responder's index_changed() (1 s mtime granularity) sees it."""
        data = "".join(r.line() for r in self._rows.values())
        tmp = self.index.with_name(self.index.name + ".tmp")
        tmp.write_text(data)
        now = int(time.time())
        try:
            prev = int(self.index.stat().st_mtime)
        except FileNotFoundError:
            prev = 0
        mt = max(now, prev + 1)
        os.utime(tmp, (mt, mt))
        os.replace(tmp, self.index)
        attr = self.index.with_name(self.index.name + ".attr")
        if not attr.exists():
            # default is unique_subject=yes: a re-issued name (2 V rows, same DN)
            # would make `openssl ocsp -index` refuse to start
            attr.write_text("unique_subject = no\n")

    def make_leaf(self, name: str, *, ocsp_urls: list[str] | None = None,
                  ca_issuers: str | None = None, must_staple: bool = False,
                  days: int = 90, not_before: TimeSpec = None, not_after: TimeSpec = None,
                  issuer: str = "inter", serial: Union[int, str, None] = None,
                  dns_names: list[str] | None = None) -> Leaf:
        """Issue a TLS server leaf and record it (status V) in index.txt.

        ocsp_urls: None -> [self.ocsp_url]; [] -> no AIA OCSP entry at all.
        ca_issuers: URL for AIA caIssuers (None: none).  must_staple: TLS Feature
        status_request.  not_before/not_after: datetime, timedelta from now, or
        'YYYYMMDDHHMMSSZ'.  issuer: 'inter' (default) or 'other' (the wrong-issuer
        intermediate; such leaves are NOT written to index.txt).
        dns_names: SAN DNS names (default [name, 'localhost']).
        """
        if not _NAME_RE.match(name):
            raise ValueError(f"bad leaf name {name!r}")
        urls = [self.ocsp_url] if ocsp_urls is None else list(ocsp_urls)
        serial = self._new_serial(serial)
        d = self.dir / "leaves"
        cert, key = d / f"{name}.pem", d / f"{name}.key"
        ca_cert, _ = self._issuer(issuer)
        subject = f"{DN_PREFIX}/CN={name}"
        sans = dns_names if dns_names is not None else [name, "localhost"]
        exts = ["basicConstraints=critical,CA:FALSE",
                "keyUsage=critical,digitalSignature",
                "extendedKeyUsage=serverAuth,clientAuth"]
        if sans:
            exts.append("subjectAltName=" + ",".join(f"DNS:{n}" for n in sans))
        aia = [f"OCSP;URI:{u}" for u in urls]
        if ca_issuers:
            aia.append(f"caIssuers;URI:{ca_issuers}")
        if aia:
            exts.append("authorityInfoAccess=" + ",".join(aia))
        if must_staple:
            exts.append(MUST_STAPLE_EXT)
        self._issue(cert, key, subject, issuer=issuer, exts=exts, days=days,
                    serial=serial, not_before=not_before, not_after=not_after)
        if issuer == "inter":
            serial = self._record(cert, subject)
        else:
            serial = cert_info(cert)["serial"]
        chain = d / f"{name}.chain.pem"
        fullchain = d / f"{name}.fullchain.pem"
        inter_pem = ca_cert.read_text()
        chain.write_text(inter_pem)
        fullchain.write_text(cert.read_text() + inter_pem)
        leaf = Leaf(name=name, cert=cert, key=key, fullchain=fullchain, chain=chain,
                    serial=serial, ocsp_urls=urls, issuer=issuer, issuer_cert=ca_cert,
                    must_staple=must_staple)
        self.leaves[name] = leaf
        self._save_manifest()
        return leaf

    def make_signer(self, name: str, *, ocsp_signing: bool = True,
                    nocheck: bool | None = None, days: int = 30,
                    not_before: TimeSpec = None, not_after: TimeSpec = None,
                    issuer: str = "inter", serial: Union[int, str, None] = None
                    ) -> tuple[Path, Path]:
        """Issue a responder-signing certificate; returns (cert, key).

        ocsp_signing: EKU OCSPSigning (False -> EKU serverAuth,clientAuth only).
        nocheck: id-pkix-ocsp-nocheck (default: same as ocsp_signing).
        Dates: e.g. not_before=timedelta(days=-10), not_after=timedelta(days=-1)
        for an expired signer; not_after=timedelta(hours=2) for one about to expire.
        Signers issued by 'inter' are recorded (V) in index.txt.
        """
        if not _NAME_RE.match(name):
            raise ValueError(f"bad signer name {name!r}")
        if nocheck is None:
            nocheck = ocsp_signing
        serial = self._new_serial(serial)
        d = self.dir / "signers"
        cert, key = d / f"{name}.pem", d / f"{name}.key"
        subject = f"{DN_PREFIX}/CN={name}"
        exts = ["basicConstraints=critical,CA:FALSE",
                "keyUsage=critical,digitalSignature",
                "extendedKeyUsage=" + ("OCSPSigning" if ocsp_signing else "serverAuth,clientAuth")]
        if nocheck:
            exts.append("noCheck=ignored")
        self._issue(cert, key, subject, issuer=issuer, exts=exts, days=days,
                    serial=serial, not_before=not_before, not_after=not_after)
        if issuer == "inter":
            self._record(cert, subject)
        return cert, key

    def revoke(self, leaf: Union[Leaf, str], reason: str | None = "keyCompromise",
               *, when: TimeSpec = None) -> None:
        """Mark *leaf* (Leaf, leaf name, or serial hex) revoked in index.txt.

        reason: one of REASONS or None (no reason code).  when: revocation time
        (default now).  A running responder picks the change up from its SECOND
        request on; use Responder.restart()/resync() for the very next one.
        """
        if reason is not None and reason not in REASONS:
            raise ValueError(f"reason must be one of {REASONS}, not {reason!r}")
        if isinstance(leaf, Leaf):
            if leaf.issuer != "inter":
                raise ValueError("only leaves of the 'inter' CA are in index.txt")
            serial = leaf.serial
        elif isinstance(leaf, str) and leaf in self.leaves:
            serial = self.leaves[leaf].serial
        else:
            serial = _norm_serial(leaf)
        t = _to_dt(when) or _utcnow()
        with self._lock:
            row = self._rows.get(serial)
            if row is None:
                raise KeyError(f"serial {serial} not in {self.index}")
            row.status = "R"
            row.revinfo = _utctime(t) + (f",{reason}" if reason else "")
            self._write_index()

    def unrevoke(self, leaf: Union[Leaf, str]) -> None:
        """Back to V (test convenience; real CAs only do this for certificateHold)."""
        serial = leaf.serial if isinstance(leaf, Leaf) else (
            self.leaves[leaf].serial if leaf in self.leaves else _norm_serial(leaf))
        with self._lock:
            row = self._rows[serial]
            row.status, row.revinfo = "V", ""
            self._write_index()

    def index_lines(self) -> list[str]:
        return self.index.read_text().splitlines()

    # -------------------------------------------------------- persistence
    def _save_manifest(self) -> None:
        data = {k: str(v) for k, v in self.__dict__.items()
                if isinstance(v, Path)}
        data["ocsp_url"] = self.ocsp_url
        data["leaves"] = {
            n: {**{k: (str(v) if isinstance(v, Path) else v)
                   for k, v in l.__dict__.items()}}
            for n, l in self.leaves.items()}
        tmp = self.dir / "pki.json.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.dir / "pki.json")

    @classmethod
    def load(cls, directory: Union[str, os.PathLike]) -> "PKI":
        """Re-open a PKI built earlier by build_pki() (reads pki.json + index.txt)."""
        directory = Path(directory)
        data = json.loads((directory / "pki.json").read_text())
        leaves = {}
        for n, l in data.pop("leaves").items():
            for k in ("cert", "key", "fullchain", "chain", "issuer_cert"):
                if l.get(k) is not None:
                    l[k] = Path(l[k])
            leaves[n] = Leaf(**l)
        url = data.pop("ocsp_url")
        p = cls(**{k: Path(v) for k, v in data.items()}, ocsp_url=url, leaves=leaves)
        for line in p.index.read_text().splitlines():
            f = line.split("\t")
            if len(f) == 6:
                p._rows[f[3]] = _Row(f[0], f[1], f[2], f[3], f[5])
        return p


def build_pki(directory: Union[str, os.PathLike], *, ocsp_url: str | None = None,
              leaves: Iterable[str] = ("good1", "good2", "revoked1")) -> PKI:
    """Build root -> inter (-> ocsp signer, nosign, leaves) and root -> other_inter
    under *directory*; revoke the leaf named "revoked1" (if requested).

    ocsp_url default: http://127.0.0.1:<free port>/ (the port Responder uses).
    """
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    if ocsp_url is None:
        ocsp_url = f"http://127.0.0.1:{free_port()}/"
    p = PKI(dir=d,
            root_cert=d / "root.pem", root_key=d / "root.key",
            inter_cert=d / "inter.pem", inter_key=d / "inter.key",
            ocsp_cert=d / "ocsp.pem", ocsp_key=d / "ocsp.key",
            nosign_cert=d / "nosign.pem", nosign_key=d / "nosign.key",
            other_inter_cert=d / "other-inter.pem", other_inter_key=d / "other-inter.key",
            index=d / "index.txt", ocsp_url=ocsp_url)
    p.cnf.write_text(_REQ_CNF)
    p._defer_index = True     # write index.txt once at the end

    # root: self-signed
    openssl("req", "-config", p.cnf, "-x509", "-new", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc",
            "-keyout", p.root_key, "-out", p.root_cert,
            "-subj", f"{DN_PREFIX}/CN=ocsptools Test Root CA",
            "-set_serial", "0x" + p._new_serial(), "-days", "3650", "-sha256",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ca_exts = ["basicConstraints=critical,CA:TRUE,pathlen:0",
               "keyUsage=critical,digitalSignature,keyCertSign,cRLSign"]
    for which, cert, key, cn in (
            ("inter", p.inter_cert, p.inter_key, "ocsptools Test Intermediate CA"),
            ("other", p.other_inter_cert, p.other_inter_key, "ocsptools Other Intermediate CA")):
        p._issue(cert, key, f"{DN_PREFIX}/CN={cn}", issuer="root", exts=ca_exts,
                 days=3650, serial=p._new_serial())
    # delegated responder + a cert without OCSPSigning, both from inter
    for cert, key, cn, signing in ((p.ocsp_cert, p.ocsp_key, "ocsptools Test OCSP Responder", True),
                                   (p.nosign_cert, p.nosign_key, "ocsptools Test Not An OCSP Signer", False)):
        subject = f"{DN_PREFIX}/CN={cn}"
        exts = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
                "extendedKeyUsage=" + ("OCSPSigning" if signing else "serverAuth,clientAuth")]
        if signing:
            exts.append("noCheck=ignored")
        p._issue(cert, key, subject, issuer="inter", exts=exts, days=365,
                 serial=p._new_serial())
        p._record(cert, subject)
    for name in leaves:
        p.make_leaf(name)
    if "revoked1" in p.leaves:
        p.revoke(p.leaves["revoked1"], "keyCompromise")
    p._defer_index = False
    p._write_index()
    p._save_manifest()
    return p


# --------------------------------------------------------------------------- #
# OCSP client convenience
# --------------------------------------------------------------------------- #

def ocsp_query(pki: PKI, leaf: Union[Leaf, str, os.PathLike], url: str, *,
               issuer: Union[str, os.PathLike, None] = None,
               out: Union[str, os.PathLike, None] = None,
               extra: Sequence[str] = (), timeout: int = 5) -> tuple[int, str, str]:
    """``openssl ocsp -issuer I -cert C -url U -no_nonce -CAfile root [-respout out]``.

    leaf: Leaf, leaf name, or certificate path.  issuer default: the leaf's
    issuing CA (inter).  Returns (rc, stdout, stderr); see the notes on how
    little rc means.  The summary line on stdout starts with ``str(cert path)``.
    """
    if isinstance(leaf, Leaf):
        cert = leaf.cert
        iss = issuer or leaf.issuer_cert or pki.inter_cert
    else:
        cert = pki.leaves[leaf].cert if isinstance(leaf, str) and leaf in pki.leaves else Path(leaf)
        iss = issuer or pki.inter_cert
    args = [OPENSSL, "ocsp", "-issuer", os.fspath(iss), "-cert", os.fspath(cert),
            "-url", url, "-no_nonce", "-timeout", str(timeout),
            "-CAfile", os.fspath(pki.root_cert), "-no-CApath", "-no-CAstore"]
    if out is not None:
        args += ["-respout", os.fspath(out)]
    args += list(map(os.fspath, extra))
    cp = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                        env=_ENV, timeout=timeout + 10)
    return cp.returncode, cp.stdout, cp.stderr


# --------------------------------------------------------------------------- #
# responder
# --------------------------------------------------------------------------- #

_LIVE: "set[Responder]" = set()
_LIVE_LOCK = threading.Lock()


def _cleanup_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for r in live:
        try:
            r.stop()
        except Exception:  # pragma: no cover - best effort at exit
            pass


atexit.register(_cleanup_all)


def _load_prctl():
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl
    except Exception:  # pragma: no cover - non-glibc platforms
        return None


_PRCTL = _load_prctl()   # resolved here, so the forked child imports nothing


def _pdeathsig() -> None:
    """preexec_fn: SIGTERM the responder if the thread that started it dies
    (e.g. pytest killed by a CI timeout, where atexit never runs)."""
    if _PRCTL is not None:
        _PRCTL(1, 15)   # prctl(PR_SET_PDEATHSIG, SIGTERM)


_ACCEPT_RE = re.compile(r"^ACCEPT (\S+):(\d+) PID=(\d+)")


def _has_children(pid: int) -> bool | None:
    """True/False if /proc tells us whether *pid* has children, None if unknown."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return bool(fh.read().split())
    except OSError:
        return None


class Responder:
    """A real ``openssl ocsp`` responder for *pki* (context manager).

    signer: "delegated" (pki.ocsp_cert, default), "issuer" (inter signs itself),
    "nosign" (cert without OCSPSigning), or a (cert, key) tuple.
    nmin: nextUpdate = thisUpdate + nmin minutes (-nmin); otherwise ndays
    (-ndays, default 1; None = no nextUpdate at all).
    embed_certs=False -> -resp_no_certs.  key_id -> -resp_key_id.
    rother: extra cert file to include (-rother).  timeout: -timeout for reading
    a request (None: openssl default = wait forever; it does NOT rescue the
    responder from a bare connect).  multi: -multi N (forks N children; stopped
    by killing its process group; fragile, see module doc).  port: default the
    port of pki.ocsp_url; 0 = let openssl choose (read back into .port).
    ca/index: override -CA / -index (default pki.inter_cert / pki.index).
    log: path or text file that receives the responder's output (also kept in
    .output).  extra: more arguments appended verbatim (e.g. ["-badsig"]).
    """

    START_TIMEOUT = 5.0

    def __init__(self, pki: PKI, *, port: int | None = None,
                 signer: Union[str, tuple] = "delegated",
                 nmin: int | None = None, ndays: int | None = 1,
                 embed_certs: bool = True, key_id: bool = False,
                 rother: Union[str, os.PathLike, None] = None,
                 timeout: int | None = None, multi: int | None = None,
                 ca: Union[str, os.PathLike, None] = None,
                 index: Union[str, os.PathLike, None] = None,
                 extra: Sequence[str] = (),
                 log: Union[str, os.PathLike, TextIO, None] = None):
        self.pki = pki
        self.port = port if port is not None else pki.port
        if signer == "delegated":
            self.signer = (pki.ocsp_cert, pki.ocsp_key)
        elif signer == "issuer":
            self.signer = (pki.inter_cert, pki.inter_key)
        elif signer == "nosign":
            self.signer = (pki.nosign_cert, pki.nosign_key)
        elif isinstance(signer, (tuple, list)) and len(signer) == 2:
            self.signer = (Path(signer[0]), Path(signer[1]))
        else:
            raise ValueError(f"bad signer {signer!r}")
        if nmin is not None and nmin <= 0:
            raise ValueError("openssl refuses -nmin 0; use a positive value")
        self.nmin, self.ndays = nmin, ndays
        self.embed_certs, self.key_id, self.rother = embed_certs, key_id, rother
        self.timeout, self.multi = timeout, multi
        self.ca = Path(ca) if ca else pki.inter_cert
        self.index = Path(index) if index else pki.index
        self.extra = tuple(map(os.fspath, extra))
        self.log = log
        self.proc: subprocess.Popen | None = None
        self._out: list[str] = []
        self._ready = threading.Event()
        self._accepted = threading.Event()
        self._accept_port: int | None = None
        self._reader: threading.Thread | None = None
        self._logfh: TextIO | None = None
        self._own_log = False

    # ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def output(self) -> str:
        """Everything the responder printed so far (stdout+stderr merged)."""
        return "".join(self._out)

    def args(self) -> list[str]:
        cert, key = self.signer
        a = [OPENSSL, "ocsp", "-index", os.fspath(self.index), "-port", str(self.port),
             "-rsigner", os.fspath(cert), "-rkey", os.fspath(key), "-CA", os.fspath(self.ca)]
        if self.nmin is not None:
            a += ["-nmin", str(self.nmin)]
        elif self.ndays is not None:
            a += ["-ndays", str(self.ndays)]
        if not self.embed_certs:
            a.append("-resp_no_certs")
        if self.key_id:
            a.append("-resp_key_id")
        if self.rother:
            a += ["-rother", os.fspath(self.rother)]
        if self.timeout is not None:
            a += ["-timeout", str(self.timeout)]
        if self.multi:
            a += ["-multi", str(self.multi)]
        a += list(self.extra)
        return a

    def _read(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            self._out.append(line)
            if self._logfh is not None:
                try:
                    self._logfh.write(line)
                    self._logfh.flush()
                except Exception:
                    pass
            m = _ACCEPT_RE.match(line)
            if m:
                self._accept_port = int(m.group(2))
                self._accepted.set()
            if READY_LINE in line:
                self._ready.set()
        stream.close()

    def _is_ready(self) -> bool:
        if not self.multi:
            # printed after bind+listen AND after index.txt loaded
            return self._ready.wait(0.005)
        # -multi logs to syslog only; "ACCEPT <addr>:<port> PID=<pid>" (stdout)
        # comes right after listen(), before the index is loaded; children are
        # forked after the index is loaded, so wait for one to exist.
        if not self._accepted.wait(0.005):
            return False
        kids = _has_children(self.proc.pid)
        if kids is None:
            return True
        if not kids:
            time.sleep(0.005)
        return bool(kids)

    def start(self) -> "Responder":
        """Start the responder and wait (<= START_TIMEOUT s) until it is ready.

        Raises RuntimeError with the command and captured output if it exits
        or does not become ready in time."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        if self.proc is not None:
            self.stop()           # reap a dead previous instance
        self._out = []
        self._ready.clear()
        self._accepted.clear()
        if self.log is not None and self._logfh is None:
            if hasattr(self.log, "write"):
                self._logfh = self.log
            else:
                self._logfh = open(self.log, "a")
                self._own_log = True
        use_pdeath = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(
            self.args(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=_ENV,
            preexec_fn=_pdeathsig if use_pdeath else None)
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,),
                                        name=f"ocsp-responder-{self.port}", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            if self._is_ready():
                if self.port == 0 and self._accept_port:
                    self.port = self._accept_port
                return self
            if self.proc.poll() is not None:
                self._reader.join(1)
                rc = self.proc.returncode
                cmd = " ".join(self.args())
                self.stop()
                raise RuntimeError(
                    f"openssl ocsp responder exited with rc={rc} before becoming ready "
                    f"on port {self.port}\ncommand: {cmd}\noutput:\n{self.output}")
        cmd = " ".join(self.args())
        self.stop()
        raise RuntimeError(
            f"openssl ocsp responder not ready after {self.START_TIMEOUT}s on port "
            f"{self.port} (no {READY_LINE!r} line)\ncommand: {cmd}\n"
            f"output:\n{self.output}")

    def stop(self) -> None:
        """Terminate (then kill) the responder and reap it; idempotent."""
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                if self.multi:
                    self._stop_group(proc)
                else:
                    proc.terminate()
                    try:
                        proc.wait(2)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(2)
            else:
                proc.wait()
            if self._reader is not None:
                self._reader.join(2)
                self._reader = None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._own_log and self._logfh is not None:
            self._logfh.close()
            self._logfh, self._own_log = None, False

    @staticmethod
    def _stop_group(proc: subprocess.Popen) -> None:
        """-multi: openssl setpgid()s itself; SIGTERM its process group, wait
        briefly for the parent WITHOUT reaping it (so its pid = pgid cannot be
        reused meanwhile), SIGKILL what is left of the group, then reap.
        (On SIGTERM the openssl parent kills its children and then sleeps 1 s
        before exiting, hence the SIGKILL.)  The children are the parent's, not
        ours: once it is gone, init reaps them."""
        pid = proc.pid
        try:
            own_group = os.getpgid(pid) == pid and pid != os.getpgrp()
        except ProcessLookupError:
            own_group = False

        def sig(s: int) -> None:
            try:
                if own_group:
                    os.killpg(pid, s)
                else:
                    proc.send_signal(s)
            except ProcessLookupError:
                pass

        sig(signal.SIGTERM)
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            try:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
                    break
            except ChildProcessError:
                break
            time.sleep(0.01)
        sig(signal.SIGKILL)
        proc.wait(2)

    def restart(self) -> "Responder":
        """Stop and start again on the same port (re-reads index.txt; the
        responder uses SO_REUSEADDR so the port is immediately reusable)."""
        self.stop()
        return self.start()

    def resync(self) -> None:
        """Make the NEXT request see the current index.txt without a restart:
        send one throwaway request (answered from the old index); the responder
        then re-reads the changed index before accepting again.  Single-process
        mode only (with -multi each child has its own copy: use restart())."""
        if self.multi:
            self.restart()
            return
        ocsp_query(self.pki, self.pki.ocsp_cert, self.url, issuer=self.pki.inter_cert,
                   extra=["-noverify"])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self) -> "Responder":
        """Restart if it died (OpenSSL 3.0's single-process responder EXITS
        (rc 1) after answering a malformed request with malformedRequest)."""
        return self if self.alive() else self.start()

    def __enter__(self) -> "Responder":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Responder {self.url} signer={self.signer[0].name} alive={self.alive()}>"


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #

def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="Build a throwaway OCSP test PKI.")
    ap.add_argument("dir", help="directory to build the PKI in")
    ap.add_argument("--url", help="OCSP URL for the leaves (default: free 127.0.0.1 port)")
    ap.add_argument("--serve", action="store_true",
                    help="then run a responder on that URL until interrupted")
    ap.add_argument("--json", action="store_true", help="print pki.json instead")
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    p = build_pki(a.dir, ocsp_url=a.url)
    dt = time.monotonic() - t0
    if a.json:
        print((p.dir / "pki.json").read_text(), end="")
    else:
        for k in ("dir", "root_cert", "root_key", "inter_cert", "inter_key", "ocsp_cert",
                  "ocsp_key", "nosign_cert", "nosign_key", "other_inter_cert",
                  "other_inter_key", "index"):
            print(f"{k}={getattr(p, k)}")
        print(f"ocsp_url={p.ocsp_url}")
        for n, l in p.leaves.items():
            st = "revoked" if any(line.startswith("R") and f"\t{l.serial}\t" in line
                                  for line in p.index_lines()) else "valid"
            print(f"leaf.{n}.cert={l.cert}")
            print(f"leaf.{n}.key={l.key}")
            print(f"leaf.{n}.fullchain={l.fullchain}")
            print(f"leaf.{n}.serial={l.serial} ({st})")
        print(f"# built in {dt:.2f}s", file=sys.stderr)
    if a.serve:
        with Responder(p) as r:
            print(f"# responder pid {r.proc.pid} serving {r.url} (Ctrl-C to stop)",
                  file=sys.stderr)
            try:
                r.proc.wait()
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
