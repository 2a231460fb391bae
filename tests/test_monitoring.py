"""contrib/nagios, contrib/icinga2 and contrib/prometheus, checked by the tools that read them.

* Nagios 4 (Debian's nagios4): `nagios4 -v` on a minimal main configuration in a temporary
  directory that includes contrib/nagios as it is, then the daemon itself for a second or two,
  running the contrib commands against the test PKI (staple files, renewal state, a live
  `openssl s_server`), read back from its status file.
* Icinga 2 (Debian's icinga2): `icinga2 daemon -C` on a temporary icinga2.conf with the ITL and
  contrib/icinga2, every path constant pointed into the temporary directory; the CheckCommand's
  arguments as Icinga parsed them (its objects file) against ocsp-check's own parser, so a new
  option fails here until the CheckCommand has it; then the daemon runs the example apply rules
  against the test PKI and its state file says what it ran and what came back.
* Prometheus (Debian's prometheus): `promtool check metrics` on the real output of the three
  exporters (`ocsp-check --prometheus`, `ocsp-renew-dir --watch --prometheus-textfile`,
  `ocsp-proxy serve`'s /metrics), `promtool check rules` and `promtool test rules` on
  contrib/prometheus, whose test series must have the names and label sets of that real output.

Each tool's checks also run on a deliberately broken copy, which must fail.  A tool that is not
installed skips its tests with the reason (scripts/install-sysdeps installs all three).
"""

from __future__ import annotations

import argparse
import getpass
import grp
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Set

import pytest
import yaml

import pki as pkimod
from conftest import command, run_cmd
from test_proxy_support import ProxyProc, request_der
from test_renew import place

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "check"))
from tls_servers import SServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONTRIB = ROOT / "contrib"
SBIN_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def tool(name: str, package: str) -> str:
    path = shutil.which(name, path=SBIN_PATH)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package {package}; scripts/install-sysdeps)")
    return path


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None,
               log=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {what}:\n{log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s:\n{log()}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen, timeout: float = 10) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


# ---------------------------------------------------------------------------
# a renewed tree, its state and a live server: what the Nagios and Icinga checks look at

@dataclass
class World:
    staple: Path        # tree/good1.pem.ocsp, renewed by ocsp-renew-dir --state STATE
    state: Path
    other: Path         # a copy of it elsewhere: not among the staples STATE renews
    cert: Path          # tree/good1.pem (with its issuer: a bundle)
    key: Path
    issuer: Path


@pytest.fixture(scope="module")
def world(pki, _session_responder, tmp_path_factory) -> World:
    _session_responder.ensure_running()
    tmp = tmp_path_factory.mktemp("world")
    leaf = pki.leaves["good1"]
    cert, staple = place(tmp / "tree", "bundle", "good1", leaf, pki)
    state = tmp / "state.json"
    res = run_cmd("ocsp-renew-dir", "--state", state, tmp / "tree")
    assert res.returncode == 0 and staple.stat().st_size > 0, res.stdout + res.stderr
    (tmp / "other").mkdir()
    other = tmp / "other" / "good1.pem.ocsp"
    shutil.copy(cert, tmp / "other" / "good1.pem")
    shutil.copy(staple, other)
    return World(staple, state, other, cert, Path(leaf.key), Path(pki.inter_cert))


@pytest.fixture
def live(world):
    """openssl s_server on 127.0.0.1 stapling the world's staple."""
    server = SServer(world.cert, world.key, chain=world.issuer, status_file=world.staple).start()
    try:
        yield server
    finally:
        server.stop()


def venv_copy(src: Path, dest: Path) -> Path:
    """SRC with /usr/bin/ocsp-check (the Debian package's) replaced by the ocsp-check under
    test; nothing else changes."""
    text = src.read_text()
    assert text.count("/usr/bin/ocsp-check") >= 1, src
    dest.write_text(text.replace("/usr/bin/ocsp-check", command("ocsp-check")))
    return dest


def parsed_argv(argv: List[str]):
    """ARGV as ocsp-check's own parser reads it (a usage error raises)."""
    from ocsptools.cli.check import build_parser
    return build_parser().parse_args(argv[1:])


def user_and_group() -> tuple:
    return getpass.getuser(), grp.getgrgid(os.getgid()).gr_name


# ---------------------------------------------------------------------------
# Nagios 4

NAGIOS_DIR = CONTRIB / "nagios"
NAGIOS_COMMANDS = NAGIOS_DIR / "ocsptools-commands.cfg"
NAGIOS_SERVICES = NAGIOS_DIR / "ocsptools-services.cfg"

# What Debian's /etc/nagios4/objects/ gives the examples (generic-service, the 24x7 time
# period, a contact), reduced to what Nagios requires, and the host the examples name.
NAGIOS_MINIMAL = """\
define timeperiod {
    timeperiod_name         24x7
    alias                   always
    monday                  00:00-24:00
    tuesday                 00:00-24:00
    wednesday               00:00-24:00
    thursday                00:00-24:00
    friday                  00:00-24:00
    saturday                00:00-24:00
    sunday                  00:00-24:00
}
define command {
    command_name            notify-nobody
    command_line            /bin/true
}
define command {
    command_name            check-host-alive
    command_line            /bin/true
}
define contact {
    contact_name                    nagiosadmin
    service_notification_period     24x7
    host_notification_period        24x7
    service_notification_options    w,u,c,r
    host_notification_options       d,u,r
    service_notification_commands   notify-nobody
    host_notification_commands      notify-nobody
}
define service {
    name                    generic-service
    max_check_attempts      3
    check_interval          10
    retry_interval          2
    check_period            24x7
    notification_interval   60
    notification_period     24x7
    contacts                nagiosadmin
    register                0
}
define host {
    name                    test-host
    check_command           check-host-alive
    max_check_attempts      3
    check_period            24x7
    notification_interval   60
    notification_period     24x7
    contacts                nagiosadmin
    active_checks_enabled   0
    register                0
}
define host {
    use                     test-host
    host_name               www.example.org
    address                 127.0.0.1
}
"""


def nagios_cfg(tmp: Path, objects: List[str]) -> Path:
    """A main configuration that keeps every file Nagios writes in TMP (it runs as this user);
    OBJECTS are cfg_file=/cfg_dir= lines."""
    user, group = user_and_group()
    (tmp / "checkresults").mkdir()
    (tmp / "minimal.cfg").write_text(NAGIOS_MINIMAL)
    lines = [f"cfg_file={tmp / 'minimal.cfg'}", *objects,
             f"log_file={tmp / 'nagios.log'}", f"temp_path={tmp}", f"temp_file={tmp / 'nagios.tmp'}",
             f"check_result_path={tmp / 'checkresults'}", f"lock_file={tmp / 'nagios.lock'}",
             f"status_file={tmp / 'status.dat'}", f"state_retention_file={tmp / 'retention.dat'}",
             f"object_cache_file={tmp / 'objects.cache'}",
             f"precached_object_file={tmp / 'objects.precache'}",
             f"command_file={tmp / 'nagios.cmd'}", f"query_socket={tmp / 'nagios.qh'}",
             f"nagios_user={user}", f"nagios_group={group}",
             # Debian's nagios.cfg sets it; without it -v warns
             "illegal_macro_output_chars=`~$&|'\"<>",
             "use_syslog=0", "check_external_commands=0", "enable_notifications=0"]
    cfg = tmp / "nagios.cfg"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def nagios_objects(path: Path) -> Dict[str, List[dict]]:
    """The object definitions of a precache file (Nagios's own resolved dump): type -> dicts."""
    out: Dict[str, List[dict]] = {}
    for kind, body in re.findall(r"^define (\w+) \{\n(.*?)\n\s*\}", path.read_text(), re.M | re.S):
        fields = dict(line.strip().split("\t", 1) for line in body.splitlines() if "\t" in line.strip())
        out.setdefault(kind, []).append(fields)
    return out


def test_nagios_accepts_the_commands_and_the_example_services(tmp_path):
    nagios = tool("nagios4", "nagios4")
    cfg = nagios_cfg(tmp_path, [f"cfg_dir={NAGIOS_DIR}"])
    res = subprocess.run([nagios, "-v", "-p", str(cfg)], capture_output=True, text=True, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Total Warnings: 0" in out and "Total Errors:   0" in out, out

    objects = nagios_objects(tmp_path / "objects.precache")
    ours = {c["command_name"]: c["command_line"] for c in objects["command"]
            if c["command_line"].startswith("/usr/bin/ocsp-check ")}
    assert set(ours) == {"check_ocsp_staple", "check_ocsp_staple_renewal", "check_ocsp_live",
                         "check_ocsp_live_renewal"}, ours
    used = {s["check_command"].split("!")[0] for s in objects["service"]}
    assert used == set(ours), "every command has an example service, and nothing else is used"
    assert "--renew-state $ARG" in ours["check_ocsp_staple_renewal"]
    # the commands README shows (its ocsp-check section) are these
    shown = re.findall(r"command_name\s+(\S+)\n\s+command_line\s+(.+)", (ROOT / "README.md").read_text())
    assert {"check_ocsp_staple", "check_ocsp_live"} <= {name for name, _ in shown}, shown
    for name, line in shown:
        assert ours.get(name) == line.strip(), f"README's {name} is not contrib's"


@pytest.mark.parametrize("what, old, new, error", [
    ("a command the services use is gone", "command_name    check_ocsp_live\n",
     "command_name    check_ocsp_alive\n", "check_ocsp_live"),
    ("a directive Nagios does not know", "    command_line    /usr/bin/ocsp-check -w $ARG1$ -c $ARG2$ $ARG3$\n",
     "    command_lines   /usr/bin/ocsp-check -w $ARG1$ -c $ARG2$ $ARG3$\n",
     "command_lines"),
])
def test_nagios_rejects_a_broken_copy(tmp_path, what, old, new, error):
    nagios = tool("nagios4", "nagios4")
    broken = tmp_path / "broken"
    shutil.copytree(NAGIOS_DIR, broken)
    text = (broken / NAGIOS_COMMANDS.name).read_text()
    assert text.count(old) == 1, what
    (broken / NAGIOS_COMMANDS.name).write_text(text.replace(old, new))
    res = subprocess.run([nagios, "-v", str(nagios_cfg(tmp_path, [f"cfg_dir={broken}"]))],
                         capture_output=True, text=True, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Total Errors:   0" not in out, f"{what}:\n{out}"
    assert error in out, out


def nagios_status(path: Path) -> Dict[str, dict]:
    """servicestatus blocks of status.dat by service description."""
    out = {}
    for body in re.findall(r"^servicestatus \{\n(.*?)\n\s*\}", path.read_text(), re.M | re.S):
        fields = dict(line.strip().split("=", 1) for line in body.splitlines() if "=" in line)
        out[fields["service_description"]] = fields
    return out


def nagios_objects_of(nagios: str, cfg: Path, tmp: Path) -> Dict[str, List[dict]]:
    res = subprocess.run([nagios, "-v", "-p", str(cfg)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "Total Warnings: 0" in res.stdout, res.stdout + res.stderr
    return nagios_objects(tmp / "objects.precache")


def test_nagios_runs_the_commands_on_real_staples_and_a_live_server(tmp_path, world, live):
    """The Nagios daemon itself, for a second or two: the contrib commands (ocsp-check under
    test in place of /usr/bin's) run by its workers through /bin/sh as configured, on the
    example services and on services of the test PKI; status.dat says what each returned."""
    nagios = tool("nagios4", "nagios4")
    commands = venv_copy(NAGIOS_COMMANDS, tmp_path / "commands.cfg")
    port = live.port
    tree = world.staple.parent
    ours = {    # description: (check_command, expected state, text in the output)
        "file": (f"check_ocsp_staple!25%!10%!{world.staple}", 0, "OCSP OK - "),
        "file glob": (f"check_ocsp_staple!25%!10%!{tree}/*.pem.ocsp", 0, f"OCSP OK - {world.staple}: good"),
        "file thresholds": (f"check_ocsp_staple!2d!1d!{world.staple}", 2, "below the critical threshold 1d"),
        "file renewal": (f"check_ocsp_staple_renewal!25%!10%!{world.state}!{world.staple}", 0, "OCSP OK - "),
        "file renewal unpaired": (f"check_ocsp_staple_renewal!25%!10%!{world.state}!{world.other}", 1,
                                  "not among the staples ocsp-renew-dir renews"),
        "live": (f"check_ocsp_live!-p {port} -i {world.issuer}", 0, "OCSP OK - "),
        "live servername": (f"check_ocsp_live!--servername localhost -p {port} -w 2d -c 1d", 2,
                            "below the critical threshold 1d"),
        "live renewal unpaired": (f"check_ocsp_live_renewal!{world.state}!-p {port} {world.other}", 1,
                                  "not among the staples ocsp-renew-dir renews"),
    }
    services = tmp_path / "services.cfg"
    services.write_text("define host {\n    use test-host\n    host_name ocsptest\n    address 127.0.0.1\n}\n"
                        + "".join(f"define service {{\n    use ocsp-service\n    host_name ocsptest\n"
                                  f"    service_description {name}\n    check_command {check}\n}}\n"
                                  for name, (check, _, _) in ours.items()))
    cfg = nagios_cfg(tmp_path, [f"cfg_file={commands}", f"cfg_file={NAGIOS_SERVICES}",
                                f"cfg_file={services}"])
    with open(cfg, "a") as fh:        # seconds instead of minutes, every check at once
        fh.write("interval_length=1\nmax_service_check_spread=1\nservice_inter_check_delay_method=n\n"
                 "status_update_interval=1\ncheck_result_reaper_frequency=1\n")
    examples = {s["service_description"] for s in nagios_objects_of(nagios, cfg, tmp_path)["service"]
                if s["host_name"] == "www.example.org"}
    assert len(examples) == 5, examples
    status_file = tmp_path / "status.dat"
    log = tmp_path / "nagios.out"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([nagios, str(cfg)], stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        def all_checked() -> Dict[str, dict]:
            status = nagios_status(status_file) if status_file.exists() else {}
            done = {k: v for k, v in status.items() if v.get("has_been_checked") == "1"}
            return done if set(done) >= set(ours) | examples else {}
        status = wait_until(all_checked, 60, "a result for every service", proc, log.read_text)
    finally:
        assert stop(proc) == 0, log.read_text()

    for name, (check, state, text) in ours.items():
        got = status[name]
        output = got["plugin_output"] + "\n" + got.get("long_plugin_output", "")
        assert (int(got["current_state"]), text in output) == (state, True), (name, output)
    for name in examples:       # their files and servers are not here; their arguments parse
        got = status[name]
        assert "OCSP " in got["plugin_output"] and "(see --help)" not in got["plugin_output"], got


# ---------------------------------------------------------------------------
# Icinga 2

ICINGA_DIR = CONTRIB / "icinga2"
ICINGA_COMMAND = ICINGA_DIR / "ocsptools-command.conf"
ICINGA_SERVICES = ICINGA_DIR / "ocsptools-services.conf"

# The host of the example's comment, and generic-service as Icinga's conf.d/templates.conf has
# it (with checks every second for the daemon run).
ICINGA_EXAMPLE_HOST = """\
template Service "generic-service" {
	max_check_attempts = 1
	check_interval = 1s
	retry_interval = 1s
}
object Host "web1.example.org" {
	check_command = "dummy"
	enable_active_checks = false
	address = "192.0.2.10"
	vars.ocsp_staple_files = [ "/etc/haproxy/certs/www.pem.ocsp", "/etc/haproxy/certs/shop.pem.ocsp" ]
	vars.ocsp_staple_renew_state = "/var/lib/ocsptools/haproxy.json"
	vars.ocsp_live["www.example.org"] = { }
	vars.ocsp_live["mail.example.org"] = { ocsp_port = 25, ocsp_starttls = "smtp", ocsp_require_staple = true }
}
"""


def icinga2(tmp: Path, conf: str, *, validate: bool = True, files=(ICINGA_COMMAND, ICINGA_SERVICES)):
    """`icinga2 daemon [-C] -c TMP/icinga2.conf` with the ITL, FILES and CONF, run as this user
    with every directory of Icinga's (configuration, data, cache, log, spool, run, zones) in
    TMP: it reads and writes nothing in /etc or /var.  -C returns the finished process;
    otherwise the running daemon."""
    icinga = tool("icinga2", "icinga2")
    dirs = {name: tmp / "icinga" / name.lower() for name in
            ("DataDir", "CacheDir", "LogDir", "SpoolDir", "InitRunDir", "ZonesDir")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    main = tmp / "icinga2.conf"
    main.write_text("include <itl>\n" + "".join(f'include "{f}"\n' for f in files) + conf)
    argv = [icinga, "daemon", "-c", str(main), "-D", f"ConfigDir={tmp}",
            *(a for name, d in dirs.items() for a in ("-D", f"{name}={d}"))]
    user, group = user_and_group()
    env = {**os.environ, "ICINGA2_USER": user, "ICINGA2_GROUP": group}
    if validate:
        return subprocess.run([*argv, "-C"], capture_output=True, text=True, env=env, timeout=60)
    log = tmp / "icinga2.out"
    with open(log, "wb") as fh:
        return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def netstrings(path: Path) -> List[dict]:
    """Icinga's objects and state files: JSON objects as netstrings (LENGTH:JSON,)."""
    data, out, i = path.read_bytes(), [], 0
    while i < len(data):
        colon = data.index(b":", i)
        n = int(data[i:colon])
        out.append(json.loads(data[colon + 1:colon + 1 + n]))
        i = colon + 1 + n + 1
    return out


def icinga_objects(tmp: Path) -> Dict[tuple, dict]:
    """(type, name) -> properties, as `icinga2 daemon -C` compiled them."""
    return {(o["type"], o["properties"]["__name"]): o["properties"]
            for o in netstrings(tmp / "icinga" / "cachedir" / "icinga2.debug")}


def test_icinga2_accepts_the_command_and_the_example_apply_rules(tmp_path):
    res = icinga2(tmp_path, ICINGA_EXAMPLE_HOST)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "Finished validating the configuration" in out, out
    assert not re.search(r"\b(warning|critical)/", out), out
    objects = icinga_objects(tmp_path)
    services = {name: props for (kind, name), props in objects.items() if kind == "Service"}
    assert set(services) == {"web1.example.org!ocsp-staples", "web1.example.org!ocsp-live www.example.org",
                             "web1.example.org!ocsp-live mail.example.org"}, set(services)
    assert all(s["check_command"] == "ocsp_check" for s in services.values())
    files = services["web1.example.org!ocsp-staples"]["vars"]
    assert files == {"ocsp_staples": ["/etc/haproxy/certs/www.pem.ocsp", "/etc/haproxy/certs/shop.pem.ocsp"],
                     "ocsp_renew_state": "/var/lib/ocsptools/haproxy.json"}, files
    mail = services["web1.example.org!ocsp-live mail.example.org"]["vars"]
    assert mail == {"ocsp_hostname": "$address$", "ocsp_servername": "mail.example.org", "ocsp_port": 25,
                    "ocsp_starttls": "smtp", "ocsp_require_staple": True}, mail


def test_icinga2_readme_example_is_valid(tmp_path):
    """README's Monitoring example, its include pointed at the checkout."""
    readme = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"^```[a-z]*\n(.*?)^```$", readme, re.M | re.S)
              if 'include "/usr/share/ocsptools/icinga2/ocsptools-command.conf"' in b]
    assert len(blocks) == 1, blocks
    example = blocks[0].replace("/usr/share/ocsptools/icinga2/", f"{ICINGA_DIR}/")
    templates = 'template Host "generic-host" {\n\tcheck_command = "dummy"\n}\n' \
                'template Service "generic-service" {\n}\n'
    res = icinga2(tmp_path, templates + example, files=(ICINGA_SERVICES,))
    assert res.returncode == 0, res.stdout + res.stderr
    services = {name for kind, name in icinga_objects(tmp_path) if kind == "Service"}
    assert services == {"www.example.org!ocsp-staples", "www.example.org!ocsp-live www.example.org",
                        "www.example.org!ocsp-live mail.example.org"}, services


def test_icinga2_command_has_every_ocsp_check_option(tmp_path):
    """Derived from ocsp-check's parser: an option ocsp-check gains fails here until the
    CheckCommand has it.  --help and --version are left out (they print usage or the version
    and exit UNKNOWN: nothing a check runs)."""
    from ocsptools.cli.check import build_parser
    res = icinga2(tmp_path, "")
    assert res.returncode == 0, res.stdout + res.stderr
    command_ = icinga_objects(tmp_path)[("CheckCommand", "ocsp_check")]
    assert command_["command"] == ["/usr/bin/ocsp-check"]
    arguments = command_["arguments"]
    expected = set()
    for action in build_parser()._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if action.option_strings:
            key = max(action.option_strings, key=len)          # the long option
            var = "ocsp_" + key.lstrip("-").replace("-", "_")
        else:                                                   # the staples
            key, var = action.dest, f"ocsp_{action.dest}"
        expected.add(key)
        arg = arguments.get(key)
        assert isinstance(arg, dict), f"the CheckCommand has no argument {key}"
        switch = isinstance(action, (argparse._StoreTrueAction, argparse._CountAction))
        if switch:
            assert arg.get("set_if") == f"${var}$" and "value" not in arg, (key, arg)
        else:
            assert arg.get("value") == f"${var}$" and "set_if" not in arg, (key, arg)
        if isinstance(action, argparse._AppendAction):
            assert arg.get("repeat_key") is True, f"{key} is repeatable: repeat_key = true"
        if not action.option_strings:
            assert arg.get("skip_key") is True and arg.get("order", 0) > 0, f"{key}: after the options"
        assert arg.get("description"), f"{key} has no description"
    assert set(arguments) == expected, f"arguments ocsp-check does not have: {set(arguments) - expected}"


@pytest.mark.parametrize("what, old, new, error", [
    ("the command renamed", 'object CheckCommand "ocsp_check" {', 'object CheckCommand "ocsp_chek" {',
     "Object 'ocsp_check' of type 'CheckCommand' does not exist"),
    ("a syntax error", '\t\t"--aia" = {', '\t\t"--aia" = {{', "syntax error"),
])
def test_icinga2_rejects_a_broken_copy(tmp_path, what, old, new, error):
    text = ICINGA_COMMAND.read_text()
    assert text.count(old) == 1, what
    broken = tmp_path / ICINGA_COMMAND.name
    broken.write_text(text.replace(old, new))
    res = icinga2(tmp_path, ICINGA_EXAMPLE_HOST, files=(broken, ICINGA_SERVICES))
    out = res.stdout + res.stderr
    assert res.returncode != 0, f"{what}:\n{out}"
    assert error in out, out


def test_icinga2_runs_the_apply_rules_on_real_staples_and_a_live_server(tmp_path, world, live):
    """The Icinga daemon itself, for a second or two, with its checker: the example apply rules
    on a host described as the example says (ocsp-check under test in place of /usr/bin's);
    its state file, written at shutdown, has each service's command line and result."""
    command_ = venv_copy(ICINGA_COMMAND, tmp_path / "command.conf")
    port = live.port
    host = f"""\
template Service "generic-service" {{
	max_check_attempts = 1
	check_interval = 1s
	retry_interval = 1s
}}
object CheckerComponent "checker" {{ }}
object FileLogger "debug" {{
	path = "{tmp_path / 'debug.log'}"
	severity = "debug"
}}
object Host "ocsptest" {{
	check_command = "dummy"
	enable_active_checks = false
	address = "127.0.0.1"
	vars.ocsp_staple_files = [ "{world.staple}" ]
	vars.ocsp_staple_renew_state = "{world.state}"
	vars.ocsp_live["localhost"] = {{ ocsp_port = {port}, ocsp_issuer = "{world.issuer}", ocsp_verbose = true,
	                                 ocsp_ca_dir = [ "{tmp_path}", "{world.issuer.parent}" ] }}
	vars.ocsp_live["good1.test"] = {{ ocsp_port = {port}, ocsp_staples = [ "{world.other}" ],
	                                  ocsp_renew_state = "{world.state}" }}
	vars.ocsp_live["www.test"] = {{ ocsp_port = {port}, ocsp_warning = "2d", ocsp_critical = "1d" }}
}}
"""
    res = icinga2(tmp_path, host, files=(command_, ICINGA_SERVICES))
    assert res.returncode == 0, res.stdout + res.stderr
    names = ["ocsp-staples", "ocsp-live localhost", "ocsp-live good1.test", "ocsp-live www.test"]
    debug = tmp_path / "debug.log"
    proc = icinga2(tmp_path, host, files=(command_, ICINGA_SERVICES), validate=False)
    try:
        def all_ran() -> bool:      # one finished run of each of the four command lines
            text = debug.read_text() if debug.exists() else ""
            return len(set(re.findall(r"PID \d+ \((.*)\) terminated with exit code", text))) >= len(names)
        wait_until(all_ran, 60, "every service checked", proc,
                   lambda: (tmp_path / "icinga2.out").read_text())
    finally:
        assert stop(proc) == 0, (tmp_path / "icinga2.out").read_text()

    results = {o["name"].split("!", 1)[1]: o["update"]["last_check_result"]
               for o in netstrings(tmp_path / "icinga" / "datadir" / "icinga2.state")
               if o.get("type") == "Service"}
    assert set(results) == set(names), set(results)
    args = {name: parsed_argv(r["command"]) for name, r in results.items()}
    for name, r in results.items():
        assert r["command"][0] == command("ocsp-check"), r

    files = args["ocsp-staples"]
    assert (files.staples, files.renew_state, files.hostname) == ([str(world.staple)], str(world.state), None)
    assert results["ocsp-staples"]["exit_status"] == 0, results["ocsp-staples"]

    local = args["ocsp-live localhost"]
    assert (local.hostname, local.port, local.servername, local.issuer, local.verbose, local.ca_dir) == \
        ("127.0.0.1", port, "localhost", str(world.issuer), 1, [str(tmp_path), str(world.issuer.parent)])
    assert (local.staples, local.renew_state) == ([], None)    # the host's files are not the live ones'
    assert results["ocsp-live localhost"]["exit_status"] == 0, results["ocsp-live localhost"]

    paired = args["ocsp-live good1.test"]
    assert (paired.servername, paired.staples, paired.renew_state) == \
        ("good1.test", [str(world.other)], str(world.state))
    assert results["ocsp-live good1.test"]["exit_status"] == 1, results["ocsp-live good1.test"]
    assert "not among the staples ocsp-renew-dir renews" in results["ocsp-live good1.test"]["output"]

    www = args["ocsp-live www.test"]
    assert (www.warning, www.critical, www.staples) == ("2d", "1d", [])
    assert results["ocsp-live www.test"]["exit_status"] == 2, results["ocsp-live www.test"]


# ---------------------------------------------------------------------------
# Prometheus: what the exporters really write, and the rules

@dataclass
class Exports:
    check: str          # ocsp-check --prometheus --renew-state
    renew: str          # ocsp-renew-dir --watch --prometheus-textfile
    proxy: str          # ocsp-proxy serve: GET /metrics


@pytest.fixture(scope="module")
def exports(pki, _session_responder, tmp_path_factory) -> Exports:
    """The three exporters run for real against the test PKI, in the states the alerts are
    about: a good staple, a staple the responder says is revoked (fetched with --allow-revoked),
    and one whose renewal fails (its certificate's responder does not answer; its staple was
    fetched from the real one); the last two due again (each certificate newer than its staple).
    The tree has the bundle layout's key and CA files too, as real trees do."""
    responder = _session_responder
    responder.ensure_running()
    tmp = tmp_path_factory.mktemp("exports")
    tree = tmp / "tree"
    _, good = place(tree, "bundle", "good1", pki.leaves["good1"], pki)
    revoked_cert, revoked = place(tree, "bundle", "revoked1", pki.leaves["revoked1"], pki)
    dead = pki.make_leaf(f"mon{secrets.token_hex(4)}",
                         ocsp_urls=[f"http://127.0.0.1:{pkimod.free_port()}/"])
    responder.restart()         # it reads index.txt changes only when restarted
    dead_cert, failing = place(tree, "bundle", "failing", dead, pki)
    res = run_cmd("ocsp-fetch", "--allow-revoked", "-o", revoked, revoked_cert)
    assert res.returncode == 4, res.stderr
    res = run_cmd("ocsp-fetch", "-u", responder.url, "-o", failing, dead_cert)
    assert res.returncode == 0, res.stderr
    hour_ago = time.time() - 3600
    for staple in (revoked, failing):
        os.utime(staple, (hour_ago, hour_ago))

    state, textfile = tmp / "state.json", tmp / "metrics" / "ocsp.prom"
    textfile.parent.mkdir()
    log = tmp / "watch.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([command("ocsp-renew-dir"), "--watch", "--state", str(state),
                                 "--prometheus-textfile", str(textfile), str(tree)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=fh)
    try:
        # values as prometheus_client writes them (floats: 1.0)
        wanted = (f'ocsp_renew_dir_staple_failing_since_timestamp_seconds{{staple="{failing}"}} ',
                  f'ocsp_renew_dir_staple_responder_revoked{{staple="{revoked}"}} 1.0\n',
                  f'ocsp_renew_dir_staple_status{{staple="{good}",status="good"}} 1.0\n')

        def settled() -> str:
            text = textfile.read_text() if textfile.exists() else ""
            return text if all(w in text for w in wanted) else ""
        # the file as node_exporter reads it while the daemon runs
        renew_text = wait_until(settled, 30, "a textfile with a good, a revoked and a failing staple",
                                proc, lambda: log.read_text() + (textfile.read_text()
                                                                 if textfile.exists() else ""))
    finally:
        assert stop(proc) == 0, log.read_text()

    res = run_cmd("ocsp-check", "--prometheus", "--renew-state", state, good, revoked, failing)
    assert res.returncode == 2, res.stdout + res.stderr          # the revoked staple
    check_text = res.stdout.decode()

    allowed = tmp / "allowed"
    place(allowed, "bundle", "good1", pki.leaves["good1"], pki)
    with ProxyProc("--allow-from", str(allowed), cache=f"sqlite:///{tmp}/proxy.sqlite") as proxy:
        assert proxy.post(request_der(pki, pki.leaves["good1"], tmp=tmp))[0] == 200
        status, headers, body = proxy.request("GET", "/metrics")
        assert status == 200, body
    return Exports(check=check_text, renew=renew_text, proxy=body.decode())


RULES = CONTRIB / "prometheus" / "ocsptools.rules.yml"
RULE_TESTS = CONTRIB / "prometheus" / "ocsptools.rules.test.yml"
#: Labels a scrape adds (node_exporter's textfile collector, the proxy's own endpoint).
SCRAPE_LABELS = {"instance", "job"}
#: Labels whose values are free text (file names); any other label's values come from a fixed set.
FREE_LABELS = {"path", "staple"}
SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$")
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def promtool() -> str:
    return tool("promtool", "prometheus")


def samples(text: str) -> Dict[str, List[dict]]:
    """Sample name -> label sets of the exposition TEXT (prometheus_client's parser)."""
    from prometheus_client.parser import text_string_to_metric_families
    out: Dict[str, List[dict]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(dict(sample.labels))
    return out


def series_labels(series: str) -> tuple:
    m = SERIES.match(series.strip())
    assert m, series
    body = m.group(2) or ""
    labels = dict(LABEL.findall(body))
    assert LABEL.sub("", body).strip() == "", f"unparsed labels in {series}"
    return m.group(1), labels


def test_promtool_check_metrics_can_fail():
    bad = "# HELP x_errors errors\n# TYPE x_errors counter\nx_errors 1\n"     # no _total
    res = subprocess.run([promtool(), "check", "metrics"], input=bad, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode != 0 and '"_total" suffix' in res.stdout + res.stderr


def test_rules_pass_promtool_check_rules():
    res = subprocess.run([promtool(), "check", "rules", "--lint=all", "--lint-fatal", str(RULES)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "SUCCESS: 17 rules found" in res.stdout, res.stdout + res.stderr


def rule_alerts() -> Dict[str, dict]:
    rules = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}


def test_rule_unit_tests_pass():
    res = subprocess.run([promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                         timeout=60, cwd=RULE_TESTS.parent)
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize("what, old, new, failing", [
    ("a threshold changed", "< 0.25 * ocsp_staple_lifetime_seconds", "< 0.20 * ocsp_staple_lifetime_seconds",
     "OcspStapleExpiring"),
    ("a metric misnamed", "increase(ocsp_proxy_expired_total[15m])", "increase(ocsp_proxy_expired[15m])",
     "OcspProxyAnsweringTryLater"),
    ("the revoked staple no longer left out", "\n          unless ignoring(status) ocsp_staple_cert_status",
     "\n          or ignoring(status) ocsp_staple_cert_status", "OcspStapleResponderRevoked"),
])
def test_rule_unit_tests_fail_on_a_broken_copy(tmp_path, what, old, new, failing):
    text = RULES.read_text()
    assert text.count(old) == 1, what
    (tmp_path / RULES.name).write_text(text.replace(old, new))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    res = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "FAILED" in out, f"{what}:\n{out}"
    assert f"alertname: {failing}," in out, out


def test_every_alert_has_a_firing_and_a_quiet_case():
    alerts = rule_alerts()
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [RULES.name]
    firing: Set[str] = set()
    quiet: Set[str] = set()
    for group in tests["tests"]:
        for case in group["alert_rule_test"]:
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert firing == set(alerts), f"never firing: {set(alerts) - firing}; unknown: {firing - set(alerts)}"
    assert quiet == set(alerts), f"never quiet: {set(alerts) - quiet}; unknown: {quiet - set(alerts)}"
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), name
        assert rule["annotations"].get("summary") and rule["annotations"].get("description"), name


def test_real_output_passes_promtool_check_metrics_and_the_rule_tests_are_shaped_like_it(exports):
    """promtool check metrics passes on what each exporter really wrote.  Every series of the
    promtool tests is one the exporters really write: its name, its label names (plus the
    instance and job of a scrape) and, but for file names, its label values; and every metric
    the rules read is in the real output.  (One test: the exporters' fixture is costly.)"""
    for exporter in ("check", "renew", "proxy"):
        res = subprocess.run([promtool(), "check", "metrics"], input=getattr(exports, exporter),
                             capture_output=True, text=True, timeout=60)
        out = res.stdout + res.stderr
        assert (res.returncode, out) == (0, ""), f"promtool check metrics on {exporter}'s output:\n{out}"

    real: Dict[str, List[dict]] = {}
    for text in (exports.check, exports.renew, exports.proxy):
        for name, labelsets in samples(text).items():
            real.setdefault(name, []).extend(labelsets)
    tests = yaml.safe_load(RULE_TESTS.read_text())
    used = set()
    for group in tests["tests"]:
        for series in group["input_series"]:
            name, labels = series_labels(series["series"])
            used.add(name)
            assert name in real, f"{name} is in no exporter's output"
            assert SCRAPE_LABELS <= set(labels), f"{series['series']}: no instance and job"
            own = {k: v for k, v in labels.items() if k not in SCRAPE_LABELS}
            shapes = [ls for ls in real[name] if set(ls) == set(own)]
            assert shapes, f"{series['series']}: the exporters write {name} with labels " \
                           f"{sorted({tuple(sorted(ls)) for ls in real[name]})}"
            for key, value in own.items():
                if key not in FREE_LABELS:
                    assert value in {ls[key] for ls in shapes}, f"{series['series']}: {key}={value!r}"
    for name, rule in rule_alerts().items():
        for metric in set(re.findall(r"\b(ocsp_[a-z_]+)\b", rule["expr"])):
            assert metric in real, f"{name} reads {metric}, which no exporter writes"
            assert metric in used, f"{name} reads {metric}, which its tests never give"


def test_readme_lists_every_alert_as_the_rules_have_it():
    rows = re.findall(r"^\| `(Ocsp\w+)` \| .* \|\s*(\w*)\s*\|\s*(\w+)\s*\|$", (ROOT / "README.md").read_text(),
                      re.M)
    assert {name: (for_, severity) for name, for_, severity in rows} == \
        {name: (rule.get("for", ""), rule["labels"]["severity"]) for name, rule in rule_alerts().items()}
