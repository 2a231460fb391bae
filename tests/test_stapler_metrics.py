"""ocsptools.stapler.metrics: the Stapler's Prometheus families from plain snapshots, and their
collector in a prometheus_client registry (a real Stapler's: docs/api.md's example, tests/test_api.py)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ocsptools.errors import UsageError
from ocsptools.stapler import CertificateStatus
from ocsptools.stapler.metrics import families, register
from test_stapler_schedule import DAY, T0


def status(name, state="stapled", *, valid_until=T0 + DAY, failures=0) -> CertificateStatus:
    return CertificateStatus(name=name, path=f"/certs/{name}.pem", fingerprint="ab", subject="CN=x",
                             serial="1", not_after=T0 + 90 * DAY, must_staple=False, state=state,
                             valid_until=valid_until if state == "stapled" else None,
                             failures=failures)


class Observed:
    """What the metrics read of a Stapler: counters() and status()."""

    def __init__(self, statuses, requests=None, refreshes=None) -> None:
        self.statuses = statuses
        self.requests = requests or {}
        self.refreshes = refreshes or {}

    def counters(self):
        return {"requests": dict(self.requests), "refreshes": dict(self.refreshes)}

    def status(self):
        return list(self.statuses)


STATUSES = [status("good1", valid_until=T0 + 2 * DAY), status("good2", valid_until=T0 + DAY),
            status("nourl", "not-applicable"), status("down", "unstapled", failures=3)]


def samples(fams) -> dict:
    return {(f.name, labels): value for f in fams for labels, value in f.samples}


def test_families_from_counters_and_statuses():
    counts = {"requests": {"stapled": 3, "unknown_certificate": 50, "what a client sent": 9},
              "refreshes": {"ok": 2}}
    got = samples(families(counts, STATUSES, max_certificates=2))
    assert got[("ocsp_stapler_status_requests_total", ("stapled",))] == 3
    assert got[("ocsp_stapler_status_requests_total", ("error",))] == 0
    assert got[("ocsp_stapler_refreshes_total", ("ok",))] == 2
    assert got[("ocsp_stapler_certificates", ("stapled",))] == 2
    assert got[("ocsp_stapler_certificates", ("not-applicable",))] == 1
    assert got[("ocsp_stapler_certificates", ("expired",))] == 0
    assert got[("ocsp_stapler_earliest_expiry_timestamp_seconds", ())] == (T0 + DAY).timestamp()
    labels = {labels for (name, labels) in got if name.startswith("ocsp_stapler_status_requests")}
    assert labels == {("stapled",), ("unstapled",), ("unknown_certificate",), ("error",)}
    certificates = {labels[0] for (name, labels) in got
                    if name in ("ocsp_stapler_staple_expiry_timestamp_seconds",
                                "ocsp_stapler_consecutive_failures")}
    assert certificates == {"good1", "good2"}                     # capped at max_certificates=2
    nothing_served = samples(families(counts, [status("down", "unstapled")], 10))
    assert ("ocsp_stapler_earliest_expiry_timestamp_seconds", ()) not in nothing_served
    assert all(not f.samples for f in families(None, (), 10))     # the names only


def test_registered_in_a_registry(caplog):
    registry = CollectorRegistry()
    observed = Observed(STATUSES, requests={"stapled": 3}, refreshes={"ok": 2})
    with caplog.at_level(logging.WARNING, logger="ocsptools.stapler"):
        register(observed, registry, max_certificates=2)
        text = generate_latest(registry).decode()
        observed.requests["stapled"] = 4                          # read again at every scrape
        later = generate_latest(registry).decode()
    assert 'ocsp_stapler_status_requests_total{result="stapled"} 3.0' in text
    assert 'ocsp_stapler_status_requests_total{result="stapled"} 4.0' in later
    assert 'ocsp_stapler_refreshes_total{result="ok"} 2.0' in text
    assert 'ocsp_stapler_certificates{state="not-applicable"} 1.0' in text
    assert "# TYPE ocsp_stapler_status_requests_total counter" in text and "_created" not in text
    assert set(re.findall(r'certificate="([^"]*)"', text)) == {"good1", "good2"}
    warned = [r.getMessage() for r in caplog.records if "per-certificate series" in r.getMessage()]
    assert warned == ["metrics: per-certificate series kept for 2 of 4 certificates (raise "
                      "max_certificates to see all)"]                # once, not per scrape
    with pytest.raises(UsageError, match="one Stapler per registry"):
        register(Observed([]), registry)
    with pytest.raises(UsageError, match="must not be negative"):
        register(Observed([]), CollectorRegistry(), max_certificates=-1)


def test_expiry_of_each_served_staple():
    got = samples(families({"requests": {}, "refreshes": {}},
                           [status("a", valid_until=T0 + timedelta(hours=5))], 10))
    assert got[("ocsp_stapler_staple_expiry_timestamp_seconds", ("a",))] == \
        (T0 + timedelta(hours=5)).timestamp()
    assert got[("ocsp_stapler_consecutive_failures", ("a",))] == 0
