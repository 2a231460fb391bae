"""Every consumer of a staple reaches the corpus's verdict, the same effective expiry and the same
renewal instant (issue 14: one truth about a staple).

The six consumers run once per session over the whole corpus (``consumers.run_all``); each test
below is one (consumer, case) or one promise.  A case's expected verdict, expiry
(min of nextUpdate, the delegated signer's and the leaf's notAfter) and renewal instant (half of
that window) come from the corpus, computed from what it crafted, not from ocsptools.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from . import consumers
from .consumers import CONSUMERS

pytestmark = pytest.mark.conformance

#: Times in the corpus are whole seconds; a consumer printing whole seconds may round.
SECOND = timedelta(seconds=1)


@pytest.fixture(scope="session")
def outcomes(corpus, tmp_path_factory):
    return consumers.run_all(corpus, tmp_path_factory.mktemp("consumers"))


@pytest.mark.parametrize("consumer", list(CONSUMERS))
def test_every_consumer_reaches_the_rfc_verdict_on_every_case(corpus, outcomes, consumer):
    got = outcomes[consumer]
    wrong = {c.name: (c.verdict, got[c.name].verdict, got[c.name].detail[:300])
             for c in corpus.cases if got.get(c.name) is None or got[c.name].verdict != c.verdict}
    assert not wrong, f"{consumer} disagrees with the corpus on {len(wrong)} case(s): {wrong}"


@pytest.mark.parametrize("consumer", list(CONSUMERS))
def test_every_consumer_states_the_same_expiry_and_renewal_instant(corpus, outcomes, consumer):
    got = outcomes[consumer]
    wrong = {}
    for c in corpus.cases:
        if c.verdict != "good" or got[c.name].verdict != "good":
            continue
        o = got[c.name]
        if o.valid_until is None or abs(o.valid_until - c.valid_until) > SECOND:
            wrong[c.name] = ("valid until", str(c.valid_until), str(o.valid_until))
        elif o.renewal_due is None or abs(o.renewal_due - c.renewal_due) > SECOND:
            wrong[c.name] = ("renewal due", str(c.renewal_due), str(o.renewal_due))
    assert not wrong, f"{consumer}: {wrong}"


def test_the_six_agree_with_each_other(corpus, outcomes):
    """The same fact stated the other way round: per case, one verdict, one expiry, one renewal."""
    for c in corpus.cases:
        verdicts = {name: outcomes[name][c.name].verdict for name in CONSUMERS}
        assert len(set(verdicts.values())) == 1, (c.name, verdicts)
        if c.verdict == "good":
            ends = {outcomes[name][c.name].valid_until for name in CONSUMERS}
            dues = {outcomes[name][c.name].renewal_due for name in CONSUMERS}
            assert max(ends) - min(ends) <= SECOND and max(dues) - min(dues) <= SECOND, c.name


def test_the_watch_scheduler_renews_within_its_jitter_band_never_after(corpus, outcomes):
    """--watch moves a renewal earlier by up to 10% of the time left, never later than due."""
    for c in corpus.cases:
        o = outcomes["--watch"][c.name]
        if c.verdict != "good":
            continue
        assert o.scheduled is not None, c.name
        assert o.scheduled <= o.renewal_due + SECOND, c.name
        assert o.scheduled >= o.renewal_due - (o.renewal_due - corpus.now) * 0.1 - SECOND, c.name


def test_the_proxy_never_advertises_past_the_instant_the_answer_stops_verifying(corpus, outcomes):
    for c in corpus.cases:
        o = outcomes["ocsp-proxy"][c.name]
        if c.verdict in ("good", "revoked") and c.valid_until is not None:
            assert o.valid_until is not None and abs(o.valid_until - c.valid_until) <= SECOND, c.name
            assert o.max_age_end is not None and o.max_age_end <= c.valid_until + SECOND, c.name


def test_a_short_lived_signer_ends_the_life_everywhere(corpus, outcomes):
    """The issue's defects 1-3 in one case: a byKey signer without SKI dying in 20 minutes under a
    7-day nextUpdate is good only until its notAfter, for all six."""
    c = corpus.by_name["signer-dies-in-20min-noski-bykey"]
    assert c.valid_until < c.next_update - timedelta(days=6)
    for name in CONSUMERS:
        o = outcomes[name][c.name]
        assert o.verdict == "good" and abs(o.valid_until - c.valid_until) <= SECOND, (name, o)
