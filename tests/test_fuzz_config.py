"""Fuzzing the configuration loader: random YAML documents (built from the real keys, with hostile
values and structures) and random bytes give either a valid configuration, whose every value is in
its domain, or a ConfigError of one line naming the file, and the line and key where there is one;
never another exception.  Through ``ocsp-renew-dir --config``: exit 2 and one line, never a
traceback or an internal error."""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import tempfile
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import reliability
from conftest import assert_one_line_error, run_cmd

from ocsptools import config
from ocsptools.cli import renew_dir
from ocsptools.errors import ConfigError

KEYS = sorted(set(config.OPTIONS) | {k.replace("_", "-") for k in config.OPTIONS}
              | set(config.OCSPBOT_KEYS) | {"certificates", "includes", "domains", "scan_keys",
                                            "colour", "Jobs", "1"})
INNER_KEYS = list(config.CERT_KEYS) + ["chain", "rootchain", "ocsp", "ocsp_responder_uri", "folder",
                                       "recursive", "cert_mask", "chain_mask", "ocsp_mask", "x"]
# path-like strings never contain '/' or '.': the loader scans directories it is given
# (scan_keys, includes), and the fuzzer must not walk the real file system
ALPHABET = "abcxyz019 -_{}%:~\u00e9\t"
INTERESTING = ["3d", "2 hours 5 minutes", "1.5h", "50%", "150", "-1", "0", "1e400", "nan", "inf",
               "http://127.0.0.1:9/", "http://[::1", "http://127.0.0.1:99999/", "ftp://x", "https://",
               "sha256", "md5", "auto", "post", "certbot", "nginx", "{year}{month}{day}", "{year",
               "{year.real}", "{0}", "{domain}.pem", "{domain}{domain}.pem", "a{domain}", "x\0y", "~",
               "~nosuchuser", "-", "", " ", "true", "null", "certificate", "\u202e", "a" * 300]
LOOKS_FINE = (int, float, str, bool, list, dict, timedelta, type(None))

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 25, 10 ** 25),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.text(alphabet=ALPHABET, max_size=12), st.sampled_from(INTERESTING))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(INNER_KEYS), scalars.filter(lambda v: v is not None)),
                    inner, max_size=4)), max_leaves=16)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=7)


def render(doc: dict, how: str, pos: int, junk: str) -> bytes:
    try:
        text = yaml.safe_dump(doc, allow_unicode=True, default_flow_style=bool(pos % 2))
    except yaml.YAMLError:                  # e.g. a key the emitter refuses: the raw repr then
        text = repr(doc)
    if how == "truncate":
        text = text[: pos % (len(text) + 1)]
    elif how == "insert":
        p = pos % (len(text) + 1)
        text = text[:p] + junk + text[p:]
    return text.encode("utf-8", "surrogatepass")


def check_loaded(cfg: config.Config) -> None:
    """Every value of a configuration that loaded is in its domain (nothing downstream can trip)."""
    o = cfg.options
    for key, value in o.items():
        assert isinstance(value, LOOKS_FINE), (key, value)
        if isinstance(value, float):
            assert math.isfinite(value), (key, value)
        if isinstance(value, str):
            assert value and "\0" not in value, (key, value)
    if "timeout" in o:
        assert 0 < o["timeout"] < math.inf
    if "lock_timeout" in o:
        assert 0 <= o["lock_timeout"] < math.inf
    for key in ("jobs", "per_responder"):
        if key in o:
            assert isinstance(o[key], int) and o[key] >= 1
    if "renew_at" in o:
        assert 0 <= o["renew_at"] <= 100
    if "min_validity" in o:
        assert timedelta(0) <= o["min_validity"] <= timedelta(days=3660)
    for c in cfg.candidates:
        for path in (c.cert, c.staple, c.issuer or "", *c.issuer_files):
            assert "\0" not in path
        if c.min_validity is not None:
            assert timedelta(0) <= c.min_validity <= timedelta(days=3660)
        for url in c.urls:
            config_url_ok(url)
    for url in o.get("url", []):
        config_url_ok(url)
    for d in cfg.dirs:
        assert "\0" not in d


def config_url_ok(url: str) -> None:
    from ocsptools import transport
    transport.check_url(url)            # raises UsageError (never ValueError) if it is not usable


def check_error(exc: ConfigError, path: str) -> str:
    msg = str(exc)
    assert "\n" not in msg, msg
    assert msg.startswith(path), msg                        # names the file ...
    if "key '" in msg:                                       # ... and the line of a key
        assert re.match(re.escape(path) + r":\d+: key '", msg), msg
    return msg


def load_bytes(data: bytes):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ocsptools.yaml")
        with open(path, "wb") as fh:
            fh.write(data)
        old = os.getcwd()
        os.chdir(d)                         # ocspbot-style relative paths stay in here
        try:
            try:
                cfg = config.load(path)
            except ConfigError as exc:
                return check_error(exc, path)
            check_loaded(cfg)
            return cfg
        finally:
            os.chdir(old)


BILLION_LAUGHS = ("a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{n}: &{n} [{','.join(['*' + p] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))).encode()
DEEP = b"dirs: " + b"[" * 3000 + b"]" * 3000 + b"\n"
DEEP_MAP = b"".join(b"  " * i + b"k:\n" for i in range(3000))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents, how=st.sampled_from(["asis", "asis", "truncate", "insert"]),
       pos=st.integers(0, 10_000), junk=st.sampled_from(["\t", ":", "- ", "&x ", "*x", "!!python/object:os.system ",
                                                           "\"", "'", "{", "]", "\n  ", "? ", "%YAML 1.1\n---\n",
                                                           "\x00", "\ufeff", "\x85", "---\n"]))
@example(doc={"min_validity": 10 ** 20}, how="asis", pos=0, junk="")
@example(doc={"min_validity": float("nan")}, how="asis", pos=0, junk="")
@example(doc={"timeout": float("nan")}, how="asis", pos=0, junk="")
@example(doc={"timeout": float("inf")}, how="asis", pos=0, junk="")
@example(doc={"lock-timeout": float("inf")}, how="asis", pos=0, junk="")
@example(doc={"url": "http://[::1"}, how="asis", pos=0, junk="")
@example(doc={"url": "http://127.0.0.1:99999/"}, how="asis", pos=0, junk="")
@example(doc={"proxy": "http://[x"}, how="asis", pos=0, junk="")
@example(doc={"certificates": [{"cert": "x\0y"}]}, how="asis", pos=0, junk="")
@example(doc={"dirs": ["x\0y"]}, how="asis", pos=0, junk="")
@example(doc={"scan_keys": [{"cert_mask": "{domain}{domain}.pem"}]}, how="asis", pos=0, junk="")
@example(doc={"output_log": "{year.real}"}, how="asis", pos=0, junk="")
def test_random_yaml_documents(doc, how, pos, junk):
    load_bytes(render(doc, how, pos, junk))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000))
@example(data=BILLION_LAUGHS)
@example(data=DEEP)
@example(data=DEEP_MAP)
@example(data=b"\xff\xfe\x00j\x00o\x00b\x00s\x00")
@example(data=b"jobs: 1\n\xff garbage\n")
@example(data=b"!!binary AAAA\n")
@example(data=b"? [a, b]\n: 1\n")
@example(data=b"jobs: !!float 1\n")
@example(data=b"a: &x 1\nb: *y\n")
@example(data=b"x" * (2 * 1024 * 1024))
def test_random_bytes(data):
    load_bytes(data)


def test_aliases_cannot_blow_up():
    msg = load_bytes(BILLION_LAUGHS)
    assert isinstance(msg, str) and "more than 100000 values" in msg, msg


# ---------------------------------------------------------------------------
# through the command: in-process for speed (the exit status and stderr are what a user sees)

def renew_in_process(args, *, home: str) -> tuple:
    """Run ocsp-renew-dir in this process with HOME=HOME: the documents may name "~" (INTERESTING),
    and -n would walk the real home directory."""
    err, out = io.StringIO(), io.StringIO()
    saved = tempfile.tempdir
    try:
        with mock.patch.dict(os.environ, {"HOME": home}), \
                contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = renew_dir.entry([str(a) for a in args])
    finally:
        tempfile.tempdir = saved            # the command keeps its scratch in RAM: undo that here
    return rc, out.getvalue(), err.getvalue()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents, how=st.sampled_from(["asis", "truncate", "insert"]), pos=st.integers(0, 10_000),
       junk=st.sampled_from(["\t", ":", "- ", "*x", "\x00", "{"]))
@example(doc={"min_validity": float("nan"), "dirs": ["nothere"]}, how="asis", pos=0, junk="")
@example(doc={"timeout": float("inf"), "dirs": ["nothere"]}, how="asis", pos=0, junk="")
@example(doc={"url": "http://[::1", "dirs": ["nothere"]}, how="asis", pos=0, junk="")
@example(doc={"output_log": "{year.real}", "dirs": ["nothere"]}, how="asis", pos=0, junk="")
def test_ocsp_renew_dir_config_never_a_traceback(doc, how, pos, junk):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.yaml")
        with open(path, "wb") as fh:
            fh.write(render(doc, how, pos, junk))
        old = os.getcwd()
        os.chdir(d)
        try:
            rc, out, err = renew_in_process(["-n", "--state", os.path.join(d, "s.json"),
                                             "--config", path], home=d)
        finally:
            os.chdir(old)
    assert "Traceback" not in err and "internal error" not in err, err
    assert rc in (0, 1, 2), (rc, err)
    if rc == 2:
        assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize("name, data", [
    ("billion-laughs", BILLION_LAUGHS), ("deep-nesting", DEEP), ("not-utf8", b"jobs: 1\n\xff\n"),
    ("nan-duration", b"min_validity: .nan\ndirs: [x]\n"), ("inf-timeout", b"timeout: .inf\ndirs: [x]\n"),
    ("bad-ipv6-url", b"url: 'http://[::1'\ndirs: [x]\n"),
    ("bad-log-placeholder", b"output_log: '{year.real}.log'\ndirs: [x]\n"),
    ("nul-in-path", b"certificates:\n  - cert: \"a\\0b.pem\"\n"),
    ("python-tag", b"jobs: !!python/object/apply:os.system ['true']\n"),
])
def test_console_script_exit_2_one_line(name, data, tmp_path):
    """The same through the installed command, in a real process (the alias bomb included)."""
    cfg = tmp_path / "ocsptools.yaml"
    cfg.write_bytes(data)
    res = run_cmd("ocsp-renew-dir", "--config", cfg, "--state", tmp_path / "s.json", timeout=30,
                  cwd=tmp_path, env={"HOME": str(tmp_path)})
    line = assert_one_line_error(res.stderr)
    assert res.returncode == 2, line
    assert line.startswith(f"ocsp-renew-dir: {cfg}"), line
    assert "internal error" not in line
    reliability.record("fuzzing", f"config: {name}", "ocsp-renew-dir --config",
                       "exit 2, one line naming the file (and line/key)",
                       f"exit 2: {line.replace(str(tmp_path) + '/', '')}", lost=0)



def test_tilde_in_a_fuzzed_document_stays_in_the_temp_home(pki, tmp_path):
    """"~" is among the INTERESTING values: renew_in_process points HOME at a temp directory, so
    -n walks that and never the real home directory."""
    (tmp_path / "site.pem").write_bytes(open(pki.leaves["good1"].fullchain, "rb").read())
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dirs: ['~']\n")
    rc, out, err = renew_in_process(["-n", "--state", tmp_path / "s.json", "--config", cfg], home=str(tmp_path))
    assert rc == 0 and out.split("\t")[:2] == ["would-renew", str(tmp_path / "site.pem")], (out, err)
    assert os.environ.get("HOME") != str(tmp_path)
