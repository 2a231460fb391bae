"""The shipped cron file and systemd units: well-formed, hardened, and their command lines parse."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cmd
from ocsptools.cli.renew_dir import build_parser

ROOT = Path(__file__).resolve().parent.parent


def unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#",))
    cp.optionxform = str
    cp.read_string((ROOT / "contrib" / "systemd" / name).read_text())
    return cp


def parses(command: str) -> None:
    argv = shlex.split(command)
    assert Path(argv[0]).name == "ocsp-renew-dir"
    build_parser().parse_args(argv[1:])          # raises UsageError on a bad option


#: what both services set: a read-only system, no privilege gain, the state in CacheDirectory
HARDENING = (("ProtectSystem", "strict"), ("NoNewPrivileges", "true"), ("PrivateTmp", "true"),
             ("ProtectHome", "true"), ("CacheDirectory", "ocsptools"))


def read_write_paths(svc) -> list[str]:
    """The service's ReadWritePaths, each optional ("-": a missing tree is fine)."""
    rw = svc["ReadWritePaths"].split()
    assert rw and all(p.startswith("-/") for p in rw), rw
    return rw


def _exec_lines(text: str) -> list[str]:
    """ExecStart= of the unit and of its commented-out examples, continuation lines joined."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(# )?ExecStart=(.*)$", line)
        if not m:
            continue
        cmd = m.group(2)
        j = i
        while cmd.endswith("\\"):
            j += 1
            cmd = cmd[:-1] + " " + re.sub(r"^#\s*", "", lines[j]).strip()
        out.append(cmd)
    return out


def test_service_is_a_hardened_oneshot():
    svc = unit("ocsp-renew-dir.service")["Service"]
    assert svc["Type"] == "oneshot"
    parses(svc["ExecStart"])
    for key, value in HARDENING:
        assert svc[key] == value, key
    assert "AF_INET" in svc["RestrictAddressFamilies"]
    read_write_paths(svc)
    text = (ROOT / "contrib" / "systemd" / "ocsp-renew-dir.service").read_text()
    for line in _exec_lines(text):          # the unit's and its commented-out examples'
        parses(line)


def test_timer_has_randomised_delay_and_catches_up():
    t = unit("ocsp-renew-dir.timer")
    assert t["Timer"]["OnCalendar"] == "hourly"
    assert t["Timer"]["RandomizedDelaySec"] and t["Timer"]["Persistent"] == "true"
    assert t["Install"]["WantedBy"] == "timers.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_verify_with_systemd_analyze(tmp_path):
    for name in ("ocsp-renew-dir.service", "ocsp-renew-dir.timer"):
        shutil.copy(ROOT / "contrib" / "systemd" / name, tmp_path / name)
    res = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "ocsp-renew-dir.timer")],
                         capture_output=True, text=True)
    bad = [l for l in res.stderr.splitlines() if "ocsp-renew-dir" in l and "Unknown" in l]
    assert not bad, res.stderr


def test_cron_lines_are_valid():
    entries = [l for l in (ROOT / "examples" / "cron").read_text().splitlines()
               if l.strip() and not l.startswith("#") and "=" not in l.split()[0]]
    commented = [l[2:] for l in (ROOT / "examples" / "cron").read_text().splitlines()
                 if re.match(r"^# [\d*]", l)]
    assert entries
    for line in entries + commented:
        fields = line.split(None, 6)
        assert len(fields) == 7 and fields[5] == "root", line
        for f in fields[:5]:
            assert re.fullmatch(r"[\d*/,-]+", f), line
        parses(fields[6])


# ---------------------------------------------------------------------------
# the --watch unit

WATCH_UNIT = ROOT / "contrib" / "systemd" / "ocsp-renew-dir-watch.service"


def test_watch_service_is_hardened_and_restarts_on_failure():
    svc = unit("ocsp-renew-dir-watch.service")["Service"]
    assert svc["Type"] == "notify" and svc["NotifyAccess"] == "main"
    for key, value in HARDENING + (("Restart", "on-failure"), ("RestartPreventExitStatus", "2"),
                                   ("KillSignal", "SIGTERM")):
        assert svc[key] == value, key
    assert svc["ExecReload"] == "/bin/kill -HUP $MAINPID"
    # the daemon promises to be gone within 5 s of SIGTERM: systemd waits longer than that
    assert int(svc["TimeoutStopSec"].rstrip("s")) > 5
    commands = _exec_lines(WATCH_UNIT.read_text())
    assert len(commands) == 2 and commands[0] == svc["ExecStart"]
    for cmd in commands:
        assert "--watch" in shlex.split(cmd)
        parses(cmd)
    # writable: only the staple directories (and the textfile's), each optional ("-"); the
    # trees the example command line names are among them
    rw = read_write_paths(svc)
    rw_dirs = [p[1:].rstrip("/") for p in rw]
    assert not [d for d in rw_dirs if d in ("", "/etc", "/var", "/usr", "/var/lib")], rw_dirs
    example = build_parser().parse_args(shlex.split(commands[1])[1:])
    needed = list(example.dirs) + [str(Path(example.prometheus_textfile).parent)]
    for d in needed:
        assert any(d == r or d.startswith(r + "/") for r in rw_dirs), (d, rw_dirs)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_watch_service_verifies_with_systemd_analyze(tmp_path):
    """Every key and value known to systemd (its warnings go to stderr with exit 0). The binary
    is pointed at the installed one so the check does not stop at a missing /usr/local/bin."""
    from conftest import command
    text = WATCH_UNIT.read_text().replace("/usr/local/bin/ocsp-renew-dir", command("ocsp-renew-dir"))
    assert command("ocsp-renew-dir") in text
    (tmp_path / WATCH_UNIT.name).write_text(text)
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / WATCH_UNIT.name)],
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == "", res.stderr


@pytest.mark.parametrize("content", ["empty", "no-certificates"])
def test_a_tree_without_certificates_is_not_silent(tmp_path, content):
    """Issue 15 item 7: a cron job pointed at the wrong directory must mail someone."""
    tree = tmp_path / "tree"
    tree.mkdir()
    if content == "no-certificates":
        (tree / "site.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        (tree / "notes.txt").write_text("hello\n")
    res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", tree)
    assert res.returncode == 0 and res.stdout == b""
    line = assert_one_line_error(res.stderr)
    assert line.startswith(f"ocsp-renew-dir: warning: {tree}: no certificate found"), line
    assert run_cmd("ocsp-renew-dir", "-q", "--state", tmp_path / "s.json", tree).stderr == b""
