"""ocsp-renew-dir: make-style renewal of every staple under certificate trees."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import timedelta
from typing import IO, Dict, List, Optional, Sequence

from .. import config as configmod
from .. import discovery, haproxy, transport
from ..config import settings
from ..durations import parse_duration
from ..errors import (
    ConfigError,
    InputError,
    LockBusy,
    OpensslError,
    StoreError,
    UsageError,
)
from ..hooks import run_on_change
from ..openssl import HASHES, OpenSSL
from ..renewal import Driver
from ..renewal.held import Held
from ._common import (
    ArgumentParser,
    nonnegative_float,
    positive_float,
    run,
    utcnow,
    version_string,
)
from .renew_inputs import candidates, empty_inputs, run_options, state_path_for
from .renew_output import LazyFile, Printer
from .status import ExitStatus, ExitTable

PROG = "ocsp-renew-dir"

EXITS = ExitTable(codes=(
    (UsageError, ExitStatus.USAGE),
    (ConfigError, ExitStatus.USAGE),
    (InputError, ExitStatus.USAGE),
    (LockBusy, ExitStatus.USAGE),
    (StoreError, ExitStatus.FAILED),
    (OpensslError, ExitStatus.FAILED),
    (OSError, ExitStatus.FAILED),
), internal=ExitStatus.FAILED)

EPILOG = """\
output (stdout, tab-separated, one line per certificate acted on; nothing
when nothing happened):
  ACTION<TAB>CERT<TAB>STAPLE<TAB>DETAIL
  ACTION is renewed, failed, revoked, skipped, stale-staple; with -n
  would-renew; with -v also fresh.

exit status:
  0  every staple is up to date or was renewed (skips are not failures);
     with -q: everything is up to date
  1  at least one certificate failed or is revoked (its old staple is kept),
     or the --on-change command failed, or openssl is missing, fails or is
     not OpenSSL (one line, nothing written); with -q: something is due
  2  usage or configuration error, or another run holds the lock
  with --haproxy-socket, 1 also when HAProxy did not take a renewed staple
  (the line's detail says why)

--watch keeps running (one line per event on stderr) and exits 0 on SIGTERM
or SIGINT; SIGHUP re-reads the configuration, SIGUSR1 renews everything now.
"""


def _percent(text: str) -> float:
    s = text.strip().rstrip("%")
    try:
        value = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100: {text!r}")
    return value


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text!r}")
        return value
    return parse


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Find every certificate under DIR (certbot, lego, acme.sh or plain bundles), "
                    "decide which OCSP staples are out of date, renew those in parallel, and say "
                    "exactly what was done.  '-' as DIR reads certificate paths from stdin.",
        epilog=EPILOG)
    a = p.add_argument
    a("dirs", metavar="DIR", nargs="*", help="directory (or certificate file) to scan; - reads paths from stdin")
    a("--config", metavar="FILE", help="YAML configuration (ocsptools.yaml(5); ocspbot files work as is)")
    a("--layout", choices=discovery.LAYOUTS, default=None,
      help="tree layout: auto (default), certbot, lego, acme.sh or bundle")
    a("-r", "--recursive", action="store_true", default=None, help="bundle layout: descend into subdirectories")
    a("-0", "--null", action="store_true", default=None, help="paths on stdin are NUL-separated (find -print0)")
    a("-u", "--url", metavar="URL", action="append", default=None,
      help="responder URL for every certificate, instead of the certificate's (repeatable)")
    a("--timeout", metavar="SECONDS", type=positive_float, default=None,
      help="limit for each HTTP exchange and each openssl run (default 10)")
    a("--method", choices=transport.METHODS, default=None, help="HTTP method (default auto)")
    a("--hash", choices=HASHES[:2], default=None, dest="hash_alg", help="CertID hash (default sha1)")
    a("--proxy", metavar="URL", default=None, help="HTTP proxy (default: from the environment)")
    a("--out-dir", metavar="DIR", default=None,
      help="write staples to DIR/NAME.ocsp instead of next to each certificate as CERT.ocsp")
    a("--renew-at", metavar="PCT", type=_percent, default=None,
      help="renew when PCT%% of a staple's lifetime has elapsed (default 50)")
    a("--min-validity", metavar="DUR", type=_duration, default=None,
      help="renew when less than DUR (e.g. 3d, 12h) of validity is left")
    a("-n", "--dry-run", action="store_true", default=None,
      help="print what would be renewed and why; change nothing; exit 0")
    a("-q", "--question", action="store_true", default=None,
      help="print nothing, change nothing; exit 0 if everything is up to date, else 1")
    a("-j", "--jobs", metavar="N", type=_count(1), default=None, help="parallel fetches (default 4)")
    a("--per-responder", metavar="N", type=_count(1), default=None,
      help="at most N fetches in flight to any one responder host (default 4)")
    a("-k", "--keep-going", action="store_true", default=None,
      help="go on after a failure (the default)")
    a("-S", "--stop-on-error", action="store_true", default=None,
      help="start no new fetch after the first failure")
    a("-B", "--always-renew", action="store_true", default=None,
      help="renew every staple, fresh or not")
    a("--on-change", metavar="CMD", default=None,
      help="shell command run once after the run if a staple changed; OCSP_CHANGED holds the paths")
    a("--backup", action="store_true", default=None,
      help="keep STAPLE-YYYYmmdd-HHMMSS copies of the staples written and replaced")
    a("--backup-keep", metavar="N", type=_count(0), default=None,
      help="keep only the N newest backups of each staple (implies --backup)")
    a("--prune", action="store_true", default=None,
      help="delete stale staples of certificates that have no OCSP responder")
    a("--lock-timeout", metavar="SECONDS", type=nonnegative_float, default=None,
      help="wait this long for another run to finish (default 0: fail at once)")
    a("--state", metavar="FILE", default=None,
      help="state cache file (default: in $XDG_CACHE_HOME/ocsptools, /var/cache/ocsptools for root)")
    a("--no-aia", action="store_true", default=None, help="never download issuers from AIA caIssuers URLs")
    a("--openssl", metavar="PATH", default=None, help="openssl binary (default: openssl)")
    a("-v", "--verbose", action="store_true", default=None,
      help="also print fresh, not applicable and ignored certificates")
    a("--haproxy-socket", metavar="PATH", action="append", default=None,
      help="push every renewed staple to HAProxy's runtime API at PATH (a stats socket at level "
           "admin, or HOST:PORT) with 'set ssl ocsp-response' (repeatable)")
    w = p.add_argument_group("watch mode")
    w.add_argument("--watch", action="store_true", default=None,
                   help="keep running: renew each staple when it falls due, pick up new, changed "
                        "and deleted certificates at once (inotify); SIGHUP reloads, SIGUSR1 "
                        "renews all, SIGTERM stops")
    w.add_argument("--sweep-interval", metavar="DUR", type=_duration, default=None,
                   help="--watch: rescan every DIR this often to catch missed changes (default 1h)")
    w.add_argument("--log-format", choices=("text", "json"), default=None,
                   help="--watch: one event per line on stderr as text (default) or json")
    w.add_argument("--syslog", action="store_true", default=None,
                   help="--watch: also send every event to syslog (/dev/log, facility daemon)")
    w.add_argument("--prometheus-textfile", metavar="PATH", default=None,
                   help="--watch: rewrite PATH atomically after every change (node_exporter "
                        "textfile collector: per-staple and process gauges)")
    a("-V", "--version", action="version", version=version_string(PROG))
    return p


def _ram_scratch() -> None:
    """openssl's input files (certificates, responses: public data) are small and short-lived:
    unless TMPDIR says otherwise, keep them in RAM ($XDG_RUNTIME_DIR or /dev/shm), in a private
    mode-0700 directory as always.  The directory is named here, not found by ``tempfile``:
    its search probes with a randomly named file that a run killed at that instant leaves
    behind (an unusable TMPDIR is still left to that search and its fallbacks)."""
    tmpdir = os.environ.get("TMPDIR")
    for d in ((tmpdir,) if tmpdir else (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm")):
        if d and os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK):
            tempfile.tempdir = d
            return


def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    _ram_scratch()
    cfg = configmod.load(args.config) if args.config else None
    s = settings.merge(args, cfg)
    dirs = list(args.dirs) + (cfg.dirs if cfg is not None else [])
    if not dirs and not (cfg is not None and cfg.candidates):
        raise UsageError("nothing to do: give DIR(s), - for paths on stdin, or --config FILE")
    for url in s["url"]:
        transport.check_url(url)
    if s["out_dir"] and not os.path.isdir(s["out_dir"]):
        raise UsageError(f"{s['out_dir']}: --out-dir is not an existing directory")
    if s["watch"]:
        from . import renew_watch           # the daemon's modules load only for --watch
        return renew_watch.serve(PROG, args, cfg, s, dirs)
    now = utcnow()
    out: IO[str] = sys.stdout
    err_log: Optional[LazyFile] = None
    if cfg is not None and cfg.output_log:
        out = LazyFile(configmod.log_name(cfg.output_log, now))  # type: ignore[assignment]
    if cfg is not None and cfg.error_log:
        err_log = LazyFile(configmod.log_name(cfg.error_log, now))

    def warn(text: str) -> None:
        line = f"{PROG}: {text}\n"
        (err_log or sys.stderr).write(line)
        (err_log or sys.stderr).flush()

    try:
        if not s["question"]:                   # -q prints nothing at all
            for w in (cfg.warnings if cfg is not None else []):
                warn("warning: " + w)
        per_dir: Dict[str, List[discovery.Candidate]] = {}
        cands = candidates(dirs, s, cfg, sys.stdin.buffer, per_dir)
        state_path = state_path_for(s, dirs, args.config)
        opts = run_options(s)
        ossl = OpenSSL(s["openssl"], timeout=s["timeout"])
        printer = Printer(PROG, out, quiet=s["question"])
        dry = opts.dry
        # -n and -q take no lock (they must never make a cron run exit 2): they only read the state
        with Held.take(dirs, (c.cert for c in cands), s["out_dir"], state_path, writes=not dry,
                       lock_timeout=s["lock_timeout"], what=f"another {PROG}") as held:
            driver = Driver(opts, ossl, held.cache, lambda: utcnow())
            driver.now = now
            driver.emit = printer.line
            driver.progress = printer.progress
            if s["haproxy_socket"] and not dry:
                driver.after_install = haproxy.pusher(s["haproxy_socket"], s["timeout"])
            result = driver.run(cands)
            printer.clear()
            for problem in held.finish(driver.items, utcnow):   # monitoring's view, the state
                warn("warning: " + problem)
            if not s["question"]:
                for problem in empty_inputs(per_dir, driver.items, s["layout"]):
                    warn("warning: " + problem)
            if held.cache.warning and s["verbose"] and not s["question"]:
                warn("warning: " + held.cache.warning)
            status = ExitStatus.OK if result.ok else ExitStatus.FAILED
            if s["question"]:
                return ExitStatus.FAILED if (result.pending or not result.ok) else ExitStatus.OK
            if s["dry_run"]:
                return ExitStatus.OK
            if result.changed and s["on_change"]:
                rc, problem = run_on_change(s["on_change"], result.changed, stdout=sys.stderr)
                if rc != 0:
                    warn(problem)
                    status = ExitStatus.FAILED
            if s["verbose"]:
                warn(f"{len(cands)} candidates, {len(result.changed)} renewed, "
                     f"{result.failed} failed, {result.revoked} revoked, "
                     f"{result.spawned} openssl processes")
            return status
    finally:
        if isinstance(out, LazyFile):
            out.close()
        if err_log is not None:
            err_log.close()


def entry(argv: Optional[Sequence[str]] = None) -> int:
    return run(PROG, main, EXITS, argv)


def console() -> None:
    sys.exit(entry())
