"""Durable, atomic staple files.

``atomic_write`` never leaves a window with no file or half a file: the new
bytes go to a fresh temp file created with O_EXCL in the *same directory*
(a unique name, so concurrent writers cannot clobber each other), are
fsynced, take over the old file's mode and owner, and are renamed over the
target, after which the directory is fsynced.  A crash at any instant
leaves either the old file or the new one.  On any error the temp file is
removed and the target is untouched.

A symlinked target is written through: the link stays, the file it points
to is replaced (so ``live/`` -> ``archive/`` style trees keep working) --
but only through links owned by this user or root.  In a directory others may
write to, a link they planted (``site.ocsp -> /etc/shadow``) would otherwise
make a root run replace any file; such a link is refused with a StoreError.
(docs/security.md has the whole reasoning.)
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional

from .errors import LockBusy, StoreError

DEFAULT_MODE = 0o644
TEMP_SUFFIX = ".ocsptools-tmp"


MAX_LINKS = 40


def resolve_trusted(path: str) -> str:
    """PATH, or the end of its chain of symlinks, following only links owned by this user or
    root (a link another user planted is refused with StoreError).  Directory components are
    resolved by the kernel: the directories themselves must not be writable by others."""
    current = path
    for _ in range(MAX_LINKS):
        try:
            st = os.lstat(current)
        except OSError:
            return current          # missing (a new file) or unreadable: the caller says so
        if not stat.S_ISLNK(st.st_mode):
            return current
        if st.st_uid not in (0, os.geteuid()):
            raise StoreError(f"{path}: {'is' if current == path else 'leads through'} a symbolic "
                             f"link owned by uid {st.st_uid}, neither this user nor root; refusing "
                             f"to write through it (remove it, and let only trusted users write to "
                             f"{os.path.dirname(os.path.abspath(current))})", path=path)
        current = os.path.join(os.path.dirname(current), os.readlink(current))
    raise StoreError(f"{path}: too many levels of symbolic links", path=path)


def atomic_write(path: str, data: bytes, *, mode: Optional[int] = None) -> None:
    """Replace PATH with DATA atomically and durably, keeping its mode and owner."""
    resolved = resolve_trusted(path)
    directory = os.path.realpath(os.path.dirname(resolved) or ".")
    base = os.path.basename(resolved)
    target = os.path.join(directory, base)
    try:
        st: Optional[os.stat_result] = os.lstat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise StoreError(f"{path}: cannot stat: {exc.strerror}", path=path) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path}: exists and is not a regular file; refusing to replace it", path=path)
    new_mode = stat.S_IMODE(st.st_mode) if st is not None else (DEFAULT_MODE if mode is None else mode)
    tmp = None
    fd = -1
    try:
        for attempt in range(100):
            candidate = os.path.join(directory, f".{base}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}")
            try:
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | getattr(os, "O_CLOEXEC", 0), 0o600)
                tmp = candidate
                break
            except FileExistsError:
                continue
        if tmp is None:
            raise StoreError(f"{path}: cannot create a unique temp file in {directory}", path=path)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if st is not None and (st.st_uid != os.geteuid() or st.st_gid != os.getegid()):
            try:
                os.fchown(fd, st.st_uid, st.st_gid)
            except PermissionError:
                pass        # not root: the file keeps our ownership, as any editor would
        os.fchmod(fd, new_mode)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
        tmp = None
        fsync_dir(directory)
    except StoreError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENOSPC:
            reason = "no space left on device"
        kept = ("the previous file is untouched" if st is not None
                else "nothing was written (there was no file before)")
        raise StoreError(f"{path}: cannot write: {reason}; {kept}", path=path) from None
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


#: A temp file of ours this old was left by a writer that died (SIGKILL, power loss) between
#: creating it and renaming it: a live writer holds one for milliseconds.
STALE_TEMP_AGE = 600
_TEMP_RE = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + r"$")


def clean_stale_temps(directory: str, now: float, *, base: Optional[str] = None,
                      max_age: float = STALE_TEMP_AGE) -> List[str]:
    """Delete ``atomic_write``'s temp files in DIRECTORY that a dead writer left behind.

    Only names of exactly our pattern (for BASE's file only, if given), regular files owned by
    this user, last modified more than MAX_AGE seconds before NOW (epoch seconds) are removed;
    unlink never follows a symlink.  Errors are ignored: this is housekeeping."""
    removed: List[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    prefix = f".{base}." if base is not None else "."
    for name in names:
        if not name.endswith(TEMP_SUFFIX) or not name.startswith(prefix) or not _TEMP_RE.match(name):
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() \
                    or now - st.st_mtime <= max_age:
                continue
            os.unlink(path)
            removed.append(path)
        except OSError:
            continue
    return removed


class _DirSync:
    """The fsync bookkeeping of one directory (guarded by ``_DirSyncs._lock``)."""

    __slots__ = ("requested", "done", "syncing", "cond")

    def __init__(self, lock: threading.Lock) -> None:
        self.requested = 0      # sync() calls so far
        self.done = 0           # calls covered by an fsync that started after they began
        self.syncing = False    # an fsync is running now
        self.cond = threading.Condition(lock)


class _DirSyncs:
    """Group commit of directory fsyncs.

    ``sync(d)`` returns once an fsync of directory D has *started* after the call began, so
    every rename the caller made in D before calling is durable.  Threads that write into the
    same directory at once (``ocsp-renew-dir -j``) share one fsync instead of queueing one
    journal commit each; a lone writer pays exactly one fsync, as before."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dirs: Dict[str, _DirSync] = {}

    def sync(self, directory: str) -> None:
        with self._lock:
            st = self._dirs.get(directory)
            if st is None:
                st = self._dirs[directory] = _DirSync(self._lock)
            st.requested += 1
            mine = st.requested
            while st.done < mine:
                if st.syncing:
                    st.cond.wait()
                    continue
                st.syncing = True
                covered = st.requested
                self._lock.release()
                try:
                    _fsync_dir_now(directory)
                finally:
                    self._lock.acquire()
                    st.syncing = False
                    st.done = max(st.done, covered)
                    st.cond.notify_all()
            if not st.syncing and st.done == st.requested and self._dirs.get(directory) is st:
                del self._dirs[directory]           # idle: nothing to remember


_DIR_SYNCS = _DirSyncs()


def fsync_dir(directory: str) -> None:
    """Make the renames already done in DIRECTORY durable (shared with concurrent writers)."""
    _DIR_SYNCS.sync(directory)


def _fsync_dir_now(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def read_file(path: str, *, max_size: int = 16 * 1024 * 1024) -> Optional[bytes]:
    """The bytes of PATH, or None if it does not exist.  Other errors raise StoreError.

    Only a regular file is read: a FIFO or device planted where a staple should be must
    not block a run (the open does not wait for a writer) nor feed it endless bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror}", path=path) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise StoreError(f"{path}: is a directory", path=path)
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{path}: not a regular file; refusing to read it", path=path)
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            data = fh.read(max_size + 1)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror}", path=path) from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > max_size:
        raise StoreError(f"{path}: larger than {max_size} bytes; not a staple", path=path)
    return data


# --------------------------------------------------------------------------
# Locks and backups (ocsp-renew-dir)
# --------------------------------------------------------------------------



class FileLock:
    """A ``flock`` on LOCK_PATH, held while the object is open: exclusive, or SHARED.

    The exclusive holder writes its pid and start time (and LABEL) into the file, so a second
    run can name it.  The lock dies with the process (no stale lock files)."""

    def __init__(self, path: str, *, shared: bool = False, label: str = "",
                 hint: str = "choose another place with --state",
                 holders: Optional[Callable[[], str]] = None) -> None:
        self.path = path
        self.shared = shared
        self.holders = holders          # who holds it when the file does not say (shared holders)
        self.label = label
        self.hint = hint
        self.fd = -1

    def acquire(self, timeout: float = 0.0, *, what: str = "another run") -> "FileLock":
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                         | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            why = ("is a symbolic link; refusing to follow it" if exc.errno == errno.ELOOP
                   else exc.strerror)
            raise StoreError(f"{self.path}: cannot open the lock file: {why}; {self.hint}",
                             path=self.path) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid != os.geteuid():
            os.close(fd)        # never truncate another file (a hard link) or someone else's
            raise StoreError(f"{self.path}: the lock file is not a private regular file of this "
                             f"user (a hard link, a special file or another owner); remove it or "
                             f"{self.hint}", path=self.path)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _lock_holder(fd) or (self.holders() if self.holders else "")
                    os.close(fd)
                    waited = f" after waiting {timeout:g} s" if timeout > 0 else ""
                    raise LockBusy(f"{self.label or self.path}: {what} is still running "
                                   f"({holder or 'holder unknown'})"
                                   f"{waited}; try again later or raise --lock-timeout",
                                   path=self.path) from None
                time.sleep(0.05)
        if not self.shared:
            os.ftruncate(fd, 0)
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            on = f" on {self.label}" if self.label else ""
            os.write(fd, f"pid {os.getpid()} since {stamp}{on}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd >= 0:
            try:
                if not self.shared:
                    os.ftruncate(self.fd, 0)
            except OSError:
                pass
            os.close(self.fd)           # closing drops the flock
            self.fd = -1

    def __enter__(self) -> "FileLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 1000, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text


BACKUP_RE = re.compile(r"-\d{8}-\d{6}$")


def backup_name(path: str, when: datetime) -> str:
    """``<staple>-YYYYmmdd-HHMMSS`` (UTC)."""
    return f"{path}-{when.astimezone(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def backup_copy(path: str, data: bytes, when: datetime, *, overwrite: bool = False) -> Optional[str]:
    """Keep DATA (a staple's bytes) as ``backup_name(path, when)``, atomically, in PATH's mode.

    Returns the backup's name, or None when a backup of that name exists
    already (it is replaced only with OVERWRITE: a newer staple of the same second)."""
    name = backup_name(path, when)
    if os.path.lexists(name) and not overwrite:
        return None
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = DEFAULT_MODE
    atomic_write(name, data, mode=mode)
    return name


def list_backups(path: str) -> List[str]:
    """PATH's backups, oldest first."""
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = [n for n in names if n.startswith(base + "-") and len(n) == len(base) + 16
             and BACKUP_RE.search(n)]
    return [os.path.join(os.path.dirname(path), n) for n in sorted(found)]


def prune_backups(path: str, keep: int) -> List[str]:
    """Delete all but the KEEP newest backups of PATH; return the deleted names."""
    backups = list_backups(path)
    doomed = backups[:max(0, len(backups) - keep)]
    removed = []
    for name in doomed:
        try:
            os.unlink(name)
            removed.append(name)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"{name}: cannot delete an old backup: {exc.strerror}", path=name) from None
    return removed
