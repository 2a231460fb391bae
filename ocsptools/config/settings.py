"""ocsp-renew-dir's settings: the defaults, then the configuration file, then the command line (pure).

``merge`` makes the one settings dict a run uses (keys are the command-line destinations):
``DEFAULTS`` < the file's options (``Config.options``; ``CONFIG_NAMES`` renames the keys
whose destination differs) < every option given on the command line (an argparse namespace
whose options default to None, so that "not given" is visible).  The options given are
recorded under ``GIVEN``: they also beat the per-certificate entries of the file
(``CLI_BEATS_ENTRY``, applied by ``entry_overrides``).  The combinations that contradict each
other are refused with a ``UsageError``; ``WATCH_ONLY`` options need ``--watch``.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any, Dict, List, Optional

from .. import haproxy
from ..errors import UsageError
from .loader import Config

DEFAULTS: Dict[str, Any] = {
    "layout": "auto", "recursive": False, "null": False, "url": [], "timeout": 10.0,
    "method": "auto", "hash_alg": "sha1", "proxy": None, "out_dir": None, "renew_at": 50.0,
    "min_validity": None, "dry_run": False, "question": False, "jobs": 4, "per_responder": 4,
    "keep_going": False, "stop_on_error": False, "always_renew": False, "on_change": None,
    "backup": False, "backup_keep": None, "prune": False, "lock_timeout": 0.0, "state": None,
    "no_aia": False, "openssl": "openssl", "verbose": False, "haproxy_socket": [],
    "watch": False, "sweep_interval": timedelta(hours=1), "log_format": "text", "syslog": False,
    "prometheus_textfile": None,
}
WATCH_ONLY = ("sweep_interval", "log_format", "syslog", "prometheus_textfile")
#: settings key: the options given on the command line (they win over the file, per-certificate
#: entries included)
GIVEN = "_given"
#: command-line options that replace a per-certificate key of the configuration:
#: (option, the Candidate field it clears, the cleared value)
CLI_BEATS_ENTRY = (("url", "urls", ()), ("renew_at", "renew_at", None),
                   ("min_validity", "min_validity", None))
#: configuration keys whose command-line destination has another name
CONFIG_NAMES = {"hash": "hash_alg"}


def merge(args: argparse.Namespace, cfg: Optional[Config]) -> Dict[str, Any]:
    """Defaults, then the configuration file, then the command line."""
    s = dict(DEFAULTS)
    if cfg is not None:
        for key, value in cfg.options.items():
            s[CONFIG_NAMES.get(key, key)] = value
    given = []
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            s[key] = value
            given.append(key)
    s[GIVEN] = frozenset(given)
    if args.keep_going and args.stop_on_error:
        raise UsageError("-k/--keep-going and -S/--stop-on-error contradict each other")
    if args.keep_going or (s["keep_going"] and not args.stop_on_error):
        s["stop_on_error"] = False
    if s["backup_keep"] is not None:
        s["backup"] = True
    if s["dry_run"] and s["question"]:
        raise UsageError("-n/--dry-run and -q/--question cannot be combined")
    sockets: List[str] = s["haproxy_socket"]
    for spec in sockets:
        try:
            haproxy.check_spec(spec)
        except ValueError as exc:
            raise UsageError(f"--haproxy-socket {exc}") from None
    if s["watch"]:
        if s["dry_run"] or s["question"]:
            raise UsageError("--watch cannot be combined with -n/--dry-run or -q/--question")
        sweep: timedelta = s["sweep_interval"]
        if sweep.total_seconds() < 1:
            raise UsageError("--sweep-interval must be at least 1s")
    else:
        watch_only = [k for k in WATCH_ONLY if getattr(args, k, None) is not None]
        if watch_only:
            raise UsageError(f"--{watch_only[0].replace('_', '-')} needs --watch")
    return s


def entry_overrides(settings: Dict[str, Any]) -> Dict[str, Any]:
    """The Candidate fields the command line clears in every per-certificate entry of the file:
    ``-u URL`` asks that responder for every certificate, ``--renew-at``/``--min-validity``
    apply to every one (``discovery.with_overrides(candidate, **overrides)``)."""
    given = settings.get(GIVEN, frozenset())
    return {field: empty for opt, field, empty in CLI_BEATS_ENTRY if opt in given}
