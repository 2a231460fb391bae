"""ocsptools/watch/messages.py: the event line of each outcome (pure: the outcome and now in, the line
out)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from ocsptools.discovery import Candidate
from ocsptools.renewal import FAILED, RENEWED, REVOKED
from ocsptools.watch.messages import in_words, outcome_line
from ocsptools.watch.schedule import Outcome, Slot

T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("seconds,words", [
    (None, ""), (-5, "0.0s"), (0, "0.0s"), (4.25, "4.2s"), (10, "10s"),
    (90.4, "1m30s"), (3600, "1h"), (36 * 3600 + 61, "1d12h1m1s"),
])
def test_in_words(seconds, words):
    at = None if seconds is None else T0 + timedelta(seconds=seconds)
    assert in_words(T0, at) == words


def slot(**kw) -> Slot:
    s = Slot(Candidate(cert="/c/a.pem", staple="/c/a.pem.ocsp", name="a"), "k")
    for k, v in kw.items():
        setattr(s, k, v)
    return s


LATER = T0 + timedelta(minutes=2)
UNTIL = T0 + timedelta(hours=20)


@pytest.mark.parametrize("event,kw,text,level,extra", [
    (RENEWED, dict(status="good", next_at=T0 + timedelta(hours=11), valid_until=UNTIL),
     "/c/a.pem: good; next renewal in 11h at 2026-11-28T23:00:00Z", logging.INFO, {}),
    (FAILED, dict(status="failed", failures=2, next_at=LATER, valid_until=UNTIL),
     "/c/a.pem: boom; retry 2 in 2m at 2026-11-28T12:02:00Z", logging.WARNING,
     dict(retry_in=120.0, failures=2)),
    (REVOKED, dict(status="revoked", failures=1, next_at=LATER),
     "/c/a.pem: boom; retry 1 in 2m at 2026-11-28T12:02:00Z", logging.ERROR,
     dict(retry_in=120.0, failures=1)),
    ("unchanged", dict(status="good", unchanged=1, next_at=LATER),
     "/c/a.pem: same; again in 2m at 2026-11-28T12:02:00Z", logging.INFO, {}),
    ("not-applicable", dict(status="not-applicable"), "/c/a.pem: no URL", logging.INFO, {}),
])
def test_outcome_line(event, kw, text, level, extra):
    s = slot(**kw)
    detail = text.split(": ", 1)[1].split(";")[0]
    line = outcome_line(Outcome(event, s, detail), T0)
    assert (line.event, line.text, line.level) == (event, text, level)
    assert line.fields == {"cert": "/c/a.pem", "staple": "/c/a.pem.ocsp", "status": s.status,
                           "detail": detail, "next": s.next_at, "valid_until": s.valid_until,
                           "retry_in": extra.get("retry_in"), "failures": extra.get("failures")}
    assert list(line.fields)[:4] == ["cert", "staple", "status", "detail"]    # the JSON order
