"""store.atomic_write's directory fsyncs: shared by concurrent writers, never skipped.

The directory fsync is what makes a rename durable.  Writers that rename into the same
directory at once (``ocsp-renew-dir -j``) share one fsync (group commit); the property that
must hold is that every rename is followed by an fsync of its directory that *started after
it*, before atomic_write returns.  The fsync itself is real; the test only watches it.
"""

from __future__ import annotations

import os
import threading
import time

from ocsptools import store


def _watch_syncs(monkeypatch, delay: float):
    """Record, for every real directory fsync, the directory listing when it started."""
    seen = []
    real = store._fsync_dir_now

    def watched(directory: str) -> None:
        seen.append((directory, frozenset(os.listdir(directory))))
        time.sleep(delay)               # a slow disk: lets concurrent writers pile up
        real(directory)
    monkeypatch.setattr(store, "_fsync_dir_now", watched)
    return seen


def test_concurrent_writers_share_directory_fsyncs_and_each_rename_is_covered(tmp_path, monkeypatch):
    seen = _watch_syncs(monkeypatch, 0.02)
    names = [f"s{i:02}.ocsp" for i in range(16)]
    returned = {}
    start = threading.Barrier(len(names))

    def write(name: str) -> None:
        start.wait()
        store.atomic_write(str(tmp_path / name), name.encode())
        # when atomic_write returns, an fsync that saw the new name must have started
        returned[name] = [d for d, listing in seen if name in listing]
    threads = [threading.Thread(target=write, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(os.listdir(tmp_path)) == names           # no temp files left
    for name in names:
        assert returned[name], f"{name} was renamed but no directory fsync covered it"
        assert (tmp_path / name).read_bytes() == name.encode()
    assert all(d == str(tmp_path) for d, _ in seen)
    assert len(seen) < len(names), f"{len(seen)} fsyncs for {len(names)} writers: not shared"


def test_a_lone_writer_pays_one_fsync_per_write(tmp_path, monkeypatch):
    seen = _watch_syncs(monkeypatch, 0)
    for i in range(3):
        store.atomic_write(str(tmp_path / "one.ocsp"), b"x" * i)
    assert len(seen) == 3
    assert all("one.ocsp" in listing for _, listing in seen)


def test_writers_in_different_directories_do_not_wait_for_each_other(tmp_path, monkeypatch):
    seen = _watch_syncs(monkeypatch, 0.01)
    dirs = [tmp_path / f"d{i}" for i in range(4)]
    for d in dirs:
        d.mkdir()
    # every directory's fsync waits in the hook until the fsyncs of all the directories are
    # running at once: if one directory's fsync held up another, the barrier times out
    watched = store._fsync_dir_now
    together = threading.Barrier(len(dirs), timeout=10)
    count_lock = threading.Lock()
    running = most = 0

    def overlapping(directory: str) -> None:
        nonlocal running, most
        with count_lock:
            running += 1
            most = max(most, running)
        try:
            together.wait()
            watched(directory)
        finally:
            with count_lock:
                running -= 1
    monkeypatch.setattr(store, "_fsync_dir_now", overlapping)
    errors = []                             # an exception in a thread does not fail the test

    def write(d) -> None:
        try:
            store.atomic_write(str(d / "s.ocsp"), b"x")
        except BaseException as exc:        # reported by the assertions below
            errors.append(exc)
    threads = [threading.Thread(target=write, args=(d,)) for d in dirs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == len(dirs), f"at most {most} of {len(dirs)} directory fsyncs ran at once: {errors}"
    assert errors == []
    assert sorted(d for d, _ in seen) == sorted(str(d) for d in dirs)
    assert store._DIR_SYNCS._dirs == {}        # nothing remembered once idle


def test_a_failed_write_says_what_was_kept(tmp_path, monkeypatch):
    """Issue 15 item 9: "the previous file is untouched" only when there was a previous file."""
    import errno

    import pytest

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full)
    old = tmp_path / "old.ocsp"
    old.write_bytes(b"old")
    for path, said in ((old, "no space left on device; the previous file is untouched"),
                       (tmp_path / "new.ocsp", "no space left on device; nothing was written "
                                               "(there was no file before)")):
        with pytest.raises(store.StoreError) as info:
            store.atomic_write(str(path), b"new")
        assert str(info.value) == f"{path}: cannot write: {said}"
    assert old.read_bytes() == b"old" and not (tmp_path / "new.ocsp").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["old.ocsp"]
