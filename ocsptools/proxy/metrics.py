"""Prometheus text exposition (format 0.0.4) for /metrics; no client library needed."""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterable, Tuple

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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

    def render(self, gauges: Dict[str, float], http: Dict[str, float]) -> bytes:
        out = []

        def metric(name: str, kind: str, help_: str, samples: Iterable[Tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{labels} {_num(value)}")

        def labelled(label: str, values: Dict[str, int], known: Iterable[str]):
            keys = list(dict.fromkeys(list(known) + sorted(values)))
            return [(f'{{{label}="{_esc(k)}"}}', values.get(k, 0)) for k in keys]

        metric("ocsp_proxy_cache_hits_total", "counter", "Answers served from the cache.", [("", self.hits)])
        metric("ocsp_proxy_cache_misses_total", "counter",
               "Cacheable requests that had to ask the responder.", [("", self.misses)])
        metric("ocsp_proxy_passthrough_total", "counter",
               "Requests passed to the responder and answered uncached, by reason.",
               labelled("reason", self.passthrough, ("nonce", "several certificates", "unknown issuer",
                                                     "unverifiable")))
        metric("ocsp_proxy_upstream_errors_total", "counter",
               "Failed or unusable responder answers, by kind.",
               labelled("kind", self.upstream_errors, ("connect", "timeout", "http", "responder_status",
                                                       "verify", "times", "unknown", "other")))
        metric("ocsp_proxy_refreshes_total", "counter", "Background refreshes, by result.",
               labelled("result", self.refreshes, ("ok", "failed", "unchanged", "not allowed")))
        metric("ocsp_proxy_expired_total", "counter",
               "Requests for an expired entry the responder could not renew (answered tryLater).",
               [("", self.expired)])
        metric("ocsp_proxy_forbidden_total", "counter",
               "Requests refused with 403 (responder not allowed).", [("", self.forbidden)])
        metric("ocsp_proxy_bad_requests_total", "counter", "Malformed requests (400).",
               [("", self.bad_requests)])
        metric("ocsp_proxy_cache_errors_total", "counter", "Cache backend failures.",
               [("", self.cache_errors)])
        metric("ocsp_proxy_cache_entries", "gauge", "Entries in the cache.",
               [("", gauges.get("entries", 0))])
        metric("ocsp_proxy_cache_expired_entries", "gauge",
               "Entries past nextUpdate (kept to retry, never served).", [("", gauges.get("expired", 0))])
        metric("ocsp_proxy_oldest_entry_age_seconds", "gauge",
               "Seconds since the thisUpdate of the oldest cached answer.",
               [("", gauges.get("oldest_age", 0))])
        metric("ocsp_proxy_known_issuers", "gauge", "Issuers learned from --allow-from.",
               [("", gauges.get("issuers", 0))])
        metric("ocsp_proxy_connections", "gauge", "Open client connections.", [("", http.get("open", 0))])
        metric("ocsp_proxy_client_timeouts_total", "counter",
               "Client connections closed for being idle or too slow.", [("", http.get("timeouts", 0))])
        metric("ocsp_proxy_connections_refused_total", "counter",
               "Connections refused at the connection limit.", [("", http.get("refused", 0))])
        return ("\n".join(out) + "\n").encode("utf-8")


def _num(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
