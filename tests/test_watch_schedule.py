"""ocsptools/watch/schedule.py: the scheduler fed with the planner's decisions, with a controllable clock.

The rules themselves (jitter, safety margin, backoff) are ``ocsptools.life``'s: tests/test_life.py.

Nothing here sleeps: every instant is passed in, randomness is injected.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ocsptools import life, policy
from ocsptools.discovery import Candidate
from ocsptools.renewal import FAILED, RENEWED, REVOKED, Item, RunOptions
from ocsptools.policy import CertFacts, RenewOptions, StapleFacts
from ocsptools.statecache import pair_key
from ocsptools.watch.schedule import Scheduler

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)
MIN = 60.0
HOUR = 3600.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# ---------------------------------------------------------------------------
# the scheduler, fed with the planner's decisions

def cand(name: str) -> Candidate:
    return Candidate(cert=f"/certs/{name}.pem", staple=f"/certs/{name}.pem.ocsp", name=name)


CERT = CertFacts(serial=0x1234, not_before=at(-30 * 86400), not_after=at(60 * 86400),
                 ocsp_urls=("http://127.0.0.1:1/",))


def good_staple(this_update: datetime, hours: float = 24) -> StapleFacts:
    return StapleFacts(status="good", serial=CERT.serial, this_update=this_update,
                       next_update=this_update + timedelta(hours=hours), produced_at=this_update)


def item_for(c: Candidate, staple, now, *, outcome="", detail="", retry_after=None) -> Item:
    it = Item(c, pair_key(c.cert, c.staple), kind="leaf", cert=CERT, staple=staple)
    it.decision = policy.renewal_decision(CERT, staple, now, RenewOptions(), applicable=True)
    it.outcome, it.detail, it.retry_after = outcome, detail, retry_after
    return it


def scheduler(rand=0.5, base=MIN) -> Scheduler:
    s = Scheduler(life.Backoff(base=base, cap=60 * base), rand=lambda: rand)
    return s


def test_a_fresh_staple_is_scheduled_at_its_jittered_due_instant():
    s = scheduler(rand=1.0)
    c = cand("a")
    s.sync([c], {})
    st = good_staple(at(-HOUR))             # due at +11 h (half of 24 h)
    it = item_for(c, st, T0)
    assert it.decision.action == policy.FRESH
    s.update([it], T0, RunOptions())
    slot = s.slots[it.key]
    assert slot.status == "good" and slot.failures == 0
    assert slot.next_at == at(11 * HOUR - 0.1 * 11 * HOUR)
    assert s.next_instant() == slot.next_at
    assert s.due(at(9 * HOUR)) == []
    assert s.due(slot.next_at) == [it.key]


def test_a_staple_decided_from_the_state_cache_keeps_its_facts():
    """The driver's fast path decides a fresh staple from the cache entry alone (no facts
    loaded): the slot still knows its status and nextUpdate (for the textfile and backoff)."""
    from ocsptools.renewal.facts import staple_json
    from ocsptools.statecache import to_epoch
    s = scheduler(rand=0.0)             # no jitter: exactly the due instant
    c = cand("a")
    s.sync([c], {})
    st = good_staple(at(-HOUR))
    it = Item(c, pair_key(c.cert, c.staple), kind="leaf")
    it.entry = {"kind": "leaf", "serial": CERT.serial, "nb": to_epoch(CERT.not_before),
                "na": to_epoch(CERT.not_after), "urls": list(CERT.ocsp_urls), "staple": staple_json(st)}
    it.decision = policy.Decision(policy.FRESH, "fresh (state cache)", renew_at=at(11 * HOUR),
                                  valid_until=at(23 * HOUR))
    s.update([it], T0, RunOptions())
    slot = s.slots[it.key]
    assert slot.status == "good" and slot.next_update == at(23 * HOUR)
    assert slot.valid_until == at(23 * HOUR) and slot.next_at == at(11 * HOUR)


def test_renewed_staple_is_replanned_by_the_one_shot_rule():
    s = scheduler(rand=0.5)
    c = cand("a")
    s.sync([c], {})
    it = item_for(c, None, T0)              # no staple: renew now
    assert it.decision.action == policy.RENEW
    it.outcome = RENEWED
    it.staple = good_staple(T0)             # what the driver installed
    s.update([it], T0, RunOptions())
    slot = s.slots[it.key]
    assert slot.last_success == T0 and slot.status == "good"
    assert slot.next_at == at(12 * HOUR - 0.05 * 12 * HOUR)     # rand 0.5: 5 % of 12 h early
    assert slot.next_update == at(24 * HOUR)


def test_failures_back_off_and_keep_the_old_staple_in_view():
    s = scheduler()
    c = cand("a")
    s.sync([c], {})
    st = good_staple(at(-13 * HOUR))        # due 1 h ago, valid 11 h more
    now = T0
    delays = []
    for _ in range(8):
        it = item_for(c, st, now, outcome=FAILED, detail="connection refused")
        assert it.decision.action == policy.RENEW
        s.update([it], now, RunOptions())
        slot = s.slots[it.key]
        delays.append((slot.next_at - now).total_seconds())
        now = slot.next_at
    assert delays[:6] == [MIN, 2 * MIN, 4 * MIN, 8 * MIN, 16 * MIN, 32 * MIN]
    assert all(b >= a or b <= ((st.next_update - now).total_seconds()) for a, b in zip(delays, delays[1:]))
    slot = s.slots[it.key]
    assert slot.status == "failed" and slot.failures == 8 and slot.valid_until == st.next_update
    # every retry happens before the staple lapses
    assert slot.next_at < st.next_update


@pytest.mark.parametrize("retry_after,try_later,wait", [
    (900, False, 900),                  # HTTP 503 with Retry-After: honoured
    (None, True, 5 * MIN),              # tryLater: at least 5 minutes
])
def test_retry_after_from_the_responder_and_try_later(retry_after, try_later, wait):
    s = scheduler()
    c = cand("a")
    s.sync([c], {})
    st = good_staple(at(-13 * HOUR))
    it = item_for(c, st, T0, outcome=FAILED, detail="busy", retry_after=retry_after)
    it.try_later = try_later            # as the driver sets it from the fetch error
    s.update([it], T0, RunOptions())
    assert s.slots[it.key].next_at == at(wait)


@pytest.mark.parametrize("outcome,cert_status,status", [
    (REVOKED, "revoked", "revoked"),
    (FAILED, "unknown", "unknown"),
    (FAILED, "", "failed"),
])
def test_revoked_and_unknown_stay_on_the_schedule(outcome, cert_status, status):
    s = scheduler()
    c = cand("a")
    s.sync([c], {})
    st = good_staple(at(-13 * HOUR))
    now = T0
    for n in range(1, 4):
        # the status comes from the driver's item, never from the message text
        it = item_for(c, st, now, outcome=outcome, detail="says unknown; (OCSP status tryLater)")
        it.cert_status = cert_status
        events = s.update([it], now, RunOptions())
        assert [e.event for e in events] == [outcome]           # reported every time
        slot = s.slots[it.key]
        assert slot.status == status and slot.failures == n and slot.next_at is not None
        assert slot.next_at - now == timedelta(minutes=2 ** (n - 1))     # not a tryLater wait
        now = slot.next_at


def test_not_applicable_and_expired_certificates_are_not_scheduled():
    s = scheduler()
    c, d = cand("a"), cand("b")
    s.sync([c, d], {})
    it = Item(c, pair_key(c.cert, c.staple), kind="leaf", cert=CERT, staple=None)
    it.decision = policy.renewal_decision(CERT, None, T0, applicable=False)
    old = CertFacts(1, at(-90 * 86400), at(-1), ())
    it2 = Item(d, pair_key(d.cert, d.staple), kind="leaf", cert=old, staple=None)
    it2.decision = policy.renewal_decision(old, None, T0)
    s.update([it, it2], T0, RunOptions())
    assert s.slots[it.key].next_at is None and s.slots[it.key].status == "not-applicable"
    assert s.slots[it2.key].next_at is None and s.slots[it2.key].status == "cert-expired"
    assert s.next_instant() is None


def test_an_unchanged_answer_past_due_is_asked_again_later_not_in_a_loop():
    s = scheduler()
    c = cand("a")
    s.sync([c], {})
    st = good_staple(at(-13 * HOUR))        # past due; the responder keeps handing out this one
    it = item_for(c, st, T0, outcome="unchanged")
    events = s.update([it], T0, RunOptions())
    slot = s.slots[it.key]
    assert [e.event for e in events] == ["unchanged"]
    assert slot.failures == 0 and slot.unchanged == 1 and slot.next_at == at(MIN)


def test_a_certificate_that_cannot_be_loaded_is_retried_with_backoff():
    s = scheduler()
    c = cand("a")
    s.sync([c], {})
    it = Item(c, pair_key(c.cert, c.staple), kind="failed", error="/certs/a.pem: issuer not found")
    it.outcome, it.detail = FAILED, it.error
    events = s.update([it], T0, RunOptions())
    assert events[0].event == FAILED and s.slots[it.key].status == "error"
    assert s.slots[it.key].next_at == at(MIN)


def test_sync_reports_new_changed_and_removed():
    s = scheduler()
    a, b = cand("a"), cand("b")
    new, changed, removed = s.sync([a, b], {})
    assert len(new) == 2 and not changed and not removed
    for slot in s.slots.values():
        slot.sig = ("x",)
    ka, kb = pair_key(a.cert, a.staple), pair_key(b.cert, b.staple)
    new, changed, removed = s.sync([a, b], {ka: ("x",), kb: ("y",)})
    assert not new and changed == [kb] and not removed
    new, changed, removed = s.sync([a], {ka: ("x",)})
    assert [r.key for r in removed] == [kb] and list(s.slots) == [ka]


def test_a_pass_that_failed_as_a_whole_postpones_its_targets_by_one_base():
    s = scheduler(base=7.0)
    a, b = cand("a"), cand("b")
    s.sync([a, b], {})
    ka = pair_key(a.cert, a.staple)
    s.postpone([s.slots[ka]], T0)
    assert s.slots[ka].next_at == at(7.0) and s.next_instant() == at(7.0)
    assert s.slots[pair_key(b.cert, b.staple)].next_at is None
    assert s.due(at(6.4)) == [] and s.due(at(6.5)) == [ka]      # COALESCE: 0.5 s early
    assert s.not_in_backoff() == [ka, pair_key(b.cert, b.staple)]
