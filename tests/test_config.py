"""The YAML configuration: errors that name file, key and line; includes; ocspbot's configuration as is."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cmd

from ocsptools import config
from ocsptools.errors import ConfigError
from test_renew import check_good, lines


def write(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, expect", [
    ("layout: auto\njobs: zero\n", r"cfg\.yaml:2: key 'jobs': expected a whole number"),
    ("jobs: 2\nrenew-at: 150\n", r"cfg\.yaml:2: key 'renew-at': expected a percentage between 0 and 100"),
    ("min_validity: 3 fortnights\n", r"cfg\.yaml:1: key 'min_validity': unknown unit"),
    ("\nparalel_threads: 4\n", r"cfg\.yaml:2: key 'paralel_threads': unknown key \(did you mean 'parallel_threads'\?\)"),
    ("certificates:\n  - issuer: /x\n", r"cfg\.yaml:2: key 'certificates\[0\]': a certificate entry needs 'cert'"),
    ("certificates:\n  - cert: a.pem\n    colour: red\n", r"cfg\.yaml:3: key 'certificates\[0\]\.colour': unknown key"),
    ("url: ftp://x\n", r"cfg\.yaml:1: key 'url': ftp://x: not an http"),
    ("jobs: 1\njobs: 2\n", r"cfg\.yaml:2: key 'jobs' appears twice"),
    ("jobs: [1\n", r"cfg\.yaml:2: not valid YAML"),
    ("- a\n- b\n", r"cfg\.yaml:1: the top level must be a mapping"),
    ("domains:\n  example.com:\n    cert: a.pem\n", r"cfg\.yaml:2: key 'domains\.example\.com': domain 'example\.com' has no 'chain' record"),
    ("stop_on_error: yes please\n", r"cfg\.yaml:1: key 'stop_on_error': expected true or false"),
])
def test_errors_name_file_key_and_line(tmp_path, text, expect):
    path = write(tmp_path / "cfg.yaml", text)
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    assert re.search(expect, str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


def test_config_error_exits_2_with_one_line(tmp_path):
    path = write(tmp_path / "cfg.yaml", "jobs: -1\n")
    res = run_cmd("ocsp-renew-dir", "--config", path, "--state", tmp_path / "s.json")
    assert res.returncode == 2
    assert f"{path}:1: key 'jobs': must be at least 1" in assert_one_line_error(res.stderr)


def test_options_keys_paths_relative_to_the_file_and_command_line_wins(tmp_path):
    path = write(tmp_path / "etc" / "ocsptools.yaml", """\
dirs: [certs, /abs/certs]
out-dir: staples
renew_at: 70%
min-validity: 2 hours 5 minutes
jobs: 8
hash: sha256
backup_keep: 3
on_change: systemctl reload nginx
certificates:
  - cert: site.pem
    url: http://127.0.0.1:9/
    renew_at: 20
  - other.pem
""")
    cfg = config.load(str(path))
    etc = str(tmp_path / "etc")
    assert cfg.dirs == [f"{etc}/certs", "/abs/certs"]
    assert cfg.options["out_dir"] == f"{etc}/staples" and cfg.options["renew_at"] == 70.0
    assert cfg.options["min_validity"].total_seconds() == 7500 and cfg.options["jobs"] == 8
    assert cfg.options["hash"] == "sha256" and cfg.options["backup_keep"] == 3
    a, b = cfg.candidates
    assert a.cert == f"{etc}/site.pem" and a.urls == ("http://127.0.0.1:9/",) and a.renew_at == 20.0
    assert b.cert == f"{etc}/other.pem" and b.explicit and b.staple == ""


def test_includes_directories_of_yaml(tmp_path):
    write(tmp_path / "conf.d" / "a.yml", "certificates:\n  - cert: a.pem\n")
    write(tmp_path / "conf.d" / "b.yaml", "dirs: [trees]\n")
    write(tmp_path / "conf.d" / "notes.txt", "ignored")
    main = write(tmp_path / "main.yaml", "includes: [conf.d, missing.d]\n")
    cfg = config.load(str(main))
    assert [c.cert for c in cfg.candidates] == [str(tmp_path / "conf.d" / "a.pem")]
    assert cfg.dirs == [str(tmp_path / "conf.d" / "trees")]
    assert len(cfg.warnings) == 1 and "missing.d does not exist" in cfg.warnings[0]
    write(tmp_path / "conf.d" / "c.yml", "\njobs: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yml:2: key 'jobs': only certificates"):
        config.load(str(main))


def test_native_config_end_to_end(tmp_path, pki, responder):
    """Per-certificate entries: a responder URL for a certificate without one, its own threshold."""
    from test_renew import fresh_leaf
    noaia = fresh_leaf(pki, responder, "cfg", ocsp_urls=[])
    d = tmp_path / "srv"
    d.mkdir()
    shutil.copy(noaia.cert, d / "mail.pem")
    shutil.copy(pki.inter_cert, d / "mail.pem.issuer")
    shutil.copy(pki.leaves["good1"].cert, d / "web.pem")
    shutil.copy(pki.inter_cert, d / "chain.pem")
    cfg = write(tmp_path / "o.yaml", f"""\
certificates:
  - cert: srv/mail.pem
    url: {responder.url}
    staple: out/mail.der
  - cert: srv/web.pem
    renew_at: 0
""")
    (tmp_path / "out").mkdir()
    state = tmp_path / "s.json"
    res = run_cmd("ocsp-renew-dir", "--config", cfg, "--state", state)
    assert res.returncode == 0, res.stderr
    assert sorted((l[0], Path(l[2]).name) for l in lines(res)) == [("renewed", "mail.der"),
                                                                   ("renewed", "web.pem.ocsp")]
    check_good(tmp_path / "out" / "mail.der", d / "mail.pem", pki)
    res = run_cmd("ocsp-renew-dir", "--config", cfg, "--state", state, "-n")
    assert [(l[0], Path(l[1]).name) for l in lines(res)] == [("would-renew", "web.pem")]


def test_responder_url_precedence(tmp_path, pki, responder):
    """-u on the command line beats everything; then a certificate's own url, then the file's
    url, then the certificate's AIA URL.  A dead port (127.0.0.1:9) marks each loser."""
    d = tmp_path / "srv"
    d.mkdir()
    for n in ("good1", "good2"):
        shutil.copy(pki.leaves[n].fullchain, d / f"{n}.pem")
    dead = "http://127.0.0.1:9/"
    state = tmp_path / "s.json"

    def run(cfg_text: str, *args) -> dict:
        for staple in d.glob("*.ocsp"):     # an answer identical to the installed one is silent
            staple.unlink()
        cfg = write(tmp_path / "o.yaml", cfg_text)
        res = run_cmd("ocsp-renew-dir", "--config", cfg, "--state", state, "-B", *args)
        return {Path(l[1]).name: (l[0], l[3]) for l in lines(res)}
    entries = f"certificates:\n  - cert: srv/good1.pem\n    url: {{one}}\n  - srv/good2.pem\n"
    # the certificate's own url beats the file's url; the file's url beats AIA
    got = run(f"url: {dead}\n" + entries.format(one=responder.url))
    assert got["good1.pem"][0] == "renewed" and got["good2.pem"][0] == "failed", got
    assert "127.0.0.1:9" in got["good2.pem"][1]
    # the command line beats both
    got = run(f"url: {dead}\n" + entries.format(one=dead), "-u", responder.url)
    assert {k: v[0] for k, v in got.items()} == {"good1.pem": "renewed", "good2.pem": "renewed"}, got
    # and --renew-at on the command line beats a certificate's own renew-at
    cfg = write(tmp_path / "t.yaml", "certificates:\n  - cert: srv/good1.pem\n    renew-at: 0\n")
    res = run_cmd("ocsp-renew-dir", "--config", cfg, "--state", state, "-n")
    assert [l[0] for l in lines(res)] == ["would-renew"]
    res = run_cmd("ocsp-renew-dir", "--config", cfg, "--state", state, "-n", "--renew-at", "50")
    assert lines(res) == []


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


@pytest.mark.parametrize("text, line", [("includes: missing.d\n", 1),
                                        ("jobs: 2\nincludes:\n  - missing.d\n", 3),
                                        ("jobs: 2\nincludes: [a.d,\n  missing.d]\n", 3)])
def test_a_missing_include_directory_names_its_line(tmp_path, text, line):
    """Issue 15 item 9: the warning said FILE:? for `includes: DIR` written as one string."""
    (tmp_path / "a.d").mkdir()
    main = write(tmp_path / "main.yaml", text)
    cfg = config.load(str(main))
    assert cfg.warnings == [f"{main}:{line}: include directory {tmp_path / 'missing.d'} does not "
                            f"exist; nothing included from it"]
