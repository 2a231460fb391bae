"""In-process OCSP stapling for pyOpenSSL servers: ``Stapler``.

A ``Stapler`` keeps one verified staple per certificate in memory and hands
it to pyOpenSSL from ``Context.set_ocsp_server_callback``::

    stapler = Stapler("/var/cache/myserver/staples")
    stapler.add("/etc/ssl/example/fullchain.pem")    # leaf first, then its chain
    stapler.attach(ctx)                              # before ctx makes connections
    stapler.start()                                  # waits for Must-Staple staples
    ...
    stapler.close()

What it guarantees:

* the OCSP callback answers from memory (no file, network or openssl on the
  handshake path) with the staple of the certificate in use (found by its
  DER, so SNI servers with several contexts work), and never raises into the
  handshake: anything unexpected is logged and answered with no staple;
* only a staple that fully verified for that certificate (``verify.verify``:
  signature, responder authorisation, CertID), says ``good`` and is valid at
  this instant (``ocsptools.life``: never past nextUpdate, the responder
  certificate's or the certificate's notAfter) is ever served;
* a background thread refreshes each staple before half of its effective life
  [thisUpdate, min(nextUpdate, responder and certificate notAfter)] has elapsed (a little
  earlier, at random, so several workers do not ask at once), and on failure
  retries with exponential backoff (1 minute doubling to 1 hour, never past
  the current staple's expiry) while it keeps serving the valid staple;
* with a directory, staples are persisted (``store.atomic_write`` through
  ``install.install``: replaced only by a newer verified response) and loaded
  again at ``add()``, so a restarted server staples from its first handshake
  even when the responder is down; several processes may share a directory
  (a newer staple written by one is adopted by the others);
* ``prestaple()`` / ``start(wait=True)`` block until every Must-Staple
  certificate has a valid staple, or raise a clear ``OcspToolsError``: a
  Must-Staple certificate is never knowingly served unstapled;
* a certificate past its notAfter is dropped (not served, not refreshed, its
  persisted staple removed);
* a certificate without an OCSP URL is "not applicable": kept quietly,
  never fetched.

Revoked: the response is kept (persisted, so a restart knows) but never
served, and the old ``good`` staple stops being served; it is re-checked
hourly.  ``unknown`` and every fetch failure keep the current staple.

The package, one concern per module (this module only re-exports them):

* ``schedule``: the policy, pure and taking ``now`` (``Schedule``,
  ``servable``, ``serve_window``, ``next_refresh``, ``retry_at``: thin uses of
  ``ocsptools.life``, which owns the rules);
* ``entries``: the state (``Entry``, the ``Book`` of them under one lock, the
  ``CertificateStatus`` snapshot and the state names);
* ``handshake``: the protocol (pyOpenSSL's OCSP callback, the certificate DER
  lookup), answering from memory;
* ``refresh``: refreshing one certificate (responder, persistence, backoff);
* ``service``: the ``Stapler`` (add/remove/attach, pre-stapling, the refresh
  thread, status), which takes a ``clock`` so tests drive it without sleeping;
* ``metrics``: its Prometheus metrics, ``Stapler.register_metrics()``
  (through ``ocsptools.metrics``).
"""

from __future__ import annotations

from .entries import (EXPIRED, NOT_APPLICABLE, REFRESH_RESULTS, REQUEST_RESULTS, REVOKED, STAPLED,
                      STATES, UNSTAPLED, CertificateStatus, Clock)
from .handshake import ConnectionLike, ContextLike, certificate_der
from .refresh import LOCK_NAME, STAPLE_SUFFIX
from .schedule import Schedule, next_refresh, retry_at, serve_window, servable
from .service import MAX_SLEEP, PathLike, Stapler, system_clock

__all__ = [
    "Stapler",
    "Schedule",
    "CertificateStatus",
    "servable",
    "serve_window",
    "next_refresh",
    "retry_at",
    "system_clock",
    "STAPLED",
    "UNSTAPLED",
    "NOT_APPLICABLE",
    "REVOKED",
    "EXPIRED",
]
# Also importable from here, as before the package: STATES, REQUEST_RESULTS, REFRESH_RESULTS,
# STAPLE_SUFFIX, LOCK_NAME, MAX_SLEEP, Clock, PathLike, ConnectionLike, ContextLike,
# certificate_der.
