"""What ocsp-renew-dir tells monitoring: per staple, the responder's last answer and how long renewal has failed.

A renewal run learns things a staple file cannot show: the responder now
says *revoked* (the old, good staple is rightly kept), or renewal has been
failing for hours.  ``ocsp-renew-dir`` (one-shot and ``--watch``) and
``ocsptools.renew`` record them in a small JSON file beside their state
cache, ``STATE.status``; ``ocsp-check --renew-state STATE`` reads it
(CRITICAL for revoked, WARNING for renewal failing too long).  Unlike the
state cache it is not an optimisation: deleting it forgets that history.

``observe`` is pure (the previous record, what a run did to one staple, the
clock); ``StatusFile`` loads and saves atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from . import nagios, policy, store
from .errors import InputError, StoreError
from .life import iso, parse_iso
from .paths import abspath

VERSION = 1
SUFFIX = ".status"
#: Outcomes of a run (renewal.Item.outcome) and what they say about renewal.
RENEWED, UNCHANGED, FAILED, REVOKED = "renewed", "unchanged", "failed", "revoked"
GOOD = "good"


@dataclass(frozen=True)
class StapleStatus:
    cert: str
    status: str                             # good | revoked | unknown | failed | not-applicable | cert-expired
    answered: Optional[str] = None          # the responder's last verified answer: good | revoked | unknown
    answered_at: Optional[str] = None       # ISO 8601 UTC, as every time here
    revocation_time: Optional[str] = None
    revocation_reason: Optional[str] = None
    failing_since: Optional[str] = None     # the first failure of the current run of failures
    failures: int = 0
    last_success: Optional[str] = None
    last_failure: Optional[str] = None
    detail: str = ""


def path_for(state_path: str) -> str:
    """The status file of the state cache STATE_PATH (or STATE_PATH itself if it is one)."""
    return state_path if state_path.endswith(SUFFIX) else state_path + SUFFIX


def key(staple_path: str) -> str:
    """Staples are keyed by absolute path as the run names them (``paths.abspath``: cheap for
    10,000 of them); ``StatusFile.get`` also finds one named through another spelling (a
    symbolic link)."""
    return abspath(staple_path)


def observe(prev: Optional[StapleStatus], item, now: datetime) -> Optional[StapleStatus]:
    """The record of ITEM's staple after a run (a ``driver.Item``), from PREV; None to drop it.

    A revoked answer is remembered while the kept staple stays fresh (the run does not ask the
    responder then); only a newly installed good staple clears it.  Renewal counts as failing
    from its first failure until the responder answers again (or renewal is not needed)."""
    cert = item.cand.cert
    base = prev if prev is not None and prev.cert == cert else StapleStatus(cert, GOOD)
    if (item.kind == "leaf" and item.outcome == "" and prev is base and base.failures == 0
            and base.status in (GOOD, "revoked") and item.decision is not None
            and item.decision.action == policy.FRESH):
        return prev                     # the common case of a no-op run: nothing new
    t = iso(now)
    if item.kind == "ignore":
        return None
    if item.kind != "leaf" or item.decision is None:
        return _failed(base, "failed", item.error or item.detail, t)
    action = item.decision.action
    if action in policy.IDLE:           # its status is the decision's name
        return replace(StapleStatus(cert, action), detail=item.decision.reason)
    outcome = item.outcome
    if outcome in (RENEWED, UNCHANGED):
        revoked = base.status == "revoked" and outcome == UNCHANGED
        return replace(base, status="revoked" if revoked else GOOD, answered=GOOD, answered_at=t,
                       failing_since=None, failures=0, last_success=t,
                       revocation_time=base.revocation_time if revoked else None,
                       revocation_reason=base.revocation_reason if revoked else None,
                       detail=item.detail if outcome == RENEWED else base.detail)
    if outcome == REVOKED:
        return replace(base, status="revoked", answered="revoked", answered_at=t,
                       revocation_time=item.revocation_time, revocation_reason=item.revocation_reason,
                       failing_since=base.failing_since or t, failures=base.failures + 1,
                       last_failure=t, detail=item.detail)
    if outcome == FAILED:
        unknown = item.cert_status == "unknown"
        out = _failed(base, "unknown" if unknown else "failed", item.detail, t)
        return replace(out, answered="unknown", answered_at=t) if unknown else out
    if action == policy.FRESH:
        # nothing to renew: not failing; a revocation learnt earlier still stands
        return replace(base, status=base.status if base.status == "revoked" else GOOD,
                       failing_since=None, failures=0)
    return prev                     # not attempted (-S after a failure, shutting down)


def _failed(base: StapleStatus, status: str, detail: str, t: Optional[str]) -> StapleStatus:
    return replace(base, status=status if base.status != "revoked" else "revoked",
                   failing_since=base.failing_since or t, failures=base.failures + 1,
                   last_failure=t, detail=detail)


#: ocsp-check --renew-failing: how long renewal may fail before monitoring says WARNING.
DEFAULT_FAILING = "6h"


def judge(rec: Optional[StapleStatus], now: datetime, failing_after: timedelta,
          source: str) -> List[Tuple[int, str]]:
    """What monitoring says of a staple given ocsp-renew-dir's record REC (from file SOURCE),
    as (Nagios state, message) pairs (pure): CRITICAL when the responder's last answer was
    revoked, WARNING when renewal has failed for FAILING_AFTER or longer, WARNING when the
    staple is not in the record at all (the check and the renewal are not paired)."""
    if rec is None:
        return [(nagios.WARNING, f"not among the staples ocsp-renew-dir renews with {source}; "
                                 f"check --renew-state")]
    out: List[Tuple[int, str]] = []
    if rec.status == "revoked":
        reason = f" ({rec.revocation_reason})" if rec.revocation_reason else ""
        out.append((nagios.CRITICAL, f"the responder said REVOKED (revoked at {rec.revocation_time}"
                                     f"{reason}) to ocsp-renew-dir at {rec.answered_at}; the staple "
                                     f"kept says otherwise: replace the certificate"))
    since = parse_iso(rec.failing_since)
    if since is not None and now - since >= failing_after and rec.status != "revoked":
        out.append((nagios.WARNING, f"ocsp-renew-dir has failed to renew it since {rec.failing_since} "
                                    f"({rec.failures} attempt{'s' if rec.failures != 1 else ''}): "
                                    f"{rec.detail}"))
    return out


#: What a staple's record is when a run only confirmed it (no fetch, nothing failing).
QUIET = {policy.FRESH: GOOD, **{action: action for action in policy.IDLE}}


def _digest(pairs: Iterable[Tuple[str, str]]) -> str:
    return hashlib.sha256("\n".join(sorted(f"{k}\t{v}" for k, v in pairs)).encode(
        "utf-8", "surrogateescape")).hexdigest()


def _quiet_digest(items: Sequence) -> Optional[str]:
    """The digest a clean status file of exactly these ITEMS has, if the run only confirmed
    them (a no-op run); None when it did anything monitoring must hear of."""
    pairs = []
    for item in items:
        if item.kind == "ignore":
            continue
        action = item.decision.action if item.kind == "leaf" and item.decision is not None else None
        if action not in QUIET or item.outcome in (RENEWED, UNCHANGED, FAILED, REVOKED):
            return None
        pairs.append((item.abs_staple, QUIET[action]))
    return _digest(pairs)


class StatusFile:
    """``STATE.status``: load (a missing file is empty), record runs, save atomically.

    JSON Lines: a header (version, written_at, and whether every record is clean, with a
    digest of them), then one object per staple.  A no-op run over an unchanged clean tree
    reads only the header (``update``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.staples: Dict[str, StapleStatus] = {}
        self.written_at: Optional[str] = None
        self.warning = ""
        self.changed = False            # anything recorded since it was loaded?
        self._real: Optional[Dict[str, StapleStatus]] = None   # by real path, built on demand

    def load(self, *, strict: bool = False) -> "StatusFile":
        """Read the file.  STRICT (ocsp-check): a missing or unreadable file is an InputError;
        else (the writer) it starts empty and ``warning`` says why."""
        try:
            with open(self.path, "rb") as fh:
                lines = fh.read(64 << 20).splitlines()
            header = json.loads(lines[0]) if lines else None
            if not isinstance(header, dict) or header.get("version") != VERSION:
                raise ValueError(f"not a version {VERSION} status file")
            self.written_at = header.get("written_at")
            staples = {}
            for line in lines[1:]:
                rec = json.loads(line)
                name = rec.pop("staple")
                staples[name] = StapleStatus(**rec)
            self.staples = staples
        except FileNotFoundError:
            if strict:
                raise InputError(f"{self.path}: no such file: has ocsp-renew-dir run with this "
                                 f"--state (it writes STATE{SUFFIX} on every run)?",
                                 path=self.path) from None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            problem = getattr(exc, "strerror", None) or str(exc)
            if strict:
                raise InputError(f"{self.path}: cannot read ocsp-renew-dir's status: {problem}",
                                 path=self.path) from None
            self.warning = f"{self.path}: unreadable ({problem}); starting afresh"
            self.staples = {}
        self.changed = False
        return self

    def update(self, items: Sequence, now: datetime) -> None:
        """Record a full run over ITEMS (staples not among them are forgotten).  When the run
        only confirmed what a clean file already says, neither read it all nor write it."""
        quiet = _quiet_digest(items)
        if quiet is not None and quiet == self._clean_digest():
            return
        self.load()
        self.record(items, now)
        self.keep_only(item.cand.staple for item in items)

    def _clean_digest(self) -> Optional[str]:
        try:
            with open(self.path, "rb") as fh:
                header = json.loads(fh.readline())
        except (OSError, ValueError):
            return None
        if not isinstance(header, dict) or header.get("version") != VERSION or not header.get("clean"):
            return None
        return header.get("digest")

    def record(self, items: Iterable, now: datetime) -> None:
        for item in items:
            k = item.abs_staple
            old = self.staples.get(k)
            new = observe(old, item, now)
            if new is not old and new != old:
                self.changed, self._real = True, None
                if new is None:
                    self.staples.pop(k, None)
                else:
                    self.staples[k] = new

    def keep_only(self, staple_paths: Iterable[str]) -> None:
        """After a full run: forget staples that are no longer renewed."""
        keep = {key(p) for p in staple_paths}
        kept = {k: v for k, v in self.staples.items() if k in keep}
        if len(kept) != len(self.staples):
            self.staples, self.changed, self._real = kept, True, None

    def get(self, staple_path: str) -> Optional[StapleStatus]:
        """The record of STAPLE_PATH, however it is spelled (resolved to real paths only when
        the plain absolute path is not a key)."""
        found = self.staples.get(key(staple_path))
        if found is not None:
            return found
        if self._real is None:
            self._real = {os.path.realpath(k): v for k, v in self.staples.items()}
        return self._real.get(os.path.realpath(staple_path))

    def save(self, now: datetime, *, force: bool = False) -> None:
        """Write it (atomically) if anything changed, or FORCE; a failure is kept in ``warning``."""
        if not (self.changed or force):
            return
        self.changed = False
        self.written_at = iso(now)
        clean = all(v.failures == 0 and v.failing_since is None and v.status in QUIET.values()
                    for v in self.staples.values())
        header = {"version": VERSION, "written_at": self.written_at, "writer": "ocsp-renew-dir",
                  "clean": clean, "digest": _digest((k, v.status) for k, v in self.staples.items())}
        lines = [json.dumps(header)] + [json.dumps({"staple": k, **asdict(v)})
                                        for k, v in sorted(self.staples.items())]
        try:
            store.atomic_write(self.path, ("\n".join(lines) + "\n").encode(), mode=0o644)
        except StoreError as exc:
            self.warning = str(exc)
