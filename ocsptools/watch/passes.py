"""One pass of the driver over some --watch targets, in a thread the loop can stop or leave behind.

The pass is an ``ocsptools.renewal.Driver`` run: the one-shot run's facts,
decisions, verification and atomic install.  The targets whose instant came
are FORCED (renewed as with ``-B``: the jittered instant stands in for the due
one; the installed file is still replaced only by a verified, newer answer);
the others (new, changed, reloaded) are only re-planned.  With
``--haproxy-socket`` each installed staple is pushed (``haproxy.pusher``).
The thread calls DONE when the run ends (the daemon's wake-up); a failure of
the run as a whole is kept in ``error`` for the loop to report.
"""

from __future__ import annotations

import threading
from typing import Callable, Collection, Optional, Sequence

from .. import haproxy
from ..renewal import Driver
from ..statecache import StateCache
from .options import Clock, Setup
from .schedule import Slot


class Pass:
    """A driver run over SLOTS' candidates under SETUP (``start()``; ``driver.stop()`` to start no
    new fetch; ``thread`` to wait for it)."""

    def __init__(self, setup: Setup, cache: StateCache, clock: Clock, slots: Sequence[Slot],
                 forced: Collection[str], done: Callable[[], None], *,
                 on_push: Optional[Callable[[haproxy.PushResult], None]] = None) -> None:
        self.driver = Driver(setup.opts, setup.ossl, cache, clock)
        self.driver.force = {s.key for s in slots if s.key in forced}
        if setup.sockets:
            self.driver.after_install = haproxy.pusher(setup.sockets, setup.opts.fetch.http.timeout,
                                                       on_push)
        self.cands = [s.cand for s in slots]
        self.done = done
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._work, name="ocsp-renew-pass", daemon=True)

    def start(self) -> "Pass":
        self.thread.start()
        return self

    def _work(self) -> None:
        try:
            self.driver.run(self.cands, forget=False)
        except BaseException as exc:        # reported by the loop, in its thread
            self.error = exc
        finally:
            self.done()

    def running(self) -> bool:
        return self.thread.is_alive()
