"""The files openssl reads and writes: private scratch directories, the registry of a batch's inputs.

openssl takes certificates and responses as files.  They live in a ``Scratch`` directory (mode
0700, named ``ocsptools-<pid>-<random>`` so that ``clean_stale_scratch`` can tell a killed run's
leftovers from a live run's).  ``InputFiles`` is the registry one batch of openssl calls shares:
each certificate is written once as PEM (keyed by its DER), whatever the number of calls that
name it; responses and openssl's outputs come and go in the same directory, which is created on
first use only (a run that needs no openssl creates nothing) and removed when the batch ends.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import stat
import tempfile
import threading
from typing import Dict, List, Optional

from ..staple import Certificate

__all__ = ["SCRATCH_PREFIX", "STALE_SCRATCH_AGE", "Scratch", "InputFiles", "clean_stale_scratch",
           "read_if_exists"]

SCRATCH_PREFIX = "ocsptools-"
#: A scratch directory of a dead process this old was left by a run that was killed (SIGKILL,
#: OOM) before it could remove it.
STALE_SCRATCH_AGE = 600


class Scratch:
    """A private temp directory for the files openssl reads (mode 0700, removed on exit).

    Its name carries the pid (``ocsptools-<pid>-<random>``) so that ``clean_stale_scratch``
    can tell a killed run's leftovers from a live run's directory."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
        self.dir = self._tmp.name
        self._n = itertools.count(1)        # next() is atomic: threads may share one Scratch

    def path(self, name: str) -> str:
        """A fresh name in the directory (nothing is created: for openssl to write into)."""
        return os.path.join(self.dir, f"{next(self._n)}-{name}")

    def file(self, data: bytes, name: str = "f") -> str:
        path = self.path(name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return path

    def remove(self, path: str) -> None:
        """Delete one file of this scratch directory now (a long run keeps it small)."""
        try:
            os.unlink(path)
        except OSError:
            pass

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> "Scratch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InputFiles:
    """openssl's files for one batch of calls (any thread): certificates written once as PEM
    files, responses and outputs written to (and removed from) one scratch directory."""

    def __init__(self) -> None:
        self._scratch: Optional[Scratch] = None
        self._pem: Dict[bytes, str] = {}
        self._lock = threading.Lock()

    @property
    def scratch(self) -> Scratch:
        """The directory, created on first use."""
        if self._scratch is None:
            with self._lock:
                if self._scratch is None:
                    self._scratch = Scratch()
        return self._scratch

    def pem(self, cert: Certificate) -> str:
        """A file holding CERT as PEM, written once per batch."""
        path = self._pem.get(cert.der)
        if path is None:
            scratch = self.scratch
            with self._lock:
                path = self._pem.get(cert.der)
                if path is None:
                    path = self._pem[cert.der] = scratch.file(cert.pem.encode(), "cert.pem")
        return path

    def data(self, data: bytes, name: str) -> str:
        """A file holding DATA (a response) until ``remove``."""
        return self.scratch.file(data, name)

    def output(self, name: str) -> str:
        """A fresh name for openssl to write into (``-reqout``, ``-msgfile``); ``remove`` it after."""
        return self.scratch.path(name)

    def remove(self, path: str) -> None:
        self.scratch.remove(path)

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None
        self._pem.clear()


def read_if_exists(path: str) -> bytes:
    """The bytes openssl wrote to PATH, or b"" when it wrote nothing."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return b""


def clean_stale_scratch(now: float, *, directory: Optional[str] = None,
                        max_age: float = STALE_SCRATCH_AGE) -> List[str]:
    """Remove scratch directories that killed runs left in DIRECTORY (default: the temp dir).

    Only ``ocsptools-<pid>-*`` directories (not symlinks) owned by this user, untouched for
    MAX_AGE seconds before NOW (epoch seconds), whose pid is not a running process, are
    removed (``shutil.rmtree`` never follows symlinks inside).  Errors are ignored."""
    base = directory or tempfile.gettempdir()
    removed: List[str] = []
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    for name in names:
        m = re.match(re.escape(SCRATCH_PREFIX) + r"(\d+)-[A-Za-z0-9_]+$", name)
        if not m:
            continue
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or now - st.st_mtime <= max_age:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue                    # that process is alive (or not ours to signal)
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, ValueError):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
