#!/usr/bin/env python3
"""ocsp-renew-dir against the floor of its design and against ocspbot 0.9.3, side by side.

* The PKI: the test PKI's intermediate signs N leaves in ONE `openssl ca -infiles` run
  (same CSR, distinct serials), all recorded in the index of a local `openssl ocsp -multi 4`
  responder on 127.0.0.1 (delegated signer, 1-day responses).
* floor: `xargs -P4` of `openssl ocsp -issuer I -cert C -url U -respout C.ocsp` (no verification
  at all, system bundle hidden): one openssl per certificate and nothing else.
* floor + verification: the floor, then a second `xargs -P4` that has openssl verify each answer
  it wrote (`openssl ocsp -respin C.ocsp -issuer I -cert C -CAfile I -partial_chain`, no text
  dump): the least any design that checks every response with openssl spends, since one
  `openssl ocsp` process verifies one response and cannot fetch by GET.
* ocsp-renew-dir -j 4: first run (no staples, no state cache) and no-op run.
* ocspbot 0.9.3 from PyPI in its own virtualenv (bench-run/ocspbot-venv), parallel_threads 4,
  system bundle hidden (its fastest working setting), first run and no-op run.
* A no-op run of ocsp-renew-dir over 10,000 certificates (10 copies of the tree), checked to
  spawn no openssl at all (an --openssl wrapper logs every call).

Medians of RUNS runs, wall time and peak RSS of the process tree's largest member (wait4).
Only loopback is contacted.  Environment: BENCH_N (default 1000), BENCH_RUNS (default 5, at
least 3).  The floor, floor + verification and ocsp-renew-dir first runs alternate so all
meet the same load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

import pki as pkimod  # noqa: E402
from common import median, timed, write_section  # noqa: E402

N = int(os.environ.get("BENCH_N", "1000"))
RUNS = max(3, int(os.environ.get("BENCH_RUNS", "5")))
BIG = 10_000
WORK = ROOT / "bench-run" / "renew"
VENV = ROOT / "bench-run" / "ocspbot-venv"
PY = Path(sys.executable)
RENEW = str(PY.parent / "ocsp-renew-dir")
FAST_ENV = dict(pkimod.openssl_env())


def sh(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(map(str, args)), check=True, capture_output=True, **kw)


def make_leaves(p: pkimod.PKI, url: str, n: int, out: Path) -> list[Path]:
    """N leaves from one CSR in one `openssl ca` run; index.txt is openssl ca's own database."""
    ca = WORK / "ca"
    shutil.rmtree(ca, ignore_errors=True)
    (ca / "new").mkdir(parents=True)
    (ca / "serial").write_text("1000\n")
    # keep the PKI's own rows (the responder certificates must stay known)
    shutil.copy(p.index, ca / "index.txt")
    (ca / "index.txt.attr").write_text("unique_subject = no\n")
    (ca / "ca.cnf").write_text(f"""\
[ca]
default_ca = b
[b]
database = {ca / 'index.txt'}
new_certs_dir = {ca / 'new'}
serial = {ca / 'serial'}
default_md = sha256
default_days = 90
policy = pol
unique_subject = no
email_in_dn = no
x509_extensions = ext
[pol]
commonName = supplied
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
authorityInfoAccess = OCSP;URI:{url}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
""")
    key = ca / "leaf.key"
    csr = ca / "leaf.csr"
    pkimod.openssl("req", "-config", p.cnf, "-new", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:P-256", "-noenc", "-keyout", key, "-out", csr,
                   "-subj", "/O=ocsptools bench/CN=bench.example")
    pkimod.openssl("ca", "-batch", "-config", ca / "ca.cnf", "-cert", p.inter_cert, "-keyfile",
                   p.inter_key, "-notext", "-out", ca / "all.pem", "-infiles", *([csr] * n),
                   timeout=600)
    certs = sorted((ca / "new").glob("*.pem"))
    assert len(certs) == n, len(certs)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    inter = Path(p.inter_cert).read_text()
    paths = []
    for i, c in enumerate(certs):
        dest = out / f"c{i:05}.pem"
        dest.write_text(c.read_text() + inter)
        paths.append(dest)
    return paths, ca / "index.txt"


def clear(tree: Path, *extra: Path) -> None:
    for s in tree.rglob("*.ocsp"):
        s.unlink()
    for s in tree.rglob("*.ocsp-resp*"):
        s.unlink()
    for e in extra:
        if e.exists():
            e.unlink()


def measure(label: str, argv, prepare=None, check=None, runs=RUNS, **kw):
    walls, rss = [], []
    for _ in range(runs):
        if prepare:
            prepare()
        wall, peak, res = timed(argv, **kw)
        if check:
            check(res)
        walls.append(wall)
        rss.append(peak)
    row = (label, median(walls), median(rss) / 1024.0, walls)
    print(f"  {label}: {row[1]:.2f} s, {row[2]:.0f} MB ({', '.join(f'{w:.2f}' for w in walls)})",
          flush=True)
    return row


def per_run(base_runs, runs) -> str:
    """The ratios of alternating single runs (RUNS[i] / BASE_RUNS[i]), sorted, as text."""
    return ", ".join(f"{r:.2f}x" for r in sorted(b[1] / a[1] for a, b in zip(base_runs, runs)))


def ocspbot_venv() -> Path | None:
    bot = VENV / "bin" / "ocspbot"
    if bot.exists():
        return bot
    try:
        sh(sys.executable, "-m", "venv", VENV)
        sh(VENV / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check",
           "ocspbot==0.9.3", timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        print(f"  ocspbot could not be installed: {exc}", flush=True)
        return None
    return bot if bot.exists() else None


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    p = pkimod.build_pki(WORK / "pki", leaves=())
    port = pkimod.free_port()
    url = f"http://127.0.0.1:{port}/"
    tree = WORK / "tree"
    t0 = time.monotonic()
    leaves, index = make_leaves(p, url, N, tree)
    print(f"  {N} leaves in {time.monotonic() - t0:.1f} s", flush=True)
    rows = []
    state = WORK / "state.json"
    with pkimod.Responder(p, port=port, index=index, multi=4):
        # -- the floor ---------------------------------------------------------
        listing = "".join(f"{c}\n" for c in leaves).encode()
        lst = WORK / "list.txt"
        lst.write_bytes(listing)
        floor_argv = ["sh", "-c", f'xargs -P4 -I{{}} openssl ocsp -issuer "{p.inter_cert}" '
                      f'-cert {{}} -url {url} -no_nonce -noverify -respout {{}}.ocsp '
                      f'< "{lst}" > /dev/null 2>&1']

        def floor_check(res):
            assert len(list(tree.glob("*.ocsp"))) == N, "floor did not write every staple"

        verify_log = WORK / "verify.log"
        vfloor_argv = ["sh", "-c", floor_argv[2] + f' && xargs -P4 -I{{}} openssl ocsp -respin '
                       f'{{}}.ocsp -issuer "{p.inter_cert}" -sha1 -cert {{}} -CAfile '
                       f'"{p.inter_cert}" -partial_chain -no-CApath -no-CAstore -no_nonce '
                       f'< "{lst}" > /dev/null 2>> "{verify_log}"']

        def vfloor_prepare():
            clear(tree, verify_log)

        def vfloor_check(res):
            floor_check(res)
            ok = verify_log.read_text().count("Response verify OK")
            assert ok == N, f"floor + verification verified {ok} of {N} answers"

        # -- ocsp-renew-dir --------------------------------------------------
        def renew_check(res):
            assert res.returncode == 0, res.stderr.decode()[-500:]
            assert res.stdout.count(b"\nrenewed\t") + res.stdout.startswith(b"renewed\t") == N, \
                res.stdout[-500:]
        # floor and ocsp-renew-dir alternate, run by run, so both meet the same machine load
        floor_runs, vfloor_runs, first_runs = [], [], []
        for _ in range(RUNS):
            floor_runs.append(measure("floor: xargs -P4 openssl ocsp -respout (first run)",
                                      floor_argv, prepare=lambda: clear(tree), check=floor_check,
                                      env=FAST_ENV, runs=1))
            vfloor_runs.append(measure("floor + verification: then xargs -P4 openssl ocsp "
                                       "-respin (first run)", vfloor_argv,
                                       prepare=vfloor_prepare, check=vfloor_check,
                                       env=FAST_ENV, runs=1))
            first_runs.append(measure("ocsp-renew-dir -j 4 (first run)",
                                      [RENEW, "-j", "4", "--state", state, tree],
                                      prepare=lambda: clear(tree, state), check=renew_check, runs=1))

        def merged(runs):
            walls = [w for r in runs for w in r[3]]
            return (runs[0][0], median(walls), median([r[2] for r in runs]), walls)
        rows.append(merged(floor_runs))
        vfloor = merged(vfloor_runs)
        rows.append(vfloor)
        first = merged(first_runs)
        rows.append(first)
        ratios = per_run(floor_runs, first_runs)
        vratios = per_run(floor_runs, vfloor_runs)
        own = per_run(vfloor_runs, first_runs)

        def noop_check(res):
            assert res.returncode == 0 and res.stdout == b"", res.stdout[-300:]
        rows.append(measure(f"ocsp-renew-dir (no-op, {N})", [RENEW, "--state", state, tree],
                            check=noop_check))

        # -- ocspbot 0.9.3 ---------------------------------------------------
        bot = ocspbot_venv()
        bot_rows = []
        bot_status: dict = {}
        if bot is not None:
            rootchain = WORK / "rootchain.pem"
            rootchain.write_text(Path(p.inter_cert).read_text() + Path(p.root_cert).read_text())
            responses = WORK / "ocspbot-responses"
            responses.mkdir(exist_ok=True)
            doms = "".join(f"  d{i:05}:\n    cert: {c}\n    chain: {p.inter_cert}\n"
                           f"    rootchain: {rootchain}\n    ocsp: d{i:05}.ocsp-resp\n"
                           for i, c in enumerate(leaves))

            def bot_config(threads: int) -> Path:
                cfg = WORK / f"ocspbot-{threads}.yaml"
                cfg.write_text(f"minimum_validity_percentage: 50\nocsp_folder: {responses}\n"
                               f"parallel_threads: {threads}\ndomains:\n{doms}")
                return cfg

            def bot_clear():
                for f in responses.iterdir():
                    f.unlink()

            def bot_check(res):
                n = len(list(responses.glob("*.ocsp-resp")))
                assert n == N, f"ocspbot wrote {n} of {N}: {res.stderr.decode()[-300:]}"
            # its fastest setting (4 threads: every staple written, but a wrong exit status)
            # and its one that exits correctly (1 thread), both measured
            for threads in (4, 1):
                cfg = bot_config(threads)
                bot_rows.append(measure(f"ocspbot 0.9.3, parallel_threads {threads} (first run)",
                                        [bot, cfg], prepare=bot_clear, check=bot_check,
                                        env=FAST_ENV))
                bot_rows.append(measure(f"ocspbot 0.9.3, parallel_threads {threads} (no-op, {N})",
                                        [bot, cfg], check=bot_check, env=FAST_ENV))
                bot_status[threads] = subprocess.run([str(bot), str(cfg)], capture_output=True,
                                                     env=FAST_ENV).returncode
        rows += bot_rows

        # -- 10,000 certificates, nothing to do --------------------------------
        big = WORK / "big"
        shutil.rmtree(big, ignore_errors=True)
        copies = max(1, BIG // N)
        for k in range(copies):
            shutil.copytree(tree, big / f"part{k:02}", ignore=shutil.ignore_patterns("*.ocsp"))
        big_state = WORK / "big-state.json"
        wall, _, res = timed([RENEW, "-j", "4", "-r", "--state", big_state, big])
        assert res.returncode == 0, res.stderr[-300:]
        print(f"  first run over {copies * N}: {wall:.1f} s", flush=True)
        log = WORK / "openssl-calls.log"
        wrapper = WORK / "openssl-logged"
        wrapper.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec openssl "$@"\n')
        wrapper.chmod(0o755)
        rows.append(measure(f"ocsp-renew-dir (no-op, {copies * N})",
                            [RENEW, "-r", "--openssl", wrapper, "--state", big_state, big],
                            check=noop_check))
        spawned = len(log.read_text().split()) if log.exists() else 0
        assert spawned == 0, f"the no-op run spawned {spawned} openssl processes"

    floor = rows[0][1]
    md = [f"## ocsp-renew-dir ({N} certificates, -j 4, 2 cores; medians of {RUNS} runs)", "",
          "| run | wall (s) | peak RSS (MB) | vs floor |", "|---|---|---|---|"]
    for label, wall, rss, _ in rows:
        ratio = f"{wall / floor:.2f}x" if "first run" in label else ""
        md.append(f"| {label} | {wall:.2f} | {rss:.0f} | {ratio} |")
    md += ["", f"- Targets: first run within 1.5x the floor: **{first[1] / floor:.2f}x** "
               f"({'met' if first[1] <= 1.5 * floor else 'missed'}; per alternating pair "
               f"{ratios}); no-op over "
               f"{copies * N} certificates under 1 s and 100 MB: **{rows[-1][1]:.2f} s, "
               f"{rows[-1][2]:.0f} MB** ({'met' if rows[-1][1] < 1 and rows[-1][2] < 100 else 'missed'}), "
               f"openssl processes spawned by it: {spawned}."]
    check_share = vfloor[1] / floor - 1
    md.append(f"- Verification: the floor followed by openssl's check of each answer takes "
              f"**{vfloor[1] / floor:.2f}x** the floor (per pair "
              f"{vratios}): checking 1 response per openssl run "
              f"costs {check_share:.2f}x the floor by itself, which leaves "
              f"{max(0.0, 1.5 - check_share):.2f}x of the 1.5x target for fetching, writing and "
              f"start-up. ocsp-renew-dir's first run against floor + verification: "
              f"**{first[1] / vfloor[1]:.2f}x** (per triple {own}).")
    if bot_rows:
        md.append(f"- ocspbot 0.9.3 with parallel_threads > 1 exits with status {bot_status[4]} "
                  f"(-3: its threaded path returns a bool where a tuple is unpacked) even "
                  f"though every staple was written; with parallel_threads 1 (exit status "
                  f"{bot_status[1]}) it is single-threaded.")
    else:
        md.append("- ocspbot 0.9.3 could not be installed from PyPI on this machine: not measured.")
    md.append("- The floor verifies nothing (`-noverify`) and writes with `-respout`; "
              "ocsp-renew-dir verifies every response strictly and writes atomically.")
    text = "\n".join(md)
    print(text)
    write_section("renew", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
