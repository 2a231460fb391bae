"""One candidate's way through a renewal run: ``Item``, the options, the reports and the result.

Values, and the ``Ledger`` the run's threads report to; nothing here reads the clock or a file.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from functools import lru_cache
from dataclasses import dataclass, field, replace
from typing import Callable, List, Optional, Tuple

from ..discovery import Candidate
from ..fetch import FetchOptions, Target
from ..paths import abspath
from ..policy import CertFacts, Decision, RenewOptions, StapleFacts
from ..renewstatus import FAILED, RENEWED, REVOKED, UNCHANGED   # what monitoring is told

# Output actions (the first column); UNCHANGED is an outcome only (the answer was the installed one).
SKIPPED, STALE, WOULD_RENEW, FRESH = "skipped", "stale-staple", "would-renew", "fresh"
__all__ = ["RENEWED", "FAILED", "REVOKED", "UNCHANGED", "SKIPPED", "STALE", "WOULD_RENEW", "FRESH",
           "RunOptions", "Report", "Item", "RunResult", "Ledger", "renew_options_for",
           "responder_urls_for", "cert_newer"]


@dataclass(frozen=True)
class RunOptions:
    fetch: FetchOptions = FetchOptions()
    renew: RenewOptions = RenewOptions()
    jobs: int = 4
    per_responder: int = 4
    stop_on_error: bool = False
    dry_run: bool = False
    question: bool = False
    backup: bool = False
    backup_keep: Optional[int] = None
    prune: bool = False
    verbose: bool = False
    use_aia: bool = True

    @property
    def dry(self) -> bool:
        """-n or -q: nothing is changed."""
        return self.dry_run or self.question


@dataclass(frozen=True)
class Report:
    action: str
    cert: str
    staple: str
    detail: str

    def tsv(self) -> str:
        return "\t".join(_field(v) for v in (self.action, self.cert, self.staple, self.detail))


def _field(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


@dataclass
class Item:
    """One candidate through the run."""

    cand: Candidate
    key: str
    cert_id: Optional[list] = None
    staple_id: Optional[list] = None
    entry: Optional[dict] = None            # the (valid) cache entry
    kind: str = ""                          # leaf | ignore | failed
    error: str = ""
    target: Optional[Target] = None
    issuer_path: Optional[str] = None
    cert: Optional[CertFacts] = None
    staple: Optional[StapleFacts] = None
    decision: Optional[Decision] = None
    # what happened to it in this run (read by the --watch scheduler): the last reported
    # action, UNCHANGED when the responder's answer was the installed one, "" when not acted on
    outcome: str = ""
    detail: str = ""
    retry_after: Optional[float] = None     # the responder's Retry-After on a failed fetch
    try_later: bool = False                 # a responder answered tryLater on a failed fetch
    cert_status: str = ""                   # the fetched answer's status: good, revoked, unknown
    revocation_time: Optional[str] = None   # a revoked answer's revocationTime (ISO 8601 UTC)
    revocation_reason: Optional[str] = None
    staple_abs: str = ""                    # the staple's absolute path, as the run first named it

    @property
    def abs_staple(self) -> str:
        """The staple's absolute path (``paths.abspath``, computed once per run)."""
        return self.staple_abs or abspath(self.cand.staple)

    @property
    def tgt(self) -> Target:
        """The loaded target (only asked for once the item is a loaded leaf)."""
        assert self.target is not None
        return self.target


@dataclass
class RunResult:
    reports: List[Report] = field(default_factory=list)
    changed: List[str] = field(default_factory=list)
    failed: int = 0
    revoked: int = 0
    pending: int = 0                        # -n/-q: how many would be renewed or pruned
    spawned: int = 0
    push_failed: int = 0                    # renewed staples a server refused (--haproxy-socket)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.revoked == 0 and self.push_failed == 0


class Ledger:
    """The run's result, kept under one lock (fetches report from many threads); every report
    also goes to EMIT (the command's printer) as it happens."""

    def __init__(self) -> None:
        self.result = RunResult()
        self.lock = threading.Lock()
        self.emit: Optional[Callable[[Report], None]] = None

    def report(self, action: str, item: Item, detail: str) -> None:
        rep = Report(action, item.cand.cert, item.cand.staple, detail)
        with self.lock:
            item.outcome, item.detail = action, detail
            self.result.reports.append(rep)
            if action == FAILED:
                self.result.failed += 1
            elif action == REVOKED:
                self.result.revoked += 1
        if self.emit is not None:
            self.emit(rep)


def renew_options_for(cand: Candidate, base: RenewOptions) -> RenewOptions:
    """BASE with the candidate's own renew_at/min_validity (a configuration entry's) applied."""
    if cand.renew_at is None and cand.min_validity is None:
        return base
    return _overridden(base, cand.renew_at, cand.min_validity)


@lru_cache(maxsize=256)
def _overridden(base: RenewOptions, renew_at: Optional[float],
                min_validity: Optional[timedelta]) -> RenewOptions:
    """One RenewOptions per distinct override (its rule and key are computed once, not per item)."""
    return replace(base, renew_at=base.renew_at if renew_at is None else renew_at,
                   min_validity=base.min_validity if min_validity is None else min_validity)


def responder_urls_for(item: Item, opts: RunOptions) -> Tuple[str, ...]:
    """The candidate's URLs, else -u's, else the certificate's own (AIA OCSP), as loaded or as
    its state cache entry records them.  None at all: "not applicable"."""
    if item.cand.urls:
        return item.cand.urls
    if opts.fetch.urls:
        return opts.fetch.urls
    if item.cert is not None:
        return tuple(item.cert.ocsp_urls)
    return tuple((item.entry or {}).get("urls") or ())


def cert_newer(item: Item) -> bool:
    """make's rule: the certificate file was modified after its staple file."""
    return bool(item.cert_id and item.staple_id and item.cert_id[3] > item.staple_id[3])

