"""Reading one YAML file (ocsptools/config/yamlfile.py): errors name the file, the line and the key, in
one line; what is not a configuration file at all is refused before its keys mean anything."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ocsptools.config.yamlfile import MAX_CONFIG_SIZE, Document
from ocsptools.errors import ConfigError


def write(p: Path, data) -> str:
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(p)


@pytest.mark.parametrize("text, expect", [
    ("jobs: 1\njobs: 2\n", r"cfg\.yaml:2: key 'jobs' appears twice"),
    ("a:\n  b: 1\n  b: 2\n", r"cfg\.yaml:3: key 'a\.b' appears twice"),
    ("jobs: [1\n", r"cfg\.yaml:2: not valid YAML \("),
    ("- a\n- b\n", r"cfg\.yaml:1: the top level must be a mapping of keys to values"),
    ("just words\n", r"cfg\.yaml:1: the top level must be a mapping"),
    ("? [a, b]\n: 1\n", r"cfg\.yaml:1: a key must be a plain word"),
    ("a: \"x\\0y\"\n", r"cfg\.yaml:1: key 'a': contains a NUL character"),
    ("a:\n  - 1\n  - \"\\0\"\n", r"cfg\.yaml:3: key 'a\[1\]': contains a NUL character"),
    ("a: !!python/name:os.system\n", r"cfg\.yaml:1: not valid YAML \(could not determine a constructor"),
])
def test_errors_name_file_line_and_key(tmp_path, text, expect):
    with pytest.raises(ConfigError) as info:
        Document(write(tmp_path / "cfg.yaml", text))
    assert re.fullmatch(str(tmp_path / "") + "/?" + expect + ".*", str(info.value)), str(info.value)
    assert "\n" not in str(info.value) and info.value.path == str(tmp_path / "cfg.yaml")


@pytest.mark.parametrize("make, expect", [
    (lambda d: str(d / "nope.yaml"), "no such configuration file"),
    (lambda d: str(d), "cannot read: Is a directory"),
    (lambda d: write(d / "big.yaml", b"# " + b"x" * (MAX_CONFIG_SIZE + 10) + b"\n"),
     f"larger than {MAX_CONFIG_SIZE} bytes; not a configuration file"),
    (lambda d: "/dev/zero", f"larger than {MAX_CONFIG_SIZE} bytes; not a configuration file"),
    (lambda d: write(d / "deep.yaml", b"dirs: " + b"[" * 3000 + b"]" * 3000 + b"\n"),
     "nested too deeply to be a configuration file"),
])
def test_what_is_no_configuration_file(tmp_path, make, expect):
    path = make(tmp_path)
    with pytest.raises(ConfigError) as info:
        Document(path)
    assert str(info.value) == f"{path}: {expect}"


def test_an_alias_bomb_is_counted_not_expanded(tmp_path):
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{n}: &{n} [{','.join(['*' + p] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
    with pytest.raises(ConfigError, match=r"cfg\.yaml:\d+: more than 100000 values"):
        Document(write(tmp_path / "cfg.yaml", bomb))


@pytest.mark.parametrize("text, data", [("", {}), ("# nothing\n", {}), ("~\n", {}),
                                        ("a: 1\nb: [x, {c: 2}]\n", {"a": 1, "b": ["x", {"c": 2}]}),
                                        # a tag on a collection is ignored: plain values, nothing run
                                        ("a: !!python/object/apply:os.system ['true']\n", {"a": ["true"]})])
def test_data(tmp_path, text, data):
    assert Document(write(tmp_path / "cfg.yaml", text)).data == data


def test_lines_errors_and_relative_paths(tmp_path):
    doc = Document(write(tmp_path / "cfg.yaml", "jobs: 2\nincludes: conf.d\ncertificates:\n"
                                                "  - cert: a.pem\n    url: x\n"), label="LABEL")
    assert doc.lines[("jobs",)] == 1 and doc.lines[("certificates", 0, "url")] == 5
    assert doc.line(("includes", 0)) == 2                  # one string: the line of its key
    assert doc.line(("nowhere",)) == 1
    assert Document.dotted(("certificates", 0, "url")) == "certificates[0].url"
    assert str(doc.error(("certificates", 0, "url"), "bad")) == "LABEL:5: key 'certificates[0].url': bad"
    assert str(doc.error(("certificates", 0, "nope"), "bad")) == "LABEL:4: key 'certificates[0]': bad"
    assert str(doc.error((), "bad")) == "LABEL:1: bad"
    assert doc.rel("a.pem") == os.path.join(str(tmp_path), "a.pem")
    assert doc.rel("a.pem", cwd=True) == "a.pem" and doc.rel("/abs") == "/abs"
