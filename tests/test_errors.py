"""ocsptools/errors.py: a FetchError that sums several responders' failures up says what they said
about trying again (read by the --watch backoff and the Stapler), without a caller keeping count."""

from __future__ import annotations

import pytest

from ocsptools.errors import ConnectFailed, FetchError, HttpStatusError, ResponderStatusError

BUSY = HttpStatusError("http://127.0.0.1:1/: HTTP 503", 503, retry_after=120.0)
LATER = HttpStatusError("http://127.0.0.1:2/: HTTP 429", 429, retry_after=30.0)
TRY_LATER = ResponderStatusError("http://127.0.0.1:3/: responder says tryLater", "tryLater")
UNAUTHORIZED = ResponderStatusError("http://127.0.0.1:4/: responder says unauthorized", "unauthorized")
REFUSED = ConnectFailed("http://127.0.0.1:5/: connection refused")


@pytest.mark.parametrize("causes, retry_after, try_later", [
    ((), None, False),
    ((REFUSED,), None, False),
    ((BUSY, REFUSED), 120.0, False),
    ((BUSY, LATER), 30.0, False),                   # the last one that said
    ((LATER, REFUSED, BUSY), 120.0, False),
    ((TRY_LATER,), None, True),
    ((UNAUTHORIZED, REFUSED), None, False),
    ((UNAUTHORIZED, TRY_LATER, BUSY), 120.0, True),
])
def test_a_summary_carries_what_its_causes_said(causes, retry_after, try_later):
    err = FetchError("a.pem: " + " | ".join(map(str, causes)), causes=causes)
    assert (err.retry_after, err.try_later, err.causes) == (retry_after, try_later, causes)


def test_what_the_caller_says_wins():
    err = FetchError("x", retry_after=5.0, try_later=True, causes=(BUSY,))
    assert (err.retry_after, err.try_later) == (5.0, True)


def test_a_responder_status_says_whether_it_is_try_later():
    assert TRY_LATER.try_later and not UNAUTHORIZED.try_later
