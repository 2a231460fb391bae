"""ocsp-renew-dir's inputs: the run options and the candidates its settings, DIRs and configuration name."""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

from .. import config as configmod
from .. import discovery, transport
from ..config import settings
from ..errors import UsageError
from ..fetch import FetchOptions
from ..policy import RenewOptions
from ..renewal import RunOptions
from ..statecache import default_path


def run_options(s: dict) -> RunOptions:
    http = transport.HttpOptions(timeout=s["timeout"], proxy=s["proxy"])
    return RunOptions(
        fetch=FetchOptions(urls=tuple(s["url"]), method=s["method"], hash_alg=s["hash_alg"], http=http),
        renew=RenewOptions(renew_at=s["renew_at"], min_validity=s["min_validity"],
                           always=s["always_renew"]),
        jobs=s["jobs"], per_responder=s["per_responder"], stop_on_error=s["stop_on_error"],
        dry_run=s["dry_run"], question=s["question"], backup=s["backup"],
        backup_keep=s["backup_keep"], prune=s["prune"], verbose=s["verbose"],
        use_aia=not s["no_aia"])


def candidates(dirs: Sequence[str], s: dict, cfg: Optional[configmod.Config],
                stdin, per_dir: Optional[Dict[str, List[discovery.Candidate]]] = None
                ) -> List[discovery.Candidate]:
    """Every candidate of DIRS and the configuration; PER_DIR (if given) gets each DIR's own."""
    out_dir = s["out_dir"]
    cands: List[discovery.Candidate] = []
    used_stdin = False
    for d in dirs:
        if d == "-":
            if used_stdin:
                raise UsageError("- (standard input) may be given only once")
            used_stdin = True
            found = discovery.from_paths(discovery.read_paths(stdin, nul=s["null"]), out_dir)
        else:
            found = discovery.discover(d, s["layout"], recursive=s["recursive"], out_dir=out_dir)
        cands += found
        if per_dir is not None:
            per_dir.setdefault(d, []).extend(found)
    if cfg is not None:
        # the command line overrides the file, its per-certificate entries included
        cleared = settings.entry_overrides(s)
        for c in cfg.candidates:
            if not c.staple:
                c = discovery.with_overrides(c, staple=discovery.staple_path(c.cert, c.name, out_dir))
            if cleared:
                c = discovery.with_overrides(c, **cleared)
            cands.append(c)
    return cands


def empty_inputs(per_dir: Dict[str, List[discovery.Candidate]], items: Sequence,
                  layout: str) -> List[str]:
    """The DIRs (and stdin) in which the run found no certificate at all: a cron job pointed
    at the wrong directory must not stay silent."""
    leaves = {id(it.cand) for it in items if it.kind in ("leaf", "failed")}
    problems = []
    for d, found in per_dir.items():
        if any(id(c) in leaves for c in found):
            continue
        where = "standard input" if d == "-" else d
        what = (f"{len(found)} file{'s' if len(found) != 1 else ''} looked at, none a leaf "
                f"certificate" if found else "nothing that looks like a certificate")
        problems.append(f"{where}: no certificate found ({what}; layout {layout}); check the "
                        f"path{'' if d == '-' else ' and --layout'}")
    return problems


def state_path_for(s: dict, dirs: Sequence[str], config: Optional[str]) -> str:
    """--state, else the default state cache named after what the run is over (its DIRs, - and
    the configuration file), so that one tree keeps one state whichever way it is run."""
    inputs = sorted(os.path.abspath(d) if d != "-" else "-" for d in dirs)
    if config:
        inputs.append("config:" + os.path.abspath(config))
    return s["state"] or default_path(inputs)
