"""``Driver``: one renewal run (facts, plan, execute), for ocsp-renew-dir, --watch and api.renew.

1. *Facts*: for each candidate, either the state cache still vouches for it
   (the identities of its certificate, issuer and staple files are unchanged;
   ``facts``) or it is loaded in batches (``load``).
2. *Plan*: ``plan.decide`` and ``plan.steps``, pure functions of those facts,
   the options and ``now``.
3. *Execute*: the steps are carried out; renewals by ``execute.Renewals``;
   then the state cache forgets pairs no longer seen and stale temp files are
   cleaned.

Nothing here prints: every outcome is a ``Report`` handed to ``emit``.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from typing import Callable, Collection, Dict, List, Optional, Sequence

from .. import store, transport
from ..discovery import Candidate
from ..openssl import OpenSSL, clean_stale_scratch
from ..paths import abspath
from ..staple import Staple
from ..statecache import StateCache, abs_pair_key, identity
from . import facts, load, plan
from .execute import Renewals, WriteGate
from .items import FAILED, Item, Ledger, Report, RunOptions, RunResult

Clock = Callable[[], datetime]


class Driver:
    def __init__(self, opts: RunOptions, ossl: OpenSSL, cache: StateCache, clock: Clock) -> None:
        self.opts = opts
        self.ossl = ossl
        self.cache = cache
        self.clock = clock
        self.now = clock()
        self.ledger = Ledger()
        self.stopping = threading.Event()
        self.progress: Optional[Callable[[int, int], None]] = None
        self.items: List[Item] = []
        self.force: Collection[str] = ()    # keys renewed as with -B (--watch: their time came)
        self.gate = WriteGate()
        # called after a staple was installed; returns why a server refused it, or None
        self.after_install: Optional[Callable[[Item, Staple], Optional[str]]] = None
        self.proxies = transport.ProxyChoice(opts.fetch.http)

    @property
    def result(self) -> RunResult:
        return self.ledger.result

    @property
    def emit(self) -> Optional[Callable[[Report], None]]:
        return self.ledger.emit

    @emit.setter
    def emit(self, fn: Optional[Callable[[Report], None]]) -> None:
        self.ledger.emit = fn

    def report(self, action: str, item: Item, detail: str) -> None:
        self.ledger.report(action, item, detail)

    def stop(self) -> None:
        """Start no new fetch (those in flight finish; see ``gate`` for installs)."""
        self.stopping.set()

    # -- the run -------------------------------------------------------------
    def run(self, candidates: Sequence[Candidate], *, forget: bool = True) -> RunResult:
        """One run over CANDIDATES.  FORGET drops the state cache's entries for pairs not among
        them (a full run); --watch runs subsets and keeps the others.  The run's openssl calls
        share one set of input files (each certificate written once as PEM)."""
        with self.ossl.batch():
            self.establish(candidates)
            plan.decide([it for it in self.items if it.kind == "leaf" and it.decision is None],
                        self.now, self.opts, self.force)
            self.execute(plan.steps(self.items, self.opts))
            self.result.spawned = self.ossl.spawned
            if forget and not self.opts.dry:
                self.cache.forget_unseen()
                self._clean_stale_temps(self.items)
            return self.result

    def establish(self, candidates: Sequence[Candidate]) -> List[Item]:
        """The run's items (``self.items``, set before anything is loaded) with their facts: from
        the state cache where it vouches, else loaded."""
        items: List[Item] = []
        self.items = items
        seen: Dict[str, Item] = {}
        for cand in candidates:
            staple_abs = abspath(cand.staple)
            key = abs_pair_key(abspath(cand.cert), staple_abs)
            if key not in seen:
                seen[key] = Item(cand, key, staple_abs=staple_abs)
                items.append(seen[key])
        for it in items:
            self._from_cache(it)          # sets kind (and maybe the decision) when it can
        todo = [it for it in items if it.kind == ""]
        if todo:
            for item in todo:       # (its cert_id was taken by _from_cache)
                item.staple_id = identity(item.cand.staple)
            load.load_targets(todo, self.ossl, self.opts)
            load.verify_staples([it for it in todo if it.kind == "leaf"], self.ossl, self.opts)
            for item in todo:
                if item.kind in ("leaf", "ignore"):
                    self.record(item)
                if item.kind == "failed":
                    self.report(FAILED, item, item.error)
        self._collisions(items)
        return items

    def execute(self, steps: Sequence[plan.Step]) -> None:
        """Carry out the plan's STEPS (renewals last, in parallel)."""
        for step in steps:
            if step.do == plan.REPORT:
                self.report(step.action, step.item, step.detail)
            elif step.do == plan.ONCE:
                if self._once(step.item, step.token):
                    self.report(step.action, step.item, step.detail)
            elif step.do == plan.PENDING:
                self.result.pending += 1
                if self.opts.dry_run:
                    self.report(step.action, step.item, step.detail)
            elif step.do == plan.PRUNE:
                self._prune(step)
        jobs = plan.renewals(steps)
        if jobs and not (self.opts.stop_on_error and self.result.failed):
            jobs = self._targets_for(jobs)
            if jobs and not (self.opts.stop_on_error and self.result.failed):
                Renewals(self.opts, self.ossl, self.clock, self.now, self.ledger, self.gate,
                         self.proxies, self.record, self.stopping, self.progress,
                         self.after_install).renew(jobs)

    def _clean_stale_temps(self, items: Sequence[Item]) -> None:
        """Delete temp files of ours that a killed writer left in the staple directories and
        beside the state cache, and scratch directories of killed runs (only stale ones, only our
        own: ``store.clean_stale_temps``, ``openssl.clean_stale_scratch``)."""
        now = self.now.timestamp()
        for directory in sorted({os.path.dirname(it.abs_staple) for it in items}):
            store.clean_stale_temps(directory, now)
        if self.cache.path:
            store.clean_stale_temps(os.path.dirname(os.path.abspath(self.cache.path)), now,
                                    base=os.path.basename(self.cache.path))
        clean_stale_scratch(now)

    # -- facts and the state cache -------------------------------------------
    def _collisions(self, items: List[Item]) -> None:
        """Two different leaves must never share one staple file."""
        by_staple: Dict[str, List[Item]] = {}
        for item in items:
            if item.kind == "leaf":
                by_staple.setdefault(item.abs_staple, []).append(item)
        for group in by_staple.values():
            if len(group) < 2 or len({os.path.realpath(it.cand.cert) for it in group}) < 2:
                continue
            msg = (f"{', '.join(it.cand.cert for it in group)} would share the staple "
                   f"{group[0].cand.staple}; give them distinct names (or drop --out-dir)")
            for it in group:
                it.kind, it.error, it.decision = "failed", msg, None
                self.report(FAILED, it, msg)

    def _from_cache(self, item: Item) -> None:
        """Take the item's facts from the cache if every identity still matches."""
        cand = item.cand
        item.cert_id = identity(cand.cert)
        entry = self.cache.get(item.key)
        if item.cert_id is None:
            item.kind, item.error = "failed", f"{cand.cert}: no such file"
            self.report(FAILED, item, item.error)
            return
        if entry is None or entry.get("cert_id") != item.cert_id:
            return
        if entry.get("kind") == "ignore":
            item.kind, item.entry = "ignore", entry
            return
        item.staple_id = identity(cand.staple)
        if entry.get("kind") != "leaf" or entry.get("staple_id") != item.staple_id \
                or entry.get("issuer_spec") != cand.issuer:
            return
        ipath = entry.get("issuer_path")
        if ipath is not None and identity(ipath) != entry.get("issuer_id"):
            return
        item.kind, item.entry, item.issuer_path = "leaf", entry, ipath
        # the fast path: a good staple inside its fresh window needs no objects at all
        item.decision = facts.fast_decision(item, entry, self.opts, self.now, self.force)
        if item.decision is None:
            item.cert = facts.cert_facts(entry)
            item.staple = facts.staple_facts(entry.get("staple"))

    def record(self, item: Item) -> None:
        """Record the item's established facts in the cache."""
        if item.kind == "ignore":
            self.cache.put(item.key, {"cert_id": item.cert_id, "kind": "ignore", "why": item.error})
        elif item.kind != "leaf" or item.cert is None:
            self.cache.drop(item.key)
        else:
            issuer_id = identity(item.issuer_path) if item.issuer_path else None
            item.entry = facts.leaf_entry(item, issuer_id, self.opts)
            self.cache.put(item.key, item.entry)

    def _once(self, item: Item, token: str) -> bool:
        """Should a "reported once" message be printed now?  -q prints nothing; -n prints it
        (if not reported yet) without marking it, so the real run still reports it."""
        if self.opts.question:
            return False
        if self.opts.dry_run:
            return self.opts.verbose or (item.entry or {}).get("reported") != token
        entry = item.entry
        if entry is None:
            return True
        if entry.get("reported") == token:
            return self.opts.verbose
        entry["reported"] = token
        self.cache.put(item.key, entry)
        return True

    # -- doing ---------------------------------------------------------------
    def _prune(self, step: plan.Step) -> None:
        item = step.item
        try:
            os.unlink(item.cand.staple)
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.report(FAILED, item, f"{item.cand.staple}: cannot delete the stale staple: "
                                      f"{exc.strerror}")
            return
        store.fsync_dir(os.path.dirname(os.path.abspath(item.cand.staple)))
        item.staple_id, item.staple = None, None
        self.record(item)
        self.report(step.action, item, step.detail)

    def _targets_for(self, jobs: List[Item]) -> List[Item]:
        """Items planned from the cache still need their certificate and issuer as objects."""
        need = [it for it in jobs if it.target is None]
        if not need:
            return jobs
        for it in need:
            it.kind, it.issuer_path = "", None
        load.load_targets(need, self.ossl, self.opts)
        for it in need:
            if it.kind != "leaf":
                if it.kind == "ignore":
                    it.error = f"{it.cand.cert}: no longer holds a leaf certificate"
                self.report(FAILED, it, it.error or f"{it.cand.cert}: cannot be loaded")
        return [it for it in jobs if it.kind == "leaf"]
