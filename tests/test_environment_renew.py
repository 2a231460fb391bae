"""ocsp-renew-dir under hostile environments: time zones, real non-C locales, odd file names,
symlinked certbot trees, read-only and full file systems.  The installed staples survive intact.

(256 renewals in one run, exit status 0 and not 256 % 256 = 0 by luck, and 256 failures exit 1:
``tests/test_renew.py::test_256_renewals_exit_0_and_failures_exit_1``, marked slow.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import reliability
from conftest import assert_one_line_error, run_cmd
from test_environment import locale_env, locpath, read_only_dir, tmpfs, tz_env  # noqa: F401 (fixture)

ENV = dict(os.environ, LC_ALL="C", SSL_CERT_FILE=os.devnull)


def renew(state, *args, **kw):
    return run_cmd("ocsp-renew-dir", "--state", state, *args, **kw)


def rows(res) -> list:
    return [l.split("\t") for l in res.stdout.decode().splitlines()]


def staple_times(staple: Path):
    text = subprocess.run(["openssl", "ocsp", "-respin", str(staple), "-resp_text", "-noverify"],
                          capture_output=True, text=True, env=ENV).stdout
    parse = lambda s: datetime.strptime(" ".join(s.split()), "%b %d %H:%M:%S %Y GMT").replace(tzinfo=timezone.utc)
    return (parse(re.search(r"This Update: (.*)", text).group(1)),
            parse(re.search(r"Next Update: (.*)", text).group(1)))


def iso(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def verifies(staple: Path, cert: Path, pki) -> bool:
    res = subprocess.run(["openssl", "ocsp", "-respin", str(staple), "-issuer", str(pki.inter_cert),
                          "-cert", str(cert), "-CAfile", str(pki.root_cert), "-no_nonce"],
                         capture_output=True, text=True, env=ENV)
    return "Response verify OK" in res.stderr and f"{cert}: good" in res.stdout


def bundle(pki, name="good1") -> bytes:
    return Path(pki.leaves[name].fullchain).read_bytes()


# ---------------------------------------------------------------------------
# time zones: every time printed is the response's own UTC time; decisions do not move

@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Kolkata", "Pacific/Kiritimati"])
def test_time_zones_shift_nothing(tz, tmp_path, pki, responder):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "site.pem").write_bytes(bundle(pki))
    state = tmp_path / "s.json"
    env = tz_env(tz)                                 # asserts the zone is really in effect
    res = renew(state, tree, env=env)
    assert res.returncode == 0, res.stderr
    (action, _, staple, detail), = rows(res)
    tu, nu = staple_times(Path(staple))
    # the default rule renews at 50 % of [thisUpdate, nextUpdate] (the certificate lives longer)
    assert detail == f"good until {iso(nu)}, renewal due at {iso(tu + (nu - tu) / 2)}", detail
    # another zone, the same state: still fresh, nothing to say; -q agrees
    for other in ("UTC", "Asia/Kolkata", "America/New_York"):
        other_env = tz_env(other)
        again = renew(state, tree, env=other_env)
        assert again.returncode == 0 and again.stdout == b"", (other, again.stdout)
        assert renew(state, "-q", tree, env=other_env).returncode == 0
    # and the thresholds are durations, not wall-clock times: 25 h before a 24 h nextUpdate is due
    res = renew(state, "-n", "--min-validity", "25h", tree, env=env)
    assert [r[0] for r in rows(res)] == ["would-renew"], res.stdout
    reliability.record("environment", f"TZ={tz}", "ocsp-renew-dir",
                       "times printed in UTC from the response; no decision moves with the zone",
                       "good until/renewal due at equal the response's own UTC times; later runs "
                       "in three other zones silent, -q exit 0", lost=0)


# ---------------------------------------------------------------------------
# real non-C locales, compiled into a private LOCPATH (test_environment.locpath)

@pytest.mark.parametrize("loc", ["de_DE.UTF-8", "tr_TR.UTF-8"])
def test_non_c_locale(loc, locpath, tmp_path, pki, responder):
    env = locale_env(locpath, loc)            # asserts the locale is really active
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "site.pem").write_bytes(bundle(pki))
    (tree / "ISTANBUL-İı.pem").write_bytes(bundle(pki, "good2"))
    hook_out = tmp_path / "changed"
    res = renew(tmp_path / "s.json", "--on-change", f'printf "%s" "$OCSP_CHANGED" > "{hook_out}"', tree,
                env=env)
    assert res.returncode == 0 and res.stderr == b"", res.stderr
    got = rows(res)
    assert sorted(r[0] for r in got) == ["renewed", "renewed"]
    for _, cert, staple, detail in got:
        assert re.fullmatch(r"good until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, renewal due at "
                            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", detail), detail
        assert verifies(Path(staple), Path(cert), pki)
    assert sorted(hook_out.read_text().split("\n")) == sorted(r[2] for r in got)
    assert renew(tmp_path / "s.json", tree, env=env).stdout == b""
    reliability.record("environment", f"locale {loc} (compiled, active: month names localised)",
                       "ocsp-renew-dir", "same TSV as under C, ISO 8601 UTC times",
                       "both staples renewed and verify; times ISO UTC; the hook got the names",
                       lost=0)


# ---------------------------------------------------------------------------
# file names: spaces, leading dashes, non-ASCII, quotes, shell syntax, tabs and newlines

ODD = ["with space.pem", "-leading-dash.pem", "--help.pem", "n\u00e4me-\u00fc\u00f1\u00ee-\u65e5\u672c.pem",
       "quote'and\"dq.pem", "semi;colon$(touch PWNED)`id`.pem", "tab\there.pem", "new\nline.pem"]


def test_odd_file_names(tmp_path, pki, responder):
    tree = tmp_path / "-tree with space"
    tree.mkdir()
    for name in ODD:
        (tree / name).write_bytes(bundle(pki))
    state = tmp_path / "s.json"
    res = renew(state, "--on-change", "true", "--", tree, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stderr == b""
    got = rows(res)
    assert len(got) == len(ODD) and all(len(r) == 4 for r in got), got   # tabs/newlines escaped
    unescape = lambda s: s.replace("\\t", "\t").replace("\\n", "\n").replace("\\\\", "\\")
    assert sorted(unescape(r[1]) for r in got) == sorted(str(tree / n) for n in ODD)
    for name in ODD:
        assert verifies(tree / (name + ".ocsp"), tree / name, pki), name
    assert not (tmp_path / "PWNED").exists() and not (tree / "PWNED").exists()
    assert sorted(os.listdir(tree)) == sorted(ODD + [n + ".ocsp" for n in ODD])
    # the same names through find -print0 | ocsp-renew-dir -0 -
    for name in ODD:
        (tree / (name + ".ocsp")).unlink()
    listing = b"\0".join(os.fsencode(tree / n) for n in ODD) + b"\0"
    res = renew(tmp_path / "s0.json", "-0", "-", input=listing)
    assert res.returncode == 0 and len(rows(res)) == len(ODD), res.stdout + res.stderr
    reliability.record("environment", "file names with spaces, leading dashes, non-ASCII, quotes, "
                       "$(...), tab, newline; DIR starting with '-'", "ocsp-renew-dir",
                       "every staple renewed beside its certificate; TSV fields escaped; no shell",
                       f"{len(ODD)} renewed (directory walk and -0 from stdin), TSV 4 fields each, "
                       "no command ran", lost=0)


def test_nul_in_a_stdin_path_is_a_usage_error(tmp_path, pki):
    res = renew(tmp_path / "s.json", "-", input=b"/tmp/a\0b.pem\n")
    line = assert_one_line_error(res.stderr)
    assert res.returncode == 2 and "NUL" in line and "-0" in line, line


# ---------------------------------------------------------------------------
# certbot: live/ -> archive/ symlinks, a symlinked top directory, a renewal moving the links

def test_symlinked_certbot_tree(tmp_path, pki, responder):
    import secrets
    real = tmp_path / "srv-letsencrypt"
    archive, live = real / "archive" / "site", real / "live" / "site"
    archive.mkdir(parents=True)
    live.mkdir(parents=True)
    first = pki.make_leaf(f"cb{secrets.token_hex(3)}")
    responder.restart()
    for n, data in (("cert1.pem", Path(first.cert).read_bytes()),
                    ("chain1.pem", Path(pki.inter_cert).read_bytes()),
                    ("fullchain1.pem", Path(first.fullchain).read_bytes()),
                    ("privkey1.pem", Path(first.key).read_bytes())):
        (archive / n).write_bytes(data)
        (live / n.replace("1", "")).symlink_to(f"../../archive/site/{n}")
    etc = tmp_path / "etc-letsencrypt"
    etc.symlink_to(real)                                  # /etc/letsencrypt -> /srv/... too
    state = tmp_path / "s.json"
    res = renew(state, etc)
    assert res.returncode == 0, res.stdout + res.stderr
    (action, cert, staple, _), = rows(res)
    assert action == "renewed" and cert == str(etc / "live" / "site" / "cert.pem")
    assert staple == str(etc / "live" / "site" / "cert.pem.ocsp")
    assert (live / "cert.pem.ocsp").is_file() and not (live / "cert.pem.ocsp").is_symlink()
    assert verifies(live / "cert.pem.ocsp", live / "cert.pem", pki)
    assert renew(state, etc).stdout == b""
    # certbot renews: new archive files, the live links moved; the next run re-staples
    second = pki.make_leaf(f"cb{secrets.token_hex(3)}")
    responder.restart()
    for n, data in (("cert2.pem", Path(second.cert).read_bytes()),
                    ("chain2.pem", Path(pki.inter_cert).read_bytes())):
        (archive / n).write_bytes(data)
        link = live / n.replace("2", "")
        link.unlink()
        link.symlink_to(f"../../archive/site/{n}")
    res = renew(state, etc)
    assert [r[0] for r in rows(res)] == ["renewed"], res.stdout
    assert verifies(live / "cert.pem.ocsp", live / "cert.pem", pki)
    assert sorted(p.name for p in archive.iterdir()) == ["cert1.pem", "cert2.pem", "chain1.pem",
                                                          "chain2.pem", "fullchain1.pem", "privkey1.pem"]
    reliability.record("environment", "certbot tree: live/ -> archive/ symlinks under a symlinked "
                       "top directory; certbot renewal moves the links", "ocsp-renew-dir",
                       "staple beside live/NAME/cert.pem; re-stapled after the renewal; archive untouched",
                       "renewed, silent second run, renewed again after the links moved; verifies",
                       lost=0)


# ---------------------------------------------------------------------------
# read-only and full file systems: a clear failure line, the staple byte-identical

@pytest.fixture
def installed(tmp_path, pki, responder):
    """A good staple for good1, and a moment later so a fresh answer is strictly newer."""
    out = tmp_path / "installed.der"
    assert run_cmd("ocsp-fetch", pki.leaves["good1"].fullchain, "-o", out).returncode == 0
    time.sleep(1.1)
    return out.read_bytes()


@pytest.mark.parametrize("how", ["mount", "permissions"])
def test_read_only_staple_directory(how, installed, tmp_path, pki, responder):
    def populate(d: Path):
        (d / "site.pem").write_bytes(bundle(pki))
        (d / "site.pem.ocsp").write_bytes(installed)
    with read_only_dir(how, populate) as ro:     # a read-only tmpfs, or mode 0555 obeyed
        res = ro.run("ocsp-renew-dir", "--state", ro.home / "s.json", "-B", ro.path)
        assert res.returncode == 1, res.stdout + res.stderr
        assert res.stderr == b""
        (action, _, _, detail), = rows(res)
        assert action == "failed" and "cannot write" in detail, detail
        assert ("Read-only file system" if "tmpfs" in ro.how else "ermission denied") in detail, detail
        assert "the installed staple was kept, valid until" in detail
        assert (ro.path / "site.pem.ocsp").read_bytes() == installed
        assert sorted(os.listdir(ro.path)) == ["site.pem", "site.pem.ocsp"]
    reliability.record("environment", f"read-only staple directory ({ro.how}), -B",
                       "ocsp-renew-dir", "TSV `failed` naming the cause, exit 1, staple kept",
                       f"exit 1; `failed`: {detail.split('; the installed')[0].split(': ', 1)[-1]}; "
                       "staple byte-identical", lost=0)


def test_full_disk(installed, tmp_path, pki, responder):
    def fill(d: Path):
        (d / "site.pem").write_bytes(bundle(pki))
        (d / "site.pem.ocsp").write_bytes(installed)
        try:
            with open(d / "filler", "wb") as fh:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
        except OSError:
            pass
    with tmpfs("64k", populate=fill) as d:
        res = renew(tmp_path / "s.json", "-B", d)
        assert res.returncode == 1, res.stdout + res.stderr
        (action, _, _, detail), = rows(res)
        assert action == "failed" and "no space left" in detail, detail
        assert "the installed staple was kept, valid until" in detail
        assert (d / "site.pem.ocsp").read_bytes() == installed
        assert sorted(os.listdir(d)) == ["filler", "site.pem", "site.pem.ocsp"]     # no temp file
    reliability.record("environment", "full file system (64 kB tmpfs filled), -B", "ocsp-renew-dir",
                       "TSV `failed` naming the cause, exit 1, staple kept, no temp file",
                       "exit 1; `failed`: cannot write: no space left on device; staple byte-identical; "
                       "no temp file", lost=0)


def test_state_directory_unusable_is_one_line(tmp_path, pki, responder):
    """The state cache and its lock on a read-only file system: exit 2, one line naming the lock
    file and --state, and no staple is touched."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "site.pem").write_bytes(bundle(pki))
    with tmpfs("1m", readonly=True) as ro:
        res = run_cmd("ocsp-renew-dir", "--state", ro / "cache" / "s.json", tree)
    line = assert_one_line_error(res.stderr)
    assert res.returncode == 2 and "lock file" in line and "--state" in line, line
    assert sorted(os.listdir(tree)) == ["site.pem"]
