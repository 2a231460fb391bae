"""The native schema (ocsptools/config/schema.py): each kind of value checked and converted directly, the
per-certificate entries, and through config.load the error of each, naming file, key and line."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pytest

from ocsptools.config import schema
from ocsptools.config.yamlfile import Document
from ocsptools.errors import ConfigError
from test_config import assert_load_error, write


@pytest.fixture
def doc(tmp_path) -> Document:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "cfg.yaml"
    path.write_text("k: v\n")
    return Document(str(path))


def etc(doc: Document, name: str) -> str:
    return str(Path(doc.path).parent / name)


@pytest.mark.parametrize("kind, value, want", [
    ("bool", True, True), ("str", "x", "x"), ("strs", "a", ["a"]), ("strs", ["a", "b"], ["a", "b"]),
    ("path", "a", "@a"), ("path", "/abs", "/abs"), ("paths", "a", ["@a"]), ("paths", ["-", "/b"], ["-", "/b"]),
    ("urls", "http://127.0.0.1:9/", ["http://127.0.0.1:9/"]), ("logformat", "json", "json"),
    ("layout", "certbot", "certbot"), ("method", "post", "post"), ("hash", "sha256", "sha256"),
    ("positive", 2, 2.0), ("nonneg", 0, 0.0), ("count", 3, 3), ("count0", 0, 0),
    ("percent", "70%", 70.0), ("percent", 0, 0.0), ("duration", "2 hours 5 minutes", timedelta(seconds=7500)),
    ("duration", 90, timedelta(seconds=90)),
])
def test_values_of_each_kind(doc, kind, value, want):
    if isinstance(want, str) and want.startswith("@"):
        want = etc(doc, want[1:])
    if isinstance(want, list):
        want = [etc(doc, w[1:]) if w.startswith("@") else w for w in want]
    assert schema.checked(doc, ("k",), kind, value) == want


@pytest.mark.parametrize("kind, value, message", [
    ("bool", "yes please", "expected true or false, got 'yes please'"),
    ("str", "", "expected a non-empty string, got ''"),
    ("path", 3, "expected a non-empty string, got 3"),
    ("paths", [1], "expected a path or a list of paths"),
    ("urls", "ftp://x", "ftp://x: not an http:// or https:// URL"),
    ("urls", [], None),
    ("strs", {"a": 1}, "expected a string or a list of strings"),
    ("logformat", "xml", "expected text or json, got 'xml'"),
    ("layout", "nginx", "expected one of auto, certbot, lego, acme.sh, bundle, got 'nginx'"),
    ("method", "put", "expected one of auto, get, post, got 'put'"),
    ("hash", "md5", "expected sha1 or sha256, got 'md5'"),
    ("positive", 0, "must be positive, got 0"),
    ("positive", math.inf, "expected a number of seconds, got inf"),
    ("positive", True, "expected a number of seconds, got True"),
    ("nonneg", -1, "must be zero or more, got -1"),
    ("count", "zero", "expected a whole number, got 'zero'"),
    ("count", 0, "must be at least 1, got 0"),
    ("count0", -1, "must be at least 0, got -1"),
    ("percent", 150, "expected a percentage between 0 and 100, got 150"),
    ("percent", "half", "expected a percentage such as 50 or 50%, got 'half'"),
    ("percent", True, "expected a percentage such as 50 or 50%, got True"),
    ("duration", "3 fortnights", "unknown unit 'fortnights' in duration '3 fortnights'"),
    ("duration", 1e20, "expected a duration between 0 and ten years, got 1e+20"),
    ("duration", False, "expected a duration such as 3d or '2 hours 5 minutes', got False"),
])
def test_values_refused(doc, kind, value, message):
    if message is None:                 # an empty list of URLs is a list of URLs
        assert schema.checked(doc, ("k",), kind, value) == []
        return
    with pytest.raises(ConfigError) as info:
        schema.checked(doc, ("k",), kind, value)
    assert str(info.value) == f"{doc.path}:1: key 'k': {message}"


def test_every_option_has_a_known_kind(doc):
    kinds = {"bool", "str", "path", "paths", "urls", "strs", "logformat", "layout", "method", "hash",
             "positive", "nonneg", "count", "count0", "percent", "duration"}
    assert set(schema.OPTIONS.values()) <= kinds
    assert schema.norm("renew-at") == "renew_at"


def test_certificate_entries(doc):
    a = schema.certificate(doc, ("certificates", 0), {"cert": "site.pem", "url": "http://127.0.0.1:9/",
                                                      "renew-at": 20, "min_validity": "1d",
                                                      "staple": "out/site.der", "name": "web"})
    assert (a.cert, a.staple, a.name, a.urls, a.renew_at, a.min_validity) == (
        etc(doc, "site.pem"), etc(doc, "out/site.der"), "web", ("http://127.0.0.1:9/",), 20.0,
        timedelta(days=1))
    assert a.explicit and a.layout == "config" and a.issuer is None
    assert a.issuer_files == (etc(doc, "site.pem") + ".issuer", etc(doc, "chain.pem"))
    b = schema.certificate(doc, ("certificates", 1), "other.pem")
    assert (b.cert, b.staple, b.name, b.urls) == (etc(doc, "other.pem"), "", "other", ())
    c = schema.certificate(doc, ("certificates", 2), {"cert": "/x/c.pem", "issuer": "/x/i.pem"})
    assert c.issuer == "/x/i.pem" and c.issuer_files == ()


@pytest.mark.parametrize("text, expect", [
    ("layout: auto\njobs: zero\n", r"cfg\.yaml:2: key 'jobs': expected a whole number"),
    ("jobs: 2\nrenew-at: 150\n", r"cfg\.yaml:2: key 'renew-at': expected a percentage between 0 and 100"),
    ("min_validity: 3 fortnights\n", r"cfg\.yaml:1: key 'min_validity': unknown unit"),
    ("certificates:\n  - issuer: /x\n", r"cfg\.yaml:2: key 'certificates\[0\]': a certificate entry needs 'cert'"),
    ("certificates:\n  - cert: a.pem\n    colour: red\n", r"cfg\.yaml:3: key 'certificates\[0\]\.colour': unknown key"),
    ("certificates:\n  - 3\n", r"cfg\.yaml:2: key 'certificates\[0\]': expected a mapping with at least 'cert'"),
    ("certificates: a.pem\n", r"cfg\.yaml:1: key 'certificates': expected a list of entries"),
    ("url: ftp://x\n", r"cfg\.yaml:1: key 'url': ftp://x: not an http"),
    ("stop_on_error: yes please\n", r"cfg\.yaml:1: key 'stop_on_error': expected true or false"),
])
def test_errors_through_load(tmp_path, text, expect):
    assert_load_error(write(tmp_path / "cfg.yaml", text), expect)
