"""ocsptools.metrics: the one Prometheus exposition (plain families rendered by prometheus_client),
and the expositions built on it compared with what they were before it (tests/fixtures/metrics)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ocsptools import metrics

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "metrics"
sys.path.insert(0, str(FIXTURES))
import exposition_cases as cases  # noqa: E402


def parsed(text: str) -> dict:
    """name -> (type, HELP, [(sample name, labels, value)]) as prometheus_client's parser reads it."""
    return {f.name: (f.type, f.documentation, [(s.name, s.labels, s.value) for s in f.samples])
            for f in text_string_to_metric_families(text)}


# --------------------------------------------------------------------------- families

def test_a_family_checks_its_kind_its_counter_name_and_its_label_count():
    with pytest.raises(ValueError, match="kind"):
        metrics.Family("x", "histogram", "h")
    with pytest.raises(ValueError, match="_total"):
        metrics.counter("requests", "h")
    family = metrics.gauge("x", "h", ("a", "b"))
    with pytest.raises(ValueError, match="2 label values"):
        family.add(1, "only one")
    assert family.add(None, "a", "b").samples == []        # a fact that does not exist: no series
    assert family.add(0, "a", "b").samples == [(("a", "b"), 0)]


def test_exposition_of_gauges_and_counters():
    text = metrics.exposition([
        metrics.gauge("ocsp_g", "A gauge.", ("path",)).add(3, "/a").add(-2.5, '/b"\\\n'),
        metrics.gauge("ocsp_empty", "Kept without samples."),
        metrics.counter("ocsp_c_total", "A counter.").add(7),
    ]).decode()
    assert text == (
        "# HELP ocsp_g A gauge.\n"
        "# TYPE ocsp_g gauge\n"
        'ocsp_g{path="/a"} 3.0\n'
        'ocsp_g{path="/b\\"\\\\\\n"} -2.5\n'
        "# HELP ocsp_empty Kept without samples.\n"
        "# TYPE ocsp_empty gauge\n"
        "# HELP ocsp_c_total A counter.\n"
        "# TYPE ocsp_c_total counter\n"           # _total on HELP and TYPE, as before
        "ocsp_c_total 7.0\n")                     # and no ocsp_c_created sample
    assert parsed(text)["ocsp_g"][2][1] == ("ocsp_g", {"path": '/b"\\\n'}, -2.5)


@pytest.mark.parametrize("value, spelled", [
    (0, "0.0"), (3, "3.0"), (-86400, "-86400.0"), (4321.25, "4321.25"), (999999, "999999.0"),
    (1234567, "1.234567e+06"), (1796040000, "1.79604e+09"), (1796126401.5, "1.7961264015e+09"),
])
def test_numbers_are_spelled_as_prometheus_client_spells_them(value, spelled):
    """The one difference from the hand-written renderers of before: they wrote 3 and 1796040000.
    Every spelling reads back as the same float64."""
    line = metrics.exposition([metrics.gauge("x", "h").add(value)]).decode().splitlines()[-1]
    assert line == f"x {spelled}" and float(spelled) == value


def test_label_names_are_sorted_in_a_sample():
    text = metrics.exposition([metrics.gauge("x", "h", ("status", "path")).add(1, "good", "/a")])
    assert text.decode().splitlines()[-1] == 'x{path="/a",status="good"} 1.0'


def test_a_snapshot_collector_builds_its_families_at_each_scrape():
    counts = {"n": 0}

    def snapshot():
        return [metrics.counter("ocsp_n_total", "Counted.").add(counts["n"])]
    registry = CollectorRegistry()
    collector = metrics.SnapshotCollector(snapshot, describe=lambda: [metrics.counter("ocsp_n_total", "Counted.")])
    registry.register(collector)
    counts["n"] = 5
    assert "ocsp_n_total 5.0\n" in generate_latest(registry).decode()
    counts["n"] = 6
    assert "ocsp_n_total 6.0\n" in generate_latest(registry).decode()
    with pytest.raises(ValueError):                 # described: the registry knows its names
        registry.register(metrics.SnapshotCollector(snapshot, describe=snapshot))
    assert metrics.SnapshotCollector(snapshot).describe() == []


# --------------------------------------------------------------------------- the expositions

@pytest.mark.parametrize("case", sorted(cases.CASES))
def test_every_exposition_says_what_it_said_before(case):
    """ocsp-check --prometheus, the --watch textfile and ocsp-proxy's /metrics against their
    output before prometheus_client rendered them: the same lines in the same order (names,
    HELP, TYPE, labels and values); only how a number is spelled may differ."""
    before = (FIXTURES / f"{case}.prom").read_text()
    now = cases.CASES[case]()
    assert parsed(now) == parsed(before)
    old_lines, new_lines = before.splitlines(), now.splitlines()
    assert len(new_lines) == len(old_lines)
    for old, new in zip(old_lines, new_lines):
        if old.startswith("#"):
            assert new == old
        else:
            series, value = new.rsplit(" ", 1)
            old_series, old_value = old.rsplit(" ", 1)
            assert series == old_series and float(value) == float(old_value), (old, new)
    assert now.endswith("\n") and not now.endswith("\n\n")


def test_proxy_metrics_body_and_content_type():
    from ocsptools.proxy.metrics import CONTENT_TYPE, Metrics
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    body = Metrics().render({}, {})
    assert isinstance(body, bytes) and body.startswith(b"# HELP ocsp_proxy_cache_hits_total ")
