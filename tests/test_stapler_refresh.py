"""ocsptools.stapler.refresh: refreshing a certificate's staple, through the Stapler, against the
real responder on 127.0.0.1 (the fake responder only for answers a real one will not give: an
older response, a response for another certificate); the clock is injected."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

import pytest

from stapler_support import (clock, der_of, fullchain, make_stapler, spki, sresp,  # noqa: F401
                             stapler_responder, status_of)

import pki as pkimod
from fake_responder import FakeResponder
from ocsptools.errors import FetchError, Revoked
from ocsptools.stapler import REVOKED, STAPLED, system_clock


def _two_answers(spki, sresp, tmp_path):
    """Two real responses for good1, the second one newer (thisUpdate 1 s later)."""
    a, b = tmp_path / "older.der", tmp_path / "newer.der"
    pkimod.ocsp_query(spki, "good1", sresp.url, out=a)
    time.sleep(1.05)
    pkimod.ocsp_query(spki, "good1", sresp.url, out=b)
    return a.read_bytes(), b.read_bytes()


def test_outage_keeps_valid_staple_with_backoff(spki, sresp, make_stapler, clock):
    st = make_stapler()
    st.add(fullchain(spki, "good1"), name="good1")
    st.prestaple()
    first = status_of(st, "good1")
    sresp.stop()
    clock.offset = timedelta(hours=13)                       # past the half-life
    expected = [1, 2, 4, 8]
    for n, minutes in enumerate(expected, start=1):
        assert st.refresh_due() == 1
        s = status_of(st, "good1")
        now = clock()
        assert s.failures == n and "connection refused" in s.last_error
        assert abs((s.next_refresh - now) - timedelta(minutes=minutes)) <= timedelta(seconds=2)
        assert s.state == STAPLED and s.this_update == first.this_update
        assert st.staple_for(der_of(spki, "good1"))            # still served
        assert st.refresh_due() == 0                          # nothing due before the backoff ends
        clock.offset += timedelta(minutes=minutes)
    # the responder comes back: next attempt succeeds, the failure count resets
    sresp.start()
    time.sleep(1.05)                                          # a new thisUpdate (1 s resolution)
    assert st.refresh_due() == 1
    s = status_of(st, "good1")
    assert s.failures == 0 and s.last_error == "" and s.this_update > first.this_update


def test_revoked_is_not_served_and_remembered(spki, sresp, make_stapler, tmp_path, caplog):
    d = tmp_path / "staples"
    st = make_stapler(d)
    st.add(fullchain(spki, "revoked1"), name="r")
    with caplog.at_level(logging.ERROR, logger="ocsptools.stapler"):
        with pytest.raises(Revoked, match="REVOKED"):
            st.prestaple(require_all=True, timeout=5)
    assert any("REVOKED" in r.getMessage() for r in caplog.records)
    s = status_of(st, "r")
    assert s.state == REVOKED and st.staple_for(der_of(spki, "revoked1")) == b""
    assert s.next_refresh - system_clock() > timedelta(minutes=59)    # re-checked hourly
    # the verified revoked answer is persisted, so a restart does not serve an older "good" one
    again = make_stapler(d)
    assert again.add(fullchain(spki, "revoked1"), name="r").state == REVOKED
    assert again.staple_for(der_of(spki, "revoked1")) == b""


def test_older_response_never_replaces_the_staple(spki, sresp, make_stapler, tmp_path, clock):
    older, newer = _two_answers(spki, sresp, tmp_path)
    d = tmp_path / "staples"
    with FakeResponder() as fake:
        fake.set(body=newer)
        st = make_stapler(d)
        info = st.add(fullchain(spki, "good1"), name="good1", urls=[fake.url])
        st.prestaple()
        assert st.staple_for(der_of(spki, "good1")) == newer
        fake.set(body=older)
        clock.offset = timedelta(hours=13)
        st.refresh_due()
        s = status_of(st, "good1")
        assert s.failures == 1 and "older response" in s.last_error
        assert st.staple_for(der_of(spki, "good1")) == newer
        assert Path(info.staple_file).read_bytes() == newer
        # the same answer again: unchanged, not a failure, asked again after a backoff
        fake.set(body=newer)
        clock.offset += timedelta(minutes=2)
        st.refresh_due()
        s = status_of(st, "good1")
        assert s.failures == 0 and st.counters()["refreshes"]["unchanged"] == 1
        assert s.next_refresh > clock()


def test_answer_for_another_certificate_is_refused(spki, sresp, make_stapler, tmp_path, clock):
    other = tmp_path / "good2.der"
    pkimod.ocsp_query(spki, "good2", sresp.url, out=other)
    with FakeResponder() as fake:
        fake.set(body=other.read_bytes())
        st = make_stapler()
        st.add(fullchain(spki, "good1"), name="good1", urls=[fake.url])
        with pytest.raises(FetchError, match="not a response for this certificate"):
            st.prestaple(require_all=True, timeout=0.5)
        assert st.staple_for(der_of(spki, "good1")) == b""


def test_processes_sharing_a_directory_adopt_each_others_staples(spki, sresp, make_stapler,
                                                                 tmp_path, clock):
    d = tmp_path / "shared"
    a = make_stapler(d)
    a.add(fullchain(spki, "good1"), name="good1")
    a.prestaple()
    first = status_of(a, "good1").this_update
    with FakeResponder() as fake:
        fake.set(status=500)
        b = make_stapler(d)                                  # starts from A's staple
        b.add(fullchain(spki, "good1"), name="good1", urls=[fake.url])
        assert status_of(b, "good1").state == STAPLED
        time.sleep(1.05)
        clock.offset = timedelta(hours=13)
        a.refresh_due()                                      # A renews and writes it
        assert status_of(a, "good1").this_update > first
        b.refresh_due()                                      # B takes A's from the disk
        assert fake.requests == []
        assert status_of(b, "good1").this_update == status_of(a, "good1").this_update
        assert b.counters()["refreshes"]["from_disk"] == 1
