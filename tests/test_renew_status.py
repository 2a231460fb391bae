"""What renewal knows, monitoring knows: ocsp-renew-dir's status file, ocsp-check --renew-state, the textfile.

Issue 15 item 3: after a renewal learnt that a certificate is revoked (the old staple is rightly
kept), ocsp-check on that staple said OK for up to a week, and so it did while renewal kept
failing.  The pure rules (``renewstatus.observe`` / ``judge``) are tested as tables; the pairing
end to end with the real responder.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from conftest import command, run_cmd
from fake_responder import STATUS_ONLY
from ocsptools import nagios, policy, renewstatus
from ocsptools.renewstatus import StapleStatus, judge, observe
from test_proxy_support import faketime_lib
from test_renew import fresh_leaf, lines, place, renew

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
TS = "2026-12-01T12:00:00Z"


def item(outcome="", action=policy.FRESH, *, kind="leaf", cert_status="", detail="d", rt=None):
    return SimpleNamespace(cand=SimpleNamespace(cert="/c.pem", staple="/c.pem.ocsp"),
                           abs_staple="/c.pem.ocsp", kind=kind,
                           decision=SimpleNamespace(action=action, reason="r"), outcome=outcome,
                           cert_status=cert_status, detail=detail, error="", revocation_time=rt,
                           revocation_reason="keyCompromise" if rt else None)


REVOKED = StapleStatus("/c.pem", "revoked", "revoked", "2026-11-30T00:00:00Z", "2026-11-29T00:00:00Z",
                       "keyCompromise", "2026-11-30T00:00:00Z", 1)
FAILING = StapleStatus("/c.pem", "failed", "good", None, failing_since="2026-11-30T00:00:00Z", failures=3)


@pytest.mark.parametrize("prev, it, status, failing_since, failures", [
    (None, item("renewed", policy.RENEW), "good", None, 0),
    (FAILING, item("renewed", policy.RENEW), "good", None, 0),
    (FAILING, item("failed", policy.RENEW), "failed", "2026-11-30T00:00:00Z", 4),
    (None, item("failed", policy.RENEW), "failed", TS, 1),
    (None, item("failed", policy.RENEW, cert_status="unknown"), "unknown", TS, 1),
    (None, item("revoked", policy.RENEW, rt="2026-11-29T00:00:00Z"), "revoked", TS, 1),
    (REVOKED, item("", policy.FRESH), "revoked", None, 0),      # kept staple fresh: still revoked
    (REVOKED, item("unchanged", policy.RENEW), "revoked", None, 0),
    (REVOKED, item("renewed", policy.RENEW), "good", None, 0),  # a new good answer clears it
    (FAILING, item("", policy.FRESH), "good", None, 0),         # nothing due: not failing
    (FAILING, item("", policy.NOT_APPLICABLE), "not-applicable", None, 0),
    (None, item(kind="failed"), "failed", TS, 1),
])
def test_observe(prev, it, status, failing_since, failures):
    got = observe(prev, it, T0)
    assert (got.status, got.failing_since, got.failures) == (status, failing_since, failures)


def test_observe_drops_what_is_no_longer_a_certificate():
    assert observe(FAILING, item(kind="ignore"), T0) is None


@pytest.mark.parametrize("rec, failing_after, states", [
    (None, timedelta(hours=6), [nagios.WARNING]),                                   # not paired
    (StapleStatus("/c.pem", "good"), timedelta(hours=6), []),
    (REVOKED, timedelta(hours=6), [nagios.CRITICAL]),
    (FAILING, timedelta(hours=6), [nagios.WARNING]),                                # 36 h failing
    (FAILING, timedelta(days=2), []),
])
def test_judge(rec, failing_after, states):
    assert [s for s, _ in judge(rec, T0, failing_after, "/s.json.status")] == states


# ---------------------------------------------------------------------------
# end to end: ocsp-renew-dir records, ocsp-check reports

def check(*args, env=None):
    res = run_cmd("ocsp-check", "--json", *args, env=env)
    return res.returncode, json.loads(res.stdout.decode().splitlines()[0])


def sample(text, name, **labels):
    """The value of the series NAME{LABELS} in a Prometheus exposition, or None."""
    from prometheus_client.parser import text_string_to_metric_families
    return next((s.value for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == name and s.labels == labels), None)


def test_a_revocation_renewal_learnt_is_critical_in_ocsp_check(tmp_path, pki, responder):
    leaf = fresh_leaf(pki, responder, "rs")
    cert, staple = place(tmp_path / "tree", "bundle", "rs", leaf, pki)
    state = tmp_path / "s.json"
    assert renew(state, tmp_path / "tree").returncode == 0
    assert check("--renew-state", state, staple)[0] == nagios.OK
    pki.revoke(leaf, "keyCompromise")
    responder.restart()
    time.sleep(1.1)
    good = staple.read_bytes()
    assert [l[0] for l in lines(renew(state, "-B", tmp_path / "tree"))] == ["revoked"]
    assert staple.read_bytes() == good                  # the old, good staple is kept ...
    assert check(staple)[0] == nagios.OK                # ... and says good on its own
    rc, obj = check("--renew-state", state, staple)
    assert rc == nagios.CRITICAL
    assert "the responder said REVOKED" in obj["messages"][0] and "keyCompromise" in obj["messages"][0]
    assert obj["renewal"]["status"] == "revoked"
    # the next run has nothing to renew (the kept staple is fresh): the revocation stands
    assert renew(state, tmp_path / "tree").returncode == 0
    assert check("--renew-state", state, staple)[0] == nagios.CRITICAL
    prom = run_cmd("ocsp-check", "--prometheus", "--renew-state", state, staple).stdout.decode()
    assert sample(prom, "ocsp_staple_responder_revoked", path=str(staple)) == 1


def test_renewal_failing_longer_than_the_threshold_is_a_warning(tmp_path, pki, responder, fake):
    tree = tmp_path / "tree"
    cert, staple = place(tree, "bundle", "good1", pki.leaves["good1"], pki)
    state = tmp_path / "s.json"
    assert renew(state, tree).returncode == 0
    fake.set(body=STATUS_ONLY["tryLater"])
    assert renew(state, "-B", "-u", fake.url, tree).returncode == 1
    assert check("--renew-state", state, staple)[0] == nagios.OK        # not failing long yet
    later = {"LD_PRELOAD": faketime_lib(), "FAKETIME": "+7h", "TZ": "UTC"}
    rc, obj = check("--renew-state", state, staple, env=later)
    assert rc == nagios.WARNING, obj
    assert obj["messages"][0].startswith("ocsp-renew-dir has failed to renew it since ")
    assert "try later" in obj["messages"][0]
    assert check("--renew-state", state, "--renew-failing", "1d", staple, env=later)[0] == nagios.OK
    assert renew(state, "-B", tree).returncode == 0                     # the responder is back
    assert check("--renew-state", state, staple, env=later)[0] == nagios.OK


def test_an_unpaired_or_missing_state_is_said(tmp_path, pki, responder):
    tree = tmp_path / "tree"
    cert, staple = place(tree, "bundle", "good2", pki.leaves["good2"], pki)
    state = tmp_path / "s.json"
    assert renew(state, tree).returncode == 0
    other = tmp_path / "other.ocsp"
    other.write_bytes(staple.read_bytes())
    rc, obj = check("--renew-state", state, "--cert", cert, other)
    assert rc == nagios.WARNING and "not among the staples ocsp-renew-dir renews" in obj["messages"][0]
    res = run_cmd("ocsp-check", "--renew-state", tmp_path / "nothing.json", staple)
    assert res.returncode == nagios.UNKNOWN
    assert "has ocsp-renew-dir run with this --state" in res.stdout.decode()


def test_watch_records_the_same_facts_and_its_textfile_carries_them(tmp_path, pki, responder, fake):
    tree = tmp_path / "tree"
    cert, staple = place(tree, "bundle", "good1", pki.leaves["good1"], pki)
    state, textfile = tmp_path / "s.json", tmp_path / "ocsp.prom"
    fake.set(body=STATUS_ONLY["tryLater"])
    proc = subprocess.Popen([command("ocsp-renew-dir"), "--watch", "--state", str(state), "-u",
                             fake.url, "--prometheus-textfile", str(textfile), str(tree)],
                            stderr=subprocess.PIPE, text=True,
                            env={**__import__("os").environ, "OCSPTOOLS_WATCH_BACKOFF_BASE": "60"})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = renewstatus.StatusFile(renewstatus.path_for(str(state))).load()
            rec = status.get(str(staple))
            if rec is not None and rec.failing_since and textfile.exists() \
                    and "failing_since" in textfile.read_text():
                break
            time.sleep(0.1)
        assert rec is not None and rec.status == "failed" and rec.failures >= 1, rec
        text = textfile.read_text()
        assert sample(text, "ocsp_renew_dir_staple_failing_since_timestamp_seconds",
                      staple=str(staple)) is not None
        assert sample(text, "ocsp_renew_dir_staple_responder_revoked", staple=str(staple)) == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_a_no_op_run_reads_only_the_header_and_writes_nothing(tmp_path, pki, responder):
    """10,000 unchanged staples must stay cheap: a clean status file is neither parsed whole nor
    rewritten by a run that only confirmed it; a run with news rewrites it."""
    tree = tmp_path / "tree"
    place(tree, "bundle", "good1", pki.leaves["good1"], pki)
    state = tmp_path / "s.json"
    assert renew(state, tree).returncode == 0
    status = tmp_path / "s.json.status"
    header = json.loads(status.read_text().splitlines()[0])
    assert header["clean"] is True and header["version"] == renewstatus.VERSION
    before = status.stat()
    # a broken body would be noticed if it were read: the quiet run must not read past line 1
    status.write_text(status.read_text().splitlines()[0] + "\n{not json\n")
    mangled = status.stat()
    assert renew(state, tree).returncode == 0
    assert status.stat().st_ino == mangled.st_ino and status.stat().st_mtime_ns == mangled.st_mtime_ns
    res = renew(state, "-B", tree)                      # news: the file is read and rewritten
    assert res.returncode == 0 and b"unreadable" in res.stderr
    assert renewstatus.StatusFile(str(status)).load(strict=True).get(str(tree / "good1.pem.ocsp"))
