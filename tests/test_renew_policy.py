"""The freshness rule (pure), the state cache, locks and backups.  (The batched openssl helpers are
tested in test_openssl_facade.py and test_openssl_parsers.py.)"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ocsptools import policy, store
from ocsptools.errors import LockBusy
from ocsptools.policy import CertFacts, RenewOptions, StapleFacts, renewal_decision
from ocsptools.statecache import StateCache, default_path, identity

UTC = timezone.utc
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CERT = CertFacts(0x1234, T0 - timedelta(days=30), T0 + timedelta(days=60), ("http://127.0.0.1/",))


def good(this=T0, life=timedelta(days=7), signer=None, serial=0x1234, status="good"):
    return StapleFacts(status, serial, this, this + life if life else None, this, signer)


def decide(staple, now, **kw):
    opts = RenewOptions(**{k: v for k, v in kw.items() if k in ("renew_at", "min_validity", "always")})
    extra = {k: v for k, v in kw.items() if k in ("applicable", "cert_newer")}
    cert = kw.get("cert", CERT)
    return renewal_decision(cert, staple, now, opts, **extra)


def test_renew_at_half_of_the_lifetime_by_default():
    st = good()
    d = decide(st, T0 + timedelta(days=3, hours=11))
    assert d.action == policy.FRESH and d.renew_at == T0 + timedelta(days=3, hours=12)
    assert "good until 2026-11-08T12:00:00Z" in d.reason
    d = decide(st, T0 + timedelta(days=3, hours=12))
    assert d.action == policy.RENEW and "50% of its lifetime" in d.reason


def test_renew_at_percent_and_min_validity_take_the_earlier():
    st = good()
    assert decide(st, T0 + timedelta(days=5), renew_at=80).action == policy.FRESH
    assert decide(st, T0 + timedelta(days=5, hours=14, minutes=24), renew_at=80).action == policy.RENEW
    d = decide(st, T0 + timedelta(days=4, hours=1), renew_at=80, min_validity=timedelta(days=3))
    assert d.action == policy.RENEW and "less than 3d" in d.reason
    assert d.renew_at == T0 + timedelta(days=4)
    assert decide(st, T0 + timedelta(hours=1), renew_at=0).action == policy.RENEW


def test_never_after_the_responder_or_the_certificate_notafter():
    signer_end = T0 + timedelta(days=2)
    st = good(signer=signer_end)
    d = decide(st, T0)
    assert d.renew_at == T0 + timedelta(days=1)          # half of [thisUpdate, signer notAfter]
    d = decide(st, T0 + timedelta(days=1, hours=23), renew_at=100)
    assert d.action == policy.FRESH and d.renew_at == signer_end
    assert decide(st, signer_end, renew_at=100).action == policy.RENEW
    short = CertFacts(1, T0 - timedelta(days=80), T0 + timedelta(days=1), ("u",))
    d = decide(good(serial=1), T0, cert=short, renew_at=100)
    assert d.renew_at == short.not_after
    d = decide(good(serial=1), T0, cert=short, min_validity=timedelta(hours=6))
    assert d.renew_at == T0 + timedelta(hours=12)       # half of one day, before cert end - 6h


def test_ocspbot_semantics_match():
    """ocspbot renews at min(min(notAfter, nextUpdate) - min_validity,
    max(notBefore, thisUpdate) + (1 - pct) * span); our renew_at = 100 - pct."""
    st = good(life=timedelta(days=7))
    pct, mv = 42.8, timedelta(days=3)
    begin, end = max(CERT.not_before, st.this_update), min(CERT.not_after, st.next_update)
    expect = min(end - mv, begin + (end - begin) * (1 - pct / 100))
    d = decide(st, T0, renew_at=100 - pct, min_validity=mv)
    assert abs((d.renew_at - expect).total_seconds()) < 1


def test_renew_at_once_for_missing_unusable_reissued_bad_status_no_next_update_future():
    now = T0 + timedelta(hours=1)
    assert decide(None, now).reason == "no staple yet"
    d = decide(StapleFacts.unusable("not an OCSP response"), now)
    assert d.action == policy.RENEW and "unusable staple: not an OCSP response" == d.reason
    d = decide(good(serial=0x99), now)
    assert d.action == policy.RENEW and "re-issued" in d.reason and "99" in d.reason
    d = decide(StapleFacts(serial=0x99, problem="not a response for this certificate"), now)
    assert "re-issued" in d.reason
    for status in ("revoked", "unknown"):
        d = decide(good(status=status), now)
        assert d.action == policy.RENEW and status in d.reason
    assert "no nextUpdate" in decide(good(life=None), now).reason
    d = decide(good(this=now + timedelta(minutes=6)), now)
    assert d.action == policy.RENEW and "future" in d.reason
    assert decide(good(this=now + timedelta(minutes=4)), now).action == policy.FRESH
    d = decide(good(), T0 + timedelta(days=8))
    assert d.action == policy.RENEW and "expired at 2026-11-08T12:00:00Z" in d.reason


def test_always_cert_newer_expired_and_not_applicable():
    now = T0 + timedelta(hours=1)
    assert decide(good(), now, always=True).action == policy.RENEW
    assert decide(good(), now, cert_newer=True).reason == "the certificate file is newer than its staple"
    d = decide(good(), CERT.not_after)
    assert d.action == policy.CERT_EXPIRED and "certificate expired at" in d.reason
    # no responder: not applicable, decided before anything else (an expired one too)
    d = decide(good(), CERT.not_after + timedelta(days=1), applicable=False)
    assert d.action == policy.NOT_APPLICABLE
    assert decide(None, now, applicable=False).action == policy.NOT_APPLICABLE


# ---------------------------------------------------------------------------
# state cache, lock, backups

def test_state_cache_roundtrip_and_corruption(tmp_path):
    path = tmp_path / "c" / "state.json"
    c = StateCache(str(path)).load()
    c.put("k", {"a": 1})
    c.save()
    assert stat_mode(path) == 0o600
    assert StateCache(str(path)).load().get("k") == {"a": 1}
    path.write_text("{broken")
    c = StateCache(str(path)).load()
    assert c.entries == {} and "unreadable" in c.warning
    path.write_text(json.dumps({"version": 99, "entries": {"k": {}}}))
    assert StateCache(str(path)).load().entries == {}


def stat_mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def test_identity_changes_with_any_rewrite(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    a = identity(str(f))
    os.utime(f, ns=(a[3] + 1, a[3] + 1))
    assert identity(str(f)) != a
    assert identity(str(tmp_path / "none")) is None


def test_default_path_per_inputs(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if os.geteuid() == 0:
        assert default_path(["/a"]).startswith("/var/cache/ocsptools/")
    else:
        assert default_path(["/a"]).startswith(str(tmp_path / "ocsptools"))
    assert default_path(["/a"]) != default_path(["/b"])


def test_lock_names_the_holder(tmp_path):
    lock = store.FileLock(str(tmp_path / "x.lock")).acquire()
    try:
        with pytest.raises(LockBusy) as info:
            store.FileLock(str(tmp_path / "x.lock")).acquire(0.2, what="another run")
        assert f"pid {os.getpid()}" in str(info.value) and "after waiting 0.2 s" in str(info.value)
    finally:
        lock.release()
    store.FileLock(str(tmp_path / "x.lock")).acquire().release()


def test_backups_named_and_pruned(tmp_path):
    staple = tmp_path / "s.ocsp"
    staple.write_bytes(b"1")
    staple.chmod(0o640)
    name = store.backup_copy(str(staple), b"1", T0)
    assert name == str(staple) + "-20261101-120000" and stat_mode(Path(name)) == 0o640
    assert store.backup_copy(str(staple), b"2", T0) is None
    assert store.backup_copy(str(staple), b"2", T0, overwrite=True) == name
    for h in range(1, 4):
        store.backup_copy(str(staple), b"x", T0 + timedelta(hours=h))
    assert len(store.list_backups(str(staple))) == 4
    removed = store.prune_backups(str(staple), 2)
    assert [Path(r).name for r in removed] == ["s.ocsp-20261101-120000", "s.ocsp-20261101-130000"]
    assert [Path(b).name for b in store.list_backups(str(staple))] == \
        ["s.ocsp-20261101-140000", "s.ocsp-20261101-150000"]
