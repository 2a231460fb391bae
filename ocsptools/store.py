"""Durable, atomic staple files.

``atomic_write`` never leaves a window with no file or half a file: the new
bytes go to a fresh temp file created with O_EXCL in the *same directory*
(a unique name, so concurrent writers cannot clobber each other), are
fsynced, take over the old file's mode and owner, and are renamed over the
target, after which the directory is fsynced.  A crash at any instant
leaves either the old file or the new one.  On any error the temp file is
removed and the target is untouched.

A symlinked target is written through: the link stays, the file it points
to is replaced (so ``live/`` -> ``archive/`` style trees keep working).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Optional

from .errors import StoreError

DEFAULT_MODE = 0o644
TEMP_SUFFIX = ".ocsptools-tmp"


def _resolve(path: str) -> str:
    return os.path.realpath(path) if os.path.islink(path) else path


def atomic_write(path: str, data: bytes, *, mode: Optional[int] = None) -> None:
    """Replace PATH with DATA atomically and durably, keeping its mode and owner."""
    target = _resolve(path)
    directory = os.path.dirname(os.path.abspath(target)) or "."
    base = os.path.basename(target)
    try:
        st: Optional[os.stat_result] = os.stat(target)
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
        raise StoreError(f"{path}: cannot write: {reason}; the previous file is untouched",
                         path=path) from None
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def fsync_dir(directory: str) -> None:
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
    """The bytes of PATH, or None if it does not exist.  Other errors raise StoreError."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_size + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise StoreError(f"{path}: is a directory", path=path) from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror}", path=path) from None
    if len(data) > max_size:
        raise StoreError(f"{path}: larger than {max_size} bytes; not a staple", path=path)
    return data
