"""ocsp-fetch under hostile environments: time zones, locales, odd file names, symlinked trees,
read-only and full file systems.  Whatever happens, the installed staple survives intact."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cmd, unprivileged

ENV = dict(os.environ, LC_ALL="C", SSL_CERT_FILE=os.devnull)


def fetch(*args, **kw):
    return run_cmd("ocsp-fetch", *args, **kw)


def openssl_times(staple: Path):
    text = subprocess.run(["openssl", "ocsp", "-respin", str(staple), "-resp_text", "-noverify"],
                          capture_output=True, text=True, env=ENV).stdout
    this = re.search(r"This Update: (.*)", text).group(1)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.strptime(this.replace("  ", " "), "%b %d %H:%M:%S %Y GMT"))


def tz_env(tz: str) -> dict:
    """{"TZ": TZ}, after proving the zone is really in effect (an unknown zone silently means
    UTC, and the test would pass without testing anything); for "UTC" itself the offset is +0000."""
    offset = subprocess.run(["date", "-d", "2026-01-15 12:00Z", "+%z"], capture_output=True, text=True,
                            env=dict(os.environ, TZ=tz)).stdout.strip()
    in_effect = offset == "+0000" if tz == "UTC" else offset not in ("", "+0000", "-0000")
    assert in_effect, f"TZ={tz} is not in effect here (offset {offset!r})"
    return {"TZ": tz}


@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Kolkata", "Pacific/Kiritimati", "UTC"])
def test_time_zone_does_not_shift_anything(tz, tmp_path, pki, responder):
    out = tmp_path / "s.der"
    res = fetch(pki.leaves["good1"].fullchain, "-o", out, env=tz_env(tz))
    assert res.returncode == 0, res.stderr
    # the summary shows the response's own UTC thisUpdate, whatever the local zone
    assert f"this update {openssl_times(out)}" in res.stderr.decode()


@pytest.fixture(scope="session")
def locpath(tmp_path_factory):
    """de_DE.UTF-8 and tr_TR.UTF-8 compiled into a private LOCPATH: real non-C locales without
    touching the system (an uninstalled locale silently falls back to C and tests nothing)."""
    if shutil.which("localedef") is None or not Path("/usr/share/i18n/locales/de_DE").exists():
        pytest.skip("needs localedef and the locale sources (Debian package locales)")
    d = tmp_path_factory.mktemp("locales")
    for name in ("de_DE", "tr_TR"):
        res = subprocess.run(["localedef", "-i", name, "-f", "UTF-8", str(d / f"{name}.UTF-8")],
                             capture_output=True, text=True)
        if not (d / f"{name}.UTF-8").exists():
            pytest.skip(f"localedef {name} failed: {res.stderr.strip()}")
    return d


def locale_env(locpath: Path, loc: str) -> dict:
    """The environment of LOC compiled into LOCPATH, proven active: month names are translated."""
    env = {"LOCPATH": str(locpath), "LC_ALL": loc, "LANG": loc, "LANGUAGE": loc[:2]}
    probe = subprocess.run(["date", "-d", "2026-03-01", "+%B"], capture_output=True, text=True,
                           env=dict(os.environ, **env))
    assert probe.stdout.strip() in ("M\u00e4rz", "Mart"), probe.stdout
    return env


def c_utf8_env() -> dict:
    """C.UTF-8 is built into glibc (2.35+; Debian's libc-bin also ships /usr/lib/locale/C.utf8):
    no locale sources needed, so this case never skips.  Proven active: the charmap is UTF-8."""
    env = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "LANGUAGE": "C"}
    probe = subprocess.run(["locale", "charmap"], capture_output=True, text=True,
                           env=dict(os.environ, **env))
    assert probe.stdout.strip() == "UTF-8" and probe.stderr == "", probe.stdout + probe.stderr
    return env


@pytest.mark.parametrize("locale", ["de_DE.UTF-8", "C.UTF-8", "tr_TR.UTF-8"])
def test_non_c_locale(locale, request, tmp_path, pki, responder):
    env = c_utf8_env() if locale == "C.UTF-8" else locale_env(request.getfixturevalue("locpath"), locale)
    res = fetch(pki.leaves["good1"].fullchain, "-o", tmp_path / "s.der", env=env)
    assert res.returncode == 0, res.stderr
    assert b": good, this update" in res.stderr


@pytest.mark.parametrize("name", ["with space.pem", "-leading-dash.pem", "n\u00e4me-\u00fc\u00f1\u00ee.pem",
                                  "quote'and\"dq.pem", "semi;colon$(x).pem"])
def test_odd_file_names(name, tmp_path, pki, responder):
    cert = tmp_path / name
    shutil.copy(pki.leaves["good1"].fullchain, cert)
    staple = tmp_path / (name + ".ocsp")
    res = fetch("-o", staple, "--", name, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert staple.exists() and staple.read_bytes()[:1] == b"\x30"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, name + ".ocsp"])


def test_symlinked_certbot_tree(tmp_path, pki, responder):
    """certbot: live/<name>/{cert,chain}.pem are symlinks into archive/; the staple path may be one too."""
    archive = tmp_path / "archive" / "site"
    live = tmp_path / "live" / "site"
    archive.mkdir(parents=True)
    live.mkdir(parents=True)
    shutil.copy(pki.leaves["good1"].cert, archive / "cert1.pem")
    shutil.copy(pki.leaves["good1"].chain, archive / "chain1.pem")
    (live / "cert.pem").symlink_to("../../archive/site/cert1.pem")
    (live / "chain.pem").symlink_to("../../archive/site/chain1.pem")
    (archive / "staple1.ocsp").write_bytes(b"")
    (live / "staple.ocsp").symlink_to("../../archive/site/staple1.ocsp")
    res = fetch(live / "cert.pem", "-o", live / "staple.ocsp", "-v")
    assert res.returncode == 0, res.stderr
    assert "chain.pem" in res.stderr.decode()
    assert (live / "staple.ocsp").is_symlink()                   # the link is kept...
    assert (archive / "staple1.ocsp").read_bytes()[:1] == b"\x30"  # ...and its target replaced


@contextlib.contextmanager
def tmpfs(size: str, *, readonly: bool = False, populate=None):
    """A private tmpfs (root only); skip the test where mounting is not permitted."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    d = tempfile.mkdtemp(prefix="ocsptools-tmpfs-")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", d],
                         capture_output=True, text=True)
    if res.returncode != 0:
        os.rmdir(d)
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        if populate:
            populate(Path(d))
        if readonly:
            subprocess.run(["mount", "-o", "remount,ro", d], check=True)
        yield Path(d)
    finally:
        subprocess.run(["umount", "-l", d], capture_output=True)
        os.rmdir(d)


class ReadOnlyDir:
    """A staple directory the command cannot write to, and how to run the command there."""

    def __init__(self, path: Path, how: str, prefix: list, home: Path) -> None:
        self.path, self.how, self.prefix, self.home = path, how, prefix, home

    def run(self, name: str, *args) -> subprocess.CompletedProcess:
        """Run command NAME as a user who cannot write to the directory; HOME and TMPDIR are a
        private directory that user may write to."""
        return run_cmd(name, *args, env={"HOME": str(self.home), "TMPDIR": str(self.home)},
                       prefix=self.prefix)


@contextlib.contextmanager
def read_only_dir(how: str, populate):
    """``how="mount"``: a private tmpfs remounted read-only.  Where mounting is not permitted (no
    CAP_SYS_ADMIN, or not root) it falls back to ``"permissions"``: the directory mode 0555 and,
    as root (whom modes do not stop), the command run without the capabilities that override
    file modes (``conftest.unprivileged``).  Skips only when neither is possible."""
    with contextlib.ExitStack() as stack:
        home = Path(tempfile.mkdtemp(prefix="ocsptools-home-"))
        stack.callback(shutil.rmtree, home, True)
        mounted = None
        if how == "mount":
            try:
                mounted = stack.enter_context(tmpfs("1m", readonly=True, populate=populate))
            except pytest.skip.Exception:
                pass                                # fall back to permissions
        if mounted is not None:
            yield ReadOnlyDir(mounted, "tmpfs mounted read-only", [], home)
            return
        d = Path(tempfile.mkdtemp(prefix="ocsptools-ro-"))
        stack.callback(shutil.rmtree, d, True)
        stack.callback(os.chmod, d, 0o755)          # runs first: so rmtree can empty it
        populate(d)
        for p in d.iterdir():
            p.chmod(0o644)
        d.chmod(0o555)
        prefix = unprivileged()
        yield ReadOnlyDir(d, "directory mode 0555" + (", run as root without CAP_DAC_OVERRIDE"
                                                      if prefix else ""), prefix, home)


@pytest.fixture
def good_staple(tmp_path, pki, responder):
    out = tmp_path / "good.der"
    assert fetch(pki.leaves["good1"].fullchain, "-o", out).returncode == 0
    time.sleep(1.1)          # so the next answer is strictly newer
    return out.read_bytes()


@pytest.mark.parametrize("how", ["mount", "permissions"])
def test_read_only_staple_directory(how, good_staple, pki, responder):
    def populate(d: Path):
        shutil.copy(pki.leaves["good1"].fullchain, d / "site.pem")
        (d / "s.ocsp").write_bytes(good_staple)
    with read_only_dir(how, populate) as ro:
        res = ro.run("ocsp-fetch", ro.path / "site.pem", "-o", ro.path / "s.ocsp")
        assert res.returncode == 1, res.stderr
        line = assert_one_line_error(res.stderr)
        assert "cannot write" in line and "untouched" in line, line
        assert ("Read-only file system" if "tmpfs" in ro.how else "ermission denied") in line
        assert (ro.path / "s.ocsp").read_bytes() == good_staple
        assert sorted(os.listdir(ro.path)) == ["s.ocsp", "site.pem"]


def test_full_disk(good_staple, pki, responder):
    def fill(d: Path):
        (d / "s.ocsp").write_bytes(good_staple)
        try:
            with open(d / "filler", "wb") as fh:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
        except OSError:
            pass                    # the file system is full now
    with tmpfs("64k", populate=fill) as d:
        res = fetch(pki.leaves["good1"].fullchain, "-o", d / "s.ocsp")
        assert res.returncode == 1
        line = assert_one_line_error(res.stderr)
        assert "no space left" in line
        assert (d / "s.ocsp").read_bytes() == good_staple
        assert sorted(p.name for p in d.iterdir()) == ["filler", "s.ocsp"]


def test_staple_path_is_a_directory(tmp_path, pki, responder):
    (tmp_path / "dir.ocsp").mkdir()
    res = fetch(pki.leaves["good1"].fullchain, "-o", tmp_path / "dir.ocsp")
    assert res.returncode == 1
    assert "not a regular file" in assert_one_line_error(res.stderr) or "directory" in res.stderr.decode()


def test_missing_openssl_is_one_line(tmp_path, pki):
    res = fetch(pki.leaves["good1"].fullchain, "--openssl", "/nonexistent/openssl", "-o", tmp_path / "s")
    assert res.returncode == 1
    assert "openssl not found" in assert_one_line_error(res.stderr)
