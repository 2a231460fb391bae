"""What the --watch daemon is given: its configuration (``Setup``, rebuilt on SIGHUP), its own
options (``WatchOptions``), the backoff from the environment, and the clock's type."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, List, Optional, Tuple

from .. import durations, life
from ..discovery import Candidate
from ..renewal import RunOptions
from ..errors import UsageError
from ..openssl import OpenSSL
from .schedule import BACKOFF
from .watchers import WatchRoot

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The wall clock (the default ``clock`` of the daemon and the event log)."""
    return datetime.now(timezone.utc)


@dataclass
class Setup:
    """What the configuration says (rebuilt on SIGHUP)."""

    opts: RunOptions
    ossl: OpenSSL
    discover: Callable[[], Tuple[List[Candidate], List[str]]]   # (candidates, problems)
    roots: List[WatchRoot]
    on_change: Optional[str] = None
    sockets: Tuple[str, ...] = ()
    warnings: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class WatchOptions:
    """The daemon's own options (fixed for its life; SIGHUP does not change them)."""

    sweep_interval: float = 3600.0
    textfile: Optional[str] = None
    backoff: life.Backoff = BACKOFF
    force_poll: bool = False
    state_files: Tuple[str, ...] = ()       # never treated as certificate changes
    status_file: Optional[str] = None       # renewstatus: what ocsp-check --renew-state reads


def backoff_from_env() -> life.Backoff:
    """``OCSPTOOLS_WATCH_BACKOFF_BASE`` (a duration; tests scale the backoff with it): the base,
    and the cap as 60 times it; the 1-minute / 1-hour default without it."""
    raw = os.environ.get("OCSPTOOLS_WATCH_BACKOFF_BASE")
    if not raw:
        return BACKOFF
    try:
        base = durations.parse_duration(raw).total_seconds()
    except ValueError:
        raise UsageError(f"OCSPTOOLS_WATCH_BACKOFF_BASE={raw!r}: not a duration") from None
    if base <= 0:
        raise UsageError(f"OCSPTOOLS_WATCH_BACKOFF_BASE={raw!r}: must be positive")
    return life.Backoff(base=base, cap=60.0 * base)
