"""The Monitoring Plugins rules (ocsptools/nagios.py), pure: states, worst-state order, thresholds,
perfdata and ranges, labels and text."""

from __future__ import annotations

import pytest

from ocsptools import nagios

O, W, C, U = nagios.OK, nagios.WARNING, nagios.CRITICAL, nagios.UNKNOWN


@pytest.mark.parametrize("states, worst", [
    ([O, U], U), ([U, W], W), ([W, C, U, O], C), ([O, O], O), ([], O)])
def test_worst_state_order(states, worst):
    """OK < UNKNOWN < WARNING < CRITICAL: a real problem is never masked by an UNKNOWN."""
    assert nagios.worst(states) == worst


def test_by_severity_is_stable():
    items = [(O, "a"), (C, "b"), (W, "c"), (C, "d"), (U, "e")]
    assert nagios.by_severity(items) == [(C, "b"), (C, "d"), (W, "c"), (U, "e"), (O, "a")]


@pytest.mark.parametrize("value, warn, crit, state", [
    (10, 100, 50, C), (60, 100, 50, W), (100, 100, 50, O),
    (10, 5, 50, C),                     # inverted thresholds still sane: critical first
    (10, None, None, O), (10, None, 50, C), (10, 50, None, W)])
def test_below_tests_critical_first(value, warn, crit, state):
    assert nagios.below(value, warn=warn, crit=crit) == state


@pytest.mark.parametrize("args, kw, item", [
    (("a.ocsp", 302400, "s"), dict(warn="259200:", crit="86400:", minimum=0, maximum=604800),
     "'a.ocsp'=302400s;259200:;86400:;0;604800"),
    (("x", None), {}, "'x'=U"),
    (("x", None, "s"), dict(warn="1:"), "'x'=U;1:"),
    (("x", 1.5, "s"), {}, "'x'=1.5s"),
    (("x", 1.23456), {}, "'x'=1.235"),
])
def test_perfdata_syntax(args, kw, item):
    assert nagios.perfdata(*args, **kw) == item


@pytest.mark.parametrize("threshold, text", [
    (151200.0, "151200:"), (None, ""), (151199.75, "151200:")])   # rounded up, never down
def test_min_range(threshold, text):
    assert nagios.min_range(threshold) == text


def test_labels_and_text():
    assert nagios.label("a'b=c|d\ne") == "a_b_c_d_e"
    assert nagios.label("''") == "__" and nagios.label(" ") == "staple"
    assert nagios.unique_labels(["a=b", "a'b", "a_b", "c"]) == ["a_b", "a_b#2", "a_b#3", "c"]
    assert nagios.unique_labels(["p", "p"], str) == ["p", "p#2"]
    assert nagios.text("one | two\nthree") == "one / two three"
    assert [nagios.name(s) for s in nagios.STATES] == ["OK", "WARNING", "CRITICAL", "UNKNOWN"]
