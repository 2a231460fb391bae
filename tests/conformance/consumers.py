"""The six consumers of a staple run on the whole corpus, each reduced to one Outcome per case.

* ``ocsp-fetch`` (one run per case), ``ocsp-check`` (one run, every staple),
  ``ocsp-renew-dir`` (one run per CertID hash over a tree of every case),
  ``ocsp-renew-dir --watch`` (a daemon per hash until every case has an event),
  ``ocsp-proxy`` (one proxy; every case asked through it once), and the
  in-process ``Stapler`` (one per hash, one refresh pass) -- the real
  console scripts and the real library, against the corpus's loopback
  responder.
* Each Outcome says what the consumer made of the answer (``good``,
  ``revoked``, ``unknown``, ``refuse``), when it says the answer stops
  verifying, and when it would renew it.  The verdict is the test's reading of
  the consumer's documented output (exit status, JSON fields, TSV lines,
  HTTP caching headers, ``CertificateStatus``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from .corpus import Case, Corpus
from .ocspcheck import classify

BIN = Path(sys.executable).parent
ENV = dict(os.environ, LC_ALL="C")
HASHES = ("sha1", "sha256")
TIMES = re.compile(r"(?:good until|valid until) (?P<until>\S+Z).*renewal due at (?P<due>\S+Z)")


@dataclass(frozen=True)
class Outcome:
    verdict: str                         # good | revoked | unknown | refuse | error
    valid_until: Optional[datetime] = None
    renewal_due: Optional[datetime] = None
    detail: str = ""
    scheduled: Optional[datetime] = None  # when a scheduler will renew it (jitter included)
    max_age_end: Optional[datetime] = None  # the proxy: Date + max-age


def parse_iso(text: Optional[str]) -> Optional[datetime]:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _times(detail: str) -> Dict[str, Optional[datetime]]:
    m = TIMES.search(detail)
    return {"valid_until": parse_iso(m["until"]), "renewal_due": parse_iso(m["due"])} if m else {}


def _tree(root: Path, cases: Iterable[Case]) -> Dict[str, Case]:
    """ROOT/<case>/cert.pem + cert.pem.issuer for CASES; returns cert path -> case."""
    out = {}
    for c in cases:
        d = root / c.name
        d.mkdir(parents=True)
        shutil.copy(c.leaf, d / "cert.pem")
        shutil.copy(c.issuer, d / "cert.pem.issuer")
        out[str(d / "cert.pem")] = c
    return out


def _by_hash(corpus: Corpus) -> Dict[str, List[Case]]:
    return {h: [c for c in corpus.cases if c.hash_alg == h] for h in HASHES}


# --------------------------------------------------------------------------- ocsp-fetch

def fetch(corpus: Corpus, work: Path) -> Dict[str, Outcome]:
    work.mkdir()

    def one(c: Case) -> Outcome:
        out = work / f"{c.name}.ocsp"
        cp = subprocess.run([str(BIN / "ocsp-fetch"), "--hash", c.hash_alg, "-o", str(out),
                             str(c.fullchain)], capture_output=True, text=True, env=ENV, timeout=60)
        written = out.exists()
        if cp.returncode == 0 and written:
            return Outcome("good", detail=cp.stderr, **_times(cp.stderr))
        if cp.returncode == 4 and not written:
            return Outcome("revoked", detail=cp.stderr)
        if cp.returncode == 1 and not written:
            unknown = "certificate status is unknown" in cp.stderr
            return Outcome("unknown" if unknown else "refuse", detail=cp.stderr)
        return Outcome("error", detail=f"rc {cp.returncode}, written {written}: {cp.stderr}")

    with ThreadPoolExecutor(4) as pool:
        return dict(zip((c.name for c in corpus.cases), pool.map(one, corpus.cases)))


# --------------------------------------------------------------------------- ocsp-check

def check(corpus: Corpus, work: Path) -> Dict[str, Outcome]:
    """The stored staple beside its certificate (HAProxy's X.ocsp convention), all in one run."""
    certs = _tree(work, corpus.cases)
    staples = []
    for path, c in certs.items():
        Path(path + ".ocsp").write_bytes(c.der)
        staples.append(path + ".ocsp")
    cp = subprocess.run([str(BIN / "ocsp-check"), "--json", "-t", "300", *staples], capture_output=True,
                        text=True, env=ENV, timeout=120)
    reports = [json.loads(line) for line in cp.stdout.splitlines()]
    assert len(reports) == len(staples), cp.stderr
    out = {}
    for path, report in zip(certs, reports):
        assert report["path"] == path + ".ocsp"
        out[certs[path].name] = Outcome(classify(report), parse_iso(report.get("valid_until")),
                                        parse_iso(report.get("renewal_due")),
                                        "; ".join(report["messages"]))
    return out


# --------------------------------------------------------------------------- ocsp-renew-dir

def _renew_verdict(action: str, detail: str, staple_written: bool) -> str:
    if action == "renewed" and staple_written:
        return "good"
    if action == "revoked" and not staple_written:
        return "revoked"
    if action == "failed" and not staple_written:
        return "unknown" if " says unknown" in detail else "refuse"
    return "error"


def renew_dir(corpus: Corpus, work: Path) -> Dict[str, Outcome]:
    out: Dict[str, Outcome] = {}
    for alg, cases in _by_hash(corpus).items():
        tree = work / alg
        certs = _tree(tree, cases)
        args = [str(BIN / "ocsp-renew-dir"), "-r", "-v", "--hash", alg, "--state",
                str(work / f"state-{alg}.json")]
        cp = subprocess.run([*args, str(tree)], capture_output=True, text=True, env=ENV, timeout=120)
        seen = {}
        for line in cp.stdout.splitlines():
            action, cert, staple, detail = line.split("\t")
            seen[cert] = (action, detail, Path(staple).exists())
        # a second, dry run: the fresh staples' renewal instants as the planner states them
        dry = subprocess.run([*args, "-n", str(tree)], capture_output=True, text=True, env=ENV,
                             timeout=120)
        fresh = {cert: detail for action, cert, _, detail in
                 (line.split("\t") for line in dry.stdout.splitlines()) if action == "fresh"}
        for cert, c in certs.items():
            if cert not in seen:
                out[c.name] = Outcome("error", detail=f"no line for it: {cp.stdout}{cp.stderr}")
                continue
            action, detail, written = seen[cert]
            verdict = _renew_verdict(action, detail, written)
            times = _times(detail)
            if verdict == "good" and _times(fresh.get(cert, "")) != times:
                verdict, detail = "error", f"-n says {fresh.get(cert)!r}, the run said {detail!r}"
            out[c.name] = Outcome(verdict, detail=detail, **times)
    return out


# --------------------------------------------------------------------------- --watch

def _watch_one(tree: Path, state: Path, alg: str, certs: Dict[str, Case]) -> Dict[str, Outcome]:
    proc = subprocess.Popen([str(BIN / "ocsp-renew-dir"), "--watch", "-r", "--log-format", "json",
                             "--hash", alg, "--state", str(state), str(tree)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    events: Dict[str, dict] = {}
    lines: List[str] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") in ("renewed", "failed", "revoked") and ev.get("cert") in certs:
                events.setdefault(ev["cert"], ev)
                if len(events) == len(certs):
                    done.set()
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    done.wait(90)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(5)
    out = {}
    for cert, c in certs.items():
        ev = events.get(cert)
        if ev is None:
            out[c.name] = Outcome("error", detail="no event: " + "".join(lines[-20:]))
            continue
        kind, status = ev["event"], ev.get("status")
        verdict = {"renewed": "good", "revoked": "revoked"}.get(
            kind, "unknown" if status == "unknown" else "refuse")
        times = _times(ev.get("detail", "")) if kind == "renewed" else {}
        if kind == "renewed" and parse_iso(ev.get("valid_until")) != times.get("valid_until"):
            verdict = "error"
        out[c.name] = Outcome(verdict, detail=ev.get("detail", ""), scheduled=parse_iso(ev.get("next")),
                              **times)
    return out


def watch(corpus: Corpus, work: Path) -> Dict[str, Outcome]:
    out: Dict[str, Outcome] = {}
    jobs = []
    for alg, cases in _by_hash(corpus).items():
        tree = work / alg
        jobs.append((tree, work / f"state-{alg}.json", alg, _tree(tree, cases)))
    with ThreadPoolExecutor(len(jobs)) as pool:
        for part in pool.map(lambda j: _watch_one(*j), jobs):
            out.update(part)
    return out


# --------------------------------------------------------------------------- ocsp-proxy

def _request(c: Case) -> bytes:
    leaf = x509.load_pem_x509_certificate(c.leaf.read_bytes())
    issuer = x509.load_pem_x509_certificate(c.issuer.read_bytes())
    alg = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256()}[c.hash_alg]
    req = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, alg).build()
    return req.public_bytes(serialization.Encoding.DER)


def proxy(corpus: Corpus, work: Path) -> Dict[str, Outcome]:
    """One ``ocsp-proxy serve`` trusting the corpus's issuers (--allow-from a tree of every
    case); each case asked once, Apache-style (absolute URI of the case's responder)."""
    import test_proxy_support as support
    allow = work / "certs"
    for c in corpus.cases:
        (allow / c.name).mkdir(parents=True)
        shutil.copy(c.fullchain, allow / c.name / "fullchain.pem")
    cache = f"sqlite:///{work}/cache.sqlite"
    out: Dict[str, Outcome] = {}
    with support.ProxyProc("--allow-from", str(allow), cache=cache) as p:
        for c in corpus.cases:
            before = p.metrics()
            status, headers, body = p.post(_request(c), target=corpus.url(c))
            after = p.metrics()
            kinds = [k for k in after if k.startswith("ocsp_proxy_upstream_errors_total{")
                     and after[k] > before.get(k, 0)]
            cached = status == 200 and "max-age" in headers.get("cache-control", "")
            if cached and body == c.der:
                said = [r for r in ocsp.load_der_ocsp_response(body).responses
                        if r.serial_number == c.serial]
                verdict = said[0].certificate_status.name.lower() if said else "error"
                date = parsedate_to_datetime(headers["date"])
                max_age = int(re.search(r"max-age=(\d+)", headers["cache-control"])[1])
                out[c.name] = Outcome(verdict, parsedate_to_datetime(headers["expires"]),
                                      detail=headers["cache-control"],
                                      max_age_end=date + _seconds(max_age))
            elif not cached and any("kind=unknown" in k for k in kinds):
                out[c.name] = Outcome("unknown", detail=", ".join(kinds))
            elif not cached:
                out[c.name] = Outcome("refuse", detail=", ".join(kinds) or f"HTTP {status}")
            else:
                out[c.name] = Outcome("error", detail=f"HTTP {status} {headers}")
    listing = subprocess.run([str(BIN / "ocsp-proxy"), "stats", "--list", "--cache", cache],
                             capture_output=True, text=True, env=ENV, timeout=60)
    by_serial = {c.serial: c.name for c in corpus.cases}
    for line in listing.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "refresh" not in fields:
            continue
        name = by_serial.get(int(line.split()[0], 16))
        if name is None or out[name].verdict not in ("good", "revoked"):
            continue
        o = out[name]
        until = parse_iso(fields["valid-until"])
        out[name] = Outcome(o.verdict if until == o.valid_until else "error", until,
                            parse_iso(fields["refresh"]) if o.verdict == "good" else None,
                            o.detail + " | " + line, max_age_end=o.max_age_end)
    return out


def _seconds(n: int) -> timedelta:
    return timedelta(seconds=n)


# --------------------------------------------------------------------------- Stapler

def stapler(corpus: Corpus, work: Path) -> Dict[str, Outcome]:
    from ocsptools.stapler import REVOKED, STAPLED, Schedule, Stapler
    out: Dict[str, Outcome] = {}
    for alg, cases in _by_hash(corpus).items():
        with Stapler(None, hash_alg=alg, schedule=Schedule(jitter=0.0), logger=QUIET) as st:
            names = {st.add(c.fullchain, name=c.name).name: c for c in cases}
            st.refresh_due()
            for s in st.status():
                c = names[s.name]
                if s.state == STAPLED:
                    out[c.name] = Outcome("good", s.valid_until, s.next_refresh, s.last_error)
                elif s.state == REVOKED:
                    out[c.name] = Outcome("revoked", detail=s.last_error)
                else:
                    out[c.name] = Outcome("unknown" if s.answered == "unknown" else "refuse",
                                          detail=f"{s.state}: {s.last_error}")
    return out


#: The Stapler logs every refused case; its status() says the same.
QUIET = logging.getLogger("conformance.stapler")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False

CONSUMERS = {"ocsp-fetch": fetch, "ocsp-check": check, "ocsp-renew-dir": renew_dir,
             "--watch": watch, "ocsp-proxy": proxy, "Stapler": stapler}


def run_all(corpus: Corpus, work: Path, names: Sequence[str] = tuple(CONSUMERS)) -> Dict[str, Dict[str, Outcome]]:
    """Every consumer's outcomes, the slow ones in parallel (they touch separate directories)."""
    with ThreadPoolExecutor(3) as pool:
        work.mkdir(parents=True, exist_ok=True)
        futures = {n: pool.submit(CONSUMERS[n], corpus, work / n.strip("-")) for n in names}
        return {n: f.result() for n, f in futures.items()}
