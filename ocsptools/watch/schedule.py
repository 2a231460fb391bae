"""When each --watch target is looked at next: per-target slots and the scheduler (pure).

Every rule comes from ``ocsptools.life`` (the renewal instant with its jitter,
the backoff after failures, the margin before a staple lapses) through the
one-shot planner (``renewal.plan.decide``/``policy.renewal_decision``): the daemon
decides exactly what a one-shot run decides, only *when* is its own.  Nothing
here does I/O or reads the clock: ``now`` is passed in and randomness injected.

* A good staple is looked at again at its due instant (``Decision.renew_at``)
  moved up to 10 % of the time left until then *earlier*
  (``life.renewal_instant``), so a fleet started together does not hit a
  responder at once; never after the one-shot rule's due instant (a ``-q`` run
  always agrees with the daemon) nor later than a safety margin before the
  staple stops being usable.  When that instant comes the target is renewed
  (``decide(force=...)``: the jittered instant stands in for the due one).
* Failures (``life.retry_delay``): 1 minute doubling up to 1 hour; ``tryLater``
  waits at least 5 minutes and an HTTP ``Retry-After`` is honoured; but never
  past the point where the installed staple lapses: the retries tighten to a
  quarter of the time left.  Revoked and unknown answers stay on this schedule
  and are reported every time (ocsprenewer dropped such certificates).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from .. import life, policy
from ..discovery import Candidate
from ..renewal import FAILED, RENEWED, REVOKED, UNCHANGED, Item, RunOptions, cached_facts, decide
from ..statecache import pair_key

#: Backoff after failures: 1 minute doubling up to 1 hour (``life.retry_delay``).
BACKOFF = life.Backoff(base=60.0, cap=3600.0)
#: Targets due within this many seconds of the earliest one run in the same pass.
COALESCE = 0.5


#: The status of a file that holds no leaf certificate (left out of the textfile).
IGNORED = "ignored"


@dataclass
class Slot:
    """One target (a certificate and its staple): when it is looked at next, and what is known
    of it for the log and the textfile."""

    cand: Candidate
    key: str
    next_at: Optional[datetime] = None      # None: only a file change brings it back
    why: str = ""                           # what the next instant is for
    status: str = "missing"                 # see metrics_textfile.STATUSES
    failures: int = 0
    unchanged: int = 0
    last_success: Optional[datetime] = None
    last_failure: Optional[datetime] = None
    next_update: Optional[datetime] = None
    valid_until: Optional[datetime] = None
    sig: Optional[tuple] = None             # identities of its files when last seen

    @property
    def in_backoff(self) -> bool:
        return self.failures > 0 or self.unchanged > 0


@dataclass(frozen=True)
class Outcome:
    """What one pass did to one target, for the log."""

    event: str                              # renewed | failed | revoked | unchanged | ...
    slot: Slot
    detail: str


class Scheduler:
    """Every target's next instant, updated from the items of each driver run."""

    def __init__(self, backoff: life.Backoff = BACKOFF, rand: Callable[[], float] = random.random) -> None:
        self.backoff = backoff
        self.rand = rand
        self.slots: Dict[str, Slot] = {}

    # -- the candidate set ---------------------------------------------------
    def sync(self, cands: Sequence[Candidate], sigs: Dict[str, tuple]) -> Tuple[List[str], List[str], List[Slot]]:
        """Take the current candidates; return (new keys, changed keys, removed slots)."""
        new: List[str] = []
        changed: List[str] = []
        seen: Set[str] = set()
        for cand in cands:
            key = pair_key(cand.cert, cand.staple)
            if key in seen:
                continue
            seen.add(key)
            slot = self.slots.get(key)
            if slot is None:
                self.slots[key] = Slot(cand, key)
                new.append(key)
            else:
                if slot.cand != cand:
                    slot.cand = cand
                    changed.append(key)
                elif slot.sig != sigs.get(key):
                    changed.append(key)
        removed = [self.slots.pop(k) for k in list(self.slots) if k not in seen]
        return new, changed, removed

    # -- when ----------------------------------------------------------------
    def due(self, now: datetime, window: float = COALESCE) -> List[str]:
        limit = now + timedelta(seconds=window)
        return [k for k, s in self.slots.items() if s.next_at is not None and s.next_at <= limit]

    def next_instant(self) -> Optional[datetime]:
        times = [s.next_at for s in self.slots.values() if s.next_at is not None]
        return min(times) if times else None

    def not_in_backoff(self) -> List[str]:
        return [k for k, s in self.slots.items() if not s.in_backoff]

    def postpone(self, slots: Sequence[Slot], now: datetime) -> None:
        """A pass that failed as a whole: its targets are looked at again after one backoff base."""
        for s in slots:
            s.next_at = now + timedelta(seconds=self.backoff.base)

    # -- after a run -----------------------------------------------------------
    def update(self, items: Sequence[Item], now: datetime, opts: RunOptions) -> List[Outcome]:
        """Set each item's slot from what the run did; re-plan renewed ones (the same planner)."""
        out: List[Outcome] = []
        for item in items:
            slot = self.slots.get(item.key)
            if slot is None:
                continue
            out.extend(self._update(slot, item, now, opts))
        return out

    def _update(self, slot: Slot, item: Item, now: datetime, opts: RunOptions) -> List[Outcome]:
        events: List[Outcome] = []
        if item.kind == "ignore":
            # a key, a CA certificate, a README: no staple of its own, nothing to report
            slot.status, slot.next_at, slot.why = IGNORED, None, "not a leaf certificate"
            slot.failures = slot.unchanged = 0
            slot.next_update = slot.valid_until = None
            return events
        if item.kind != "leaf" or item.decision is None:
            # could not be loaded (or two certificates share one staple): retry with backoff
            slot.status = "error"
            events.append(self._failed(slot, item, now, item.error or item.detail))
            return events
        self._staple_facts(slot, item)
        d = item.decision
        if d.action in policy.IDLE:             # its status is the decision's name
            slot.status, slot.next_at, slot.why = d.action, None, ""
            slot.failures = slot.unchanged = 0
            if item.outcome:
                events.append(Outcome(item.outcome, slot, item.detail))
            return events
        if d.action == policy.FRESH:
            slot.failures = slot.unchanged = 0
            self._plan_renewal(slot, d, now)
            if item.outcome:
                events.append(Outcome(item.outcome, slot, item.detail))
            return events
        # RENEW: what came of it?
        if item.outcome in (RENEWED, UNCHANGED):
            # a new staple, or the responder handed out the installed answer again
            renewed = item.outcome == RENEWED
            slot.failures = 0
            slot.last_success = now
            if renewed:
                slot.unchanged = 0
                self._staple_facts(slot, item)
            decide([item], now, opts)                 # fresh until when?  the one-shot rule
            nd = item.decision
            if nd is not None and nd.action == policy.FRESH:
                slot.unchanged = 0
                self._plan_renewal(slot, nd, now)
            else:
                self._retry(slot, now, unchanged=True)
            events.append(Outcome(RENEWED, slot, item.detail) if renewed else
                          Outcome(UNCHANGED, slot, "the responder's answer is the installed staple; "
                                                   "asking again later"))
        elif item.outcome in (FAILED, REVOKED):
            if item.outcome == REVOKED:
                slot.status = "revoked"
            elif item.cert_status == "unknown":
                slot.status = "unknown"
            else:
                slot.status = "failed"
            events.append(self._failed(slot, item, now, item.detail, keep_status=True))
        else:
            # not attempted (shutting down, or -S after another failure): soon again
            slot.next_at = now + timedelta(seconds=self.backoff.base)
            slot.why = "not attempted"
        return events

    def _staple_facts(self, slot: Slot, item: Item) -> None:
        cert, st = cached_facts(item)
        lf = st.life(cert.not_after) if st is not None and cert is not None else None
        if st is not None and cert is not None and lf is not None and st.status == "good" \
                and st.serial == cert.serial:
            slot.next_update, slot.valid_until = st.next_update, lf.end
            slot.status = "good"
        else:
            slot.next_update = slot.valid_until = None
            slot.status = "missing"

    def _plan_renewal(self, slot: Slot, d: policy.Decision, now: datetime) -> None:
        if d.renew_at is None:
            slot.next_at, slot.why = None, ""
            return
        slot.next_at = life.renewal_instant(now, d.renew_at, d.valid_until, rand=self.rand(),
                                            jitter=life.JITTER,
                                            floor=timedelta(seconds=self.backoff.base / 60.0))
        slot.why = "renewal"

    def _left(self, slot: Slot, now: datetime) -> Optional[float]:
        if slot.valid_until is None:
            return None
        return (slot.valid_until - now).total_seconds()

    def _retry(self, slot: Slot, now: datetime, *, unchanged: bool = False,
               retry_after: Optional[float] = None, try_later: bool = False) -> float:
        if unchanged:
            slot.unchanged += 1
            n = slot.unchanged
        else:
            slot.failures += 1
            n = slot.failures
        delay = life.retry_delay(n, self.backoff, retry_after=retry_after, try_later=try_later,
                            left=self._left(slot, now))
        slot.next_at = now + timedelta(seconds=delay)
        slot.why = "retry"
        return delay

    def _failed(self, slot: Slot, item: Item, now: datetime, detail: str, *,
                keep_status: bool = False) -> Outcome:
        if not keep_status:
            slot.status = "error"
        slot.last_failure = now
        slot.unchanged = 0
        self._retry(slot, now, retry_after=item.retry_after, try_later=item.try_later)
        event = item.outcome if item.outcome in (FAILED, REVOKED) else FAILED
        return Outcome(event, slot, detail)
