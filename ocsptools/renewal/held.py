"""What a renewal run holds under its lock: the lock itself, the state cache, the status file.

One sequence for the one-shot command, ``--watch`` and ``api.renew``: take the
lock (keyed on the real paths renewed; -n/-q and dry runs take none and never
save), read the state cache only while holding it (a run that waited must
see what the run before it saved), and at the end record what monitoring
reads (``renewstatus``) and save the cache.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Iterable, List, Optional, Sequence

from .. import renewstatus, treelock
from ..statecache import StateCache
from ..treelock import RenewLock


class Held:
    def __init__(self, state_path: str, lock: Optional[RenewLock], cache: StateCache) -> None:
        self.state_path = state_path
        self.lock = lock
        self.cache = cache

    @classmethod
    def take(cls, roots: Sequence[str], certs: Iterable[str], out_dir: Optional[str],
             state_path: str, *, writes: bool, lock_timeout: float, what: str) -> "Held":
        """Lock (if the run WRITES: raises ``LockBusy`` after LOCK_TIMEOUT) and read the state."""
        lock = None
        if writes:
            lock = RenewLock(treelock.for_run(list(roots), certs, out_dir),
                             state_path).acquire(lock_timeout, what=what)
        try:
            return cls(state_path, lock, StateCache(state_path).load())
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    @property
    def status_path(self) -> str:
        return renewstatus.path_for(self.state_path)

    def finish(self, items: Sequence, clock: Callable[[], datetime]) -> List[str]:
        """After a writing run: record ITEMS for monitoring, save the state cache.  Returns the
        warnings (an unreadable status file started afresh, a write that failed)."""
        if self.lock is None:
            return []
        status_file = renewstatus.StatusFile(self.status_path)
        status_file.update(items, clock())
        status_file.save(clock())
        self.cache.save()
        return [w for w in (status_file.warning,) if w]

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> "Held":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
