"""The renewal driver of ocsp-renew-dir: establish facts, plan (pure), then carry the plan out.

1. *Facts*: for each candidate certificate, either the state cache still
   vouches for it (the identities of the certificate, issuer and staple files
   are unchanged) or it is loaded: certificates parsed in batches (one
   ``openssl storeutl`` for all), issuers found and signature-checked in
   batches (one ``openssl verify`` per issuer), and the installed staple
   verified strictly (one ``openssl ocsp`` each).
2. *Plan*: ``plan()`` is a pure function of those facts, the options and
   ``now``: one ``policy.Decision`` per certificate.
3. *Run*: the staples due are fetched in parallel (``jobs`` threads, at
   most ``per_responder`` in flight per responder host), each response is
   verified for its certificate and installed atomically only if it is good
   and newer than the installed one; backups, pruning, the state cache and
   the on-change hook follow.

Nothing here prints: every outcome is a ``Report`` the command prints.
"""

from __future__ import annotations

import os
import subprocess
import threading
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable, Collection, Dict, Iterator, List, Optional, Sequence, Tuple

from . import install, life, policy, store, transport, verify
from .certs import IssuerFinder, ders_of, parse_many, read_input
from .codec.pem import pem_damage
from .discovery import Candidate
from .errors import (FetchError, InputError, OcspToolsError, OpensslError, StaleResponse, StoreError,
                     WrongCertificate)
from .fetch import FetchOptions, FetchResult, Target, fetch_staple
from .openssl import OpenSSL, clean_stale_scratch
from .parallel import parallel_map
from .policy import CertFacts, Decision, RenewOptions, StapleFacts
from .staple import Certificate, Staple, decode_staple, iso
from .statecache import StateCache, from_epoch, identity, pair_key, to_epoch

Clock = Callable[[], datetime]

# Output actions (the first column).
RENEWED, FAILED, REVOKED, SKIPPED, STALE, WOULD_RENEW, FRESH = (
    "renewed", "failed", "revoked", "skipped", "stale-staple", "would-renew", "fresh")


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
    # action, "unchanged" when the responder's answer was the installed one, "" when not acted on
    outcome: str = ""
    detail: str = ""
    retry_after: Optional[float] = None     # the responder's Retry-After on a failed fetch
    try_later: bool = False                 # a responder answered tryLater on a failed fetch
    cert_status: str = ""                   # the fetched answer's status: good, revoked, unknown
    applicable: bool = True                 # False: no responder URL (decided before any issuer search)
    revocation_time: Optional[str] = None   # a revoked answer's revocationTime (ISO 8601 UTC)
    revocation_reason: Optional[str] = None

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


def renew_options_for(cand: Candidate, base: RenewOptions) -> RenewOptions:
    if cand.renew_at is None and cand.min_validity is None:
        return base
    return replace(base, renew_at=base.renew_at if cand.renew_at is None else cand.renew_at,
                   min_validity=base.min_validity if cand.min_validity is None else cand.min_validity)


def responder_urls_for(item: Item, opts: RunOptions) -> Tuple[str, ...]:
    if item.cand.urls:
        return item.cand.urls
    if opts.fetch.urls:
        return opts.fetch.urls
    return tuple(item.cert.ocsp_urls) if item.cert is not None else ()


def cached_facts(item: Item) -> Tuple[Optional[CertFacts], Optional[StapleFacts]]:
    """The item's certificate and staple facts: as loaded in this run, or, for an item the
    state cache's fast path decided without loading, as its cache entry records them."""
    entry = item.entry
    if item.cert is not None or not entry or entry.get("kind") != "leaf":
        return item.cert, item.staple
    return _cert_facts(entry), _staple_facts(entry.get("staple"))


def cert_newer(item: Item) -> bool:
    """make's rule: the certificate file was modified after its staple file."""
    return bool(item.cert_id and item.staple_id and item.cert_id[3] > item.staple_id[3])


# ---------------------------------------------------------------------------
# Pure planning
# ---------------------------------------------------------------------------

def plan(items: Sequence[Item], now: datetime, opts: RunOptions,
         force: Collection[str] = ()) -> None:
    """Decide every loaded leaf (sets ``item.decision``).  Pure: no I/O, no clock.

    Items whose key is in FORCE are decided as with ``--always-renew`` (the --watch
    scheduler's jittered instant for them has come)."""
    for item in items:
        if item.kind != "leaf" or item.cert is None:
            continue
        ropts = renew_options_for(item.cand, opts.renew)
        if item.key in force:
            ropts = replace(ropts, always=True)
        applicable = bool(responder_urls_for(item, opts))
        item.decision = policy.renewal_decision(item.cert, item.staple, now, ropts,
                                                applicable=applicable,
                                                cert_newer=cert_newer(item))


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------

class Driver:
    def __init__(self, opts: RunOptions, ossl: OpenSSL, cache: StateCache, clock: Clock) -> None:
        self.opts = opts
        self.ossl = ossl
        self.cache = cache
        self.clock = clock
        self.now = clock()
        self.result = RunResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.progress: Optional[Callable[[int, int], None]] = None
        self.emit: Optional[Callable[[Report], None]] = None
        self.items: List[Item] = []
        self.force: Collection[str] = ()    # keys renewed as with -B (--watch: their time came)
        self.gate = WriteGate()
        # called after a staple was installed; returns why a server refused it, or None
        self.after_install: Optional[Callable[[Item, Staple], Optional[str]]] = None
        self._proxies: Dict[str, transport.HttpOptions] = {}

    # -- output --------------------------------------------------------------
    def report(self, action: str, item: Item, detail: str) -> None:
        rep = Report(action, item.cand.cert, item.cand.staple, detail)
        with self._lock:
            item.outcome, item.detail = action, detail
            self.result.reports.append(rep)
            if action == FAILED:
                self.result.failed += 1
            elif action == REVOKED:
                self.result.revoked += 1
        if self.emit is not None:
            self.emit(rep)

    def stop(self) -> None:
        """Start no new fetch (those in flight finish; see ``gate`` for installs)."""
        self._stop.set()

    # -- the run -------------------------------------------------------------
    def run(self, candidates: Sequence[Candidate], *, forget: bool = True) -> RunResult:
        """One run over CANDIDATES.  FORGET drops the state cache's entries for pairs not among
        them (a full run); --watch runs subsets and keeps the others.  The run's openssl calls
        share one set of input files (each certificate written once as PEM)."""
        with self.ossl.batch():
            return self._run(candidates, forget)

    def _run(self, candidates: Sequence[Candidate], forget: bool = True) -> RunResult:
        items = self.items = self._items(candidates)
        for it in items:
            if it.kind == "":
                self._from_cache(it)          # sets kind (and maybe the decision) when it can
        todo = [it for it in items if it.kind == ""]
        if todo:
            self._load(todo)
        self._collisions(items)
        plan([it for it in items if it.kind == "leaf" and it.decision is None], self.now, self.opts,
             self.force)
        jobs = self._act(items)
        if self.opts.stop_on_error and self.result.failed:
            jobs = []
        if jobs:
            self._renew(jobs)
        self.result.spawned = self.ossl.spawned
        if forget and not (self.opts.dry_run or self.opts.question):
            self.cache.forget_unseen()
            self._clean_stale_temps(items)
        return self.result

    def _clean_stale_temps(self, items: Sequence[Item]) -> None:
        """Delete temp files of ours that a killed writer left in the staple directories and
        beside the state cache, and scratch directories of killed runs (only stale ones, only our
        own: ``store.clean_stale_temps``, ``openssl.clean_stale_scratch``)."""
        now = self.now.timestamp()
        for directory in sorted({os.path.dirname(os.path.abspath(it.cand.staple)) for it in items}):
            store.clean_stale_temps(directory, now)
        if self.cache.path:
            store.clean_stale_temps(os.path.dirname(os.path.abspath(self.cache.path)), now,
                                    base=os.path.basename(self.cache.path))
        clean_stale_scratch(now)

    # -- items and the cache -------------------------------------------------
    def _items(self, candidates: Sequence[Candidate]) -> List[Item]:
        items: List[Item] = []
        seen: Dict[str, Item] = {}
        for cand in candidates:
            key = pair_key(cand.cert, cand.staple)
            if key in seen:
                continue
            item = Item(cand, key)
            seen[key] = item
            items.append(item)
        return items

    def _collisions(self, items: List[Item]) -> None:
        """Two different leaves must never share one staple file."""
        by_staple: Dict[str, List[Item]] = {}
        cwd = os.getcwd()
        for item in items:
            if item.kind == "leaf":
                staple = os.path.normpath(os.path.join(cwd, item.cand.staple))
                by_staple.setdefault(staple, []).append(item)
        for group in by_staple.values():
            if len(group) < 2 or len({os.path.realpath(it.cand.cert) for it in group}) < 2:
                continue
            msg = (f"{', '.join(it.cand.cert for it in group)} would share the staple "
                   f"{group[0].cand.staple}; give them distinct names (or drop --out-dir)")
            for it in group:
                it.kind, it.error, it.decision = "failed", msg, None
                self.report(FAILED, it, msg)

    def _from_cache(self, item: Item) -> bool:
        """Take the item's facts from the cache if every identity still matches."""
        cand = item.cand
        item.cert_id = identity(cand.cert)
        entry = self.cache.get(item.key)
        if item.cert_id is None:
            item.kind = "failed"
            item.error = f"{cand.cert}: no such file"
            self.report(FAILED, item, item.error)
            return False
        if entry is None or entry.get("cert_id") != item.cert_id:
            return False
        if entry.get("kind") == "ignore":
            item.kind, item.entry = "ignore", entry
            return True
        item.staple_id = identity(cand.staple)
        if entry.get("kind") != "leaf" or entry.get("staple_id") != item.staple_id \
                or entry.get("issuer_spec") != cand.issuer:
            return False
        ipath = entry.get("issuer_path")
        if ipath is not None and identity(ipath) != entry.get("issuer_id"):
            return False
        item.kind, item.entry = "leaf", entry
        item.issuer_path = ipath
        # the fast path: a good staple inside its fresh window needs no objects at all
        ropts = renew_options_for(cand, self.opts.renew)
        win = entry.get("win")
        now = int(self.now.timestamp())
        has_url = bool(cand.urls or self.opts.fetch.urls or entry.get("urls"))
        if (win and has_url and not ropts.always and entry.get("win_key") == ropts.key()
                and not cert_newer(item) and item.key not in self.force
                and win[0] <= now < win[1] and not self.opts.verbose):
            st = _staple_facts(entry.get("staple"))
            lf = st.life(from_epoch(entry["na"])) if st is not None else None
            item.decision = Decision(policy.FRESH, "fresh (state cache)", renew_at=from_epoch(win[1]),
                                     valid_until=lf.end if lf is not None else None)
            return True
        item.cert = _cert_facts(entry)
        item.staple = _staple_facts(entry.get("staple"))
        return True

    def _store(self, item: Item) -> None:
        """Record the item's established facts in the cache."""
        if item.kind == "ignore":
            self.cache.put(item.key, {"cert_id": item.cert_id, "kind": "ignore", "why": item.error})
            return
        if item.kind != "leaf" or item.cert is None:
            self.cache.drop(item.key)
            return
        entry = {
            "cert_id": item.cert_id, "kind": "leaf", "staple_id": item.staple_id,
            "issuer_spec": item.cand.issuer, "issuer_path": item.issuer_path,
            "issuer_id": identity(item.issuer_path) if item.issuer_path else None,
            "serial": item.cert.serial, "nb": to_epoch(item.cert.not_before),
            "na": to_epoch(item.cert.not_after), "urls": list(item.cert.ocsp_urls),
            "staple": _staple_json(item.staple),
        }
        old = item.entry or {}
        if old.get("reported"):
            entry["reported"] = old["reported"]
        st = item.staple
        if st is not None and st.status == "good" and st.serial == item.cert.serial \
                and st.next_update is not None and st.this_update is not None:
            ropts = renew_options_for(item.cand, self.opts.renew)
            lf = st.life(item.cert.not_after)
            assert lf is not None
            due, _ = life.renewal_due(lf, ropts.rule)
            entry["win"] = [to_epoch(lf.this_update - ropts.skew), to_epoch(due)]
            entry["win_key"] = ropts.key()
        item.entry = entry
        self.cache.put(item.key, entry)

    def _once(self, item: Item, token: str) -> bool:
        """Should a "reported once" message be printed now?  -q prints nothing; -n prints it
        (if not reported yet) without marking it, so the real run still reports it."""
        if self.opts.question:
            return False
        if self.opts.dry_run:
            return self.opts.verbose or (item.entry or {}).get("reported") != token
        return self._mark_reported(item, token) or self.opts.verbose

    def _mark_reported(self, item: Item, token: str) -> bool:
        """True if TOKEN was not reported before for this item (and remember it)."""
        entry = item.entry
        if entry is None:
            return True
        if entry.get("reported") == token:
            return False
        entry["reported"] = token
        self.cache.put(item.key, entry)
        return True

    # -- loading -------------------------------------------------------------
    def _load(self, items: List[Item]) -> None:
        """Load certificates, find issuers, verify installed staples (batched); cache the facts."""
        for item in items:
            if item.cert_id is None:
                item.cert_id = identity(item.cand.cert)
            item.staple_id = identity(item.cand.staple)
        self._load_targets(items)
        leaves = [it for it in items if it.kind == "leaf"]
        self._verify_staples(leaves)
        for item in items:
            if item.kind in ("leaf", "ignore"):
                self._store(item)
            if item.kind == "failed":
                self.report(FAILED, item, item.error)

    def _load_targets(self, items: List[Item]) -> None:
        cert_ders: Dict[int, List[bytes]] = {}
        for idx, item in enumerate(items):
            cand = item.cand
            try:
                data = read_input(cand.cert)
            except InputError as exc:
                item.kind, item.error = "failed", str(exc)
                continue
            damage = pem_damage(data)
            if damage is not None:
                item.kind, item.error = "failed", str(damage.error(cand.cert))
                continue
            ders = ders_of(data, self.ossl)
            if not ders:
                what = "a private key" if b"PRIVATE KEY-----" in data else "no certificate"
                item.kind, item.error = "ignore", f"holds {what}"
                if cand.explicit:
                    item.kind, item.error = "failed", f"{cand.cert}: holds {what}, not a certificate"
                continue
            cert_ders[idx] = ders
        issuer_files: Dict[str, List[bytes]] = {}
        for idx in cert_ders:
            cand = items[idx].cand
            paths = [cand.issuer] if cand.issuer else list(cand.issuer_files)
            for path in paths:
                if path in issuer_files or path is None:
                    continue
                try:
                    issuer_files[path] = ders_of(read_input(path), self.ossl) if os.path.isfile(path) else []
                except InputError as exc:
                    if cand.issuer:
                        issuer_files[path] = []
                        items[idx].error = str(exc)
                    else:
                        issuer_files[path] = []
        unique: Dict[bytes, None] = {}
        for ders in cert_ders.values():
            for d in ders:
                unique.setdefault(d)
        for ders in issuer_files.values():
            for d in ders:
                unique.setdefault(d)
        parsed = parse_many(list(unique), self.ossl, self.opts.jobs)

        # Choose the leaf; list its issuer candidates in order.
        pending: Dict[int, List[Tuple[Certificate, str]]] = {}
        for idx, ders in cert_ders.items():
            item = items[idx]
            cand = item.cand
            leaf = parsed.get(ders[0])
            if leaf is None:
                item.kind, item.error = "failed", f"{cand.cert}: not a valid certificate"
                continue
            if leaf.is_ca:
                item.kind, item.error = "ignore", "a CA certificate, not a leaf"
                if cand.explicit:
                    item.kind, item.error = "failed", (f"{cand.cert}: holds a CA certificate "
                                                        f"({leaf.subject}), not a leaf")
                continue
            item.kind = "leaf"
            item.cert = CertFacts.of(leaf)
            item.target = Target(leaf=leaf, issuer=leaf, label=cand.cert)   # issuer set below
            if not responder_urls_for(item, self.opts):
                # no OCSP responder: "not applicable", decided before any issuer is looked for
                # (a tree without issuers must not fail on it every hour)
                item.applicable = False
                continue
            options: List[Tuple[Certificate, str]] = []
            if cand.issuer:
                options = [(parsed[d], cand.issuer) for d in issuer_files.get(cand.issuer, [])[:1]
                           if d in parsed]
            else:
                options = [(parsed[d], cand.cert) for d in ders[1:] if d in parsed]
                for path in cand.issuer_files:
                    options += [(parsed[d], path) for d in issuer_files.get(path, []) if d in parsed]
            options = [(c, src) for c, src in options if c.der != leaf.der and c.may_have_issued(leaf)]
            pending[idx] = options

        # Signature-check candidates, one openssl verify per distinct issuer per round.
        while True:
            groups: Dict[bytes, List[int]] = {}
            for idx, options in pending.items():
                if options and items[idx].issuer_path is None:
                    groups.setdefault(options[0][0].der, []).append(idx)
            if not groups:
                break
            for der, idxs in groups.items():
                try:
                    verdicts = self.ossl.verify_issued_many(
                        parsed[der], [items[idx].tgt.leaf for idx in idxs], workers=self.opts.jobs)
                except OpensslError as exc:
                    for idx in idxs:
                        items[idx].kind, items[idx].error = "failed", f"{items[idx].cand.cert}: {exc}"
                        pending[idx] = []
                    continue
                for idx, (ok, _) in zip(idxs, verdicts):
                    cert, src = pending[idx].pop(0)
                    if ok:
                        item = items[idx]
                        item.target = Target(leaf=item.tgt.leaf, issuer=cert,
                                             label=item.cand.cert, issuer_source=src)
                        item.issuer_path = src
                        pending[idx] = []
        # Whatever is left: AIA, or a clear failure.
        finder = IssuerFinder(self.ossl, http=self.opts.fetch.http, use_aia=self.opts.use_aia)
        for idx in pending:
            item = items[idx]
            if item.kind != "leaf" or item.issuer_path is not None:
                continue
            cand = item.cand
            if cand.issuer:
                item.kind = "failed"
                item.error = item.error or (f"{cand.issuer}: did not issue {cand.cert}; give the "
                                            f"certificate that signed it as its issuer")
                continue
            tried = ", ".join(["the bundle"] + [os.path.basename(p) for p in cand.issuer_files])
            if self.opts.use_aia and item.tgt.leaf.ca_issuers_urls:
                try:
                    match = finder.find(item.tgt.leaf)
                except OcspToolsError as exc:
                    item.kind, item.error = "failed", f"{cand.cert}: {exc}"
                    continue
                item.target = Target(leaf=item.tgt.leaf, issuer=match.issuer,
                                     label=cand.cert, issuer_source=match.source)
                item.issuer_path = None
                continue
            item.kind = "failed"
            item.error = (f"{cand.cert}: issuer not found (tried {tried}); append the chain to "
                          f"the certificate file or put the issuer in {cand.cert}.issuer")

    def _verify_staples(self, leaves: List[Item]) -> None:
        todo = [it for it in leaves if it.staple_id is not None and it.applicable]

        def one(item: Item) -> None:
            try:
                data = store.read_file(item.cand.staple)
            except StoreError as exc:
                item.staple = StapleFacts.unusable(str(exc))
                return
            if not data:
                item.staple = StapleFacts.unusable("empty file")
                return
            try:
                st = verify.verify(decode_staple(data), item.tgt.leaf, item.tgt.issuer,
                                   self.ossl, label=item.cand.staple)
            except FetchError as exc:
                problem = _strip_label(str(exc), item.cand.staple)
                serial = None
                if isinstance(exc, WrongCertificate):
                    try:        # which certificate is it for?  (the re-issued case)
                        serial = verify.inspect(decode_staple(data), self.ossl).serial
                    except (FetchError, OpensslError):
                        serial = None
                item.staple = StapleFacts(serial=serial, problem=problem)
                return
            except OpensslError as exc:
                item.staple = StapleFacts.unusable(str(exc))
                return
            item.staple = StapleFacts.of(st)
        parallel_map(one, todo, self.opts.jobs)

    # -- acting on the plan ----------------------------------------------------
    def _act(self, items: List[Item]) -> List[Item]:
        jobs: List[Item] = []
        dry = self.opts.dry_run or self.opts.question
        for item in items:
            if item.kind == "ignore" and self.opts.verbose:
                why = item.error or (item.entry or {}).get("why", "")
                self.report(SKIPPED, item, f"not a leaf certificate ({why})")
            if item.kind != "leaf" or item.decision is None:
                continue
            d = item.decision
            if d.action == policy.FRESH:
                if self.opts.verbose:
                    self.report(FRESH, item, d.reason)
            elif d.action == policy.CERT_EXPIRED:
                if self._once(item, f"expired:{item.cert_id}"):
                    self.report(SKIPPED, item, d.reason)
            elif d.action == policy.NOT_APPLICABLE:
                self._not_applicable(item, dry)
            elif d.action == policy.RENEW:
                if dry:
                    self.result.pending += 1
                    if self.opts.dry_run:
                        self.report(WOULD_RENEW, item, d.reason)
                else:
                    jobs.append(item)
        return jobs

    def _not_applicable(self, item: Item, dry: bool) -> None:
        assert item.decision is not None
        if item.staple_id is None:
            if self.opts.verbose:
                self.report(SKIPPED, item, item.decision.reason)
            return
        if self.opts.prune:
            if dry:
                self.result.pending += 1
                if self.opts.dry_run:
                    self.report(STALE, item, "stale staple for a certificate without OCSP; "
                                             "would delete it (--prune)")
                return
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
            self._store(item)
            self.report(STALE, item, "stale staple for a certificate without OCSP; deleted (--prune)")
            return
        if self._once(item, f"stale:{item.staple_id}"):
            self.report(STALE, item, "stale staple for a certificate without OCSP; servers may "
                                         "still serve it: delete it or run with --prune")

    # -- renewing ------------------------------------------------------------
    def _renew(self, jobs: List[Item]) -> None:
        # Items planned from the cache still need their certificate and issuer as objects.
        need = [it for it in jobs if it.target is None]
        if need:
            for it in need:
                it.kind, it.issuer_path = "", None
            self._load_targets(need)
            for it in need:
                if it.kind != "leaf":
                    if it.kind == "ignore":
                        it.error = f"{it.cand.cert}: no longer holds a leaf certificate"
                    self.report(FAILED, it, it.error or f"{it.cand.cert}: cannot be loaded")
            if self.opts.stop_on_error and self.result.failed:
                return
            jobs = [it for it in jobs if it.kind == "leaf"]
        requests = self._requests(jobs)
        total = len(jobs)
        done = [0]
        sems: Dict[str, threading.Semaphore] = {}
        for it in jobs:
            host = _host_key(responder_urls_for(it, self.opts))
            sems.setdefault(host, threading.Semaphore(max(1, self.opts.per_responder)))

        def one(item: Item) -> None:
            if self._stop.is_set():
                return
            urls = responder_urls_for(item, self.opts)
            with sems[_host_key(urls)]:
                if self._stop.is_set():
                    return
                self._renew_one(item, urls, requests.get(item.key))
            with self._lock:
                done[0] += 1
                if self.progress is not None:
                    self.progress(done[0], total)
            if self.opts.stop_on_error and (self.result.failed or self.result.revoked):
                self._stop.set()
        parallel_map(one, jobs, self.opts.jobs)

    def _requests(self, jobs: List[Item]) -> Dict[str, bytes]:
        """Prebuilt requests, one openssl per issuer (a failure leaves the item to build its own)."""
        groups: Dict[bytes, List[Item]] = {}
        for it in jobs:
            groups.setdefault(it.tgt.issuer.der, []).append(it)
        out: Dict[str, bytes] = {}
        for der, its in groups.items():
            try:
                reqs = self.ossl.build_requests(its[0].tgt.issuer, [it.tgt.leaf for it in its],
                                                hash_alg=self.opts.fetch.hash_alg,
                                                workers=self.opts.jobs)
            except (OpensslError, ValueError):
                continue
            for it, req in zip(its, reqs):
                out[it.key] = req
        return out

    def _fetch(self, item: Item, urls: Tuple[str, ...], request: Optional[bytes]) -> FetchResult:
        """``fetch.fetch_staple`` with this run's responder URLs, prebuilt request and proxy choices."""
        opts = replace(self.opts.fetch, urls=urls)
        return fetch_staple(item.tgt, opts, self.ossl, self.clock, request=request,
                            http_for=self._http_for)

    def _http_for(self, url: str) -> transport.HttpOptions:
        """The HTTP options for URL with the environment's proxy choice made once per host
        (http_proxy/no_proxy are read from the environment, not on every request)."""
        http = self.opts.fetch.http
        if http.proxy is not None:
            return http
        parts = urllib.parse.urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        cached = self._proxies.get(key)
        if cached is None:
            if urllib.request.proxy_bypass_environment(parts.hostname or ""):  # type: ignore[attr-defined]
                proxy = ""
            else:
                proxy = urllib.request.getproxies_environment().get(parts.scheme) or ""
            cached = self._proxies[key] = replace(http, proxy=proxy)
        return cached

    def _kept(self, item: Item) -> str:
        """What the failed renewal left in place, said the way a sysadmin needs it."""
        st = item.staple
        lf = st.life(item.tgt.leaf.not_after) if st is not None else None
        mine = st is not None and st.serial == item.tgt.leaf.serial
        if mine and lf is not None and lf.end is not None:
            assert st is not None
            if st.status == "good" and lf.end > self.now:
                return f"; the installed staple was kept, valid until {iso(lf.end)}"
            if st.status == "good":
                return (f"; the installed staple was kept, but it expired at {iso(lf.end)} "
                        f"(servers stop stapling it)")
            return f"; the installed staple was kept (it says {st.status})"
        if item.staple_id is not None:
            why = (st.problem if st is not None and st.problem else
                   "it is for another certificate" if st is not None and not mine else "unusable")
            return f"; the installed file was kept (not a valid staple: {why})"
        return "; no staple installed"

    def _renew_one(self, item: Item, urls: Tuple[str, ...], request: Optional[bytes]) -> None:
        try:
            result = self._fetch(item, urls, request)
        except (FetchError, OpensslError) as exc:
            item.retry_after = getattr(exc, "retry_after", None)
            item.try_later = bool(getattr(exc, "try_later", False))
            self.report(FAILED, item, _strip_label(str(exc), item.cand.cert) + self._kept(item))
            return
        staple = result.staple
        item.cert_status = staple.cert_status
        if staple.cert_status == "revoked":
            reason = staple.single.revocation_reason
            item.revocation_time, item.revocation_reason = iso(staple.single.revocation_time), reason
            self.report(REVOKED, item, f"REVOKED at {iso(staple.single.revocation_time)}"
                        + (f" ({reason})" if reason else "") + f" according to {result.url}"
                        + self._kept(item))
            return
        if staple.cert_status != "good":
            self.report(FAILED, item, f"the responder {result.url} says {staple.cert_status}; "
                                      f"check the issuer and responder URL" + self._kept(item))
            return
        try:
            changed = self._install(item, staple)
        except OcspToolsError as exc:
            self.report(FAILED, item, _strip_label(str(exc), item.cand.cert) + self._kept(item))
            return
        if not changed:
            if self.opts.verbose:
                self.report(SKIPPED, item, f"the responder's answer is the installed one "
                                           f"(thisUpdate {iso(staple.this_update)}); kept")
            item.outcome = "unchanged"
            return
        due, _ = life.renewal_due(staple.life, renew_options_for(item.cand, self.opts.renew).rule)
        detail = f"good until {iso(staple.valid_until)}, renewal due at {iso(due)}"
        if result.warnings:
            detail += "; warning: " + "; ".join(result.warnings)
        if self.after_install is not None:
            refused = self.after_install(item, staple)
            if refused:
                detail += "; " + refused
                with self._lock:
                    self.result.push_failed += 1
        self.report(RENEWED, item, detail)

    def _install(self, item: Item, staple: Staple) -> bool:
        with self.gate.passage(item.cand.staple):
            return self._install_now(item, staple)

    def _install_now(self, item: Item, staple: Staple) -> bool:
        path = item.cand.staple
        target = item.tgt
        new = StapleFacts.of(staple)
        if identity(path) != item.staple_id:
            # the file changed since it was examined: judge what is there now
            cur = install.installed_staple(path, target, self.ossl, self.clock())
            current = StapleFacts.of(cur) if cur is not None else None
        else:
            st = item.staple
            current = st if (st is not None and st.status is not None
                             and st.serial == target.leaf.serial) else None
        verdict = install.decide(staple.version, current.version if current is not None else None)
        if verdict == install.OLDER:
            assert current is not None
            raise StaleResponse(install.older_message(new.this_update, current.this_update), path=path)
        if verdict == install.SAME:
            if cert_newer(item):
                # the same response again, for a touched certificate: rewrite it (identical,
                # verified bytes) so the staple is newer than the certificate, as make expects
                install.rewrite(path, staple.der)
                with self._lock:
                    item.staple_id = identity(path)
                    item.staple = new
                    self._store(item)
            return False
        install.write_newer(path, staple.der, backup=self.opts.backup, keep=self.opts.backup_keep)
        with self._lock:
            self.result.changed.append(path)
            item.staple_id = identity(path)
            item.staple = new
            self._store(item)
        return True


class WriteGate:
    """Every install passes through here.  ``close()`` waits for the installs in progress and
    refuses later ones, so a fetch abandoned at shutdown (--watch) can never write afterwards."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._closed = False

    @contextmanager
    def passage(self, path: str) -> Iterator[None]:
        with self._cond:
            if self._closed:
                raise StoreError(f"{path}: not installed: shutting down", path=path)
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def close(self, timeout: Optional[float] = None) -> bool:
        """Refuse new installs; wait (up to TIMEOUT) for those in progress.  True if none is left."""
        with self._cond:
            self._closed = True
            return self._cond.wait_for(lambda: self._active == 0, timeout)


def _host_key(urls: Sequence[str]) -> str:
    if not urls:
        return ""
    try:
        parts = urllib.parse.urlsplit(urls[0])
        return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    except ValueError:              # a certificate's unusable URL: its fetch fails with a reason
        return urls[0]


def _strip_label(message: str, label: str) -> str:
    prefix = label + ": "
    return message[len(prefix):] if message.startswith(prefix) else message


def _cert_facts(entry: dict) -> CertFacts:
    nb, na = from_epoch(entry["nb"]), from_epoch(entry["na"])
    assert nb is not None and na is not None
    return CertFacts(entry["serial"], nb, na, tuple(entry.get("urls") or ()))


def _staple_json(st: Optional[StapleFacts]) -> Optional[dict]:
    if st is None:
        return None
    return {"status": st.status, "serial": st.serial, "tu": to_epoch(st.this_update),
            "nu": to_epoch(st.next_update), "pa": to_epoch(st.produced_at),
            "sna": to_epoch(st.signer_not_after), "problem": st.problem}


def _staple_facts(data: Optional[dict]) -> Optional[StapleFacts]:
    if data is None:
        return None
    return StapleFacts(data.get("status"), data.get("serial"), from_epoch(data.get("tu")),
                       from_epoch(data.get("nu")), from_epoch(data.get("pa")),
                       from_epoch(data.get("sna")), data.get("problem") or "")


def run_hook(command: str, changed: Sequence[str], *, stdout=None) -> Tuple[int, str]:
    """Run the user's ``--on-change`` command through the shell with OCSP_CHANGED set.

    File names travel only in the environment, never in the command string.
    Returns (exit status, a one-line description of a failure or "")."""
    env = dict(os.environ)
    env["OCSP_CHANGED"] = "\n".join(changed)
    try:
        proc = subprocess.run(command, shell=True, env=env, stdin=subprocess.DEVNULL, stdout=stdout)
    except OSError as exc:
        return 127, f"cannot run the --on-change command: {exc.strerror}"
    if proc.returncode != 0:
        how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exited with status {proc.returncode}")
        return proc.returncode, f"the --on-change command {how}"
    return 0, ""
