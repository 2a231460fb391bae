"""contrib/certbot/deploy-hook: what it runs, and which settings files it refuses to run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

HOOK = Path(__file__).resolve().parent.parent / "contrib" / "certbot" / "deploy-hook"


@pytest.fixture
def fake_renew(tmp_path):
    """An ocsp-renew-dir stand-in that records its arguments, one per line."""
    log = tmp_path / "args"
    tool = tmp_path / "ocsp-renew-dir"
    tool.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "{log}"\n')
    tool.chmod(0o755)
    return tool, log


def run_hook(tmp_path, conf_text=None, mode=0o644):
    lineage = tmp_path / "live" / "site"
    lineage.mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "hook.conf"
    if conf_text is not None:
        conf.write_text(conf_text)
        conf.chmod(mode)
    env = dict(os.environ, RENEWED_LINEAGE=str(lineage), OCSPTOOLS_HOOK_CONF=str(conf))
    return subprocess.run(["sh", str(HOOK)], env=env, capture_output=True, text=True, cwd=tmp_path), lineage


def test_runs_renew_dir_for_the_lineage_without_globbing(tmp_path, fake_renew):
    tool, log = fake_renew
    (tmp_path / "trap1").write_text("")
    res, lineage = run_hook(tmp_path, f'OCSP_RENEW_DIR="{tool}"\nOCSP_RENEW_ARGS="--out-dir /var/lib/ocsp trap*"\n'
                                      f'OCSP_ON_CHANGE="systemctl reload nginx"\n')
    assert res.returncode == 0, res.stderr
    assert log.read_text().splitlines() == [
        "--layout", "certbot", "--always-renew", "--lock-timeout", "300",
        "--on-change", "systemctl reload nginx", "--out-dir", "/var/lib/ocsp", "trap*", "--", str(lineage)]


@pytest.mark.parametrize("mode", [0o666, 0o646, 0o777])
def test_world_writable_settings_are_refused(tmp_path, fake_renew, mode):
    tool, log = fake_renew
    res, _ = run_hook(tmp_path, f'OCSP_RENEW_DIR="{tool}"\n', mode=mode)
    assert res.returncode == 2
    assert "writable by everyone" in res.stderr and res.stderr.count("\n") == 1
    assert not log.exists()


def test_settings_symlink_is_refused(tmp_path, fake_renew):
    tool, log = fake_renew
    real = tmp_path / "elsewhere.conf"
    real.write_text(f'OCSP_RENEW_DIR="{tool}"\n')
    lineage = tmp_path / "live" / "site"
    lineage.mkdir(parents=True)
    (tmp_path / "link.conf").symlink_to(real)
    env = dict(os.environ, RENEWED_LINEAGE=str(lineage), OCSPTOOLS_HOOK_CONF=str(tmp_path / "link.conf"))
    res = subprocess.run(["sh", str(HOOK)], env=env, capture_output=True, text=True)
    assert res.returncode == 2 and "not a regular file" in res.stderr
    assert not log.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the settings file another owner")
def test_settings_owned_by_another_user_are_refused(tmp_path, fake_renew):
    tool, log = fake_renew
    conf_text = f'OCSP_RENEW_DIR="{tool}"\n'
    lineage = tmp_path / "live" / "site"
    lineage.mkdir(parents=True)
    conf = tmp_path / "hook.conf"
    conf.write_text(conf_text)
    os.chown(conf, 65534, 65534)
    env = dict(os.environ, RENEWED_LINEAGE=str(lineage), OCSPTOOLS_HOOK_CONF=str(conf))
    res = subprocess.run(["sh", str(HOOK)], env=env, capture_output=True, text=True)
    assert res.returncode == 2 and "owned by uid 65534" in res.stderr
    assert not log.exists()


def test_without_lineage_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RENEWED_LINEAGE"}
    env["OCSPTOOLS_HOOK_CONF"] = str(tmp_path / "none.conf")
    res = subprocess.run(["sh", str(HOOK)], env=env, capture_output=True, text=True)
    assert res.returncode == 2 and "RENEWED_LINEAGE" in res.stderr
