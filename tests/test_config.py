"""Loading the YAML configuration (ocsptools/config/loader.py): both vocabularies in one file, unknown keys,
paths relative to the file, includes, and native files end to end through ocsp-renew-dir (ocspbot's
files: tests/test_config_ocspbot.py; the command line against the file: test_config_settings.py)."""

from __future__ import annotations

import re
import shutil
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


def assert_load_error(path: Path, expect: str) -> None:
    """config.load(PATH) fails with one line matching the regular expression EXPECT."""
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    assert re.search(expect, str(info.value)), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, expect", [
    # each module's own errors are tested beside it (test_config_yamlfile, _schema, _ocspbot):
    # here, that load() reaches each of them, and its own (unknown keys, includes)
    ("jobs: 1\njobs: 2\n", r"cfg\.yaml:2: key 'jobs' appears twice"),
    ("layout: auto\njobs: zero\n", r"cfg\.yaml:2: key 'jobs': expected a whole number"),
    ("domains:\n  example.com:\n    cert: a.pem\n", r"cfg\.yaml:2: key 'domains\.example\.com': domain 'example\.com' has no 'chain' record"),
    ("\nparalel_threads: 4\n", r"cfg\.yaml:2: key 'paralel_threads': unknown key \(did you mean 'parallel_threads'\?\)"),
    ("renew-att: 50\n", r"cfg\.yaml:1: key 'renew-att': unknown key \(did you mean 'renew_at'\?\)"),
    ("colour: red\n", r"cfg\.yaml:1: key 'colour': unknown key$"),
    ("ocsp-folder: x\n", r"cfg\.yaml:1: key 'ocsp-folder': unknown key \(did you mean 'ocsp_folder'\?\)"),
    ("includes: {a: b}\n", r"cfg\.yaml:1: key 'includes': expected a list of directories"),
])
def test_errors_name_file_key_and_line(tmp_path, text, expect):
    assert_load_error(write(tmp_path / "cfg.yaml", text), expect)


def test_config_error_exits_2_with_one_line(tmp_path):
    path = write(tmp_path / "cfg.yaml", "jobs: -1\n")
    res = run_cmd("ocsp-renew-dir", "--config", path, "--state", tmp_path / "s.json")
    assert res.returncode == 2
    assert f"{path}:1: key 'jobs': must be at least 1" in assert_one_line_error(res.stderr)


def test_options_keys_and_paths_relative_to_the_file(tmp_path):
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


def test_ocspbot_keys_in_an_included_file_are_ignored_with_a_warning(tmp_path):
    inc = write(tmp_path / "conf.d" / "a.yml", "minimum_validity: 1h\ncertificates:\n  - cert: a.pem\n")
    main = write(tmp_path / "main.yaml", "includes: [conf.d]\n")
    cfg = config.load(str(main))
    assert cfg.warnings == [f"{inc}:1: key 'minimum_validity' is ignored in an included file (as "
                            f"ocspbot does); set it in {main}"]
    assert cfg.options == {} and [c.cert for c in cfg.candidates] == [str(tmp_path / "conf.d" / "a.pem")]


@pytest.mark.parametrize("ocspbot_file", [False, True])
def test_includes_are_relative_to_the_file_or_for_ocspbot_the_current_directory(tmp_path, monkeypatch,
                                                                              ocspbot_file):
    write(tmp_path / "etc" / "conf.d" / "a.yml", "dirs: [from-etc]\n")
    write(tmp_path / "run" / "conf.d" / "a.yml", "dirs: [from-run]\n")
    main = write(tmp_path / "etc" / "main.yaml",
                 ("ocsp_folder: out\n" if ocspbot_file else "") + "includes: [conf.d]\n")
    monkeypatch.chdir(tmp_path / "run")
    cfg = config.load(str(main))
    assert cfg.ocspbot is ocspbot_file
    where = "run" if ocspbot_file else "etc"
    assert cfg.dirs == [str(tmp_path / where / "conf.d" / f"from-{where}")]
