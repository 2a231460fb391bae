#!/usr/bin/env python3
"""Soak of `ocsp-renew-dir --watch`: 1,000 certificates, 2-minute staples, 10 minutes.

Not part of the test suite (it takes the whole soak time); `make bench` runs it, or alone:

    .venv/bin/python bench/bench_watch.py [--minutes 10] [--certs 1000] [--idle 60]

* The PKI's intermediate signs N leaves in one `openssl ca` run (bench_renew's tree maker);
  a local `openssl ocsp -multi 4 -nmin 2` responder on 127.0.0.1 hands out 2-minute staples.
* The daemon runs with its real settings (1-minute backoff base, 50 % renew point, jitter,
  inotify, --prometheus-textfile, json log): it has to renew every staple about once a minute.
* A checker reads every staple file once a second (DER parsed in Python, no openssl) and
  counts any moment a staple on disk is past its nextUpdate (must be 0), keeping the smallest
  margin seen.
* The daemon's RSS (VmRSS) and CPU time (its own plus reaped openssl children) are sampled
  every 5 s; RSS is compared between the end of the warm-up (minute 2) and the end.
* Idle: the daemon is restarted over the same tree with 1-day staples (installed by a
  one-shot `-B` run), and its CPU time and context switches are measured over IDLE seconds
  in which nothing falls due.
* SIGTERM: time to exit, exit status.

Only loopback is contacted.  Environment: BENCH_WATCH_MINUTES, BENCH_WATCH_CERTS override
the defaults as the options do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

import pki as pkimod  # noqa: E402
import bench_renew  # noqa: E402
from common import write_section  # noqa: E402

WORK = ROOT / "bench-run" / "watch"
PY = Path(sys.executable)
RENEW = str(PY.parent / "ocsp-renew-dir")
TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds of PID, its own and its reaped children's (openssl runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + cutime + cstime) / TICKS


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def ctx_switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


class Checker(threading.Thread):
    """Every second: is any staple on disk past its nextUpdate?"""

    def __init__(self, staples: list[Path]) -> None:
        super().__init__(daemon=True)
        from cryptography.x509 import ocsp
        self.ocsp = ocsp
        self.staples = staples
        self.stop_flag = threading.Event()
        self.expired = 0
        self.missing = 0
        self.scans = 0
        self.min_margin = float("inf")
        self.examples: list[str] = []

    def run(self) -> None:
        while not self.stop_flag.wait(1.0):
            now = datetime.now(timezone.utc)
            for p in self.staples:
                try:
                    nu = self.ocsp.load_der_ocsp_response(p.read_bytes()).next_update_utc
                except (OSError, ValueError):
                    self.missing += 1
                    continue
                margin = (nu - now).total_seconds()
                self.min_margin = min(self.min_margin, margin)
                if margin <= 0:
                    self.expired += 1
                    if len(self.examples) < 5:
                        self.examples.append(f"{p.name} expired at {nu}")
            self.scans += 1


def start_daemon(tree: Path, state: Path, log: Path, prom: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("OCSPTOOLS_WATCH_BACKOFF_BASE", None)
    return subprocess.Popen([RENEW, "--watch", "--state", str(state), "--log-format", "json",
                             "--prometheus-textfile", str(prom), str(tree)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(log, "ab"), env=env)


def events(log: Path, kind: str) -> int:
    n = 0
    with open(log) as fh:
        for line in fh:
            if f'"event": "{kind}"' in line:
                n += 1
    return n


def stop(proc: subprocess.Popen) -> tuple[int, float]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(30)
    return rc, time.monotonic() - t0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("BENCH_WATCH_MINUTES", 10)))
    ap.add_argument("--certs", type=int, default=int(os.environ.get("BENCH_WATCH_CERTS", 1000)))
    ap.add_argument("--idle", type=float, default=60.0, help="idle measurement, seconds")
    args = ap.parse_args(argv)
    n = args.certs
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    bench_renew.WORK = WORK                     # its tree maker works under WORK/ca
    p = pkimod.build_pki(WORK / "pki", leaves=())
    port = pkimod.free_port()
    url = f"http://127.0.0.1:{port}/"
    tree = WORK / "tree"
    t0 = time.monotonic()
    leaves, index = bench_renew.make_leaves(p, url, n, tree)
    print(f"  {n} leaves in {time.monotonic() - t0:.1f} s", flush=True)
    staples = [Path(str(c) + ".ocsp") for c in leaves]
    state, log, prom = WORK / "state.json", WORK / "watch.log", WORK / "ocsp.prom"

    with pkimod.Responder(p, port=port, index=index, nmin=2, multi=4):
        daemon = start_daemon(tree, state, log, prom)
        t_start = time.monotonic()
        while not all(s.exists() for s in staples):
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        first_pass = time.monotonic() - t_start
        print(f"  first pass: {n} staples in {first_pass:.1f} s", flush=True)
        checker = Checker(staples)
        checker.start()
        samples = []                            # (t, rss MB, cpu s)
        soak = args.minutes * 60.0
        t_soak = time.monotonic()
        cpu0 = proc_cpu(daemon.pid)
        renewed0 = events(log, "renewed")
        while True:
            t = time.monotonic() - t_soak
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited during the soak: {log.read_text()[-2000:]}")
            samples.append((t, proc_rss_mb(daemon.pid), proc_cpu(daemon.pid) - cpu0))
            if t >= soak:
                break
            if len(samples) % 12 == 0:
                print(f"  {t / 60:.1f} min: RSS {samples[-1][1]:.1f} MB, "
                      f"{events(log, 'renewed')} renewals, expired seen {checker.expired}", flush=True)
            time.sleep(min(5.0, soak - t))
        checker.stop_flag.set()
        checker.join(5)
        renewed = events(log, "renewed") - renewed0
        failed = events(log, "failed")
        rc_soak, t_exit = stop(daemon)

        # idle: 1-day staples, nothing due for hours
    with pkimod.Responder(p, port=port, index=index, ndays=1, multi=4):
        res = subprocess.run([RENEW, "-B", "-j", "4", "--state", str(state), str(tree)],
                             capture_output=True, timeout=600)
        assert res.returncode == 0, res.stderr[-500:]
        daemon = start_daemon(tree, state, WORK / "idle.log", prom)
        time.sleep(10)                          # the start-up pass
        cpu_a, ctx_a = proc_cpu(daemon.pid), ctx_switches(daemon.pid)
        time.sleep(args.idle)
        cpu_b, ctx_b = proc_cpu(daemon.pid), ctx_switches(daemon.pid)
        idle_rss = proc_rss_mb(daemon.pid)
        rc_idle, t_exit_idle = stop(daemon)

    warm = [s for s in samples if s[0] >= min(120.0, soak / 5)]
    rss_warm, rss_end = warm[0][1], samples[-1][1]
    rss_max = max(s[1] for s in samples)
    span_min = (samples[-1][0] - warm[0][0]) / 60.0
    slope = (rss_end - rss_warm) / span_min if span_min > 0 else 0.0
    cpu_soak = samples[-1][2] / samples[-1][0] * 100.0
    idle_cpu = (cpu_b - cpu_a) / args.idle * 100.0
    idle_wakeups = (ctx_b - ctx_a) / args.idle * 60.0
    md = f"""\
## ocsp-renew-dir --watch soak

{n} certificates, 2-minute staples (`openssl ocsp -multi 4 -nmin 2` on 127.0.0.1), the daemon
with its real settings (renew at 50 % with up to 10 % of the remaining time earlier as jitter, 1-minute backoff base, inotify,
`--prometheus-textfile`, json log) for {args.minutes:g} minutes; every staple file checked once a
second. `bench/bench_watch.py` (not run by the test suite; `--minutes`, `--certs`).

| measure | value |
|---|---|
| first pass (no staples yet) | {first_pass:.1f} s for {n} staples |
| renewals during the soak (after the first pass) | {renewed} (one per staple every {soak / max(renewed / n, 1e-9) / 60:.2f} min on average); failures {failed} |
| staples seen past nextUpdate | **{checker.expired}** in {checker.scans} scans of {n} files (unreadable/missing: {checker.missing}) |
| smallest margin seen before nextUpdate | {checker.min_margin:.0f} s (of 120) |
| RSS after warm-up / at the end / peak | {rss_warm:.1f} / {rss_end:.1f} / {rss_max:.1f} MB ({slope:+.2f} MB/min) |
| CPU while renewing ~{n / 60:.0f} staples/s (daemon + its openssl runs) | {cpu_soak:.1f} % of one core |
| CPU idle (1-day staples, {args.idle:.0f} s) | {idle_cpu:.2f} % of one core, {idle_wakeups:.1f} context switches/min, RSS {idle_rss:.1f} MB |
| SIGTERM to exit (soak / idle) | {t_exit:.2f} s (status {rc_soak}) / {t_exit_idle:.2f} s (status {rc_idle}) |
"""
    if checker.examples:
        md += "\nExpired staples seen: " + "; ".join(checker.examples) + "\n"
    print(md, flush=True)
    write_section("watch", md)
    ok = checker.expired == 0 and rc_soak == 0 and rc_idle == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
