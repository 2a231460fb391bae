"""The state cache of ocsp-renew-dir: what was established about each file, keyed by its identity.

An entry records, for one (certificate, staple) pair, the identity
``(device, inode, size, mtime_ns)`` of the certificate file, of the file its
issuer came from and of the staple file, together with what loading and
verifying them established: the certificate's facts, where the issuer was
found, the staple's verified facts and the window in which that staple
counts as fresh.  While all three identities are unchanged, a run can
decide without reading the files or running openssl; any change to any of
them invalidates the entry and everything is established afresh.

The cache is an optimisation only: a missing, unreadable, corrupt or
foreign cache file is treated as empty, and deleting it changes no
decision (it may only repeat a "reported once" message such as a stale
staple).  It is written atomically (``store.atomic_write``).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence

from . import store
from .errors import StoreError
from .paths import abspath

VERSION = 1
MAX_SIZE = 256 * 1024 * 1024        # about 500 bytes per certificate: far beyond any real tree


def identity(path: Optional[str]) -> Optional[List[int]]:
    """``[dev, inode, size, mtime_ns]`` of PATH (symlinks followed), or None if it does not exist."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def default_dir(euid: Optional[int] = None) -> str:
    """``/var/cache/ocsptools`` for root, else ``$XDG_CACHE_HOME/ocsptools`` (``~/.cache``)."""
    if (os.geteuid() if euid is None else euid) == 0:
        return "/var/cache/ocsptools"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ocsptools")


def default_path(inputs: Sequence[str]) -> str:
    """One state file per set of inputs (DIRs, config file), so unrelated runs never share one."""
    digest = hashlib.sha256("\0".join(inputs).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(default_dir(), f"renew-dir-{digest}.json")


def to_epoch(dt: Optional[datetime]) -> Optional[int]:
    return None if dt is None else int(dt.timestamp())


def from_epoch(value: Optional[int]) -> Optional[datetime]:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


class StateCache:
    """``key -> entry`` (plain JSON values), loaded once, saved once per run."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = path
        self.entries: Dict[str, dict] = {}
        self.seen: set = set()
        self.dirty = False
        self.warning = ""

    def load(self) -> "StateCache":
        if not self.path:
            return self
        try:
            # a regular file only (a FIFO must not hang the run), through our own links only
            raw = store.read_file(store.resolve_trusted(self.path), max_size=MAX_SIZE)
            if raw is None:
                return self
            data = json.loads(raw)
        except (OSError, ValueError, StoreError) as exc:
            self.warning = f"{self.path}: state cache unreadable ({exc}); starting afresh"
            self.dirty = True
            return self
        if not isinstance(data, dict) or data.get("version") != VERSION \
                or not isinstance(data.get("entries"), dict):
            self.dirty = True
            return self
        self.entries = data["entries"]
        return self

    def get(self, key: str) -> Optional[dict]:
        self.seen.add(key)
        entry = self.entries.get(key)
        return entry if isinstance(entry, dict) else None

    def put(self, key: str, entry: dict) -> None:
        self.seen.add(key)
        self.entries[key] = entry
        self.dirty = True

    def drop(self, key: str) -> None:
        if self.entries.pop(key, None) is not None:
            self.dirty = True

    def forget_unseen(self) -> None:
        """Drop entries for pairs this run did not meet (removed certificates)."""
        for key in [k for k in self.entries if k not in self.seen]:
            del self.entries[key]
            self.dirty = True

    def save(self) -> None:
        """Write the cache if anything changed.  Failing to write it is not an error of the run
        (it only costs speed next time): the reason is kept in ``warning``."""
        if not self.path or not self.dirty:
            return
        data = json.dumps({"version": VERSION, "entries": self.entries},
                          separators=(",", ":"), sort_keys=True).encode()
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o700, exist_ok=True)
            store.atomic_write(self.path, data, mode=0o600)
        except (OSError, StoreError) as exc:
            self.warning = f"{self.path}: cannot save the state cache ({exc}); the next run will be slower"
            return
        self.dirty = False


def pair_key(cert_path: str, staple_path: str) -> str:
    return abs_pair_key(abspath(cert_path), abspath(staple_path))


def abs_pair_key(cert_abs: str, staple_abs: str) -> str:
    """``pair_key`` of paths already made absolute (``paths.abspath``)."""
    return cert_abs + "\n" + staple_abs
