"""The attacks docs/security.md discusses, tried for real: links and special files planted by an
untrusted user in a directory the tools write to, permissions of what the tools create.

"Another user" is uid 65534 (nobody): as root, a symlink is given to it with lchown, exactly what
that user would get by creating the link itself in a directory it may write to.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

import reliability
from conftest import assert_one_line_error, run_cmd

from ocsptools import store
from ocsptools.errors import StoreError

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a link to another uid")


def plant_link(link: Path, target: Path, uid: int = NOBODY) -> None:
    link.symlink_to(target)
    os.lchown(link, uid, uid)


def bundle(pki, name="good1") -> bytes:
    return Path(pki.leaves[name].fullchain).read_bytes()


@pytest.fixture
def victim(tmp_path):
    """A file the attacker wants destroyed (think /etc/shadow): root's, mode 0640."""
    v = tmp_path / "etc" / "shadow"
    v.parent.mkdir()
    v.write_bytes(b"root:$6$secret:19000:0:99999:7:::\n")
    v.chmod(0o640)
    return v


# ---------------------------------------------------------------------------
# atomic_write: a staple path that is a link planted by another user

@needs_root
def test_atomic_write_refuses_a_link_owned_by_another_user(tmp_path, victim):
    d = tmp_path / "staples"
    d.mkdir(mode=0o1777)
    plant_link(d / "site.ocsp", victim)
    with pytest.raises(StoreError, match=r"symbolic link owned by uid 65534"):
        store.atomic_write(str(d / "site.ocsp"), b"0\x82staple")
    assert victim.read_bytes().startswith(b"root:") and stat.S_IMODE(victim.stat().st_mode) == 0o640
    assert sorted(os.listdir(d)) == ["site.ocsp"] and os.listdir(victim.parent) == ["shadow"]
    # a link anywhere in the chain counts: ours -> theirs -> victim
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o1777)
    plant_link(theirs / "hop", victim)
    (d / "chain.ocsp").symlink_to(theirs / "hop")
    with pytest.raises(StoreError, match=r"owned by uid 65534"):
        store.atomic_write(str(d / "chain.ocsp"), b"0\x82staple")
    assert victim.read_bytes().startswith(b"root:")


def test_atomic_write_through_our_own_link_still_works(tmp_path):
    """certbot-style live/ -> archive/ staple links created by root (or by us) are followed."""
    archive, live = tmp_path / "archive", tmp_path / "live"
    archive.mkdir()
    live.mkdir()
    (archive / "staple1.ocsp").write_bytes(b"old")
    (archive / "staple1.ocsp").chmod(0o640)
    (live / "staple.ocsp").symlink_to("../archive/staple1.ocsp")
    store.atomic_write(str(live / "staple.ocsp"), b"new")
    assert (live / "staple.ocsp").is_symlink() and (archive / "staple1.ocsp").read_bytes() == b"new"
    assert stat.S_IMODE((archive / "staple1.ocsp").stat().st_mode) == 0o640     # mode kept
    (live / "dangling.ocsp").symlink_to("../archive/staple2.ocsp")             # not there yet
    store.atomic_write(str(live / "dangling.ocsp"), b"first")
    assert (archive / "staple2.ocsp").read_bytes() == b"first"
    assert stat.S_IMODE((archive / "staple2.ocsp").stat().st_mode) == 0o644    # a new staple: 0644


@needs_root
def test_ocsp_fetch_and_renew_dir_refuse_the_planted_link(tmp_path, victim, pki, responder):
    d = tmp_path / "shared"
    d.mkdir(mode=0o1777)                                # e.g. a staple directory others can write
    (d / "site.pem").write_bytes(bundle(pki))
    plant_link(d / "site.pem.ocsp", victim)
    res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", d)
    (action, _, _, detail), = [l.split("\t") for l in res.stdout.decode().splitlines()]
    assert res.returncode == 1 and action == "failed" and "owned by uid 65534" in detail, detail
    res = run_cmd("ocsp-fetch", "-o", d / "site.pem.ocsp", d / "site.pem")
    line = assert_one_line_error(res.stderr)
    assert res.returncode == 1 and "owned by uid 65534" in line, line
    assert victim.read_bytes().startswith(b"root:") and stat.S_IMODE(victim.stat().st_mode) == 0o640
    assert (d / "site.pem.ocsp").is_symlink()
    reliability.record("security", "staple path is a symlink to /etc/shadow planted by another user "
                       "in a writable staple directory", "ocsp-renew-dir, ocsp-fetch -o",
                       "refused with a clear line; the link target untouched",
                       f"exit 1: {line.split(': ', 2)[-1].replace(str(tmp_path) + '/', '')}; target "
                       f"byte-identical, mode kept", lost=0)


# ---------------------------------------------------------------------------
# the lock and the state cache

@needs_root
def test_lock_file_link_is_not_followed(tmp_path, victim, pki):
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o1777)
    plant_link(state_dir / "s.json.lock", victim)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "site.pem").write_bytes(bundle(pki))
    res = run_cmd("ocsp-renew-dir", "--state", state_dir / "s.json", tree)
    line = assert_one_line_error(res.stderr)
    assert res.returncode == 2 and "s.json.lock" in line and "symbolic link" in line, line
    assert victim.read_bytes().startswith(b"root:")            # not truncated
    assert os.listdir(tree) == ["site.pem"]


def test_lock_file_hard_link_is_not_truncated(tmp_path, pki):
    """A second name for some other file (a hard link) must not be truncated as a lock."""
    other = tmp_path / "precious"
    other.write_bytes(b"precious data\n")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    os.link(other, state_dir / "s.json.lock")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "site.pem").write_bytes(bundle(pki))
    res = run_cmd("ocsp-renew-dir", "--state", state_dir / "s.json", tree)
    line = assert_one_line_error(res.stderr)
    assert res.returncode == 2 and "s.json.lock" in line, line
    assert other.read_bytes() == b"precious data\n"


@needs_root
def test_state_cache_link_is_not_written_through(tmp_path, victim, pki, responder):
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o1777)
    plant_link(state_dir / "s.json", victim)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "site.pem").write_bytes(bundle(pki))
    res = run_cmd("ocsp-renew-dir", "-v", "--state", state_dir / "s.json", tree)
    assert res.returncode == 0, res.stdout + res.stderr      # the cache is only an optimisation
    assert [l.split("\t")[0] for l in res.stdout.decode().splitlines()] == ["renewed"]
    assert "cannot save the state cache" in res.stderr.decode()
    assert victim.read_bytes().startswith(b"root:")


# ---------------------------------------------------------------------------
# special files where a staple or the state should be: never a hang

@pytest.mark.parametrize("where", ["staple", "state"])
def test_a_fifo_never_hangs_a_run(where, tmp_path, pki, responder):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "site.pem").write_bytes(bundle(pki))
    state = tmp_path / "s.json"
    fifo = tree / "site.pem.ocsp" if where == "staple" else state
    os.mkfifo(fifo)
    start = time.monotonic()
    res = run_cmd("ocsp-renew-dir", "--state", state, tree, timeout=30)
    assert time.monotonic() - start < 15
    out = res.stdout.decode()
    if where == "staple":
        (action, _, _, detail), = [l.split("\t") for l in out.splitlines()]
        assert res.returncode == 1 and action == "failed" and "not a regular file" in detail, detail
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)         # left alone
    else:
        assert res.returncode == 0 and out.startswith("renewed\t"), (out, res.stderr)
    reliability.record("security", f"a FIFO where the {where} file should be", "ocsp-renew-dir",
                       "no hang; a clear failure (staple) or the cache ignored (state)",
                       f"exit {res.returncode} in {time.monotonic() - start:.1f} s"
                       + (f"; `failed`: {detail.split('; ')[0].split(': ')[-1]}" if where == "staple"
                          else "; the staple renewed"), lost=0)


def test_store_read_file_refuses_special_files(tmp_path):
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    done = threading.Event()

    def read():
        with pytest.raises(StoreError, match="not a regular file"):
            store.read_file(str(fifo))
        done.set()
    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(5)
    assert done.is_set(), "read_file blocked on a FIFO"
    with pytest.raises(StoreError, match="not a regular file"):
        store.read_file("/dev/zero")


# ---------------------------------------------------------------------------
# what the tools create, and with which permissions

def test_permissions_of_what_is_created(tmp_path, pki, responder):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "site.pem").write_bytes(bundle(pki))
    (tree / "kept.pem").write_bytes(bundle(pki, "good2"))
    (tree / "kept.pem.ocsp").write_bytes(b"")
    (tree / "kept.pem.ocsp").chmod(0o640)
    state = tmp_path / "cache" / "sub" / "s.json"
    old = os.umask(0o022)
    try:
        res = run_cmd("ocsp-renew-dir", "--state", state, tree)
    finally:
        os.umask(old)
    assert res.returncode == 0, res.stdout + res.stderr
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)
    assert mode(tree / "site.pem.ocsp") == 0o644          # servers (other users) must read it
    assert mode(tree / "kept.pem.ocsp") == 0o640          # a replaced staple keeps its mode
    assert mode(state) == 0o600 and mode(str(state) + ".lock") == 0o600
    assert mode(state.parent) == 0o700                    # directories the tool creates for state
    reliability.record("security", "permissions of created files", "ocsp-renew-dir",
                       "new staple 0644, replaced staple keeps its mode, state and lock 0600, "
                       "state directory 0700", "as expected", lost=0)


# ---------------------------------------------------------------------------
# a configuration that runs commands must not be changeable by others

@pytest.mark.parametrize("key", ["on_change: 'touch {marker}'", "openssl: /bin/false",
                                 "openssl_executable: /bin/false"])
def test_config_naming_a_command_must_not_be_world_writable(key, tmp_path, pki):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "site.pem").write_bytes(bundle(pki))
    marker = tmp_path / "ran"
    cfg = tmp_path / "ocsptools.yaml"
    cfg.write_text(key.format(marker=marker) + f"\ndirs: [{tree}]\n")
    cfg.chmod(0o666)
    res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", "-B", "--config", cfg)
    line = assert_one_line_error(res.stderr)
    assert res.returncode == 2 and f"{cfg}:1: key '{key.split(':')[0]}'" in line, line
    assert "writable by everyone" in line and not marker.exists()
    assert os.listdir(tree) == ["site.pem"]
    if os.geteuid() == 0:
        cfg.chmod(0o644)
        os.chown(cfg, NOBODY, NOBODY)
        res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", "--config", cfg)
        assert res.returncode == 2 and "owned by uid 65534" in assert_one_line_error(res.stderr)
    reliability.record("security", "a configuration naming a command (on_change, openssl) that "
                       "others can change", "ocsp-renew-dir --config",
                       "refused before anything runs: exit 2, one line naming file, line and key",
                       f"exit 2: {line.replace(str(tmp_path) + '/', '')}", lost=0)


def test_config_without_commands_may_be_group_writable(tmp_path, pki):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "site.pem").write_bytes(bundle(pki))
    cfg = tmp_path / "ocsptools.yaml"
    cfg.write_text(f"dirs: [{tree}]\non_change: 'true'\n")
    cfg.chmod(0o664)                       # umask 002 with user-private groups
    res = run_cmd("ocsp-renew-dir", "--state", tmp_path / "s.json", "-n", "--config", cfg)
    assert res.returncode == 0 and res.stderr == b"", res.stderr


@needs_root
def test_owner_group_and_mode_survive_a_replace(tmp_path, pki, responder):
    """A staple chowned to the web server's user (here 65534) and mode 0640 keeps both when root
    replaces it (fchown/fchmod on the temp file before the rename)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "site.pem").write_bytes(bundle(pki))
    state = tmp_path / "s.json"
    res = run_cmd("ocsp-renew-dir", "--state", state, tree)
    assert res.returncode == 0 and res.stdout.startswith(b"renewed\t"), res.stdout + res.stderr
    staple = tree / "site.pem.ocsp"
    os.chown(staple, NOBODY, NOBODY)
    staple.chmod(0o640)
    before = staple.read_bytes()
    inode = staple.stat().st_ino
    time.sleep(1.1)                                      # so the next answer is strictly newer
    res = run_cmd("ocsp-renew-dir", "--state", state, "-B", tree)
    assert res.returncode == 0 and res.stdout.startswith(b"renewed\t"), res.stdout + res.stderr
    st = staple.stat()
    assert staple.read_bytes() != before and st.st_ino != inode        # really replaced (renamed)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o640)
    reliability.record("security", "staple owned by another user (uid/gid 65534, mode 0640) replaced "
                       "by a root run", "ocsp-renew-dir -B",
                       "owner, group and mode kept", "replaced (new inode); uid 65534, gid 65534, "
                       "mode 0640 kept", lost=0)
