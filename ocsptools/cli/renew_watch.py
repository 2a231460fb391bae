"""ocsp-renew-dir --watch: the command line's settings turned into a running ``watch.Daemon``."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from typing import Dict, List, Optional, Sequence

from .. import config as configmod
from .. import discovery, transport, watch
from ..config import settings
from ..errors import UsageError
from ..openssl import OpenSSL
from ..renewal.held import Held
from .renew_inputs import candidates, run_options, state_path_for


def watch_roots(dirs: Sequence[str], s: dict) -> List[watch.WatchRoot]:
    """What to watch for DIRS: trees recursively (certbot, lego, acme.sh, bundle with -r),
    a plain bundle directory by itself, a certificate file through its directory."""
    roots: List[watch.WatchRoot] = []
    for d in dirs:
        if os.path.isfile(d):
            roots.append((os.path.dirname(os.path.abspath(d)), False))
            continue
        layout = s["layout"] if s["layout"] != "auto" else discovery.detect_layout(d)
        roots.append((d, bool(s["recursive"]) if layout == "bundle" else True))
    return roots


def watch_setup(cfg: Optional[configmod.Config], s: dict, dirs: List[str]) -> watch.Setup:
    def discover():
        cands: List[discovery.Candidate] = []
        problems: List[str] = []
        for d in dirs:
            try:
                cands += discovery.discover(d, s["layout"], recursive=s["recursive"],
                                            out_dir=s["out_dir"])
            except UsageError as exc:
                problems.append(f"{exc}; its certificates are not renewed until it is back")
        if cfg is not None:
            cands += candidates([], s, cfg, None)
        return cands, problems
    warnings = list(cfg.warnings) if cfg is not None else []
    if cfg is not None and (cfg.output_log or cfg.error_log):
        warnings.append(f"{cfg.path}: output_log and error_log are not used with --watch "
                        f"(events go to stderr{' and syslog' if s['syslog'] else ''})")
    return watch.Setup(opts=replace(run_options(s), stop_on_error=False),
                       ossl=OpenSSL(s["openssl"], timeout=s["timeout"]), discover=discover,
                       roots=watch_roots(dirs, s), on_change=s["on_change"],
                       sockets=tuple(s["haproxy_socket"]), warnings=warnings)


def serve(prog: str, args: argparse.Namespace, cfg: Optional[configmod.Config], s: dict,
          dirs: List[str]) -> int:
    """--watch: the same configuration and decisions as a one-shot run, kept running."""
    if "-" in dirs:
        raise UsageError("--watch needs directories (or --config), not - (standard input)")
    first = watch_setup(cfg, s, dirs)
    per_dir: Dict[str, List[discovery.Candidate]] = {}
    cands = candidates(dirs, s, cfg, None, per_dir)     # a missing DIR is a usage error at start
    for d in dirs:
        if not per_dir.get(d):
            first.warnings.append(f"{d}: no certificate found (layout {s['layout']}); watching it "
                                  f"anyway: check the path and --layout")
    state_path = state_path_for(s, dirs, args.config)
    log = watch.EventLog(prog, s["log_format"], syslog=s["syslog"])
    with Held.take(dirs, (c.cert for c in cands), s["out_dir"], state_path, writes=True,
                   lock_timeout=s["lock_timeout"], what=f"another {prog}") as held:
        wopts = watch.WatchOptions(
            sweep_interval=s["sweep_interval"].total_seconds(), textfile=s["prometheus_textfile"],
            backoff=watch.backoff_from_env(),
            force_poll=os.environ.get("OCSPTOOLS_WATCH_POLL", "") not in ("", "0"),
            status_file=held.status_path,
            state_files=tuple(os.path.abspath(p) for p in
                              (state_path, state_path + ".lock", held.status_path,
                               s["prometheus_textfile"]) if p))
        loads = [first]

        def load() -> watch.Setup:           # the first time as checked above; then SIGHUP
            if loads:
                return loads.pop()
            cfg2 = configmod.load(args.config) if args.config else None
            s2 = settings.merge(args, cfg2)
            for url in s2["url"]:
                transport.check_url(url)
            dirs2 = list(args.dirs) + (cfg2.dirs if cfg2 is not None else [])
            return watch_setup(cfg2, s2, dirs2)
        daemon = watch.Daemon(prog, load, held.cache, log, wopts)
        daemon.install_signals()
        return daemon.serve()
