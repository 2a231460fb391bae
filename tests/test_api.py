"""The public Python API (`import ocsptools`) against the real responder."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import ocsptools
import pki as pkimod
from test_proxy_support import wait_for

ROOT = Path(__file__).resolve().parent.parent
API_DOC = ROOT / "docs" / "api.md"


def test_public_names_resolve_and_are_typed():
    for name in ocsptools.__all__:
        assert getattr(ocsptools, name) is not None, name
    with pytest.raises(AttributeError):
        ocsptools.no_such_thing  # noqa: B018
    import importlib.resources
    assert (importlib.resources.files("ocsptools") / "py.typed").is_file()


def test_import_is_cheap():
    """The commands import the package first: the API's modules load only when asked for."""
    code = "import sys, ocsptools; print(sorted(m for m in sys.modules if m.startswith('ocsptools')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert not {"'ocsptools.api'", "'ocsptools.renewal'", "'ocsptools.openssl'"} & set(out.strip("[]\n").split(", "))


def test_fetch_write_load_freshness(tmp_path, pki, responder):
    target = ocsptools.load_target(pki.leaves["good1"].fullchain)
    assert target.leaf.serial == int(pki.leaves["good1"].serial, 16)
    staple = ocsptools.fetch_staple(target)
    assert staple.verified and staple.cert_status == "good"
    assert staple.this_update.tzinfo is not None
    path = tmp_path / "s.ocsp"
    ocsptools.write_staple(path, staple)
    again = ocsptools.load_staple(path, cert=target)
    assert again.verified and again.der == staple.der
    unverified = ocsptools.load_staple(path.read_bytes())
    assert not unverified.verified and unverified.cert_status == "good"
    assert ocsptools.time_problems(again) == []
    fresh = ocsptools.freshness(again, target.leaf)
    assert fresh.action == "fresh" and fresh.renew_at is not None
    later = ocsptools.freshness(again, target.leaf, fresh.renew_at + timedelta(seconds=1))
    assert later.action == "renew"
    assert ocsptools.freshness(None, target.leaf).action == "renew"
    # pem and base64 round trips
    ocsptools.write_staple(tmp_path / "s.pem", staple, format="pem")
    assert ocsptools.load_staple(tmp_path / "s.pem", cert=target).der == staple.der


def test_install_refuses_older(tmp_path, pki, responder):
    target = ocsptools.load_target(pki.leaves["good1"].fullchain)
    old = ocsptools.fetch_staple(target)
    time.sleep(1.1)
    new = ocsptools.fetch_staple(target)
    path = tmp_path / "s.ocsp"
    assert ocsptools.install_staple(path, new, target) is True
    assert ocsptools.install_staple(path, new, target) is False          # as recent: unchanged
    with pytest.raises(ocsptools.StaleResponse):
        ocsptools.install_staple(path, old, target)
    assert path.read_bytes() == new.der
    assert ocsptools.install_staple(path, old, target, force=True) is True


def test_revoked_and_not_applicable(pki, responder):
    with pytest.raises(ocsptools.Revoked) as info:
        ocsptools.fetch_staple(pki.leaves["revoked1"].fullchain)
    assert isinstance(info.value, ocsptools.FetchError)
    st = ocsptools.fetch_staple(pki.leaves["revoked1"].fullchain, require_good=False)
    assert st.cert_status == "revoked" and st.verified
    nourl = pki.make_leaf("api-nourl", ocsp_urls=[])
    with pytest.raises(ocsptools.NotApplicable):
        ocsptools.fetch_staple(nourl.fullchain)
    assert ocsptools.freshness(None, ocsptools.load_target(nourl.fullchain).leaf).action == "not-applicable"


def test_errors_are_one_hierarchy(tmp_path, pki):
    with pytest.raises(ocsptools.InputError):
        ocsptools.load_target(tmp_path / "missing.pem")
    with pytest.raises(ocsptools.IssuerNotFound):
        ocsptools.load_target(pki.leaves["good1"].fullchain, issuer=pki.other_inter_cert)
    with pytest.raises(ocsptools.ResponseError):
        ocsptools.load_staple(b"\x30\x03garbage")
    with pytest.raises(ocsptools.UsageError):
        ocsptools.fetch_staple(pki.leaves["good1"].fullchain, urls=["ftp://127.0.0.1/"])
    dead = f"http://127.0.0.1:{pkimod.free_port()}/"
    with pytest.raises(ocsptools.FetchError):
        ocsptools.fetch_staple(pki.leaves["good1"].fullchain, urls=[dead], timeout=2)
    for cls in (ocsptools.InputError, ocsptools.FetchError, ocsptools.StoreError, ocsptools.UsageError):
        assert issubclass(cls, ocsptools.OcspToolsError)


def test_renew_tree(tmp_path, pki, responder):
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(pki.leaves["good1"].fullchain, tree / "a.pem")
    shutil.copy(pki.leaves["good2"].fullchain, tree / "b.pem")
    state = tmp_path / "state.json"
    dry = ocsptools.renew([tree], state=state, dry_run=True)
    assert dry.pending == 2 and {r.action for r in dry.reports} == {"would-renew"}
    result = ocsptools.renew([tree], state=state)
    assert result.ok and len(result.changed) == 2
    assert {r.action for r in result.reports} == {"renewed"}
    assert ocsptools.renew([tree], state=state).reports == []
    assert (tree / "a.pem.ocsp").read_bytes()[:1] == b"\x30"


def test_renew_that_waited_for_the_lock_sees_the_state_of_the_run_before(tmp_path, pki, fake):
    """Run A reports a stale staple (once) while a slow responder keeps it holding the lock;
    run B, waiting for the lock, must read the state A saved and not report it again."""
    import threading

    from test_concurrency import stale_and_slow_tree
    tree = stale_and_slow_tree(tmp_path, pki, fake, "api-conc")
    state = tmp_path / "state.json"
    results = {}

    def run(name: str, **kw) -> None:
        results[name] = ocsptools.renew([tree], state=state, timeout=5, **kw)

    a = threading.Thread(target=run, args=("a",))
    a.start()
    assert wait_for(lambda: fake.requests, 10)                  # A holds the lock, waiting
    b = threading.Thread(target=run, args=("b",), kwargs={"lock_timeout": 30})
    b.start()
    a.join(60)
    b.join(60)
    actions_a = [r.action for r in results["a"].reports]
    actions_b = [r.action for r in results["b"].reports]
    assert "stale-staple" in actions_a, results["a"]
    assert "stale-staple" not in actions_b, results["b"]
    assert "failed" in actions_a and "failed" in actions_b     # both still tried the slow responder
    assert len(fake.requests) >= 2


def test_renew_passes_cache_warnings_and_dry_runs_leave_the_state_alone(tmp_path, pki, responder):
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(pki.leaves["good1"].fullchain, tree / "a.pem")
    state = tmp_path / "state.json"
    state.write_text("{not json")
    dry = ocsptools.renew([tree], state=state, dry_run=True)
    assert dry.warnings and str(state) in dry.warnings[0] and "unreadable" in dry.warnings[0]
    assert state.read_text() == "{not json"                    # no lock taken: nothing written
    assert not (tmp_path / "state.json.lock").exists()
    result = ocsptools.renew([tree], state=state)
    assert result.ok and result.warnings and "unreadable" in result.warnings[0]
    assert state.read_text().startswith("{\"entries\"")         # rewritten under the lock
    assert ocsptools.renew([tree], state=state).warnings == []


# --------------------------------------------------------------------------
# docs/api.md: complete, and its examples run
# --------------------------------------------------------------------------

def documented_signature(doc: str, name: str) -> ast.arguments:
    """The parameters of ``NAME(...)`` as docs/api.md writes them in its reference (in
    backquotes; the fullest one where prose also mentions a bare ``NAME()``)."""
    found = re.findall(r"`%s\(([^`]*?)\)(?: -> [^`]*)?`" % re.escape(name), doc)
    assert found, f"docs/api.md has no `{name}(...)` signature"
    params = max(found, key=len)
    return ast.parse(f"def f({params}): pass").body[0].args      # type: ignore[attr-defined]


def assert_documented(func, name: str, doc: str) -> None:
    """Every parameter of FUNC, its kind and its (literal) default, as docs/api.md shows NAME."""
    args = documented_signature(doc, name)
    positional = [a.arg for a in args.args]
    keyword = [a.arg for a in args.kwonlyargs]
    defaults = dict(zip(positional[len(positional) - len(args.defaults):], args.defaults))
    defaults.update((a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None)
    params = [p for p in inspect.signature(func).parameters.values() if p.name != "self"]
    want_pos = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    want_kw = [p.name for p in params if p.kind == p.KEYWORD_ONLY]
    assert (positional, keyword) == (want_pos, want_kw), f"docs/api.md: {name}() parameters"
    for p in params:
        if p.default is p.empty:
            assert p.name not in defaults, f"docs/api.md: {name}({p.name}) has no default"
            continue
        assert p.name in defaults, f"docs/api.md: {name}({p.name}) default missing"
        try:
            shown = ast.literal_eval(defaults[p.name])
        except ValueError:
            continue                            # e.g. Schedule(), system_clock: named, not literal
        assert shown == p.default, f"docs/api.md: {name}({p.name}={shown!r}), code: {p.default!r}"


def test_api_reference_names_every_export_and_parameter():
    doc = API_DOC.read_text()
    for name in ocsptools.__all__:
        assert f"`{name}`" in doc or f"`{name}(" in doc, f"docs/api.md does not name {name}"
    from ocsptools import api
    functions = [n for n in ocsptools.__all__ if inspect.isfunction(getattr(ocsptools, n))]
    assert set(functions) == {n for n in api.__all__ if inspect.isfunction(getattr(api, n))}
    for name in functions:
        assert_documented(getattr(ocsptools, name), name, doc)
    from ocsptools.stapler import Schedule, Stapler
    assert_documented(Stapler, "Stapler", doc)
    for name, member in inspect.getmembers(Stapler, inspect.isfunction):
        if not name.startswith("_"):
            assert_documented(member, name, doc)
    assert f"`Schedule(" in doc and all(p in doc for p in inspect.signature(Schedule).parameters)


def test_assert_documented_sees_a_missing_or_wrong_parameter():
    def f(cert, *, issuer=None, timeout=10.0):
        pass
    assert_documented(f, "f", "`f(cert, *, issuer=None, timeout=10.0)`")
    for wrong in ("`f(cert, *, issuer=None)`", "`f(cert, *, issuer=None, timeout=5.0)`",
                  "`f(cert, issuer=None, timeout=10.0)`"):
        with pytest.raises(AssertionError):
            assert_documented(f, "f", wrong)


def python_blocks(path: Path):
    text = path.read_text()
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def needs_pyopenssl(code: str) -> bool:
    return "ocsptools.stapler" in code or "from OpenSSL" in code


def test_api_reference_examples_run(pki, responder, tmp_path):
    """Every python block of docs/api.md runs as it stands.  Only the stapler's blocks need
    pyOpenSSL (and prometheus_client): without it they are skipped, the rest still runs."""
    blocks = python_blocks(API_DOC)
    assert len(blocks) >= 4 and any(not needs_pyopenssl(b) for b in blocks)
    have_stapler = all(importlib.util.find_spec(m) is not None for m in ("OpenSSL", "prometheus_client"))
    if "api-docs-must" not in pki.leaves:
        pki.make_leaf("api-docs-must", must_staple=True)
        responder.resync()                  # the next answer must know the new serial
    work = tmp_path / "docs-run"
    work.mkdir()
    shutil.copy(pki.leaves["api-docs-must"].fullchain, work / "fullchain.pem")
    shutil.copy(pki.leaves["api-docs-must"].key, work / "privkey.pem")
    shutil.copy(pki.leaves["good2"].fullchain, work / "other.pem")
    shutil.copy(pki.leaves["good2"].key, work / "other.key")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    skipped = 0
    for n, code in enumerate(blocks, start=1):
        if needs_pyopenssl(code) and not have_stapler:
            skipped += 1
            continue
        res = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True,
                             text=True, timeout=60, env=env)
        assert res.returncode == 0, f"docs/api.md python block {n} failed:\n{code}\n{res.stderr}"
    if skipped:
        pytest.skip(f"{skipped} stapler examples of docs/api.md not run: pyOpenSSL or "
                    "prometheus_client is not installed (pip install -e '.[test]')")


def test_now_is_a_datetime_or_a_function_everywhere(pki, responder):
    target = ocsptools.load_target(pki.leaves["good1"].fullchain)
    staple = ocsptools.fetch_staple(target, now=datetime.now(timezone.utc))
    later = staple.next_update + timedelta(seconds=1)
    assert ocsptools.fetch_staple(target, now=lambda: datetime.now(timezone.utc)).verified
    for now in (later, lambda: later):
        assert [p.code for p in ocsptools.time_problems(staple, now)] == ["expired"]
        assert ocsptools.freshness(staple, target.leaf, now).action == "renew"
    with pytest.raises(ocsptools.FetchError, match="expired"):        # judged at NOW
        ocsptools.fetch_staple(target, now=later + timedelta(days=1))
    for bad in (datetime.now(), lambda: datetime.now(), "2026-01-01"):  # naive, or not a time
        with pytest.raises(ocsptools.UsageError, match="now must be"):
            ocsptools.time_problems(staple, bad)                          # type: ignore[arg-type]
        with pytest.raises(ocsptools.UsageError, match="now must be"):
            ocsptools.fetch_staple(target, now=bad)                       # type: ignore[arg-type]
