"""Prometheus metrics for ``ocsptools.stapler.Stapler`` (optional: extra ``metrics``).

A custom collector: nothing is recorded on the handshake path beyond the
Stapler's own counters; the families are built from ``Stapler.counters()``
and ``Stapler.status()`` when Prometheus scrapes.  Label cardinality is
bounded: ``result`` and ``state`` take fixed sets of values, and the
per-certificate series (label ``certificate``, the name given to ``add()``)
exist for at most ``max_certificates`` certificates, never for anything a
client sends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterator, List

from .errors import UsageError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from .stapler import Stapler

PREFIX = "ocsp_stapler"


class StaplerCollector:
    """Collects one Stapler's metrics (register it once per registry)."""

    def __init__(self, stapler: "Stapler", *, max_certificates: int = 100) -> None:
        if max_certificates < 0:
            raise UsageError("max_certificates must not be negative")
        self.stapler = stapler
        self.max_certificates = max_certificates
        self._warned = False

    def describe(self) -> List["Metric"]:
        return list(self._families(with_samples=False))

    def collect(self) -> Iterator["Metric"]:
        return self._families(with_samples=True)

    def _families(self, *, with_samples: bool) -> Iterator["Metric"]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from .stapler import REFRESH_RESULTS, REQUEST_RESULTS, STATES

        requests = CounterMetricFamily(
            f"{PREFIX}_status_requests", "TLS handshakes that asked for a staple, by result "
            "(stapled, unstapled, unknown_certificate, error).", labels=["result"])
        refreshes = CounterMetricFamily(
            f"{PREFIX}_refreshes", "Refresh attempts, by result (ok, unchanged, failed, revoked, "
            "from_disk).", labels=["result"])
        certificates = GaugeMetricFamily(
            f"{PREFIX}_certificates", "Managed certificates, by state.", labels=["state"])
        earliest = GaugeMetricFamily(
            f"{PREFIX}_earliest_expiry_timestamp_seconds",
            "When the first served staple stops being valid (Unix time; absent when none is "
            "served).")
        expiry = GaugeMetricFamily(
            f"{PREFIX}_staple_expiry_timestamp_seconds",
            "When the served staple stops being valid: min(nextUpdate, responder notAfter).",
            labels=["certificate"])
        failures = GaugeMetricFamily(
            f"{PREFIX}_consecutive_failures", "Failed refreshes in a row.", labels=["certificate"])
        if with_samples:
            counts = self.stapler.counters()
            for result in REQUEST_RESULTS:
                requests.add_metric([result], counts["requests"].get(result, 0))
            for result in REFRESH_RESULTS:
                refreshes.add_metric([result], counts["refreshes"].get(result, 0))
            statuses = self.stapler.status()
            for state in STATES:
                certificates.add_metric([state], sum(1 for s in statuses if s.state == state))
            served = [s.valid_until for s in statuses if s.state == "stapled" and s.valid_until]
            if served:
                earliest.add_metric([], min(served).timestamp())
            labelled = statuses[:self.max_certificates]
            if len(statuses) > self.max_certificates and not self._warned:
                self._warned = True
                logging.getLogger("ocsptools.stapler").warning(
                    "metrics: per-certificate series kept for %d of %d certificates "
                    "(raise max_certificates to see all)", self.max_certificates, len(statuses))
            for s in labelled:
                if s.state == "stapled" and s.valid_until is not None:
                    expiry.add_metric([s.name], s.valid_until.timestamp())
                failures.add_metric([s.name], s.failures)
        yield requests
        yield refreshes
        yield certificates
        yield earliest
        yield expiry
        yield failures


def register(stapler: "Stapler", registry: Any = None, *, max_certificates: int = 100) -> StaplerCollector:
    """Register STAPLER's collector in REGISTRY (default: prometheus_client's global REGISTRY)."""
    try:
        import prometheus_client
    except ImportError:
        raise UsageError("Stapler metrics need prometheus_client: pip install 'ocsptools[metrics]'") from None
    collector = StaplerCollector(stapler, max_certificates=max_certificates)
    target = prometheus_client.REGISTRY if registry is None else registry
    try:
        target.register(collector)
    except ValueError as exc:
        raise UsageError(f"cannot register the Stapler's metrics: {exc} (one Stapler per registry; "
                         f"pass registry=CollectorRegistry() for another)") from None
    return collector
