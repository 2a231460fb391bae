"""The packages as users install them: the Debian package (`make deb`, debian/) installed with
dpkg -i and purged again, and the sdist and wheel (`python -m build`) in a fresh venv.

The installed commands run with a clean environment, so they import the package from
/usr/lib/python3/dist-packages (or the fresh venv), never from this checkout or its virtualenv;
each test proves it.  Each test builds what it needs itself (a session fixture), so none
depends on an earlier `make deb`.  The Debian tests need root and the tools that
scripts/install-sysdeps installs, and skip with the reason otherwise."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import ocsptools

ROOT = Path(__file__).resolve().parent.parent
VERSION = ocsptools.__version__
CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEM_PYTHON = "/usr/bin/python3"
DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
COMMANDS = ("ocsp-fetch", "ocsp-check", "ocsp-renew-dir", "ocsp-proxy")
MAN_PAGES = {"ocsp-fetch": 1, "ocsp-check": 1, "ocsp-renew-dir": 1, "ocsp-proxy": 1,
             "ocsptools.yaml": 5}
UNITS = ("ocsp-renew-dir.service", "ocsp-renew-dir.timer", "ocsp-renew-dir-watch.service")
UNIT_DIRS = (Path("/lib/systemd/system"), Path("/usr/lib/systemd/system"), Path("/etc/systemd"))
DSH_STATE = Path("/var/lib/systemd/deb-systemd-helper-enabled")
DSH_MASKED = Path("/var/lib/systemd/deb-systemd-helper-masked")
EXAMPLES = Path("/usr/share/doc/ocsptools/examples")
SHARE = Path("/usr/share/ocsptools")
# contrib's monitoring configuration, installed as it is in SHARE/<directory>/
MONITORING = {d: sorted(p.name for p in (ROOT / "contrib" / d).iterdir())
              for d in ("nagios", "icinga2", "prometheus")}
# Tools of the Debian tests (scripts/install-sysdeps: PAIRS) and the package's dependencies,
# which dpkg -i does not install (PACKAGES)
DEB_TOOLS = ("make", "git", "dpkg", "dpkg-deb", "dpkg-buildpackage", "dh", "dh_python3", "lintian",
             "man", "systemd-analyze", "openssl")
DEB_PACKAGES = ("pybuild-plugin-pyproject", "python3-all", "python3-setuptools", "python3-wheel",
                "python3-plumbum", "python3-yaml", "python3-dateutil", "python3-prometheus-client")
# Where an installation could leave a trace, compared before and after dpkg -i and --purge;
# what any dpkg run changes (its database and logs, the man-db index its trigger rebuilds) is
# left out.
SNAPSHOT_ROOTS = ("/etc", "/usr/bin", "/usr/sbin", "/usr/local", "/usr/share/ocsptools",
                  "/usr/share/doc/ocsptools", "/usr/share/man/man1", "/usr/share/man/man5",
                  "/lib/systemd", "/usr/lib/systemd", str(DIST_PACKAGES), "/var/lib/systemd",
                  "/var/cache/ocsptools", "/var/lib/ocsptools", "/opt", "/srv")


# ---------------------------------------------------------------------------
# helpers

def clean_env(home: Path, **extra: str) -> dict:
    """What a login on a Debian machine has: no virtualenv, no PYTHONPATH, no pyenv."""
    env = {"PATH": CLEAN_PATH, "LC_ALL": "C.UTF-8", "HOME": str(home), "TMPDIR": str(home)}
    env.update(extra)
    return env


def run(argv, *, env=None, cwd=None, timeout: float = 120, check: bool = True,
        input: str | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, cwd=cwd,
                         timeout=timeout, input=input)
    if check:
        assert res.returncode == 0, f"{argv}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def assert_version(command: Path, env: dict, cwd: Path) -> None:
    """COMMAND --version prints the package's version (ocsp-check exits 3, UNKNOWN, as a
    monitoring plugin does for --version; the others 0)."""
    res = run([command, "--version"], env=env, cwd=cwd, check=False)
    name = command.name
    assert res.stdout.strip() == f"{name} (ocsptools) {VERSION}", res.stdout + res.stderr
    assert res.returncode == (3 if name == "ocsp-check" else 0), (name, res.returncode)


def dpkg_installed(pkg: str) -> bool:
    res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return res.returncode == 0 and "install ok installed" in res.stdout


def copy_tree(dest: Path) -> Path:
    """The checkout's files (tracked and untracked, less what .gitignore names) in DEST."""
    dest.mkdir(parents=True)
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / os.fsdecode(name)
        if src.is_file():
            (dest / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / os.fsdecode(name))
    return dest


def make_env() -> dict:
    """The test's environment for a nested make (no jobserver or flags of the outer `make test`)."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def snapshot() -> dict:
    """Every path under SNAPSHOT_ROOTS; for regular files under /etc also size and mtime (a
    package that edits an existing configuration file shows up too)."""
    out: dict = {}
    for top in SNAPSHOT_ROOTS:
        if not os.path.lexists(top):
            continue
        out[top] = None
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                info = None
                if top == "/etc" and name in filenames:
                    try:
                        st = os.lstat(path)
                        info = (st.st_size, st.st_mtime_ns)
                    except FileNotFoundError:
                        continue
                out[path] = info
    return out


def diff(before: dict, after: dict) -> tuple[set, set, set]:
    """(added, removed, changed) paths."""
    added = set(after) - set(before)
    removed = set(before) - set(after)
    changed = {p for p in set(before) & set(after) if before[p] != after[p]}
    return added, removed, changed


def leftovers() -> list:
    """Anything of the package still on the machine: its modules, commands, units, their state."""
    found = [str(p) for p in DIST_PACKAGES.glob("ocsptools*")]
    for d in UNIT_DIRS:
        if d.is_dir():
            found += [str(p) for p in d.rglob("ocsp-renew-dir*")]
    for d in (DSH_STATE, DSH_MASKED):
        if d.is_dir():
            found += [str(p) for p in d.rglob("*ocsp-renew-dir*")]
    found += [str(p) for p in (SHARE, Path("/usr/share/doc/ocsptools")) if os.path.lexists(p)]
    found += [f"/usr/bin/{c}" for c in COMMANDS if os.path.lexists(f"/usr/bin/{c}")]
    return found


def lintian_tags(text: str, level: str) -> list:
    """Tag names of LEVEL ('E', 'W', 'I') in lintian's output."""
    return [m.group(1) for m in re.finditer(rf"^{level}: \S+(?: \w+)?: (\S+)", text, re.M)]


# ---------------------------------------------------------------------------
# the Debian package

def needs_debian() -> None:
    if os.geteuid() != 0:
        pytest.skip("installing the Debian package with dpkg -i needs root")
    missing = [t for t in DEB_TOOLS if shutil.which(t, path=CLEAN_PATH) is None]
    missing += [p for p in DEB_PACKAGES if not dpkg_installed(p)]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (run scripts/install-sysdeps as root)")


@dataclass
class Built:
    deb: Path
    changes: Path
    lintian: str
    seconds: float


@pytest.fixture(scope="session")
def built_deb(tmp_path_factory) -> Built:
    """`make deb` into a private directory: the .deb, its .changes and lintian's report."""
    needs_debian()
    out = tmp_path_factory.mktemp("deb")
    start = time.monotonic()
    res = subprocess.run(["make", "--no-print-directory", "deb", f"DEB_OUT={out}"], cwd=ROOT,
                         capture_output=True, text=True, env=make_env(), timeout=900)
    seconds = time.monotonic() - start
    assert res.returncode == 0, f"make deb failed:\n{res.stdout}\n{res.stderr}"
    debs = sorted(out.glob("ocsptools_*_all.deb"))
    changes = sorted(out.glob("ocsptools_*.changes"))
    assert len(debs) == 1 and len(changes) == 1, sorted(p.name for p in out.iterdir())
    print(f"make deb: {seconds:.1f} s")
    return Built(debs[0], changes[0], (out / "lintian.txt").read_text(), seconds)


def deb_contents(deb: Path) -> dict:
    """Path (as dpkg lists it: /usr/bin/x, directories without the trailing /) -> mode string."""
    files = {}
    for line in run(["dpkg-deb", "-c", deb]).stdout.splitlines():
        fields = line.split(None, 5)
        path = fields[5].split(" -> ")[0].lstrip(".").rstrip("/") or "/"
        files[path] = fields[0]
    return files


def deb_field(deb: Path, field: str) -> str:
    return run(["dpkg-deb", "-f", deb, field]).stdout.strip()


def test_deb_package_contents_lintian_and_maintainer_scripts(built_deb, tmp_path):
    deb = built_deb.deb

    # the version is the package's own with a Debian revision
    version = deb_field(deb, "Version")
    upstream, _, revision = version.rpartition("-")
    assert upstream == VERSION and revision, version

    # lintian: no error; every warning left is explained in debian/README.source
    assert lintian_tags(built_deb.lintian, "E") == [], built_deb.lintian
    explained = (ROOT / "debian" / "README.source").read_text()
    unexplained = [t for t in lintian_tags(built_deb.lintian, "W") if t not in explained]
    assert unexplained == [], f"lintian warnings not in debian/README.source: {unexplained}"

    # Debian's own dependencies; inotify_simple (not in Debian 12) none; the extras suggested
    depends = {d.strip().split()[0] for d in deb_field(deb, "Depends").split(",")}
    assert {"python3-plumbum", "python3-yaml", "python3-dateutil", "python3-prometheus-client",
            "openssl"} <= depends, depends
    assert not [d for d in depends if "inotify" in d], depends
    suggests = {d.strip().split()[0] for d in deb_field(deb, "Suggests").split(",")}
    assert {"python3-redis", "python3-openssl"} <= suggests, suggests

    # what it ships, where
    files = deb_contents(deb)
    for c in COMMANDS:
        assert files.get(f"/usr/bin/{c}", "").startswith("-rwxr-xr-x"), c
    for page, section in MAN_PAGES.items():
        assert f"/usr/share/man/man{section}/{page}.{section}.gz" in files, page
    for unit in UNITS:
        assert f"/lib/systemd/system/{unit}" in files, unit
    assert f"{EXAMPLES}/ocsptools.yaml" in files
    for hook in ("certbot/deploy-hook", "haproxy/haproxy-ocsp-push"):
        assert files.get(f"{SHARE}/{hook}", "").startswith("-rwxr-xr-x"), hook
    for d, names in MONITORING.items():
        shipped = sorted(p.rsplit("/", 1)[1] for p in files if p.startswith(f"{SHARE}/{d}/"))
        assert shipped == names, (d, shipped)
        for name in names:
            assert files[f"{SHARE}/{d}/{name}"].startswith("-rw-r--r--"), name
    outside = [p for p in files if not p.startswith(("/usr/", "/lib/systemd/system"))
               and p not in ("/", "/lib", "/lib/systemd", "/usr")]
    assert outside == [], f"files outside /usr and the unit directory: {outside}"

    # maintainer scripts: no conffile, nothing enabled or started; deb-systemd-helper enables
    # a unit again only where the administrator had enabled it (an upgrade)
    control = tmp_path / "control"
    run(["dpkg-deb", "-e", deb, control])
    assert not (control / "conffiles").exists()
    for script in ("preinst", "postinst", "prerm", "postrm"):
        path = control / script
        if not path.exists():
            continue
        text = path.read_text()
        assert not re.search(r"(systemctl|invoke-rc\.d)\b[^\n]*\b(start|restart|enable)\b",
                             text), f"{script} starts or enables a unit:\n{text}"
        assert not re.search(r"deb-systemd-invoke (?!stop)", text), f"{script} starts a unit:\n{text}"
    postinst = (control / "postinst").read_text()
    # dh_installsystemd --no-enable: `enable` only for a unit this package had installed before
    # and the administrator enabled (was-enabled), never on a first installation
    enabled = re.findall(r"deb-systemd-helper enable '([^']+)'", postinst)
    guarded = re.findall(r"if deb-systemd-helper debian-installed '([^']+)'", postinst)
    assert sorted(enabled) == sorted(guarded), postinst

    # the units name the installed command
    unpacked = tmp_path / "root"
    run(["dpkg-deb", "-x", deb, unpacked])
    for unit in ("ocsp-renew-dir.service", "ocsp-renew-dir-watch.service"):
        text = (unpacked / "lib/systemd/system" / unit).read_text()
        assert "ExecStart=/usr/bin/ocsp-renew-dir " in text and "/usr/local/" not in text, unit


def installed_commands_import_from_dist_packages(home: Path) -> None:
    """The installed commands run /usr/bin/python3 and import ocsptools from dist-packages:
    Python's own import trace of `/usr/bin/ocsp-fetch --version` names no other place."""
    for c in COMMANDS:
        first = Path(f"/usr/bin/{c}").read_text().splitlines()[0]
        assert first == f"#!{SYSTEM_PYTHON}", (c, first)
        assert_version(Path(f"/usr/bin/{c}"), clean_env(home), home)
    res = run([SYSTEM_PYTHON, "-c", "import ocsptools; print(ocsptools.__file__)"],
              env=clean_env(home), cwd=home)
    assert res.stdout.strip() == f"{DIST_PACKAGES}/ocsptools/__init__.py", res.stdout
    trace = run(["/usr/bin/ocsp-fetch", "--version"], env=clean_env(home, PYTHONVERBOSE="1"),
                cwd=home).stderr
    loaded = set(re.findall(r"(/\S*/ocsptools/\S*\.py)\b", trace))
    assert f"{DIST_PACKAGES}/ocsptools/cli/fetch.py" in loaded, trace[-3000:]
    assert all(p.startswith(f"{DIST_PACKAGES}/ocsptools/") for p in loaded), loaded
    assert str(ROOT) not in trace and sys.prefix not in trace


def watch_falls_back_to_polling(pki, home: Path) -> None:
    """ocsp-renew-dir --watch of the installed package without inotify_simple (not in Debian 12):
    it says so once, polls, and a certificate added afterwards gets its staple."""
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import inotify_simple"], env=clean_env(home),
                           capture_output=True)
    argv = ["/usr/bin/ocsp-renew-dir"]
    if probe.returncode == 0:
        # installed outside Debian on this machine: hide it, so the fallback is still what runs
        argv = [SYSTEM_PYTHON, "-c", "import sys; sys.modules['inotify_simple'] = None; "
                "from ocsptools.cli.renew_dir import console; sys.argv[0] = 'ocsp-renew-dir'; console()"]
    watched = home / "watched"
    watched.mkdir()
    log = home / "watch.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*argv, "--watch", "--log-format", "json", "--state",
                                 str(home / "watch-state.json"), str(watched)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=fh,
                                env=clean_env(home), cwd=home)
    try:
        def wait_for(text: str, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while text not in log.read_text():
                assert proc.poll() is None, f"--watch exited {proc.returncode}:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"no {text!r} in {timeout} s:\n{log.read_text()}"
                time.sleep(0.05)

        wait_for('"event": "start"', 30)
        text = log.read_text()
        assert "the inotify_simple module is not installed" in text and "polling every 2 s" in text, text
        assert '"mode": "poll"' in text, text
        cert = watched / "site.pem"
        shutil.copy(pki.leaves["good2"].fullchain, cert)
        wait_for('"event": "renewed"', 30)
        assert f'"staple": "{cert}.ocsp"' in log.read_text()
        assert (watched / "site.pem.ocsp").stat().st_size > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def end_to_end(pki, home: Path) -> None:
    """The installed commands and hooks against the test responder on 127.0.0.1."""
    env = clean_env(home)
    leaf = pki.leaves["good1"]
    staple = home / "good1.der"
    res = run(["/usr/bin/ocsp-fetch", "-i", pki.inter_cert, "-o", staple, leaf.cert], env=env, cwd=home)
    assert ": good, this update " in res.stderr, res.stderr
    res = run(["/usr/bin/ocsp-check", "--cert", leaf.cert, "-i", pki.inter_cert, staple], env=env, cwd=home)
    assert res.stdout.startswith(f"OCSP OK - {staple}: good"), res.stdout

    # the example configuration, its tree moved here: one ocsp-renew-dir run renews it
    tree = home / "letsencrypt"
    tree.mkdir()
    shutil.copy(pki.leaves["good2"].fullchain, tree / "site.pem")
    config = home / "ocsptools.yaml"
    config.write_text((EXAMPLES / "ocsptools.yaml").read_text().replace("/etc/letsencrypt", str(tree)))
    run(["/usr/bin/ocsp-renew-dir", "--config", config, "--state", home / "state.json"], env=env, cwd=home)
    assert (tree / "site.pem.ocsp").stat().st_size > 0

    # the certbot deploy hook as certbot runs it, with a settings file of its own (the state
    # cache kept here rather than in /var/cache/ocsptools)
    lineage = home / "live" / "example.org"
    lineage.mkdir(parents=True)
    shutil.copy(leaf.cert, lineage / "cert.pem")
    shutil.copy(leaf.chain, lineage / "chain.pem")
    settings = home / "hook.conf"
    settings.write_text(f'OCSP_RENEW_ARGS="--state {home / "hook-state.json"}"\n')
    run([SHARE / "certbot" / "deploy-hook"], cwd=home,
        env=clean_env(home, RENEWED_LINEAGE=str(lineage), OCSPTOOLS_HOOK_CONF=str(settings)))
    assert (lineage / "cert.pem.ocsp").stat().st_size > 0

    res = run([SHARE / "haproxy" / "haproxy-ocsp-push", "--help"], env=env, cwd=home)
    assert "haproxy-ocsp-push" in res.stdout

    # the installed alerting rules pass their installed tests (tests/test_monitoring.py checks
    # the rest of the monitoring configuration in the checkout)
    if shutil.which("promtool", path=CLEAN_PATH):
        res = run(["promtool", "test", "rules", "ocsptools.rules.test.yml"], env=env,
                  cwd=SHARE / "prometheus")
        assert "SUCCESS" in res.stdout, res.stdout


def test_deb_installs_runs_and_purges_without_a_trace(built_deb, pki, responder, tmp_path):
    if dpkg_installed("ocsptools"):
        pytest.skip("ocsptools is installed on this machine: the test would replace and purge it")
    home = tmp_path / "home"
    home.mkdir()
    contents = deb_contents(built_deb.deb)
    existed = {p for p in contents if os.path.lexists(p)}
    assert all(contents[p].startswith("d") for p in existed), \
        f"the package would replace files it does not own: {sorted(existed)}"
    before = snapshot()
    try:
        res = run(["dpkg", "-i", built_deb.deb], timeout=300)
        assert "Setting up ocsptools" in res.stdout, res.stdout
        shipped = run(["dpkg-query", "-L", "ocsptools"]).stdout.split()

        # installing wrote nothing but its own files, Python's byte code of its modules and
        # deb-systemd-helper's record of the units (for the purge); nothing was enabled
        added, removed, changed = diff(before, snapshot())
        own = set(shipped) | {os.path.realpath(p) for p in shipped}      # /lib is /usr/lib (merged /usr)
        state = {f"{DSH_STATE}/{u}.dsh-also" for u in ("ocsp-renew-dir.timer", "ocsp-renew-dir-watch.service")}
        stray = {p for p in added - own - state
                 if not p.startswith(f"{DIST_PACKAGES}/ocsptools/") and p != str(DSH_STATE)}
        assert stray == set(), f"dpkg -i wrote outside the package: {sorted(stray)}"
        assert removed == set() and changed == set(), (sorted(removed), sorted(changed))

        installed_commands_import_from_dist_packages(home)

        for page, section in MAN_PAGES.items():
            res = run(["man", "-w", f"{section}", page], env=clean_env(home))
            assert res.stdout.strip() == f"/usr/share/man/man{section}/{page}.{section}.gz", res.stdout

        res = run(["systemd-analyze", "verify", *(f"/lib/systemd/system/{u}" for u in UNITS)], check=False)
        assert res.returncode == 0 and res.stdout + res.stderr == "", res.stdout + res.stderr

        end_to_end(pki, home)
        watch_falls_back_to_polling(pki, home)
    finally:
        purge = run(["dpkg", "--purge", "ocsptools"], timeout=300, check=False)
    assert purge.returncode == 0, purge.stdout + purge.stderr

    # nothing of it is left: no file it listed, no module, no unit, no unit state
    remaining = [p for p in set(shipped) | set(contents) if os.path.lexists(p) and p not in existed
                 and p != "/."]
    assert remaining == [], f"left after dpkg --purge: {remaining}"
    assert leftovers() == []
    added, removed, changed = diff(before, snapshot())
    assert (added, removed, changed) == (set(), set(), set()), (sorted(added), sorted(removed), sorted(changed))
    assert run(["dpkg-query", "-W", "ocsptools"], check=False).returncode != 0


# ---------------------------------------------------------------------------
# the sdist and the wheel

@dataclass
class Dists:
    sdist: Path
    wheel: Path


@pytest.fixture(scope="session")
def dists(tmp_path_factory) -> Dists:
    """`python -m build` (sdist, then the wheel from the sdist) of a copy of the checkout,
    without build isolation: the test extra brings build, setuptools and wheel, no index."""
    pytest.importorskip("build", reason="pip install -e '.[test]' (the build module)")
    if shutil.which("git") is None:
        pytest.skip("git is missing")
    tmp = tmp_path_factory.mktemp("dists")
    src = copy_tree(tmp / "src")
    out = tmp / "out"
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, src], timeout=300)
    return Dists(out / f"ocsptools-{VERSION}.tar.gz", out / f"ocsptools-{VERSION}-py3-none-any.whl")


def test_sdist_and_wheel_carry_the_man_pages_and_pass_twine_check(dists):
    with tarfile.open(dists.sdist) as tar:
        names = set(tar.getnames())
    base = f"ocsptools-{VERSION}"
    for page, section in MAN_PAGES.items():
        assert f"{base}/man/{page}.{section}" in names, page
    for must in ("README.md", "setup.cfg", "pyproject.toml", "contrib/certbot/deploy-hook",
                 "tests/conftest.py", "tests/pki.py"):
        assert f"{base}/{must}" in names, must
    assert not [n for n in names if n.startswith(f"{base}/debian/") or "__pycache__" in n]

    with zipfile.ZipFile(dists.wheel) as whl:
        wnames = set(whl.namelist())
    for page, section in MAN_PAGES.items():
        assert f"{base}.data/data/share/man/man{section}/{page}.{section}" in wnames, page
    entry_points = zipfile.ZipFile(dists.wheel).read(f"{base}.dist-info/entry_points.txt").decode()
    for c in COMMANDS:
        assert f"{c} = ocsptools.cli." in entry_points, c

    res = run([sys.executable, "-m", "twine", "check", "--strict", dists.sdist, dists.wheel])
    assert res.stdout.count("PASSED") == 2, res.stdout


def test_wheel_in_a_fresh_venv_has_its_man_pages_and_commands(dists, tmp_path):
    """The wheel in a new venv of Debian's python3 whose dependencies come from Debian's
    packages (--system-site-packages; no index is asked), as pip installs it for a user."""
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import ensurepip, venv, plumbum, yaml, dateutil"],
                           capture_output=True, env={"PATH": CLEAN_PATH})
    if probe.returncode != 0:
        pytest.skip("Debian's python3 lacks python3-venv or the dependencies "
                    "(python3-plumbum, python3-yaml, python3-dateutil): run scripts/install-sysdeps")
    venv = tmp_path / "venv"
    env = clean_env(tmp_path)
    run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", venv], env=env, timeout=300)
    # --ignore-installed: the Debian test may have ocsptools in dist-packages at this moment
    run([venv / "bin/pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
         "--no-deps", "--ignore-installed", dists.wheel], env=env, timeout=300)

    for page, section in MAN_PAGES.items():
        assert (venv / f"share/man/man{section}/{page}.{section}").is_file(), page
    if shutil.which("man", path=CLEAN_PATH):
        res = run(["man", "-M", venv / "share/man", "-w", "ocsp-check"], env=env)
        assert res.stdout.strip() == str(venv / "share/man/man1/ocsp-check.1"), res.stdout

    for c in COMMANDS:
        assert_version(venv / "bin" / c, env, tmp_path)
    res = run([venv / "bin/python", "-c", "import ocsptools; print(ocsptools.__file__)"], env=env,
              cwd=tmp_path)
    assert res.stdout.strip().startswith(f"{venv}/lib/"), res.stdout
