"""ocsp-proxy's counters and its ``GET /metrics`` exposition (through ``ocsptools.metrics``).

The request path only increments plain integers of ``Metrics``; the families
are built from them, and from the gauges the service passes in, when
Prometheus scrapes (``Metrics.render``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterable, List

from .. import metrics

CONTENT_TYPE = metrics.CONTENT_TYPE

#: Label values always exposed (0 until counted), in this order; others follow, sorted.
PASSTHROUGH_REASONS = ("nonce", "several certificates", "unknown issuer", "unverifiable")
UPSTREAM_ERROR_KINDS = ("connect", "timeout", "http", "responder_status", "verify", "times",
                        "unknown", "other")
REFRESH_RESULTS = ("ok", "failed", "unchanged", "not allowed")


class Metrics:
    """Counters the proxy bumps; gauges are passed in at scrape time."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.passthrough: Dict[str, int] = defaultdict(int)
        self.upstream_errors: Dict[str, int] = defaultdict(int)
        self.refreshes: Dict[str, int] = defaultdict(int)
        self.expired = 0
        self.forbidden = 0
        self.bad_requests = 0
        self.cache_errors = 0

    def families(self, gauges: Dict[str, float], http: Dict[str, float]) -> List[metrics.Family]:
        """The families of /metrics from these counters, the cache's GAUGES (entries, expired,
        oldest_age, issuers) and the HTTP server's counts (open, timeouts, refused)."""
        def total(name: str, help_text: str, value: float) -> metrics.Family:
            return metrics.counter(name, help_text).add(value)

        def by(name: str, help_text: str, label: str, values: Dict[str, int],
               known: Iterable[str]) -> metrics.Family:
            family = metrics.counter(name, help_text, (label,))
            for key in dict.fromkeys(list(known) + sorted(values)):
                family.add(values.get(key, 0), key)
            return family

        def level(name: str, help_text: str, value: float) -> metrics.Family:
            return metrics.gauge(name, help_text).add(value)

        return [
            total("ocsp_proxy_cache_hits_total", "Answers served from the cache.", self.hits),
            total("ocsp_proxy_cache_misses_total",
                  "Cacheable requests that had to ask the responder.", self.misses),
            by("ocsp_proxy_passthrough_total",
               "Requests passed to the responder and answered uncached, by reason.", "reason",
               self.passthrough, PASSTHROUGH_REASONS),
            by("ocsp_proxy_upstream_errors_total", "Failed or unusable responder answers, by kind.",
               "kind", self.upstream_errors, UPSTREAM_ERROR_KINDS),
            by("ocsp_proxy_refreshes_total", "Background refreshes, by result.", "result",
               self.refreshes, REFRESH_RESULTS),
            total("ocsp_proxy_expired_total", "Requests for an expired entry the responder could "
                  "not renew (answered tryLater).", self.expired),
            total("ocsp_proxy_forbidden_total", "Requests refused with 403 (responder not allowed).",
                  self.forbidden),
            total("ocsp_proxy_bad_requests_total", "Malformed requests (400).", self.bad_requests),
            total("ocsp_proxy_cache_errors_total", "Cache backend failures.", self.cache_errors),
            level("ocsp_proxy_cache_entries", "Entries in the cache.", gauges.get("entries", 0)),
            level("ocsp_proxy_cache_expired_entries",
                  "Entries past nextUpdate (kept to retry, never served).", gauges.get("expired", 0)),
            level("ocsp_proxy_oldest_entry_age_seconds",
                  "Seconds since the thisUpdate of the oldest cached answer.",
                  gauges.get("oldest_age", 0)),
            level("ocsp_proxy_known_issuers", "Issuers learned from --allow-from.",
                  gauges.get("issuers", 0)),
            level("ocsp_proxy_connections", "Open client connections.", http.get("open", 0)),
            total("ocsp_proxy_client_timeouts_total",
                  "Client connections closed for being idle or too slow.", http.get("timeouts", 0)),
            total("ocsp_proxy_connections_refused_total",
                  "Connections refused at the connection limit.", http.get("refused", 0)),
        ]

    def render(self, gauges: Dict[str, float], http: Dict[str, float]) -> bytes:
        """The body of ``GET /metrics`` (``CONTENT_TYPE``)."""
        return metrics.exposition(self.families(gauges, http))
