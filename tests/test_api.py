"""The public Python API (`import ocsptools`) against the real responder."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta

import pytest

import ocsptools
import pki as pkimod


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
    assert "ocsptools.api" not in out and "ocsptools.driver" not in out and "ocsptools.openssl" not in out


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
    import shutil
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
    import shutil
    import threading
    tree = tmp_path / "tree"
    tree.mkdir()
    nourl = pki.make_leaf("api-conc-nourl", ocsp_urls=[])
    shutil.copy(nourl.fullchain, tree / "nourl.pem")
    (tree / "nourl.pem.ocsp").write_bytes(b"\x30\x03\x0a\x01\x03")     # a leftover staple
    slow = pki.make_leaf("api-conc-slow", ocsp_urls=[fake.url])
    shutil.copy(slow.fullchain, tree / "slow.pem")
    fake.set(delay=2.0, status=500, body=b"slow", content_type="text/plain")
    state = tmp_path / "state.json"
    results = {}

    def run(name: str, **kw) -> None:
        results[name] = ocsptools.renew([tree], state=state, timeout=5, **kw)

    a = threading.Thread(target=run, args=("a",))
    a.start()
    deadline = time.monotonic() + 10
    while not fake.requests and time.monotonic() < deadline:   # A holds the lock, waiting
        time.sleep(0.05)
    assert fake.requests
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
    import shutil
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
