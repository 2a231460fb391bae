#!/usr/bin/env python3
"""`make demo`: a throwaway CA and a real `openssl ocsp` responder on 127.0.0.1, and the tools end to end.

Usage: scripts/demo.py [--dir DIR]      (default: ./demo-run/, recreated on each run)

Each step prints the command as a user would type it, runs it, prints what it said, and then
checks everything the demo claims about it: its exit status and the output or files that prove
the claim, one "ok:" line each.  A claim that does not hold prints "FAILED:" under its step; the
demo then ends with one line per failed claim on stderr, naming the step, and exit status 1.

The responder is stopped at the end, whatever happens.  Only 127.0.0.1 is contacted (proxy
variables are removed from the commands' environment).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import pki as pkimod  # noqa: E402

BIN = Path(sys.executable).parent
DEFAULT_RUN = ROOT / "demo-run"
#: A command that runs longer than this fails its step.
STEP_TIMEOUT = 60
#: What ocsp-fetch appends to its summary when the installed staple is as recent as the answer.
UNCHANGED = "(unchanged: the installed staple is as recent)"
_PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
               "no_proxy", "NO_PROXY")


# --------------------------------------------------------------------------- #
# running a step and checking its claims
# --------------------------------------------------------------------------- #

@dataclass
class Result:
    """What a step's command did: each command's exit status (two for a pipe), both streams."""
    shown: str
    rcs: Tuple[Optional[int], ...]
    out: bytes
    err: bytes

    @property
    def text(self) -> str:
        return (self.out + self.err).decode("utf-8", "replace")


@dataclass
class Claim:
    """One thing the demo says about a step.  BEFORE (optional) runs before the command, to take
    a snapshot; CHECK runs after it and returns None when the claim holds, else why not."""
    text: str
    check: Callable[[Result], Optional[str]]
    before: Optional[Callable[[], None]] = None


def exit_status(*expected: int) -> Claim:
    def check(res: Result) -> Optional[str]:
        if res.rcs != expected:
            return "exited " + " | ".join("(timed out)" if rc is None else str(rc) for rc in res.rcs)
        return None
    text = (f"exit status {expected[0]}" if len(expected) == 1
            else "exit status " + " | ".join(map(str, expected)) + " (each command of the pipe)")
    return Claim(text, check)


def says(text: str, stream: str = "output") -> Claim:
    """The output (or only STREAM: stdout, stderr) contains TEXT."""
    def check(res: Result) -> Optional[str]:
        blob = {"stdout": res.out, "stderr": res.err}.get(stream, res.out + res.err)
        return None if text.encode() in blob else f"{text!r} is not in its {stream}"
    return Claim(f"its {stream} says {text!r}", check)


def does_not_say(text: str) -> Claim:
    def check(res: Result) -> Optional[str]:
        return None if text.encode() not in res.out + res.err else f"it says {text!r}"
    return Claim(f"it does not say {text!r}", check)


def silent(stream: Optional[str] = None) -> Claim:
    """Nothing at all on STREAM (default: on either stream)."""
    def check(res: Result) -> Optional[str]:
        blobs = {"stdout": res.out, "stderr": res.err}
        said = [(name, blob) for name, blob in blobs.items() if stream in (None, name) and blob]
        if not said:
            return None
        return "; ".join(f"it printed {blob[:200]!r} on {name}" for name, blob in said)
    return Claim("it prints nothing" if stream is None else f"nothing on {stream}", check)


def one_line_error() -> Claim:
    def check(res: Result) -> Optional[str]:
        lines = [line for line in res.err.decode("utf-8", "replace").splitlines() if line.strip()]
        return None if len(lines) == 1 else f"{len(lines)} lines on stderr"
    return Claim("the error is one line on stderr", check)


def _identity(path: Path) -> Optional[Tuple[bytes, int]]:
    try:
        return path.read_bytes(), path.stat().st_ino
    except FileNotFoundError:
        return None


def untouched(*paths: Path, root: Optional[Path] = None) -> Claim:
    """Each of PATHS has the same bytes and the same inode after the command (an atomic rewrite,
    even of identical bytes, would show as a new inode)."""
    snapshot: Dict[Path, Optional[Tuple[bytes, int]]] = {}

    def before() -> None:
        for path in paths:
            snapshot[path] = _identity(path)

    def check(res: Result) -> Optional[str]:
        why = []
        for path in paths:
            old, new = snapshot[path], _identity(path)
            if old is None:
                why.append(f"{_rel(path, root)} did not exist before")
            elif new is None:
                why.append(f"{_rel(path, root)} is gone")
            elif new[0] != old[0]:
                why.append(f"{_rel(path, root)} changed ({len(old[0])} -> {len(new[0])} bytes, other content)")
            elif new[1] != old[1]:
                why.append(f"{_rel(path, root)} was rewritten (same bytes, new inode)")
        return "; ".join(why) or None
    names = ", ".join(_rel(p, root) for p in paths)
    return Claim(f"{names}: byte-identical, not rewritten (same inode)", check, before)


def written(path: Path, root: Optional[Path] = None) -> Claim:
    """PATH did not exist before and now holds a DER OCSP response."""
    existed: List[bool] = []

    def before() -> None:
        existed.append(path.exists())

    def check(res: Result) -> Optional[str]:
        if existed and existed[0]:
            return f"{_rel(path, root)} existed before the command"
        if not path.exists():
            return f"{_rel(path, root)} was not written"
        data = path.read_bytes()
        return None if data[:1] == b"\x30" else f"{_rel(path, root)} is not DER ({data[:16]!r})"
    return Claim(f"{_rel(path, root)} written, DER", check, before)


def nothing_written(directory: Path, *absent: Path, root: Optional[Path] = None) -> Claim:
    """DIRECTORY holds the same names after the command (no staple, no temporary file left)
    and none of ABSENT exists."""
    listing: List[List[str]] = []

    def before() -> None:
        listing.append(sorted(os.listdir(directory)))

    def check(res: Result) -> Optional[str]:
        now = sorted(os.listdir(directory))
        new = sorted(set(now) - set(listing[0]))
        there = [_rel(p, root) for p in absent if p.exists()]
        if new or there:
            return "new: " + ", ".join(new + [t for t in there if Path(t).name not in new])
        return None
    extra = f" (no {', '.join(_rel(p, root) for p in absent)})" if absent else ""
    return Claim(f"nothing written in {_rel(directory, root)}/{extra}", check, before)


def absent(*paths: Path, root: Optional[Path] = None) -> Claim:
    def check(res: Result) -> Optional[str]:
        there = [_rel(p, root) for p in paths if p.exists()]
        return "written: " + ", ".join(there) if there else None
    return Claim("no " + ", ".join(_rel(p, root) for p in paths), check)


def stdout_base64_der() -> Claim:
    def check(res: Result) -> Optional[str]:
        try:
            der = base64.b64decode(res.out.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            return f"stdout is not base64 ({exc})"
        return None if der[:1] == b"\x30" else "stdout decodes to something that is not DER"
    return Claim("stdout is base64 of a DER response", check)


def tsv(expected: Dict[str, str]) -> Claim:
    """ocsp-renew-dir's stdout is exactly one ACTION CERT STAPLE DETAIL line per entry of
    EXPECTED (cert -> action), nothing else."""
    def check(res: Result) -> Optional[str]:
        got: Dict[str, str] = {}
        for line in res.out.decode("utf-8", "replace").splitlines():
            fields = line.split("\t")
            if len(fields) != 4 or fields[1] in got:
                return f"unexpected line {line!r}"
            got[fields[1]] = fields[0]
        return None if got == expected else f"got {got or 'no lines'}"
    lines = ", ".join(f"{action} {cert}" for cert, action in expected.items())
    return Claim(f"stdout is exactly: {lines}", check)


def asked(server: "StaticResponder") -> Claim:
    count: List[int] = []

    def before() -> None:
        count.append(server.requests)

    def check(res: Result) -> Optional[str]:
        return None if server.requests > count[0] else f"{server.url} received no request"
    return Claim(f"it asked {server.url}", check, before)


def _rel(path: Path, root: Optional[Path]) -> str:
    if root is not None:
        try:
            return str(Path(path).relative_to(root))
        except ValueError:
            pass
    return str(path)


def child_env() -> Dict[str, str]:
    """The commands' environment: ours without proxy variables (only 127.0.0.1 is contacted)."""
    return {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}


def _exe(argv: Sequence[object]) -> List[str]:
    first = str(argv[0])
    return [str(BIN / first) if (BIN / first).exists() else first, *map(str, argv[1:])]


class Demo:
    """Runs numbered steps in DIR, checks each step's claims, remembers the failed ones."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.steps = 0
        self.failures: List[str] = []

    def step(self, title: str, argv: Sequence[object], *, expect: int = 0,
             claims: Sequence[Claim] = (), pipe_to: Optional[Sequence[object]] = None,
             stdin: Optional[bytes] = None) -> Result:
        """Print TITLE and the command, run it in DIR, print what it said, check the exit
        status (EXPECT, for a pipe: each command's) and every claim."""
        self.steps += 1
        number = self.steps
        print(f"\n== {number}. {title}")
        all_claims = [exit_status(*([expect] * (2 if pipe_to else 1))), *claims]
        for claim in all_claims:
            if claim.before is not None:
                claim.before()
        res = self._run(argv, pipe_to, stdin)
        print(f"$ {res.shown}")
        for blob in (res.out, res.err):
            text = blob.decode("utf-8", "replace").rstrip()
            if text and blob[:1] != b"\x30":
                print(text)
            elif blob:
                print(f"[{len(blob)} bytes of DER]")
        print("[exit status " + " | ".join("timed out" if rc is None else str(rc) for rc in res.rcs) + "]")
        for claim in all_claims:
            why = claim.check(res)
            if why is None:
                print(f"   ok: {claim.text}")
            else:
                print(f"   FAILED: {claim.text}: {why}")
                self.failures.append(f"step {number} ({title}): {claim.text}: {why}")
        return res

    def _run(self, argv: Sequence[object], pipe_to: Optional[Sequence[object]],
             stdin: Optional[bytes]) -> Result:
        shown = " ".join(shlex.quote(str(a)) for a in argv)
        env = child_env()
        if not pipe_to:
            try:
                done = subprocess.run(_exe(argv), input=stdin, capture_output=True, cwd=self.dir,
                                      env=env, timeout=STEP_TIMEOUT)
            except subprocess.TimeoutExpired as exc:
                return Result(shown, (None,), exc.stdout or b"", exc.stderr or b"")
            return Result(shown, (done.returncode,), done.stdout, done.stderr)
        shown += " | " + " ".join(shlex.quote(str(a)) for a in pipe_to)
        with tempfile.TemporaryFile() as err1:      # a file: the first command never blocks on it
            first = subprocess.Popen(_exe(argv), stdout=subprocess.PIPE, stderr=err1,
                                     cwd=self.dir, env=env)
            assert first.stdout is not None
            try:
                second = subprocess.run(_exe(pipe_to), stdin=first.stdout, capture_output=True,
                                        cwd=self.dir, env=env, timeout=STEP_TIMEOUT)
                rc2: Optional[int] = second.returncode
                out, err2 = second.stdout, second.stderr
            except subprocess.TimeoutExpired as exc:
                rc2, out, err2 = None, exc.stdout or b"", exc.stderr or b""
            first.stdout.close()
            try:
                rc1: Optional[int] = first.wait(timeout=STEP_TIMEOUT)
            except subprocess.TimeoutExpired:
                first.kill()
                first.wait()
                rc1 = None
            err1.seek(0)
            return Result(shown, (rc1, rc2), out, err1.read() + err2)

    def finish(self) -> int:
        """The demo's exit status: 1, after one line per failed claim on stderr, or 0."""
        sys.stdout.flush()
        if self.failures:
            for line in self.failures:
                print(f"demo: FAILED: {line}", file=sys.stderr)
            print(f"demo: {len(self.failures)} claim(s) of {self.steps} steps did not hold "
                  f"(the run is in {self.dir})", file=sys.stderr)
            return 1
        print(f"\nDemo finished: {self.steps} steps, every claim checked and true; "
              f"everything is in {self.dir} (delete it at will).")
        return 0


class StaticResponder:
    """A tiny static HTTP server on 127.0.0.1 that answers every OCSP request (GET or POST) with
    the same pre-produced bytes, as CAs serve responses produced in advance from CDNs."""

    def __init__(self, body: bytes):
        self.body = body
        self.requests = 0
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                responder.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(responder.body)))
                self.end_headers()
                self.wfile.write(responder.body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's names)
                self._answer()

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "StaticResponder":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def refetch_step(demo: Demo, url: str, cert: str = "certs/good1.pem",
                 server: Optional[StaticResponder] = None) -> Result:
    """The step "fetching again changes nothing": ocsp-fetch -u URL onto the installed staple."""
    staple = f"{cert}.ocsp"
    claims = [says(UNCHANGED, "stderr"), untouched(demo.dir / staple, root=demo.dir)]
    if server is not None:
        claims.insert(0, asked(server))
    return demo.step("fetching again changes nothing: the answer is the installed one, the staple "
                     "file is left alone",
                     ("ocsp-fetch", "-u", url, "-o", staple, cert), claims=claims)


# --------------------------------------------------------------------------- #
# the demo
# --------------------------------------------------------------------------- #

def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="ocsptools end to end on a throwaway CA")
    parser.add_argument("--dir", type=Path, default=DEFAULT_RUN,
                        help="where everything goes (recreated; default ./demo-run)")
    run = parser.parse_args(argv).dir.resolve()
    stage = f"building the throwaway PKI in {run}/pki"
    responder = None
    try:
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        demo = Demo(run)
        print(f"== Building a throwaway PKI in {run}/pki: root, intermediate, delegated OCSP signer,")
        print("   leaves good1, good2, revoked1 (revoked), nourl (no OCSP URL)")
        pki = pkimod.build_pki(run / "pki")
        pki.make_leaf("nourl", ocsp_urls=[])
        certs = run / "certs"
        certs.mkdir()
        for name in ("good1", "good2", "revoked1", "nourl"):
            shutil.copy(pki.leaves[name].fullchain, certs / f"{name}.pem")
        stage = f"starting `openssl ocsp` on port {pki.port}"
        print(f"== Starting `openssl ocsp -index ... -port {pki.port}` (answers on {pki.ocsp_url})")
        responder = pkimod.Responder(pki, ndays=2)
        responder.start()
        stage = "running the steps"
        steps(demo, pki, responder)
        return demo.finish()
    except Exception as exc:        # the demo's own failure: one line, like the tools
        print(f"demo: FAILED while {stage}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if responder is not None:
            responder.stop()


def steps(demo: Demo, pki: "pkimod.PKI", responder: "pkimod.Responder") -> None:
    run = demo.dir
    certs = run / "certs"
    good1 = run / "certs/good1.pem.ocsp"
    demo.step("ocsp-fetch: fetch, verify and write a staple (HAProxy/lighttpd layout: <cert>.ocsp)",
              ("ocsp-fetch", "-v", "-o", "certs/good1.pem.ocsp", "certs/good1.pem"),
              claims=[written(good1, run), says("certs/good1.pem: good", "stderr"),
                      says(f"answer from {pki.ocsp_url}", "stderr")])
    leaf = pki.leaves["good1"].cert
    demo.step("the staple verifies with openssl itself, trusting only the root",
              ("openssl", "ocsp", "-respin", "certs/good1.pem.ocsp", "-issuer", pki.inter_cert,
               "-cert", leaf, "-CAfile", pki.root_cert, "-no_nonce"),
              claims=[says("Response verify OK"), says(f"{leaf}: good")])

    print("\n== CAs serve pre-produced answers from CDNs: a static HTTP server on 127.0.0.1 now "
          "serves the very bytes just installed")
    with StaticResponder(good1.read_bytes()) as cdn:
        refetch_step(demo, cdn.url, server=cdn)

    demo.step("a pipe: DER on stdout, here base64 for HAProxy's `set ssl ocsp-response`",
              ("ocsp-fetch", "-q", "--format", "base64", "certs/good2.pem"),
              claims=[stdout_base64_der(), silent("stderr"), nothing_written(certs, root=run)])
    demo.step("ocsp-check: the Nagios-style freshness check, signature and CertID verified",
              ("ocsp-check", "--cert", "certs/good1.pem", "certs/good1.pem.ocsp"),
              claims=[says("OCSP OK - certs/good1.pem.ocsp: good", "stdout"), does_not_say("NOT verified")])
    demo.step("fetch and check without touching disk",
              ("ocsp-fetch", "-q", "certs/good2.pem"), pipe_to=("ocsp-check", "--cert", "certs/good2.pem", "-"),
              claims=[says("OCSP OK - standard input: good", "stdout"), does_not_say("NOT verified"),
                      nothing_written(certs, root=run)])
    demo.step("a revoked certificate: exit 4, one line saying so, nothing written",
              ("ocsp-fetch", "-o", "certs/revoked1.pem.ocsp", "certs/revoked1.pem"), expect=4,
              claims=[says("REVOKED", "stderr"), one_line_error(),
                      nothing_written(certs, certs / "revoked1.pem.ocsp", root=run)])
    demo.step("a certificate without OCSP URL (normal since 2025): exit 3, not applicable, nothing written",
              ("ocsp-fetch", "-o", "certs/nourl.pem.ocsp", "certs/nourl.pem"), expect=3,
              claims=[says("names no OCSP responder", "stderr"), one_line_error(),
                      nothing_written(certs, certs / "nourl.pem.ocsp", root=run)])

    tree = run / "tree"
    tree.mkdir()
    for name in ("good1", "good2", "nourl"):
        shutil.copy(pki.leaves[name].fullchain, tree / f"{name}.pem")
    staples = (tree / "good1.pem.ocsp", tree / "good2.pem.ocsp")
    renew = ("ocsp-renew-dir", "--state", "state.json")
    demo.step("ocsp-renew-dir renews a whole tree (TSV: ACTION CERT STAPLE DETAIL); the certificate "
              "without OCSP URL is skipped quietly", (*renew, "tree"),
              claims=[tsv({"tree/good1.pem": "renewed", "tree/good2.pem": "renewed"}), silent("stderr"),
                      *(written(s, run) for s in staples), absent(tree / "nourl.pem.ocsp", root=run)])
    demo.step("a second run has nothing to do and prints nothing (cron mails only on news)",
              (*renew, "tree"), claims=[silent(), untouched(*staples, root=run)])
    demo.step("-v shows why", (*renew, "-v", "tree"),
              claims=[tsv({"tree/good1.pem": "fresh", "tree/good2.pem": "fresh", "tree/nourl.pem": "skipped"}),
                      says("0 renewed", "stderr"), untouched(*staples, root=run)])
    shutil.copy(pki.leaves["revoked1"].fullchain, tree / "revoked1.pem")
    for when in ("a revoked certificate is reported (exit 1), nothing installed for it",
                 "... and reported again on the next run"):
        demo.step(when, (*renew, "tree"), expect=1,
                  claims=[tsv({"tree/revoked1.pem": "revoked"}), untouched(*staples, root=run),
                          nothing_written(tree, tree / "revoked1.pem.ocsp", root=run)])

    print("\n== the responder goes down")
    responder.stop()
    demo.step("the fetch fails (exit 1, one line) and the installed staple is untouched",
              ("ocsp-fetch", "--timeout", "3", "-o", "certs/good1.pem.ocsp", "certs/good1.pem"), expect=1,
              claims=[one_line_error(), untouched(good1, root=run)])
    demo.step("the staple in place still serves: ocsp-check is OK",
              ("ocsp-check", "--cert", "certs/good1.pem", "certs/good1.pem.ocsp"),
              claims=[says("OCSP OK - certs/good1.pem.ocsp: good", "stdout")])


if __name__ == "__main__":
    sys.exit(main())
