"""The Stapler's Prometheus metrics: families from its counters and status (pure), registered as a collector.

Nothing is recorded on the handshake path beyond the Stapler's own counters;
the families are built from ``Stapler.counters()`` and ``Stapler.status()``
when Prometheus scrapes (``ocsptools.metrics.SnapshotCollector``).  Label
cardinality is bounded: ``result`` and ``state`` take fixed sets of values,
and the per-certificate series (label ``certificate``, the name given to
``add()``) exist for at most ``max_certificates`` certificates, never for
anything a client sends.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Protocol, Sequence

from .. import metrics
from ..errors import UsageError
from .entries import REFRESH_RESULTS, REQUEST_RESULTS, STAPLED, STATES, CertificateStatus

PREFIX = "ocsp_stapler"
Counts = Dict[str, Dict[str, int]]


class Observable(Protocol):
    """What the metrics read of a ``Stapler``."""

    def counters(self) -> Counts: ...

    def status(self) -> List[CertificateStatus]: ...


def families(counts: Optional[Counts], statuses: Sequence[CertificateStatus],
             max_certificates: int) -> List[metrics.Family]:
    """The Stapler's families for COUNTS (``Stapler.counters()``) and STATUSES
    (``Stapler.status()``); COUNTS None: the families without samples (their names)."""
    requests = metrics.counter(
        f"{PREFIX}_status_requests_total", "TLS handshakes that asked for a staple, by result "
        "(stapled, unstapled, unknown_certificate, error).", ("result",))
    refreshes = metrics.counter(
        f"{PREFIX}_refreshes_total", "Refresh attempts, by result (ok, unchanged, failed, revoked, "
        "from_disk).", ("result",))
    certificates = metrics.gauge(
        f"{PREFIX}_certificates", "Managed certificates, by state.", ("state",))
    earliest = metrics.gauge(
        f"{PREFIX}_earliest_expiry_timestamp_seconds",
        "When the first served staple stops being valid (Unix time; absent when none is served).")
    expiry = metrics.gauge(
        f"{PREFIX}_staple_expiry_timestamp_seconds",
        "When the served staple stops being valid: min(nextUpdate, responder notAfter).",
        ("certificate",))
    failures = metrics.gauge(
        f"{PREFIX}_consecutive_failures", "Failed refreshes in a row.", ("certificate",))
    if counts is not None:
        for result in REQUEST_RESULTS:
            requests.add(counts["requests"].get(result, 0), result)
        for result in REFRESH_RESULTS:
            refreshes.add(counts["refreshes"].get(result, 0), result)
        for state in STATES:
            certificates.add(sum(1 for s in statuses if s.state == state), state)
        served = [s.valid_until for s in statuses if s.state == STAPLED and s.valid_until]
        if served:
            earliest.add(min(served).timestamp())
        for s in statuses[:max_certificates]:
            if s.state == STAPLED and s.valid_until is not None:
                expiry.add(s.valid_until.timestamp(), s.name)
            failures.add(s.failures, s.name)
    return [requests, refreshes, certificates, earliest, expiry, failures]


class StaplerMetrics:
    """One Stapler's families at scrape time; says once when certificates go unlabelled."""

    def __init__(self, stapler: Observable, *, max_certificates: int = 100) -> None:
        if max_certificates < 0:
            raise UsageError("max_certificates must not be negative")
        self.stapler = stapler
        self.max_certificates = max_certificates
        self._warned = False

    def families(self) -> List[metrics.Family]:
        counts = self.stapler.counters()
        statuses = self.stapler.status()
        if len(statuses) > self.max_certificates and not self._warned:
            self._warned = True
            logging.getLogger("ocsptools.stapler").warning(
                "metrics: per-certificate series kept for %d of %d certificates "
                "(raise max_certificates to see all)", self.max_certificates, len(statuses))
        return families(counts, statuses, self.max_certificates)

    def names(self) -> List[metrics.Family]:
        return families(None, (), self.max_certificates)


def register(stapler: Observable, registry: Any = None, *,
             max_certificates: int = 100) -> metrics.SnapshotCollector:
    """Register STAPLER's collector in REGISTRY (default: prometheus_client's global REGISTRY)."""
    watched = StaplerMetrics(stapler, max_certificates=max_certificates)
    try:
        import prometheus_client
    except ImportError:
        raise UsageError("Stapler metrics need prometheus_client, an ocsptools dependency: "
                         "reinstall ocsptools (pip install ocsptools) to get it back") from None
    collector = metrics.SnapshotCollector(watched.families, describe=watched.names)
    target = prometheus_client.REGISTRY if registry is None else registry
    try:
        target.register(collector)
    except ValueError as exc:
        raise UsageError(f"cannot register the Stapler's metrics: {exc} (one Stapler per registry; "
                         f"pass registry=CollectorRegistry() for another)") from None
    return collector
