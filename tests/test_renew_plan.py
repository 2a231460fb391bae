"""The renewal driver's pure parts, tested directly: ``renewal.plan`` (decisions and steps),
``renewal.facts`` (the state cache's entries and the fast path), and the small shared pieces the
driver uses (``transport.ProxyChoice``, ``hooks.run_on_change``, ``certs.plausible_issuer``)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from ocsptools import policy, transport
from ocsptools.discovery import Candidate
from ocsptools.errors import without_label
from ocsptools.hooks import run_on_change
from ocsptools.policy import CertFacts, RenewOptions, StapleFacts
from ocsptools.renewal import facts, plan
from ocsptools.renewal.items import (FRESH, SKIPPED, STALE, WOULD_RENEW, Item, Report, RunOptions,
                                     cert_newer, responder_urls_for)
from ocsptools.statecache import to_epoch

UTC = timezone.utc
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
URL = "http://127.0.0.1:1/"
CERT = CertFacts(0x1234, T0 - timedelta(days=30), T0 + timedelta(days=60), (URL,))
NO_URL = CertFacts(0x1234, T0 - timedelta(days=30), T0 + timedelta(days=60), ())
EXPIRED = CertFacts(0x1234, T0 - timedelta(days=90), T0 - timedelta(days=1), (URL,))
H = timedelta(hours=1)


def staple(this=T0 - H, life=timedelta(days=7), serial=0x1234, status="good", signer=None):
    return StapleFacts(status, serial, this, this + life, this, signer)


def item(cert=CERT, st=staple(), *, name="a", staple_id=(1, 2, 3, 100), cert_id=(1, 1, 3, 50),
         kind="leaf", urls=(), **kw) -> Item:
    cand = Candidate(f"/t/{name}.pem", f"/t/{name}.pem.ocsp", name, urls=urls, **kw)
    return Item(cand, f"/t/{name}.pem\n/t/{name}.pem.ocsp", cert_id=list(cert_id),
                staple_id=list(staple_id) if staple_id else None, kind=kind, cert=cert, staple=st)


def decided(it: Item, now=T0, opts=RunOptions(), force=()) -> Item:
    plan.decide([it], now, opts, force)
    return it


# -- plan.decide: the one-shot rule, per item ------------------------------------------------

@pytest.mark.parametrize("case, it, now, action", [
    ("a fresh staple", item(), T0, policy.FRESH),
    ("half its life gone", item(), T0 + timedelta(days=3, hours=12), policy.RENEW),
    ("no staple yet", item(st=None, staple_id=None), T0, policy.RENEW),
    ("an unusable staple", item(st=StapleFacts.unusable("bad signature")), T0, policy.RENEW),
    ("another certificate's staple", item(st=staple(serial=0x99)), T0, policy.RENEW),
    ("the signer dies before nextUpdate", item(st=staple(signer=T0 + 20 * timedelta(minutes=1))),
     T0, policy.RENEW),
    ("the certificate expired", item(cert=EXPIRED), T0, policy.CERT_EXPIRED),
    ("no responder URL", item(cert=NO_URL), T0, policy.NOT_APPLICABLE),
    ("no URL in the certificate but one in the configuration",
     item(cert=NO_URL, urls=(URL,)), T0, policy.FRESH),
    ("the certificate was touched after its staple (make's rule)",
     item(cert_id=(1, 1, 3, 200)), T0, policy.RENEW),
])
def test_decide(case, it, now, action):
    assert decided(it, now).decision.action == action, case


def test_decide_leaves_items_that_are_not_loaded_leaves_alone():
    its = [item(kind="ignore"), item(kind="failed"), item(cert=None)]
    plan.decide(its, T0, RunOptions())
    assert [it.decision for it in its] == [None, None, None]


def test_a_forced_key_is_renewed_as_with_always_renew():
    it = item()
    assert decided(it, force={it.key}).decision.action == policy.RENEW
    assert decided(item()).decision.action == policy.FRESH


def test_a_configuration_entry_s_thresholds_win_over_the_run_s():
    it = item(renew_at=10.0)               # 10% of 7 days: due after 16.8 h
    assert decided(it, T0 + 18 * H).decision.action == policy.RENEW
    assert decided(item(), T0 + 18 * H).decision.action == policy.FRESH


def test_decide_is_the_same_at_the_same_instant_and_never_reads_the_clock():
    a, b = decided(item(), T0 + 5 * H), decided(item(), T0 + 5 * H)
    assert a.decision == b.decision


# -- plan.steps: what the run does ------------------------------------------------------------

def kinds(steps):
    return [(s.do, s.action) for s in steps]


@pytest.mark.parametrize("case, it, opts, expected", [
    ("fresh is silent", item(), RunOptions(), []),
    ("fresh is printed with -v", item(), RunOptions(verbose=True), [(plan.REPORT, FRESH)]),
    ("due: renewed", item(st=None, staple_id=None), RunOptions(), [(plan.RENEW, "")]),
    ("due under -n: printed, nothing done", item(st=None, staple_id=None), RunOptions(dry_run=True),
     [(plan.PENDING, WOULD_RENEW)]),
    ("due under -q: counted", item(st=None, staple_id=None), RunOptions(question=True),
     [(plan.PENDING, WOULD_RENEW)]),
    ("expired certificate: said once", item(cert=EXPIRED), RunOptions(), [(plan.ONCE, SKIPPED)]),
    ("no URL, no staple: quiet", item(cert=NO_URL, st=None, staple_id=None), RunOptions(), []),
    ("no URL, no staple, -v: not applicable", item(cert=NO_URL, st=None, staple_id=None),
     RunOptions(verbose=True), [(plan.REPORT, SKIPPED)]),
    ("no URL, a stale staple left: said once", item(cert=NO_URL), RunOptions(), [(plan.ONCE, STALE)]),
    ("no URL, a stale staple, --prune: deleted", item(cert=NO_URL), RunOptions(prune=True),
     [(plan.PRUNE, STALE)]),
    ("no URL, a stale staple, --prune -n: would delete", item(cert=NO_URL),
     RunOptions(prune=True, dry_run=True), [(plan.PENDING, STALE)]),
])
def test_steps(case, it, opts, expected):
    plan.decide([it], T0, opts)
    assert kinds(plan.steps([it], opts)) == expected, case


def test_steps_say_why_an_ignored_file_is_skipped_only_with_verbose():
    it = item(kind="ignore")
    it.error = "holds a private key"
    assert plan.steps([it], RunOptions()) == []
    (step,) = plan.steps([it], RunOptions(verbose=True))
    assert (step.do, step.action, step.detail) == (plan.REPORT, SKIPPED,
                                                   "not a leaf certificate (holds a private key)")


def test_once_tokens_name_the_file_identity_so_a_new_file_is_said_again():
    a, b = item(cert=NO_URL, staple_id=(1, 2, 3, 100)), item(cert=NO_URL, staple_id=(1, 9, 3, 100))
    plan.decide([a, b], T0, RunOptions())
    (sa,), (sb,) = plan.steps([a], RunOptions()), plan.steps([b], RunOptions())
    assert sa.token != sb.token and sa.token.startswith("stale:")


def test_renewals_are_the_renew_steps_in_order():
    its = [item(name="a", st=None, staple_id=None), item(name="b"), item(name="c", st=None, staple_id=None)]
    plan.decide(its, T0, RunOptions())
    assert [it.cand.name for it in plan.renewals(plan.steps(its, RunOptions()))] == ["a", "c"]


# -- facts: the state cache's entries and the fast path --------------------------------------

def test_an_entry_round_trips_the_facts():
    it = item(st=staple(signer=T0 + timedelta(days=3)))
    entry = facts.leaf_entry(it, issuer_id=None, opts=RunOptions())
    assert facts.cert_facts(entry) == CERT
    assert facts.staple_facts(entry["staple"]) == it.staple
    fresh = Item(it.cand, it.key, kind="leaf", entry=entry)
    assert facts.cached_facts(fresh) == (CERT, it.staple)


def test_the_fresh_window_ends_at_the_one_rule_s_renewal_instant():
    it = decided(item())
    entry = facts.leaf_entry(it, None, RunOptions())
    assert entry["win"] == [to_epoch(T0 - H - RenewOptions().skew), to_epoch(it.decision.renew_at)]


@pytest.mark.parametrize("case, st", [
    ("no staple", None),
    ("unusable", StapleFacts.unusable("bad")),
    ("another certificate's", staple(serial=0x99)),
    ("revoked", staple(status="revoked")),
])
def test_only_a_good_staple_of_this_certificate_gets_a_fresh_window(case, st):
    assert "win" not in facts.leaf_entry(item(st=st), None, RunOptions()), case


@pytest.mark.parametrize("case, now, opts, change, fast", [
    ("inside the window", T0, RunOptions(), {}, True),
    ("at the renewal instant", T0 + timedelta(days=3, hours=11), RunOptions(), {}, False),
    ("before thisUpdate less the skew", T0 - 2 * H, RunOptions(), {}, False),
    ("-B", T0, RunOptions(renew=RenewOptions(always=True)), {}, False),
    ("-v looks closer", T0, RunOptions(verbose=True), {}, False),
    ("another --renew-at", T0, RunOptions(renew=RenewOptions(renew_at=10)), {}, False),
    ("the certificate was touched", T0, RunOptions(), {"cert_id": [1, 1, 3, 200]}, False),
    ("the --watch scheduler forced it", T0, RunOptions(), {"force": True}, False),
])
def test_fast_decision(case, now, opts, change, fast):
    it = item()
    entry = facts.leaf_entry(it, None, RunOptions())
    probe = Item(it.cand, it.key, cert_id=change.get("cert_id", it.cert_id), staple_id=it.staple_id,
                 kind="leaf", entry=entry)
    d = facts.fast_decision(probe, entry, opts, now, {it.key} if change.get("force") else ())
    assert (d is not None) == fast, case
    if d is not None:
        assert d.action == policy.FRESH and d.valid_until == T0 - H + timedelta(days=7)


def test_the_fast_path_never_decides_a_certificate_without_a_responder():
    it = item(cert=NO_URL)
    entry = facts.leaf_entry(it, None, RunOptions())
    assert facts.fast_decision(it, entry, RunOptions(), T0, ()) is None


# -- items -----------------------------------------------------------------------------------

def test_responder_urls_come_from_the_entry_then_u_then_the_certificate():
    it = item(urls=("http://127.0.0.2/",))
    assert responder_urls_for(it, RunOptions()) == ("http://127.0.0.2/",)
    from ocsptools.fetch import FetchOptions
    u = RunOptions(fetch=FetchOptions(urls=("http://127.0.0.3/",)))
    assert responder_urls_for(item(), u) == ("http://127.0.0.3/",)
    assert responder_urls_for(item(), RunOptions()) == (URL,)
    assert responder_urls_for(item(cert=NO_URL), RunOptions()) == ()


def test_cert_newer_is_make_s_rule_on_mtimes():
    assert cert_newer(item(cert_id=(1, 1, 3, 101), staple_id=(1, 2, 3, 100)))
    assert not cert_newer(item(cert_id=(1, 1, 3, 100), staple_id=(1, 2, 3, 100)))
    assert not cert_newer(item(staple_id=None))


def test_report_lines_escape_what_would_break_a_tsv_column():
    rep = Report("failed", "a\tb.pem", "x\ny.ocsp", "back\\slash\r")
    assert rep.tsv() == "failed\ta\\tb.pem\tx\\ny.ocsp\tback\\\\slash\\r"
    assert without_label("/t/a.pem: no such file", "/t/a.pem") == "no such file"
    assert without_label("elsewhere: x", "/t/a.pem") == "elsewhere: x"


# -- the shared pieces ------------------------------------------------------------------------

def test_proxy_choice_reads_the_environment_once_per_host(monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.9:3128")
    monkeypatch.setenv("no_proxy", "127.0.0.2")
    choose = transport.ProxyChoice(transport.HttpOptions(timeout=3))
    assert choose("http://127.0.0.1:8080/a").proxy == "http://127.0.0.9:3128"
    assert choose("http://127.0.0.2/").proxy == ""
    monkeypatch.setenv("http_proxy", "http://127.0.0.8:3128")
    assert choose("http://127.0.0.1:8080/b").proxy == "http://127.0.0.9:3128"     # chosen once
    assert choose("http://127.0.0.1:8080/b") is choose("http://127.0.0.1:8080/c")
    explicit = transport.ProxyChoice(transport.HttpOptions(proxy=""))
    assert explicit("http://127.0.0.1/").proxy == ""


def test_run_on_change_passes_names_only_in_the_environment(tmp_path):
    out = tmp_path / "out"
    odd = "/t/$(touch pwned); a.ocsp"
    rc, problem = run_on_change(f'printf %s "$OCSP_CHANGED" > {out}', [odd, "/t/b.ocsp"])
    assert (rc, problem) == (0, "")
    assert out.read_text() == odd + "\n/t/b.ocsp"
    assert not os.path.exists("pwned")
    assert run_on_change("exit 3", ["x"]) == (3, "the --on-change command exited with status 3")
    rc, problem = run_on_change("kill -TERM $$", ["x"])
    assert rc == -15 and problem == "the --on-change command was killed by signal 15"


def test_a_command_that_cannot_be_started_has_no_exit_status():
    """Too many changed staples for the environment (E2BIG): not confused with the shell's 127."""
    rc, problem = run_on_change("true", ["/t/" + "x" * 200 + ".ocsp"] * 3000)
    assert rc is None and problem.startswith("cannot run the --on-change command: ")
    assert run_on_change("no-such-command-here 2>/dev/null", ["x"])[0] == 127


def test_the_hook_output_goes_to_the_stream_given(tmp_path):
    with open(tmp_path / "log", "w") as log:
        assert run_on_change("echo hello", ["x"], stdout=log) == (0, "")
    assert (tmp_path / "log").read_text() == "hello\n"


def test_the_fast_path_reads_the_recorded_end_and_still_reads_entries_written_before_it():
    it = item(st=staple(signer=T0 + timedelta(days=2)))       # the signer ends the life early
    entry = facts.leaf_entry(it, None, RunOptions())
    assert entry["end"] == to_epoch(T0 + timedelta(days=2))
    old = {k: v for k, v in entry.items() if k != "end"}
    for e in (entry, old):
        d = facts.fast_decision(it, e, RunOptions(), T0, ())
        assert d is not None and d.valid_until == T0 + timedelta(days=2)
