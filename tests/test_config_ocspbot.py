"""ocspbot's configuration as is (ocsptools/config/ocspbot.py): its option keys translated, its domains
and scan_keys, its log names, directly and through config.load; then ocspbot's README example and its
other features end to end through ocsp-renew-dir."""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conftest import run_cmd
from ocsptools import config
from ocsptools.config import ocspbot
from ocsptools.config.yamlfile import Document
from ocsptools.errors import ConfigError
from test_config import assert_load_error, write
from test_renew import check_good, lines


@pytest.fixture
def doc(tmp_path) -> Document:
    """A document that holds every ocspbot option key (the values are not used: each test gives its own)."""
    return Document(str(write(tmp_path / "ocspbot.yaml", "".join(f"{k}: x\n" for k in ocspbot.OPTION_KEYS))))


@pytest.mark.parametrize("key, value, want", [
    ("ocsp_folder", "~/ocsp", {"ocsp_folder": os.path.expanduser("~/ocsp")}),
    ("minimum_validity", "3d", {"min_validity": timedelta(days=3)}),
    ("minimum_validity", None, {}),
    ("minimum_validity", "", {}),
    ("minimum_validity_percentage", 42.8, {"renew_at": 100.0 - 42.8}),
    ("minimum_validity_percentage", None, {}),
    ("parallel_threads", 3, {"jobs": 3}),
    ("make_backups", True, {"backup": True}),
    ("openssl_executable", "/usr/bin/openssl", {"openssl": "/usr/bin/openssl"}),
    ("output_log", "out-{year}.log", {"output_log": "out-{year}.log"}),
    ("error_log", "err.log", {"error_log": "err.log"}),
])
def test_translate(doc, key, value, want):
    assert ocspbot.translate(doc, key, value) == want


@pytest.mark.parametrize("key, value, message", [
    ("ocsp_folder", 3, "expected a directory path, got 3"),
    ("minimum_validity_percentage", 120, "expected a percentage between 0 and 100, got 120"),
    ("parallel_threads", 0, "must be at least 1, got 0"),
    ("make_backups", "yes", "expected true or false, got 'yes'"),
    ("output_log", "{year.real}", "log file name '{year.real}': unknown placeholder"),
    ("error_log", "{hostname}.log", "log file name '{hostname}.log': unknown placeholder 'hostname'"),
])
def test_translate_refuses(doc, key, value, message):
    with pytest.raises(ConfigError) as info:
        ocspbot.translate(doc, key, value)
    line = ocspbot.OPTION_KEYS.index(key) + 1
    assert str(info.value).startswith(f"{doc.path}:{line}: key '{key}': {message}"), str(info.value)


def test_the_key_tables():
    assert set(ocspbot.OPTION_KEYS) | {"domains", "scan_keys"} == set(ocspbot.OCSPBOT_KEYS)
    assert "stop_on_error" in ocspbot.INCLUDE_IGNORED and "domains" not in ocspbot.INCLUDE_IGNORED


@pytest.mark.parametrize("template, name", [
    ("example-{year}{month}{day}-{hour}{minute}{second}.log", "example-20260102-030405.log"),
    ("plain.log", "plain.log"),
])
def test_log_name_is_utc_of_the_instant_given(template, name):
    assert ocspbot.log_name(template, datetime(2026, 1, 2, 3, 4, 5)) == name


@pytest.mark.parametrize("text, expect", [
    ("domains:\n  example.com:\n    cert: a.pem\n",
     r"ocspbot\.yaml:2: key 'domains\.example\.com': domain 'example\.com' has no 'chain' record"),
    ("domains:\n  a:\n    cert: a\n    chain: b\n    rootchain: c\n    ocsp: d\n    key: e\n",
     r"ocspbot\.yaml:7: key 'domains\.a\.key': unknown key in an ocspbot domain"),
    ("domains: [a]\n", r"ocspbot\.yaml:1: key 'domains': expected a mapping of domain names"),
    ("scan_keys:\n  - folder: nowhere\n", r"ocspbot\.yaml:2: key 'scan_keys\[0\]\.folder': nowhere: no such directory"),
    ("scan_keys:\n  - cert_mask: a.pem\n", r"ocspbot\.yaml:2: key 'scan_keys\[0\]\.cert_mask': a mask is a file name containing \{domain\}"),
    ("scan_keys:\n  - mask: x\n", r"ocspbot\.yaml:2: key 'scan_keys\[0\]\.mask': unknown key in scan_keys"),
    ("output_log: '{nope}'\n", r"ocspbot\.yaml:1: key 'output_log': log file name"),
])
def test_errors_through_load(tmp_path, text, expect):
    assert_load_error(write(tmp_path / "ocspbot.yaml", text), expect)


def test_domains_are_relative_to_the_current_directory(tmp_path):
    path = write(tmp_path / "etc" / "ocspbot.yaml", "ocsp_folder: /srv/ocsp\ndomains:\n  a.example:\n"
                 "    cert: tls/a.pem\n    chain: tls/a-chain.pem\n    rootchain: tls/a-root.pem\n"
                 "    ocsp: a.ocsp-resp\n    ocsp_responder_uri: certificate\n")
    cfg = config.load(str(path))
    (c,) = cfg.candidates
    assert cfg.ocspbot and (c.cert, c.issuer, c.staple, c.name, c.urls, c.layout) == (
        "tls/a.pem", "tls/a-chain.pem", "/srv/ocsp/a.ocsp-resp", "a.example", (), "ocspbot")


def test_a_mask_may_repeat_its_placeholder(tmp_path):
    """ocspbot fills every {domain} of a mask; matching must require the same name each time."""
    for name in ("ab.pem", "abab.pem", "abab-chain.pem", "abab-rootchain.pem", "abac.pem"):
        (tmp_path / name).write_text("x")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"ocsp_folder: {tmp_path}\nscan_keys:\n  - folder: {tmp_path}\n"
                   "    cert_mask: '{domain}{domain}.pem'\n    chain_mask: '{domain}{domain}-chain.pem'\n"
                   "    rootchain_mask: '{domain}{domain}-rootchain.pem'\n")
    cands = config.load(str(cfg)).candidates
    assert [(c.name, os.path.basename(c.cert)) for c in cands] == [("ab", "abab.pem")]


# --------------------------------------------------------------------------- end to end

OCSPBOT_README_EXAMPLE = """\
---
openssl_executable: openssl

minimum_validity: 3d
minimum_validity_percentage: 42.8

ocsp_folder: /var/www/ocsp/responses

parallel_threads: 1

output_log: /var/www/ocsp/logs/example-{year}{month}{day}-{hour}{minute}{second}.log

make_backups: True

domains:
  example.com:
    cert: /var/www/tls/certs/example.com.pem
    chain: /var/www/tls/certs/example.com-chain.pem
    rootchain: /var/www/tls/certs/example.com-rootchain.pem
    ocsp: example.com.ocsp-resp
  example.org:
    cert: /var/www/tls/certs/example.org.pem
    chain: /var/www/tls/certs/example.org-chain.pem
    rootchain: /var/www/tls/certs/example.org-rootchain.pem
    ocsp: example.org.ocsp-resp
"""


def test_ocspbot_readme_example_produces_the_documented_files(tmp_path, pki, responder):
    """ocspbot's README: after some hourly runs /var/www/ocsp/responses holds
    example.com.ocsp-resp, example.com.ocsp-resp-YYYYmmdd-HHMMSS..., and the same for example.org;
    the newest backup is the current response."""
    www = tmp_path / "var" / "www"
    certs = www / "tls" / "certs"
    certs.mkdir(parents=True)
    (www / "ocsp" / "responses").mkdir(parents=True)
    (www / "ocsp" / "logs").mkdir(parents=True)
    inter, root = Path(pki.inter_cert).read_text(), Path(pki.root_cert).read_text()
    for domain, leaf in (("example.com", "good1"), ("example.org", "good2")):
        shutil.copy(pki.leaves[leaf].cert, certs / f"{domain}.pem")
        (certs / f"{domain}-chain.pem").write_text(inter)
        (certs / f"{domain}-rootchain.pem").write_text(inter + root)
    cfg = write(tmp_path / "ocspbot.yaml", OCSPBOT_README_EXAMPLE.replace("/var/www", str(www)))
    state = tmp_path / "s.json"
    for run in range(2):
        res = run_cmd("ocsp-renew-dir", "--config", cfg, "--state", state)
        assert res.returncode == 0, res.stderr
        assert res.stdout == b"" and res.stderr == b""      # output goes to output_log
        time.sleep(1.1)
    responses = www / "ocsp" / "responses"
    files = sorted(p.name for p in responses.iterdir())
    pattern = re.compile(r"^example\.(com|org)\.ocsp-resp(-\d{8}-\d{6})?$")
    assert all(pattern.match(f) for f in files), files
    for domain, leaf in (("example.com", "good1"), ("example.org", "good2")):
        current = responses / f"{domain}.ocsp-resp"
        check_good(current, certs / f"{domain}.pem", pki)
        backups = sorted(responses.glob(f"{domain}.ocsp-resp-*"))
        # responses live 1 day here, less than minimum_validity 3d: every run renews (as ocspbot)
        assert len(backups) == 2
        assert backups[-1].read_bytes() == current.read_bytes()
    logs = list((www / "ocsp" / "logs").iterdir())
    assert logs and all(re.match(r"example-\d{8}-\d{6}\.log$", p.name) for p in logs)
    text = "".join(p.read_text() for p in logs)
    assert text.count("renewed\t") == 4


def test_ocspbot_scan_keys_and_includes_from_elsewhere(tmp_path, pki, responder):
    tree = tmp_path / "tls"
    inter, root = Path(pki.inter_cert).read_text(), Path(pki.root_cert).read_text()
    sub = tree / "shop"
    sub.mkdir(parents=True)
    shutil.copy(pki.leaves["good2"].cert, sub / "shop.example.pem")
    (sub / "shop.example-chain.pem").write_text(inter)
    (sub / "shop.example-rootchain.pem").write_text(inter + root)
    (sub / "shop.example.pem.bak").write_text("not matched: masks match whole names")
    shutil.copy(pki.leaves["good1"].cert, tree / "lonely.pem")         # no chain: not a triple
    write(tmp_path / "inc" / "extra.yml", f"""\
domains:
  extra.example:
    cert: {pki.leaves['good1'].cert}
    chain: {pki.inter_cert}
    rootchain: {pki.root_cert}
    ocsp: extra.ocsp-resp
    ocsp_responder_uri: {responder.url}
""")
    (tmp_path / "out").mkdir()
    cfg = write(tmp_path / "ocspbot.yaml", f"""\
ocsp_folder: out
minimum_validity_percentage: 50
scan_keys:
  - folder: tls
includes:
  - {tmp_path / 'inc'}
""")
    # ocspbot paths are relative to the current directory (the include is absolute: ocspbot
    # looked for its files in the current directory instead, a bug not kept)
    res = run_cmd("ocsp-renew-dir", "--config", cfg, "--state", tmp_path / "s.json", cwd=tmp_path)
    assert res.returncode == 0, res.stdout.decode()
    got = sorted(l[2] for l in lines(res))
    assert got == ["out/extra.ocsp-resp", "out/shop/shop.example.ocsp-resp"]
    assert (tmp_path / "out" / "shop" / "shop.example.ocsp-resp").stat().st_size > 0


def test_ocspbot_config_end_to_end(tmp_path, pki, responder):
    """error_log, stop_on_error, parallel_threads > 1, custom masks, recursive: false, and a
    relative include directory (from the current directory, as ocspbot lists it) whose file
    carries an ocspbot option key (ignored by ocspbot: a warning here, in error_log)."""
    run_dir, etc = tmp_path / "run", tmp_path / "etc"
    tls = run_dir / "tls"
    (tls / "deeper").mkdir(parents=True)
    etc.mkdir()
    inter, root = Path(pki.inter_cert).read_text(), Path(pki.root_cert).read_text()
    for d, domain, leaf in ((tls, "a.example", "good1"), (tls, "b.example", "good2"),
                            (tls / "deeper", "c.example", "good1")):
        shutil.copy(pki.leaves[leaf].cert, d / f"{domain}.crt")
        (d / f"{domain}.issuer").write_text(inter)
        (d / f"{domain}.root").write_text(inter + root)
    (tls / "x.example.pem").write_text("default masks are not used")
    write(run_dir / "conf.d" / "more.yml", f"""\
minimum_validity: 1h
domains:
  broken.example:
    cert: tls/broken.pem
    chain: tls/a.example.issuer
    rootchain: tls/a.example.root
    ocsp: broken.ocsp-resp
  d.example:
    cert: {pki.leaves['good2'].cert}
    chain: {pki.inter_cert}
    rootchain: {pki.root_cert}
    ocsp: d.ocsp-resp
    ocsp_responder_uri: {responder.url}
""")
    (tls / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    (run_dir / "out").mkdir()
    cfg = write(etc / "ocspbot.yaml", """\
ocsp_folder: out
minimum_validity: 3d
parallel_threads: 3
stop_on_error: true
error_log: logs/errors-{year}{month}{day}.log
scan_keys:
  - folder: tls
    recursive: false
    cert_mask: "{domain}.crt"
    chain_mask: "{domain}.issuer"
    rootchain_mask: "{domain}.root"
    ocsp_mask: "{domain}.der"
includes:
  - conf.d
""")
    (run_dir / "logs").mkdir()
    state = tmp_path / "s.json"

    def run(*args):
        return run_cmd("ocsp-renew-dir", "--config", cfg, "--state", state, *args, cwd=run_dir)
    # stop_on_error: the certificate that cannot be loaded fails before any fetch starts
    res = run()
    assert res.returncode == 1 and res.stderr == b"", res.stderr
    assert [(l[0], l[2]) for l in lines(res)] == [("failed", "out/broken.ocsp-resp")], lines(res)
    assert sorted(p.name for p in (run_dir / "out").iterdir()) == []
    (log,) = (run_dir / "logs").iterdir()
    assert re.fullmatch(r"errors-\d{8}\.log", log.name)
    warning = log.read_text()
    assert "more.yml:1: key 'minimum_validity' is ignored in an included file" in warning, warning
    # -k on the command line: the others are renewed, three at a time, staples where ocspbot
    # put them (below ocsp_folder, the path below the folder, the ocsp mask); not the deeper one
    res = run("-k")
    assert res.returncode == 1
    got = sorted((l[0], l[2]) for l in lines(res))
    assert got == [("failed", "out/broken.ocsp-resp"), ("renewed", "out/a.example.der"),
                   ("renewed", "out/b.example.der"), ("renewed", "out/d.ocsp-resp")], got
    check_good(run_dir / "out" / "a.example.der", tls / "a.example.crt", pki)
    check_good(run_dir / "out" / "d.ocsp-resp", Path(pki.leaves["good2"].cert), pki)
    # minimum_validity 3d of the main file stands (the include's 1h is ignored): 1-day
    # responses are due at once
    res = run("-n", "-k")
    assert sorted(l[0] for l in lines(res) if l[2] != "out/broken.ocsp-resp") == ["would-renew"] * 3
