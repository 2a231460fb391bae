"""The pure parts of ocsp-check: Nagios rules, judge(), and the output formats on hand-built
Results.  (The s_client/-msg parsers are tested in test_openssl_s_client.py and test_codec_tls.py.)"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ocsptools import check, nagios, report
from ocsptools.cli.check import _nagios_output_wanted
from ocsptools.durations import parse_threshold
from ocsptools.staple import Certificate, ResponseInfo, SingleResponse, Staple

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


# --------------------------------------------------------------------------- Nagios rules

def test_worst_state_order():
    O, W, C, U = nagios.OK, nagios.WARNING, nagios.CRITICAL, nagios.UNKNOWN
    assert nagios.worst([O, U]) == U
    assert nagios.worst([U, W]) == W
    assert nagios.worst([W, C, U, O]) == C
    assert nagios.worst([]) == O


def test_below_tests_critical_first():
    assert nagios.below(10, warn=100, crit=50) == nagios.CRITICAL
    assert nagios.below(60, warn=100, crit=50) == nagios.WARNING
    assert nagios.below(100, warn=100, crit=50) == nagios.OK
    assert nagios.below(10, warn=5, crit=50) == nagios.CRITICAL    # inverted thresholds still sane
    assert nagios.below(10, warn=None, crit=None) == nagios.OK


def test_perfdata_syntax():
    assert nagios.perfdata("a.ocsp", 302400, "s", warn="259200:", crit="86400:", minimum=0,
                           maximum=604800) == "'a.ocsp'=302400s;259200:;86400:;0;604800"
    assert nagios.perfdata("x", None) == "'x'=U"
    assert nagios.perfdata("x", 1.5, "s") == "'x'=1.5s"
    assert nagios.min_range(151200.0) == "151200:" and nagios.min_range(None) == ""
    assert nagios.min_range(151199.75) == "151200:"       # rounded up, never down
    assert nagios.label("a'b=c|d\ne") == "a_b_c_d_e"
    assert nagios.unique_labels(["a=b", "a'b", "a_b", "c"]) == ["a_b", "a_b#2", "a_b#3", "c"]
    assert nagios.text("one | two\nthree") == "one / two three"


# --------------------------------------------------------------------------- judge()

def staple(*, status="good", this=T0, nxt=T0 + 7 * DAY, signer_not_after=None,
           revoked_at=None, reason=None) -> Staple:
    single = SingleResponse("sha1", "AA", "BB", 0x1234, status, this, nxt, revoked_at, reason)
    info = ResponseInfo("successful", this, "CN=responder", (single,))
    return Staple(b"\x30", info, single, verified=True, signer_not_after=signer_not_after)


W25, C10 = parse_threshold("25%"), parse_threshold("10%")


def findings(s, now, w=W25, c=C10):
    return list(check.judge(s, now, w, c).findings)


def test_judge_states():
    OK, W, C = nagios.OK, nagios.WARNING, nagios.CRITICAL
    assert findings(staple(), T0) == [(OK, "good, 7d left (next update 2026-12-08T12:00:00Z)")]
    assert findings(staple(), T0 + 6 * DAY)[0][0] == W
    assert findings(staple(), T0 + 6 * DAY + 12 * HOUR)[0][0] == C
    assert findings(staple(), T0 + 8 * DAY) == [(C, "expired at nextUpdate 2026-12-08T12:00:00Z, 1d ago")]
    assert findings(staple(nxt=None), T0) == [
        (W, "good, no nextUpdate: HAProxy and Exim refuse to staple such a response")]
    revoked = findings(staple(status="revoked", revoked_at=T0 - DAY, reason="keyCompromise"), T0)
    assert revoked == [(C, "REVOKED at 2026-11-30T12:00:00Z (keyCompromise)")]
    assert findings(staple(status="unknown"), T0)[0][0] == C
    future = findings(staple(this=T0 + 10 * dt.timedelta(minutes=1)), T0)
    assert future[0][0] == C and "in the future" in future[0][1]
    assert findings(staple(this=T0 + 4 * dt.timedelta(minutes=1)), T0)[0][0] == OK   # within the skew


def test_judge_signer_expiry():
    """A signer expiring before nextUpdate ends the staple's life: time left and the percentage
    thresholds are measured on [thisUpdate, signer notAfter] (3 days here)."""
    s = staple(signer_not_after=T0 + 3 * DAY)
    got = findings(s, T0)
    assert got[0] == (nagios.OK, "good, 3d left (until the responder certificate's notAfter "
                                 "2026-12-04T12:00:00Z, before next update 2026-12-08T12:00:00Z)")
    assert findings(s, T0 + 2 * DAY + 12 * HOUR)[0][0] == nagios.WARNING   # 12h < 18h of 3d
    assert findings(s, T0 + 2 * DAY + 18 * HOUR)[0][0] == nagios.CRITICAL  # 6h < 7h12m
    got = findings(staple(signer_not_after=T0 - HOUR), T0)
    assert got[0] == (nagios.CRITICAL, "the responder certificate expired at 2026-12-01T11:00:00Z")


def test_judge_thresholds_in_seconds():
    j = check.judge(staple(), T0, parse_threshold("3d"), parse_threshold("25%"))
    assert (j.warning_seconds, j.critical_seconds) == (259200, 151200)
    j = check.judge(staple(nxt=None), T0, W25, C10)
    assert (j.warning_seconds, j.critical_seconds) == (None, None)


def test_fractional_threshold_verdict_perfdata_and_json_agree():
    """25% of 604799 s is 151199.75: 151199 s left is WARNING, and the range says so (151200:)."""
    s = staple(nxt=T0 + dt.timedelta(seconds=604799))
    for left, state in ((151199, nagios.WARNING), (151200, nagios.OK)):
        now = s.next_update - dt.timedelta(seconds=left)
        r = check.Result(label="a.ocsp", source="file", now=now, staple=s, verified=True)
        judged = check.judge(s, now, W25, C10)
        assert (judged.warning_seconds, judged.critical_seconds) == (151200, 60480)
        r.warning_seconds, r.critical_seconds = judged.warning_seconds, judged.critical_seconds
        r.findings[:] = judged.findings
        assert r.state == state
        assert report.perfdata([r]) == [f"'a.ocsp'={left}s;151200:;60480:;0;604799"]
        assert json.loads(report.json_lines([r]))["warning_seconds"] == 151200


def test_human_durations():
    assert check.human(7 * 86400) == "7d"
    assert check.human(86400 + 3600 + 59) == "1d1h"
    assert check.human(3599) == "59m59s"
    assert check.human(-90) == "1m30s"


def test_certificate_candidates_and_live_helpers():
    assert check.certificate_candidates("/etc/haproxy/site.pem.ocsp") == [
        "/etc/haproxy/site.pem", "/etc/haproxy/site.pem.pem", "/etc/haproxy/site.pem.crt"]
    assert check.certificate_candidates("x.ocsp-resp")[0] == "x"
    assert check.certificate_candidates("staple.der") == []
    assert check.certificate_candidates(".ocsp") == []
    assert check.default_servername("127.0.0.1") is None and check.default_servername("::1") is None
    assert check.default_servername("mail.example.org") == "mail.example.org"
    assert check.live_label("::1", 443) == "[::1]:443"
    assert check.default_port("smtp") == 25 and check.default_port(None) == 443


# --------------------------------------------------------------------------- output formats

def result(label="a.ocsp", s=None, state_msgs=((nagios.OK, "good"),), **kw) -> check.Result:
    r = check.Result(label=label, source="file", now=T0, staple=s, **kw)
    for state, msg in state_msgs:
        r.add(state, msg)
    return r


def test_nagios_output_single_and_several():
    a = result(s=staple(), verified=True, warning_seconds=151200, critical_seconds=60480)
    assert report.nagios_output([a]) == (
        "OCSP OK - a.ocsp: good | 'a.ocsp'=604800s;151200:;60480:;0;604800\n")
    b = result("b|c.ocsp", state_msgs=((nagios.CRITICAL, "no such file"),))
    out = report.nagios_output([a, b]).splitlines()
    assert out[0] == ("OCSP CRITICAL - 2 staples: 1 CRITICAL (b/c.ocsp), 1 OK | "
                      "'a.ocsp'=604800s;151200:;60480:;0;604800 'b_c.ocsp'=U")
    assert out[1:] == ["OK: a.ocsp: good", "CRITICAL: b/c.ocsp: no such file"]


def test_unknown_state_summary():
    u = result("h:1", state_msgs=((nagios.UNKNOWN, "openssl's output contradicts itself"),))
    o = result("a.ocsp")
    assert report.nagios_output([o, u]).splitlines()[0].startswith(
        "OCSP UNKNOWN - 2 staples: 1 UNKNOWN (h:1), 1 OK")


def test_prometheus_label_escaping():
    from prometheus_client.parser import text_string_to_metric_families
    odd = 'we"ird\\path\nx'
    text = report.prometheus([result(odd, s=staple())], T0)
    fam = {f.name: f for f in text_string_to_metric_families(text)}
    assert fam["ocsp_staple_state"].samples[0].labels == {"path": odd}
    assert fam["ocsp_staple_next_update_timestamp_seconds"].samples[0].value == (T0 + 7 * DAY).timestamp()


def test_print_field_parsing():
    assert report.parse_fields("state, remaining") == ["state", "remaining"]
    with pytest.raises(ValueError, match="unknown --print field"):
        report.parse_fields("state,nope")
    with pytest.raises(ValueError):
        report.parse_fields(",")


def test_error_line_only_where_stdout_is_the_nagios_output():
    wanted = _nagios_output_wanted
    assert wanted(["-w", "3d", "x"]) and wanted(["-wq"]) and wanted(["--", "-q"])
    for args in (["-q", "x"], ["-vq"], ["--quiet"], ["--json", "x"], ["--prometheus"],
                 ["--print", "state"], ["--print=state"]):
        assert not wanted(args), args
