"""ocsptools.install, the one place that decides whether a verified response replaces the installed
staple (``decide``, pure) and writes it durably (backups for ocsp-renew-dir).  Responses are made
offline by the test CA, some of them dated with faketime."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta, timezone

import pytest

from hostile_responder import ResponseFactory
from ocsptools import install, store, verify
from ocsptools.codec.pem import split_pem_certs
from ocsptools.errors import StaleResponse
from ocsptools.fetch import Target
from ocsptools.openssl import OpenSSL

T = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
H = timedelta(hours=1)

needs_faketime = pytest.mark.skipif(shutil.which("faketime") is None, reason="needs faketime")


@pytest.mark.parametrize("new, installed, verdict", [
    ((T, T), None, install.WRITE),
    ((T, T), (None, None), install.WRITE),               # facts of an unusable staple
    ((T + H, None), (T, T), install.WRITE),
    ((T, T + H), (T, T), install.WRITE),                 # same thisUpdate, produced later
    ((T, T), (T, T), install.SAME),
    ((T, None), (T, T), install.SAME),                   # producedAt unknown on one side
    ((T, T), (T + H, T), install.OLDER),
    ((T, T), (T, T + H), install.OLDER),
])
def test_decide(new, installed, verdict):
    assert install.decide(new, installed) == verdict


@pytest.fixture(scope="module")
def target(pki):
    ossl = OpenSSL()
    leaf, inter = ossl.parse_certificates([split_pem_certs(p.read_bytes())[0]
                                           for p in (pki.leaves["good1"].cert, pki.inter_cert)])
    return Target(leaf=leaf, issuer=inter, label="good1")


@pytest.fixture(scope="module")
def staples(pki, target, tmp_path_factory):
    """Verified staples for good1 by age: now, an hour old, an hour in the future."""
    f = ResponseFactory(pki, tmp_path_factory.mktemp("responses"))
    cert = pki.leaves["good1"].cert
    made = {"now": f.response([cert])}
    if shutil.which("faketime"):
        made.update(old=f.response([cert], faketime="-1h"), future=f.response([cert], faketime="+1h"))
    return {k: verify.verify(v, target.leaf, target.issuer, OpenSSL()) for k, v in made.items()}


def now() -> datetime:
    return datetime.now(timezone.utc)


@needs_faketime
def test_install_replaces_only_with_newer(tmp_path, target, staples):
    path = str(tmp_path / "s.ocsp")
    ossl = OpenSSL()
    assert install.install(path, staples["old"], target, ossl, now()) == install.InstallOutcome(True)
    assert install.install(path, staples["now"], target, ossl, now()).changed
    same = install.install(path, staples["now"], target, ossl, now())
    assert same == install.InstallOutcome(False, "unchanged: the installed staple is as recent")
    with pytest.raises(StaleResponse) as info:
        install.install(path, staples["old"], target, ossl, now())
    assert str(info.value).startswith(f"{path}: the responder's answer (thisUpdate ")
    assert str(info.value).endswith("; kept the installed one (use --force to replace it anyway)")
    assert open(path, "rb").read() == staples["now"].der
    assert install.install(path, staples["old"], target, ossl, now(), force=True, fmt="pem").changed
    assert open(path, "rb").read().startswith(b"-----BEGIN OCSP RESPONSE-----")


@needs_faketime
def test_installed_staple_counts_only_a_valid_one(tmp_path, target, staples):
    path = tmp_path / "s.ocsp"
    ossl = OpenSSL()
    assert install.installed_staple(str(path), target, ossl, now()) is None           # none
    path.write_bytes(b"garbage")
    assert install.installed_staple(str(path), target, ossl, now()) is None
    path.write_bytes(staples["future"].der)            # must not block its own replacement
    assert install.installed_staple(str(path), target, ossl, now()) is None
    assert install.install(str(path), staples["now"], target, ossl, now()).changed
    assert install.installed_staple(str(path), target, ossl, now()).der == staples["now"].der


def test_write_newer_keeps_backups_and_makes_the_directory(tmp_path):
    path = str(tmp_path / "sub" / "s.ocsp")
    install.write_newer(path, b"one")                   # no backups asked: none made
    assert open(path, "rb").read() == b"one" and store.list_backups(path) == []
    os.utime(path, (1_000_000_000, 1_000_000_000))
    install.write_newer(path, b"two", backup=True)
    backups = store.list_backups(path)
    assert [open(b, "rb").read() for b in backups] == [b"one", b"two"]
    install.write_newer(path, b"three", backup=True, keep=1)     # the same second as "two"
    assert [open(b, "rb").read() for b in store.list_backups(path)] == [b"three"]


def test_rewrite_keeps_the_bytes_and_makes_the_file_newer(tmp_path):
    path = tmp_path / "s.ocsp"
    path.write_bytes(b"der")
    os.utime(path, (1_000_000_000, 1_000_000_000))
    install.rewrite(str(path), b"der")
    assert path.read_bytes() == b"der" and path.stat().st_mtime > 1_000_000_000


def test_older_message():
    assert install.older_message(T, T + H) == ("the responder's answer (thisUpdate "
                                               "2026-12-01T12:00:00Z) is older than the installed "
                                               "staple (thisUpdate 2026-12-01T13:00:00Z)")


@pytest.mark.parametrize("this_update, counts", [
    (T - timedelta(hours=1), True),
    (T + timedelta(minutes=4), True),           # within the 5-minute skew
    (T + timedelta(minutes=6), False),          # beyond it: must not block its own replacement
    (None, False),                              # no usable staple
])
def test_counts_as_installed(this_update, counts):
    from ocsptools.life import Life
    lf = Life(this_update, this_update + timedelta(days=1)) if this_update else None
    assert install.counts_as_installed(lf, T) is counts
