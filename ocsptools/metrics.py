"""The one Prometheus exposition of ocsptools: metric families from plain snapshots, rendered by prometheus_client.

Every metric ocsptools exposes goes through here: ``ocsp-check --prometheus``
(``report``), the ``ocsp-renew-dir --watch --prometheus-textfile`` file
(``metrics_textfile``), ocsp-proxy's ``GET /metrics`` (``proxy.metrics``) and
the Stapler's collector (``stapler.metrics``).  Each of them builds plain
``Family`` values from a snapshot of its counters and states (pure: no clock,
no I/O, no prometheus_client); this module turns them into prometheus_client's
``GaugeMetricFamily``/``CounterMetricFamily`` and either renders them
(``exposition``: ``generate_latest`` on a private ``CollectorRegistry``, the
text format 0.0.4) or hands them to a registry someone else scrapes
(``SnapshotCollector``).  Nothing is recorded through prometheus_client: the
producers keep plain integers and the families are built when scraped.

A counter's family is named as it is exposed, with ``_total``
(prometheus_client's ``CounterMetricFamily`` adds the suffix to its samples and
its HELP/TYPE lines, and adds no ``_created`` sample unless asked to).  A sample
whose value is ``None`` is left out: a fact that does not exist has no series.
Numbers are spelled as prometheus_client spells them (``floatToGoString``:
``3.0``, ``1.7e+09``).

prometheus_client (0.16 or later, Debian 12's) is imported only when a family is
converted, so the commands that print no metrics never load it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

#: What ``GET /metrics`` answers with: the text exposition format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GAUGE = "gauge"
COUNTER = "counter"
KINDS = (GAUGE, COUNTER)

Labels = Tuple[str, ...]


@dataclass
class Family:
    """One metric family: its name as exposed, kind, HELP text, label names and samples."""

    name: str
    kind: str
    help: str
    labels: Labels = ()
    samples: List[Tuple[Labels, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.kind == COUNTER and not self.name.endswith("_total"):
            raise ValueError(f"{self.name}: a counter's name ends in _total")

    def add(self, value: Optional[float], *labels: str) -> "Family":
        """Add the sample VALUE with these label values (in the order of ``labels``); None adds
        nothing.  Returns the family (``gauge(...).add(v)`` for a single sample)."""
        if len(labels) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.labels)} label values expected, not {len(labels)}")
        if value is not None:
            self.samples.append((labels, value))
        return self


def gauge(name: str, help_text: str, labels: Sequence[str] = ()) -> Family:
    return Family(name, GAUGE, help_text, tuple(labels))


def counter(name: str, help_text: str, labels: Sequence[str] = ()) -> Family:
    """A counter family; NAME is the exposed name, ending in ``_total``."""
    return Family(name, COUNTER, help_text, tuple(labels))


def client_families(families: Iterable[Family]) -> Iterator["Metric"]:
    """FAMILIES as prometheus_client's metric families, samples in the order added."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    for fam in families:
        if fam.kind == COUNTER:
            counter_ = CounterMetricFamily(fam.name, fam.help, labels=fam.labels)
            for labels, value in fam.samples:
                counter_.add_metric(labels, value)
            yield counter_
        else:
            gauge_ = GaugeMetricFamily(fam.name, fam.help, labels=fam.labels)
            for labels, value in fam.samples:
                gauge_.add_metric(labels, value)
            yield gauge_


class SnapshotCollector:
    """A prometheus_client collector (``registry.register(...)``): at every scrape, the families
    that SNAPSHOT builds; DESCRIBE (optional) builds them without samples, so that the registry
    knows the names and refuses a second collector with the same ones."""

    def __init__(self, snapshot: Callable[[], Iterable[Family]],
                 describe: Optional[Callable[[], Iterable[Family]]] = None) -> None:
        self.snapshot = snapshot
        self.describer = describe

    def collect(self) -> Iterator["Metric"]:
        return client_families(self.snapshot())

    def describe(self) -> List["Metric"]:
        return [] if self.describer is None else list(client_families(self.describer()))


def exposition(families: Iterable[Family]) -> bytes:
    """FAMILIES in the Prometheus text exposition format (0.0.4, UTF-8): prometheus_client's
    ``generate_latest`` on a private registry.  A family without samples keeps its HELP and
    TYPE lines."""
    from prometheus_client import CollectorRegistry, generate_latest
    snapshot = list(families)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot))
    return generate_latest(registry)
