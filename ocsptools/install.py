"""Installing a staple: replaced only by a newer verified response, durably, with backups.

The rule (DEVELOPERS.md, principle 1) is decided in one place, ``decide``: a verified response
is written when nothing valid is installed or when it is newer (``life.newer``: thisUpdate, then
producedAt); an equally recent one changes nothing; an older one is refused (StaleResponse).
The writes go through ``store.atomic_write`` only.  ``install`` serves ``ocsp-fetch -o``, the
Python API and the Stapler; ``ocsp-renew-dir`` judges the installed staple from the facts it
established (``decide``) and writes through ``write_newer`` (backups, pruning) and ``rewrite``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Optional, Tuple

from . import life, store, verify
from .errors import ResponseError, StaleResponse, StoreError
from .life import iso
from .openssl import OpenSSL
from .staple import Staple, decode_staple, encode_staple

if TYPE_CHECKING:
    from .fetch import Target

__all__ = ["WRITE", "SAME", "OLDER", "decide", "older_message", "installed_staple",
           "InstallOutcome", "install", "write_newer", "rewrite"]

#: (thisUpdate, producedAt): what ``life.newer`` compares (an installed staple's thisUpdate may be
#: unknown: the facts of an unusable one).
Version = Tuple[datetime, Optional[datetime]]
Installed = Tuple[Optional[datetime], Optional[datetime]]

#: What ``decide`` says about a verified response and the installed staple.
WRITE, SAME, OLDER = "write", "same", "older"


def decide(new: Version, installed: Optional[Installed]) -> str:
    """WRITE, SAME or OLDER: the response of version NEW (thisUpdate, producedAt) against the
    valid staple installed (None: none).  Pure."""
    newer = life.newer(new, installed)
    return WRITE if newer else SAME if newer is None else OLDER


def older_message(new_this_update: Optional[datetime], installed_this_update: Optional[datetime]) -> str:
    return (f"the responder's answer (thisUpdate {iso(new_this_update)}) is older than the "
            f"installed staple (thisUpdate {iso(installed_this_update)})")


def counts_as_installed(staple_life: Optional[life.Life], now: datetime) -> bool:
    """Does a verified staple for the certificate with this life count as the installed one, that
    a new answer must be newer than?  Not when dated in the future: it must not block its own
    replacement.  Pure."""
    return staple_life is not None and not any(p.code == "future"
                                                for p in life.problems(staple_life, now))


def installed_staple(path: str, target: "Target", ossl: OpenSSL, now: datetime) -> Optional[Staple]:
    """The staple at PATH if it is a valid response for TARGET's certificate, else None.

    A staple dated in the future does not count as valid: it must not block
    its own replacement."""
    data = store.read_file(path)
    if not data:
        return None
    try:
        staple = verify.verify(decode_staple(data), target.leaf, target.issuer, ossl, label=path)
    except ResponseError:
        return None
    return staple if counts_as_installed(staple.life, now) else None


@dataclass(frozen=True)
class InstallOutcome:
    changed: bool
    message: str = ""


def install(path: str, staple: Staple, target: "Target", ossl: OpenSSL, now: datetime, *,
            fmt: str = "der", force: bool = False) -> InstallOutcome:
    """Write STAPLE to PATH atomically unless the installed one is as new or newer.

    Raises StaleResponse when the new response is older than the installed
    one (unless FORCE).  An identical or equally recent response changes
    nothing."""
    current = None if force else installed_staple(path, target, ossl, now)
    verdict = decide(staple.version, current.version if current is not None else None)
    if verdict == OLDER:
        assert current is not None
        raise StaleResponse(f"{path}: {older_message(staple.this_update, current.this_update)}; "
                            f"kept the installed one (use --force to replace it anyway)", path=path)
    if verdict == SAME:
        return InstallOutcome(False, "unchanged: the installed staple is as recent")
    store.atomic_write(path, encode_staple(staple.der, fmt))
    return InstallOutcome(True)


def write_newer(path: str, der: bytes, *, backup: bool = False, keep: Optional[int] = None) -> None:
    """Write DER (a response ``decide`` said to WRITE) to PATH as ocsp-renew-dir does: with
    BACKUP, the installed file is first kept as a backup unless its copy exists already, and the
    new one is kept too (the KEEP newest backups stay); the staple's directory is created if
    missing."""
    old = store.read_file(path) if backup else None
    if old:
        backups = store.list_backups(path)
        if not backups or store.read_file(backups[-1]) != old:
            store.backup_copy(path, old, _mtime(path))      # a staple installed without a copy
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):       # e.g. ocspbot's scan_keys subfolders under ocsp_folder
        try:
            os.makedirs(parent, 0o755, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{parent}: cannot create the staple directory: {exc.strerror}",
                             path=path) from None
    store.atomic_write(path, der)
    if backup:
        store.backup_copy(path, der, _mtime(path), overwrite=True)
        if keep is not None:
            store.prune_backups(path, keep)


def rewrite(path: str, der: bytes) -> None:
    """Write the installed response's identical, verified bytes again (``decide`` said SAME, but
    the certificate is newer than its staple file: make expects the staple to be newer)."""
    store.atomic_write(path, der)


def _mtime(path: str) -> datetime:
    return datetime.fromtimestamp(int(os.stat(path).st_mtime), timezone.utc)
