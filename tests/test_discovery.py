"""Discovery per layout (names and structure only; no file is read)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ocsptools import discovery
from ocsptools.errors import UsageError


def touch(p: Path, text: str = "x") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def names(cands):
    return [(Path(c.cert).name, c.name, c.staple) for c in cands]


def test_certbot_from_the_top_from_live_and_from_one_name(tmp_path):
    for n in ("a.example", "b.example"):
        for f in ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"):
            touch(tmp_path / "live" / n / f)
    touch(tmp_path / "live" / "README")
    for start in (tmp_path, tmp_path / "live"):
        assert discovery.detect_layout(str(start)) == "certbot"
        cands = discovery.discover(str(start))
        assert [c.name for c in cands] == ["a.example", "b.example"]
        assert cands[0].staple == str(tmp_path / "live" / "a.example" / "cert.pem") + ".ocsp"
        assert cands[0].issuer_files[0].endswith("a.example/chain.pem")
    one = discovery.discover(str(tmp_path / "live" / "b.example"))
    assert [c.name for c in one] == ["b.example"]
    out = discovery.discover(str(tmp_path), out_dir="/srv/ocsp")
    assert [c.staple for c in out] == ["/srv/ocsp/a.example.ocsp", "/srv/ocsp/b.example.ocsp"]


def test_lego_skips_issuer_files(tmp_path):
    for n in ("x.example", "y.example"):
        touch(tmp_path / "certificates" / f"{n}.crt")
        touch(tmp_path / "certificates" / f"{n}.issuer.crt")
        touch(tmp_path / "certificates" / f"{n}.key")
        touch(tmp_path / "certificates" / f"{n}.json")
    assert discovery.detect_layout(str(tmp_path)) == "lego"
    cands = discovery.discover(str(tmp_path))
    assert names(cands) == [
        ("x.example.crt", "x.example", str(tmp_path / "certificates" / "x.example.crt.ocsp")),
        ("y.example.crt", "y.example", str(tmp_path / "certificates" / "y.example.crt.ocsp"))]
    assert cands[0].issuer_files == (str(tmp_path / "certificates" / "x.example.issuer.crt"),)
    assert [c.name for c in discovery.discover(str(tmp_path / "certificates"))] == ["x.example", "y.example"]


def test_acme_sh_with_ecc_directories(tmp_path):
    touch(tmp_path / "a.example" / "a.example.cer")
    touch(tmp_path / "a.example" / "ca.cer")
    touch(tmp_path / "a.example" / "fullchain.cer")
    touch(tmp_path / "a.example_ecc" / "a.example.cer")
    touch(tmp_path / "a.example_ecc" / "ca.cer")
    touch(tmp_path / "account.conf")
    assert discovery.detect_layout(str(tmp_path)) == "acme.sh"
    cands = discovery.discover(str(tmp_path), out_dir="/o")
    assert [(c.name, c.staple) for c in cands] == [("a.example", "/o/a.example.ocsp"),
                                                   ("a.example_ecc", "/o/a.example_ecc.ocsp")]
    assert cands[1].issuer_files[0] == str(tmp_path / "a.example_ecc" / "ca.cer")


def test_bundle_flat_recursive_and_single_file(tmp_path):
    touch(tmp_path / "site.pem")
    touch(tmp_path / "other.CRT")
    touch(tmp_path / "key.key")
    touch(tmp_path / "site.pem.ocsp")
    touch(tmp_path / ".hidden.pem")
    touch(tmp_path / "deep" / "inner.cer")
    assert discovery.detect_layout(str(tmp_path)) == "bundle"
    flat = discovery.discover(str(tmp_path))
    assert [Path(c.cert).name for c in flat] == ["other.CRT", "site.pem"]
    assert flat[1].issuer_files == (str(tmp_path / "site.pem.issuer"), str(tmp_path / "chain.pem"))
    deep = discovery.discover(str(tmp_path), recursive=True)
    assert [Path(c.cert).name for c in deep] == ["other.CRT", "site.pem", "inner.cer"]
    single = discovery.discover(str(tmp_path / "site.pem"), "auto")
    assert [c.name for c in single] == ["site"]


def test_forced_layout_mismatch_and_missing_dir_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="not a certbot tree"):
        discovery.discover(str(tmp_path), "certbot")
    with pytest.raises(UsageError, match="no such file"):
        discovery.discover(str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="--layout"):
        discovery.discover(str(tmp_path), "nginx")


def test_read_paths_lines_and_nul():
    assert discovery.read_paths(io.BytesIO(b"/a b.pem\n/c.pem\r\n\n")) == ["/a b.pem", "/c.pem"]
    assert discovery.read_paths(io.BytesIO(b"/x\ny.pem\0/z.pem\0"), nul=True) == ["/x\ny.pem", "/z.pem"]
    cands = discovery.from_paths(["/t/a.pem", "/t/a.pem.ocsp"])
    assert [c.cert for c in cands] == ["/t/a.pem"]
