#!/usr/bin/env python3
"""`make demo`: a throwaway CA and a real `openssl ocsp` responder on 127.0.0.1, and the tools end to end.

Everything lives in ./demo-run/ (recreated on each run); the responder is
stopped at the end, whatever happens.  Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import pki as pkimod  # noqa: E402

BIN = Path(sys.executable).parent
RUN = ROOT / "demo-run"
#: Steps whose exit status was not the one the demo shows off (printed again at the end).
MISMATCHES: list = []


def show(*argv, expect=0, want=None, stdin=None, pipe_to=None, cwd=RUN):
    """Print a command as the user would type it, run it, print what it said.

    EXPECT is the exit status this step must have (for a pipe: both commands);
    a different one is recorded in MISMATCHES and makes the demo fail, as does output that
    lacks WANT (for openssl, whose exit status does not tell a failed verification)."""
    shown = " ".join(shlex.quote(str(a)) for a in argv)
    if pipe_to:
        shown += " | " + " ".join(shlex.quote(str(a)) for a in pipe_to)
    print(f"\n$ {shown}")
    exe = lambda a: [str(BIN / a[0]) if (BIN / a[0]).exists() else a[0], *map(str, a[1:])]
    if pipe_to:
        first = subprocess.Popen(exe(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
        second = subprocess.run(exe(pipe_to), stdin=first.stdout, capture_output=True, cwd=cwd)
        first.stdout.close()
        err1 = first.stderr.read()
        first_rc = first.wait()
        out, err = second.stdout, err1 + second.stderr
        rc = second.returncode
        if first_rc != expect:
            MISMATCHES.append(f"{shown}: {argv[0]} exited {first_rc}, expected {expect}")
    else:
        res = subprocess.run(exe(argv), input=stdin, capture_output=True, cwd=cwd)
        out, err, rc = res.stdout, res.stderr, res.returncode
    for blob in (out, err):
        text = blob.decode("utf-8", "replace").rstrip()
        if text and blob[:1] != b"\x30":
            print(text)
        elif blob:
            print(f"[{len(blob)} bytes of DER]")
    print(f"[exit status {rc}]")
    if rc != expect:
        MISMATCHES.append(f"{shown}: exited {rc}, expected {expect}")
        print(f"   !! expected exit status {expect}")
    if want is not None and want.encode() not in out + err:
        MISMATCHES.append(f"{shown}: the output lacks {want!r}")
        print(f"   !! expected {want!r} in the output")
    return rc


def have(command: str) -> bool:
    """Is this ocsptools command implemented in this checkout?"""
    import importlib.util
    module = "ocsptools.cli." + command[len("ocsp-"):].replace("-", "_")
    return importlib.util.find_spec(module) is not None


def main() -> int:
    shutil.rmtree(RUN, ignore_errors=True)
    RUN.mkdir()
    print("== Building a throwaway PKI in demo-run/pki: root, intermediate, delegated OCSP signer,")
    print("   leaves good1, good2, revoked1 (revoked), nourl (no OCSP URL)")
    pki = pkimod.build_pki(RUN / "pki")
    pki.make_leaf("nourl", ocsp_urls=[])
    certs = RUN / "certs"
    certs.mkdir()
    for name in ("good1", "good2", "revoked1", "nourl"):
        shutil.copy(pki.leaves[name].fullchain, certs / f"{name}.pem")
    print(f"== Starting `openssl ocsp -index ... -port {pki.port}` (answers on {pki.ocsp_url})")
    responder = pkimod.Responder(pki, ndays=2)
    responder.start()
    try:
        print("\n== ocsp-fetch: fetch, verify and write a staple (HAProxy/lighttpd layout: <cert>.ocsp)")
        show("ocsp-fetch", "-v", "-o", "certs/good1.pem.ocsp", "certs/good1.pem")
        print("\n== the staple verifies with openssl itself, trusting only the root:")
        show("openssl", "ocsp", "-respin", "certs/good1.pem.ocsp", "-issuer", pki.inter_cert,
             "-cert", pki.leaves["good1"].cert, "-CAfile", pki.root_cert, "-no_nonce",
             want="Response verify OK")
        print("\n== fetching again changes nothing: the installed staple is as recent")
        show("ocsp-fetch", "-o", "certs/good1.pem.ocsp", "certs/good1.pem")
        print("\n== a pipe: DER on stdout, base64 for HAProxy's `set ssl ocsp-response`")
        show("ocsp-fetch", "-q", "--format", "base64", "certs/good2.pem")
        if have("ocsp-check"):
            print("\n== ocsp-check: the Nagios-style freshness check")
            show("ocsp-check", "--cert", "certs/good1.pem", "certs/good1.pem.ocsp")
            show("ocsp-fetch", "-q", "certs/good2.pem", pipe_to=("ocsp-check", "--cert", "certs/good2.pem", "-"))
        print("\n== a revoked certificate: exit 4, nothing written")
        show("ocsp-fetch", "-o", "certs/revoked1.pem.ocsp", "certs/revoked1.pem", expect=4)
        print("\n== a certificate without OCSP URL (normal since 2025): exit 3, not applicable")
        show("ocsp-fetch", "-o", "certs/nourl.pem.ocsp", "certs/nourl.pem", expect=3)
        if have("ocsp-renew-dir"):
            tree = RUN / "tree"
            tree.mkdir()
            for name in ("good1", "good2", "nourl"):
                shutil.copy(pki.leaves[name].fullchain, tree / f"{name}.pem")
            print("\n== ocsp-renew-dir: renew a whole tree (TSV: ACTION CERT STAPLE DETAIL);")
            print("   the certificate without OCSP URL is skipped quietly")
            show("ocsp-renew-dir", "--state", "state.json", "tree")
            print("\n== a second run has nothing to do and prints nothing (cron mails only on news)")
            show("ocsp-renew-dir", "--state", "state.json", "tree")
            print("\n== -v shows why; a revoked certificate is reported on every run (exit 1)")
            show("ocsp-renew-dir", "--state", "state.json", "-v", "tree")
            shutil.copy(pki.leaves["revoked1"].fullchain, tree / "revoked1.pem")
            show("ocsp-renew-dir", "--state", "state.json", "tree", expect=1)
        print("\n== the responder goes down: the fetch fails (exit 1) and the installed staple is untouched")
        before = (certs / "good1.pem.ocsp").read_bytes()
        responder.stop()
        show("ocsp-fetch", "--timeout", "3", "-o", "certs/good1.pem.ocsp", "certs/good1.pem", expect=1)
        same = (certs / "good1.pem.ocsp").read_bytes() == before
        print(f"   installed staple byte-identical: {same}")
        if not same:
            MISMATCHES.append("the installed staple changed although the fetch failed")
        if have("ocsp-check"):
            show("ocsp-check", "--cert", "certs/good1.pem", "certs/good1.pem.ocsp")
        if MISMATCHES:
            sys.stdout.flush()
            print(f"\nDemo FAILED: {len(MISMATCHES)} step(s) did not behave as shown:", file=sys.stderr)
            for line in MISMATCHES:
                print(f"  demo: {line}", file=sys.stderr)
            return 1
        print("\nDemo finished, every step as expected; everything is in demo-run/ (delete it at will).")
        return 0
    finally:
        responder.stop()


if __name__ == "__main__":
    sys.exit(main())
