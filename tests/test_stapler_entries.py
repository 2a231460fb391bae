"""ocsptools.stapler.entries: the state of a managed certificate and what callers see of it (pure)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from ocsptools.stapler import CertificateStatus
from ocsptools.stapler.entries import (EXPIRED, NOT_APPLICABLE, REVOKED, STAPLED, UNSTAPLED, Book,
                                       Entry, revoked_text, status_of, why_unstapled)
from test_stapler_schedule import DAY, HOUR, LEAF5, T0, staple


def entry(**kw) -> Entry:
    fields = dict(leaf=LEAF5, path="/certs/leaf5.pem", target=None, name="leaf5", fingerprint="ab12",
                  staple_file="/staples/ab12.ocsp", urls=(), applicable=True,
                  next_attempt=T0 + HOUR)
    fields.update(kw)
    e = Entry(**fields)
    if "staple" in kw:
        e.set_staple(kw["staple"])
    return e


REVOKED_ANSWER = dataclasses.replace(
    staple(status="revoked"),
    single=dataclasses.replace(staple(status="revoked").single, revocation_time=T0 - DAY,
                               revocation_reason="keyCompromise"))


@pytest.mark.parametrize("e, now, state", [
    (entry(staple=staple()), T0 + DAY, STAPLED),
    (entry(staple=staple()), T0 + 5 * DAY, UNSTAPLED),                    # the staple expired
    (entry(), T0, UNSTAPLED),                                             # none yet
    (entry(revoked=REVOKED_ANSWER), T0, REVOKED),
    (entry(applicable=False), T0, NOT_APPLICABLE),
    (entry(staple=staple()), LEAF5.not_after, EXPIRED),                   # the certificate expired
])
def test_the_state_a_status_reports(e, now, state):
    assert status_of(e, now).state == state


def test_a_status_is_a_snapshot_of_the_entry():
    s = status_of(entry(staple=staple(), failures=2, last_error="x", answered="good"), T0)
    assert s == CertificateStatus(
        name="leaf5", path="/certs/leaf5.pem", fingerprint="ab12", subject="CN=leaf5", serial="5",
        not_after=LEAF5.not_after, must_staple=False, state=STAPLED, this_update=T0,
        next_update=T0 + 4 * DAY, valid_until=T0 + 4 * DAY, next_refresh=T0 + HOUR, failures=2,
        last_error="x", staple_file="/staples/ab12.ocsp", answered="good")
    revoked = status_of(entry(revoked=REVOKED_ANSWER), T0)
    assert revoked.this_update == T0 and revoked.state == REVOKED       # the revoked answer's times
    assert status_of(entry(applicable=False), T0).next_refresh is None   # never refreshed


def test_setting_a_staple_precomputes_what_the_callback_serves():
    e = entry(staple=staple())
    assert e.served == (staple().der, T0 - timedelta(minutes=5), T0 + 4 * DAY)
    e.set_staple(None)
    assert e.staple is None and e.served is None
    e.set_staple(staple(status="unknown"))                                # never served
    assert e.served is None


@pytest.mark.parametrize("e, now, why", [
    (entry(revoked=REVOKED_ANSWER), T0, "the certificate is revoked"),
    (entry(staple=staple()), T0 + 5 * DAY,
     "the staple expired at 2026-11-05T12:00:00Z (no refresh yet)"),
    (entry(staple=staple(), last_error="connection refused"), T0 + 5 * DAY,
     "the staple expired at 2026-11-05T12:00:00Z (connection refused)"),
    (entry(last_error="connection refused"), T0, "connection refused"),
    (entry(), T0, "no staple fetched yet"),
])
def test_why_a_handshake_got_no_staple(e, now, why):
    assert why_unstapled(e, now) == why


def test_revoked_text():
    assert revoked_text(REVOKED_ANSWER) == "revoked at 2026-10-31T12:00:00Z (keyCompromise)"
    plain = dataclasses.replace(REVOKED_ANSWER, single=dataclasses.replace(
        REVOKED_ANSWER.single, revocation_reason=None))
    assert revoked_text(plain) == "revoked at 2026-10-31T12:00:00Z"


def test_the_book_counts_fixed_results():
    book = Book()
    book.count_request("stapled")
    book.count_refresh("from_disk")
    assert book.requests == {"stapled": 1, "unstapled": 0, "unknown_certificate": 0, "error": 0}
    assert book.refreshes == {"ok": 0, "unchanged": 0, "failed": 0, "revoked": 0, "from_disk": 1}
    with pytest.raises(KeyError):                   # a label value nobody declared: a bug
        book.count_request("something else")
