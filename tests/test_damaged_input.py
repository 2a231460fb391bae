"""Inputs in the wrong place or damaged (issue 15, items 9b and 9c): a certificate given to
ocsp-check as a staple is named as such (told apart without openssl), and a PEM file whose
CERTIFICATE block is damaged says which file, which block and what to do, in ocsp-fetch,
ocsp-check --cert and ocsp-renew-dir alike."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import assert_one_line_error, command, run_cmd

from ocsptools.codec.pem import pem_damage
from ocsptools.codec import der
from ocsptools.openssl import OpenSSL

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "openssl"
RESPONSE = (FIXTURES / "good.der").read_bytes()
FIX = "copy the certificate file again from its source (the CA, certbot's live/ directory)"


def der_of(pem: Path) -> bytes:
    return subprocess.run(["openssl", "x509", "-in", str(pem), "-outform", "DER"], check=True,
                          capture_output=True).stdout


# --------------------------------------------------------------------------- pure DER readers

def test_is_certificate(pki):
    leaf, inter = der_of(pki.leaves["good1"].cert), der_of(pki.inter_cert)
    assert der.is_certificate(leaf) and der.is_certificate(inter)
    assert der.is_certificate(leaf + inter)                 # a DER bundle: its first element
    for other in (RESPONSE, b"", b"\x30", b"\x30\x03\x0a\x01\x00", leaf[:-10], b"hello",
                  b"\x30\x80" + leaf[2:]):
        assert not der.is_certificate(other)


def test_certificate_problem(pki):
    leaf = der_of(pki.leaves["good1"].cert)
    assert der.certificate_problem(leaf) is None
    broken_length = leaf[:1] + b"\x83" + leaf[2:]           # 3 length bytes where 2 are
    for data, fragment in ((b"", "empty"), (RESPONSE, "not the structure of an X.509 certificate"),
                           (b"\x04\x01\x00", "tag 0x04, not a SEQUENCE"),
                           (leaf + b"\n", "1 bytes after the certificate"),
                           (leaf[:-1], "runs past"), (broken_length, "")):
        problem = der.certificate_problem(data)
        assert problem is not None and fragment in problem, (data[:4], problem)


# --------------------------------------------------------------------------- 9b: a certificate as STAPLE

CERT_MESSAGE = ("holds a certificate, not an OCSP response: pass it with --cert {arg} and give its "
                "staple file as STAPLE")


@pytest.mark.parametrize("form", ["pem", "fullchain", "der", "base64", "stdin"])
def test_certificate_given_as_staple(pki, tmp_path, form):
    """Told apart without openssl (even --openssl /bin/false gives the same answer)."""
    leaf = pki.leaves["good1"]
    data = {"pem": leaf.cert.read_bytes(), "fullchain": leaf.fullchain.read_bytes(),
            "der": der_of(leaf.cert), "base64": base64.b64encode(der_of(leaf.cert)) + b"\n",
            "stdin": leaf.fullchain.read_bytes()}[form]
    path = tmp_path / f"site.{form}"
    path.write_bytes(data)
    arg, label = ("-", "standard input") if form == "stdin" else (str(path), str(path))
    for openssl in ("openssl", "/bin/false"):
        res = subprocess.run([command("ocsp-check"), "--openssl", openssl, arg],
                             input=data if form == "stdin" else None, capture_output=True, timeout=60)
        assert res.returncode == 2, res.stdout
        text = CERT_MESSAGE.format(arg="FILE" if form == "stdin" else path)
        assert res.stdout.decode().splitlines() == [f"OCSP CRITICAL - {label}: {text} | '{label}'=U"]
        assert res.stderr == b""


def test_a_real_staple_is_still_judged(tmp_path):
    """The recognition is specific: an OCSP response (DER, PEM) goes on to openssl as before."""
    staple = tmp_path / "x.ocsp"
    staple.write_bytes(RESPONSE)
    res = subprocess.run([command("ocsp-check"), str(staple)], capture_output=True, timeout=60)
    assert b"holds a certificate" not in res.stdout and b"nextUpdate" in res.stdout


# --------------------------------------------------------------------------- 9c: damaged PEM blocks

def damaged(pem: bytes, block: int, how: str) -> bytes:
    """PEM with its BLOCK-th (1-based) CERTIFICATE block damaged: one base64 character changed
    so that the DER's structure breaks ("der"), or one that is not base64 at all ("base64")."""
    lines = pem.split(b"\n")
    begins = [i for i, line in enumerate(lines) if line.startswith(b"-----BEGIN CERTIFICATE")]
    first = bytearray(lines[begins[block - 1] + 1])
    first[2] = ord("A") if how == "der" else ord("!")    # 'MII...': the outer length's bits
    lines[begins[block - 1] + 1] = bytes(first)
    return b"\n".join(lines)


def openssl_only_damage(pem: bytes) -> bytes:
    """A base64 character changed in the leaf so that its DER stays well-formed but openssl
    cannot read the certificate (the change lands in a field's content)."""
    lines = pem.split(b"\n")
    end = lines.index(b"-----END CERTIFICATE-----")
    ossl = OpenSSL()
    for i in range(4, len(lines[1])):
        trial = bytearray(lines[1])
        trial[i] = ord("A") if trial[i] != ord("A") else ord("B")
        d = base64.b64decode(b"".join([bytes(trial)] + lines[2:end]))
        if der.certificate_problem(d) is None:
            try:
                ossl.parse_certificates([d])
            except ValueError:
                return b"\n".join([lines[0], bytes(trial)] + lines[2:])
    raise AssertionError("no such position")


@pytest.fixture(scope="module")
def damaged_files(pki, tmp_path_factory):
    """name -> (PEM file, the reason and place its message must give)."""
    d = tmp_path_factory.mktemp("damaged")
    full = pki.leaves["good1"].fullchain.read_bytes()
    second = full.split(b"\n").index(b"-----BEGIN CERTIFICATE-----", 1) + 1
    cases = {
        "base64": (damaged(full, 1, "base64"), "block 1 of 2 at line 1", "its base64 is not valid"),
        "der-leaf": (damaged(full, 1, "der"), "block 1 of 2 at line 1", "its DER is broken: "),
        "der-chain": (damaged(full, 2, "der"), f"block 2 of 2 at line {second}", "its DER is broken: "),
        "leaf-only": (damaged(pki.leaves["good1"].cert.read_bytes(), 1, "der"), "block at line 1",
                      "its DER is broken: "),
        "openssl-only": (openssl_only_damage(full), "block 1 of 2 at line 1",
                         "openssl cannot read it: unsupported"),
    }
    out = {}
    for name, (data, where, why) in cases.items():
        path = d / f"{name}.pem"
        path.write_bytes(data)
        out[name] = (path, where, why)
    return out


CASES = ["base64", "der-leaf", "der-chain", "leaf-only", "openssl-only"]


def expected(path: Path, where: str, why: str) -> str:
    return f"{path}: the CERTIFICATE {where} is damaged ({why}"


def test_pem_damage_is_pure_and_precise(damaged_files, pki):
    assert pem_damage(pki.leaves["good1"].fullchain.read_bytes()) is None
    for name in ("base64", "der-leaf", "der-chain", "leaf-only"):
        path, where, why = damaged_files[name]
        damage = pem_damage(path.read_bytes())
        assert damage is not None and why in damage.reason
        assert f"block {damage.block}" in where or damage.blocks == 1
    assert pem_damage(damaged_files["openssl-only"][0].read_bytes()) is None   # needs openssl


@pytest.mark.parametrize("case", CASES)
def test_fetch_names_the_damaged_block(damaged_files, tmp_path, case):
    path, where, why = damaged_files[case]
    staple = tmp_path / "site.ocsp"
    staple.write_bytes(RESPONSE)
    res = run_cmd("ocsp-fetch", "-o", staple, path)
    assert res.returncode == 2
    line = assert_one_line_error(res.stderr)
    assert line.startswith("ocsp-fetch: " + expected(path, where, why)) and line.endswith(FIX), line
    assert staple.read_bytes() == RESPONSE and sorted(p.name for p in tmp_path.iterdir()) == ["site.ocsp"]


@pytest.mark.parametrize("case", CASES)
def test_check_cert_names_the_damaged_block(damaged_files, tmp_path, case):
    path, where, why = damaged_files[case]
    staple = tmp_path / "site.ocsp"
    staple.write_bytes(RESPONSE)
    res = subprocess.run([command("ocsp-check"), "--cert", str(path), str(staple)],
                         capture_output=True, timeout=60)
    assert res.returncode == 3
    line = assert_one_line_error(res.stderr)
    assert line.startswith("ocsp-check: " + expected(path, where, why)) and line.endswith(FIX), line
    assert res.stdout.decode() == "OCSP UNKNOWN - " + line[len("ocsp-check: "):] + "\n"


@pytest.mark.parametrize("case", ["base64", "der-leaf"])
def test_check_by_convention_says_the_certificate_is_damaged(damaged_files, tmp_path, case):
    """site.pem beside site.pem.ocsp is damaged: the staple is only inspected, and the long output
    says why (the damaged block, not "give -i FILE")."""
    path, where, why = damaged_files[case]
    shutil.copy(path, tmp_path / "site.pem")
    (tmp_path / "site.pem.ocsp").write_bytes(RESPONSE)
    res = subprocess.run([command("ocsp-check"), "site.pem.ocsp"], capture_output=True, timeout=60,
                         cwd=tmp_path)
    lines = res.stdout.decode().splitlines()
    assert "(signature and CertID not verified)" in lines[0]
    note = lines[-1]
    assert note.startswith("signature and CertID NOT verified: site.pem: the CERTIFICATE " + where), note
    assert why in note and "-i FILE" not in note


@pytest.mark.parametrize("case", ["base64", "der-leaf", "der-chain"])
def test_renew_dir_names_the_damaged_block(damaged_files, tmp_path, case):
    path, where, why = damaged_files[case]
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy(path, tree / "site.pem")
    res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", tree)
    assert res.returncode == 1
    fields = res.stdout.decode().rstrip("\n").split("\t")
    assert fields[0] == "failed" and fields[1] == str(tree / "site.pem")
    assert fields[3].startswith(expected(tree / "site.pem", where, why)) and fields[3].endswith(FIX)
    assert sorted(p.name for p in tree.iterdir()) == ["site.pem"]
