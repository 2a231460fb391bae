"""ocsp-check's output formats (ocsptools/report.py): the pure functions on hand-built Results, then the
installed command end to end (several staples, JSON Lines, Prometheus, --print, -q) on real responses
under a frozen clock (tests/fixtures/check/world.py)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import command
from ocsptools import nagios, report
from ocsptools.check import evaluate
from ocsptools.check.model import Result
from ocsptools.durations import parse_threshold
from ocsptools.staple import ResponseInfo, SingleResponse, Staple

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "check"))
import build  # noqa: E402
from world import CRIT2, DAY, HOUR, LIFE2, LIFE7, WARN2, check, iso, perf, world  # noqa: E402,F401

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- pure, on hand-built Results

def staple(nxt=T0 + 7 * DAY) -> Staple:
    single = SingleResponse("sha1", "AA", "BB", 0x1234, "good", T0, nxt, None, None)
    return Staple(b"\x30", ResponseInfo("successful", T0, "CN=responder", (single,)), single,
                  verified=True)


def result(label="a.ocsp", s=None, state_msgs=((nagios.OK, "good"),), **kw) -> Result:
    r = Result(label=label, source="file", now=T0, staple=s, **kw)
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


def test_unverified_and_not_applicable():
    r = result(s=staple(), unverified_reason="no --cert given for standard input")
    assert report.nagios_output([r]).splitlines() == [
        "OCSP OK - a.ocsp: good (signature and CertID not verified) | 'a.ocsp'=604800s;;;0;604800",
        "signature and CertID NOT verified: no --cert given for standard input"]
    na = result(state_msgs=((nagios.OK, "no such file; not applicable"),), not_applicable=True)
    assert report.nagios_output([na]) == "OCSP OK - a.ocsp: no such file; not applicable\n"


def test_unknown_state_summary():
    u = result("h:1", state_msgs=((nagios.UNKNOWN, "openssl's output contradicts itself"),))
    assert report.nagios_output([result("a.ocsp"), u]).splitlines()[0].startswith(
        "OCSP UNKNOWN - 2 staples: 1 UNKNOWN (h:1), 1 OK")


def test_error_line():
    assert report.error_line("openssl not found | x") == "OCSP UNKNOWN - openssl not found / x"


def test_verdict_perfdata_and_json_agree_on_a_fractional_threshold():
    """25% of 604799 s is 151199.75: 151199 s left is WARNING, and the range says so (151200:)."""
    s = staple(nxt=T0 + dt.timedelta(seconds=604799))
    for left, state in ((151199, nagios.WARNING), (151200, nagios.OK)):
        now = s.next_update - dt.timedelta(seconds=left)
        j = evaluate.judge(s, now, parse_threshold("25%"), parse_threshold("10%"))
        r = Result(label="a.ocsp", source="file", now=now, staple=s, verified=True,
                   warning_seconds=j.warning_seconds, critical_seconds=j.critical_seconds)
        r.add_all(j.findings)
        assert r.state == state
        assert report.perfdata([r]) == [f"'a.ocsp'={left}s;151200:;60480:;0;604799"]
        assert json.loads(report.json_lines([r]))["warning_seconds"] == 151200


def test_prometheus_label_escaping():
    from prometheus_client.parser import text_string_to_metric_families
    odd = 'we"ird\\path\nx'
    text = report.prometheus([result(odd, s=staple())], T0)
    fam = {f.name: f for f in text_string_to_metric_families(text)}
    assert fam["ocsp_staple_state"].samples[0].labels == {"path": odd}
    assert fam["ocsp_staple_next_update_timestamp_seconds"].samples[0].value == (T0 + 7 * DAY).timestamp()


@pytest.mark.parametrize("text, fields", [("state, remaining", ["state", "remaining"]),
                                          ("path", ["path"]), ("state,,path", ["state", "path"])])
def test_print_field_parsing(text, fields):
    assert report.parse_fields(text) == fields


@pytest.mark.parametrize("text, message", [("state,nope", "unknown --print field 'nope'"),
                                           (",", "--print needs a field name")])
def test_print_field_parsing_refuses(text, message):
    with pytest.raises(ValueError, match=message):
        report.parse_fields(text)


def test_print_fields_one_line_each():
    rows = [result(s=staple()), result("x\ty", state_msgs=((nagios.CRITICAL, "no such file"),))]
    assert report.print_fields(rows, ["state", "status", "remaining", "path"]) == (
        "OK\tgood\t604800\ta.ocsp\nCRITICAL\t\t\tx y\n")


# --------------------------------------------------------------------------- several staples, end to end

def test_mix_of_files_worst_state_wins(world, tmp_path):
    w = world
    good, expired, noupd = w.staple("good"), w.staple("expired"), w.staple("no_next_update")
    missing = tmp_path / "missing.ocsp"
    at = w.t0 + 5 * DAY + 12 * HOUR          # good: 1d12h left, below the 25% warning
    rc, out, err = check("--cert", w.cert("good1"), good, expired, noupd, missing, at=at)
    assert rc == 2 and err == ""
    assert out == [
        f"OCSP CRITICAL - 4 staples: 2 CRITICAL ({expired}, {missing}), 2 WARNING ({good}, {noupd}) "
        f"| {perf(good, 129600)} {perf(expired, -561600)} '{noupd}'=U '{missing}'=U",
        f"WARNING: {good}: good, 1d12h left (next update {iso(w.t0 + 7 * DAY)}), below the warning "
        f"threshold 1d18h (25% of 7d)",
        f"CRITICAL: {expired}: expired at nextUpdate {iso(w.t0 - DAY)}, 6d12h ago",
        f"WARNING: {noupd}: good, no nextUpdate: HAProxy and Exim refuse to staple such a response",
        f"CRITICAL: {missing}: no such file",
    ]


def test_mix_ok_and_warning(world):
    w = world
    good, early = w.staple("good"), w.staple("early_signer")
    rc, out, _ = check("--cert", w.cert("good1"), good, early, at=w.t0 + 42 * HOUR)
    assert rc == 1
    left7, left2 = LIFE7 - 42 * 3600, LIFE2 - 42 * 3600
    assert out[0] == (f"OCSP WARNING - 2 staples: 1 WARNING ({early}), 1 OK | {perf(good, left7)} "
                      f"{perf(early, left2, WARN2, CRIT2, LIFE2)}")
    assert out[1] == f"OK: {good}: good, 5d6h left (next update {iso(w.t0 + 7 * DAY)})"
    assert out[2].startswith(f"WARNING: {early}: good, 6h left (until the responder certificate")


def test_all_ok_summary_and_verbose(world):
    w = world
    a, b = w.staple("good"), w.staple("good_issuer_signed")
    rc, out, _ = check("-v", "--cert", w.cert("good1"), a, b, at=w.t0)
    assert rc == 0
    assert out[0] == f"OCSP OK - 2 staples: 2 OK | {perf(a, LIFE7)} {perf(b, LIFE7)}"
    text = "\n".join(out)
    assert "responder id O = ocsptools test, CN = ocsptools Test OCSP Responder" in text
    assert "signer O=ocsptools test, CN=ocsptools Test OCSP Responder, valid" in text
    assert "signer O=ocsptools test, CN=ocsptools Test Intermediate CA, valid" in text
    assert f"serial {w.pki.leaves['good1'].serial.lstrip('0')}" in text


def test_many_names_are_abbreviated(world, tmp_path):
    names = [tmp_path / f"m{i}.ocsp" for i in range(5)]
    rc, out, _ = check(*names, at=world.t0)
    assert rc == 2
    assert out[0].startswith(f"OCSP CRITICAL - 5 staples: 5 CRITICAL ({names[0]}, {names[1]}, {names[2]}, "
                             f"+2 more) | ")


def test_labels_are_sanitised(world, tmp_path):
    odd = tmp_path / "we'ird=na|me.ocsp"
    shutil.copy(world.staple("good"), odd)
    _, out, _ = check(odd, at=world.t0)
    text, perfdata = out[0].split(" | ")
    assert "|" not in text and out[0].count("|") == 1
    assert perfdata == perf(str(odd).replace("'", "_").replace("=", "_").replace("|", "_"), LIFE7)


def test_fractional_threshold_is_rounded_up_everywhere(world):
    """33.33% of 7d is 201579.84 s: with 201579 s left the check warns, so the perfdata range must
    be 201580: (201579: would say OK for the very value that made the check warn)."""
    w = world
    p = w.staple("good")
    at = w.t0 + dt.timedelta(seconds=LIFE7 - 201579)
    rc, out, _ = check("-w", "33.33%", "--cert", w.cert("good1"), p, at=at)
    assert rc == 1
    assert out == [f"OCSP WARNING - {p}: good, 2d7h59m left (next update {iso(w.t0 + 7 * DAY)}), below the "
                   f"warning threshold 2d7h59m (33.33% of 7d) | {perf(p, 201579, 201580)}"]
    rc, out, _ = check("--json", "-w", "33.33%", "--cert", w.cert("good1"), p, at=at)
    assert json.loads(out[0])["warning_seconds"] == 201580
    rc, out, _ = check("-w", "33.33%", "--cert", w.cert("good1"), p, at=at - dt.timedelta(seconds=1))
    assert rc == 0 and out[0].endswith(f" | {perf(p, 201580, 201580)}")


# --------------------------------------------------------------------------- JSON Lines, Prometheus, --print, -q

def test_json_lines(world, tmp_path):
    w = world
    good, revoked = w.staple("good"), w.staple("revoked")
    rc, out, _ = check("--json", "--cert", w.cert("good1"), good, tmp_path / "gone", at=w.t0 + DAY)
    assert rc == 2
    a, b = [json.loads(line) for line in out]
    assert a["path"] == str(good) and a["state"] == "OK" and a["cert_status"] == "good"
    assert a["this_update"] == iso(w.t0) and a["next_update"] == iso(w.t0 + 7 * DAY)
    assert a["produced_at"] == iso(w.t0)
    assert a["remaining_seconds"] == 6 * 86400 and a["lifetime_seconds"] == LIFE7
    assert a["serial"] == w.pki.leaves["good1"].serial.lstrip("0")
    assert a["verified"] is True and a["signer_not_after"].endswith("Z")
    assert a["messages"] == [f"good, 6d left (next update {iso(w.t0 + 7 * DAY)})"]
    assert b["state"] == "CRITICAL" and b["cert_status"] is None and b["this_update"] is None
    assert b["remaining_seconds"] is None and b["verified"] is False and b["messages"] == ["no such file"]
    for key in ("path", "state", "cert_status", "this_update", "next_update", "produced_at",
                "remaining_seconds", "lifetime_seconds", "serial", "verified", "signer_not_after",
                "messages"):
        assert key in a and key in b
    rc, out, _ = check("--json", "--cert", w.cert("revoked1"), revoked, at=w.t0)
    obj = json.loads(out[0])
    assert rc == 2 and obj["cert_status"] == "revoked" and obj["revocation_time"] == iso(w.t0 - DAY)
    assert obj["revocation_reason"] == "keyCompromise"


def test_prometheus_text_parses(world, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families
    w = world
    good, unverified = w.staple("good"), w.staple("revoked")
    odd = tmp_path / 'odd"name\\x.ocsp'
    rc, out, _ = check("--prometheus", good, unverified, odd, at=w.t0 + DAY)
    assert rc == 2
    families = {f.name: f for f in text_string_to_metric_families("\n".join(out) + "\n")}
    samples = {(f.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    g = (("path", str(good)),)
    assert samples[("ocsp_staple_state", g)] == 0
    assert samples[("ocsp_staple_state", (("path", str(unverified)),))] == 2
    assert samples[("ocsp_staple_state", (("path", str(odd)),))] == 2
    assert samples[("ocsp_staple_next_update_timestamp_seconds", g)] == (w.t0 + 7 * DAY).timestamp()
    assert samples[("ocsp_staple_this_update_timestamp_seconds", g)] == w.t0.timestamp()
    assert samples[("ocsp_staple_remaining_seconds", g)] == 6 * 86400
    assert samples[("ocsp_staple_verified", g)] == 0
    assert samples[("ocsp_staple_cert_status", (("path", str(good)), ("status", "good")))] == 1
    assert samples[("ocsp_staple_cert_status", (("path", str(unverified)), ("status", "revoked")))] == 1
    assert samples[("ocsp_staple_cert_status", (("path", str(odd)), ("status", "good")))] == 0
    assert ("ocsp_staple_remaining_seconds", (("path", str(odd)),)) not in samples
    assert samples[("ocsp_check_timestamp_seconds", ())] == (w.t0 + DAY).timestamp()
    for name in ("ocsp_staple_state", "ocsp_staple_next_update_timestamp_seconds",
                 "ocsp_staple_remaining_seconds", "ocsp_staple_cert_status"):
        assert families[name].type == "gauge" and families[name].documentation


def test_prometheus_same_path_twice_gives_no_duplicate_series(world):
    """node_exporter rejects a whole .prom file with a duplicate series: a repeated path gets #2."""
    from prometheus_client.parser import text_string_to_metric_families
    w = world
    good, expired = w.staple("good"), w.staple("expired")
    rc, out, _ = check("--prometheus", good, expired, good, at=w.t0)
    assert rc == 2
    samples = [s for f in text_string_to_metric_families("\n".join(out) + "\n") for s in f.samples]
    series = [(s.name, tuple(sorted(s.labels.items()))) for s in samples]
    assert len(series) == len(set(series))
    states = {s.labels["path"]: s.value for s in samples if s.name == "ocsp_staple_state"}
    assert states == {str(good): 0, str(expired): 2, f"{good}#2": 0}


PROM_DIR = "/var/lib/node_exporter/"
PROM_STAPLES = "/etc/haproxy/certs/*.ocsp"


def documented_prometheus_cron() -> str:
    """The node_exporter cron command of the README (schedule removed), checked against the man page."""
    lines = [line for line in (ROOT / "README.md").read_text().splitlines()
             if "ocsp-check --prometheus" in line and " mv " in line]
    assert len(lines) == 1, lines
    command_ = lines[0].split(None, 5)[5]
    man = [line for line in (ROOT / "man" / "ocsp-check.1").read_text().replace("\\-", "-").splitlines()
           if "ocsp-check --prometheus" in line and " mv " in line]
    assert len(man) == 1 and man[0].split(None, 5)[5] == command_, man
    return command_


def test_documented_prometheus_cron_updates_the_file_on_critical(world, tmp_path):
    """exit 2 is when the metrics matter: the documented snippet must still rename the .prom file."""
    w = world
    script = documented_prometheus_cron()
    assert PROM_DIR in script and PROM_STAPLES in script
    out = tmp_path / "textfile"
    out.mkdir()
    (out / "ocsp.prom").write_text('ocsp_staple_state{path="stale"} 0\n')
    script = script.replace(PROM_DIR, f"{out}/").replace(PROM_STAPLES, str(w.staple("expired")))
    env = dict(build.ENV, PATH=f"{Path(command('ocsp-check')).parent}:/usr/bin:/bin")
    res = subprocess.run(["sh", "-c", script], capture_output=True, env=env, timeout=60)
    assert res.stderr == b""
    assert sorted(p.name for p in out.iterdir()) == ["ocsp.prom"]       # no temp file left
    text = (out / "ocsp.prom").read_text()
    from prometheus_client.parser import text_string_to_metric_families
    states = {s.labels["path"]: s.value for f in text_string_to_metric_families(text)
              for s in f.samples if s.name == "ocsp_staple_state"}
    assert states == {str(w.staple("expired")): 2}
    assert "stale" not in text


@pytest.mark.parametrize("field, want", [
    ("state", ["OK", "CRITICAL", "CRITICAL"]),
    ("status", ["good", "good", ""]),
    ("this-update", ["{t0}", "{t0-8d}", ""]),
    ("next-update", ["{t0+7d}", "{t0-1d}", ""]),
    ("produced-at", ["{t0}", "{t0-8d}", ""]),
    ("remaining", [str(LIFE7), "-86400", ""]),
])
def test_print_fields(world, tmp_path, field, want):
    w = world
    times = {"{t0}": iso(w.t0), "{t0-8d}": iso(w.t0 - 8 * DAY), "{t0+7d}": iso(w.t0 + 7 * DAY),
             "{t0-1d}": iso(w.t0 - DAY)}
    rc, out, _ = check("--print", field, w.staple("good"), w.staple("expired"), tmp_path / "x", at=w.t0)
    assert rc == 2 and out == [times.get(v, v) for v in want]


def test_print_several_fields_and_an_unknown_one(world):
    w = world
    good = w.staple("good")
    rc, out, _ = check("--print", "state,remaining,path", "-w", "7d", good, at=w.t0 + HOUR)
    assert rc == 1 and out == [f"WARNING\t{LIFE7 - 3600}\t{good}"]
    rc, out, err = check("--print", "bogus", good, at=w.t0)
    assert rc == 3 and out == [] and "unknown --print field 'bogus'" in err


@pytest.mark.parametrize("after, rc", [(dt.timedelta(0), 0), (6 * DAY, 1), (8 * DAY, 2)])
def test_quiet_prints_nothing_and_keeps_the_status(world, after, rc):
    w = world
    assert check("-q", "--cert", w.cert("good1"), w.staple("good"), at=w.t0 + after) == (rc, [], "")


def test_quiet_with_the_last_threshold_given(world):
    assert check("-q", "-w", "3d", "-c", "1d", "-w", "8d", world.staple("good"), at=world.t0)[:2] == (1, [])
