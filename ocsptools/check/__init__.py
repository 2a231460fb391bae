"""The check service of ocsp-check: staple bytes (with their certificate, when known) -> a Nagios state.

``ocsp-check`` stands on this package, split the way a monitoring plugin works (acquire,
evaluate, present), deciding kept apart from doing:

* ``model``: the options and the verdict on one staple (``CheckOptions``, ``Result``);
* ``evaluate`` (pure, takes ``now``): ``judge`` a staple (status, times, time left before it
  stops verifying against the thresholds), or its absence, the left-over staple of a
  certificate without OCSP URL, the Must-Staple rule;
* ``verdict``: the bytes of one staple verified (``verify.verify``) or only inspected, then
  evaluated into its Result;
* ``acquire``: staple files and stdin, their certificate (``--cert``, or ``X`` beside
  ``X.ocsp``) and issuer; not applicable first (no issuer search for a certificate without
  OCSP URL);
* ``live``: the staple a TLS server sends (``s_client``), judged the same way;
* ``run``: one run of the command (files, ``--renew-state``, the live server).

The presentation (Nagios lines, JSON Lines, Prometheus, ``--print``) is ``ocsptools.report``.

A problem with one staple (missing file, garbage, bad signature, expired...) is a finding in
that staple's Result, never an exception: several staples are checked together and the worst
state wins (``nagios.worst``).  Exceptions escape only for what makes the whole run
meaningless (openssl missing, an explicit ``--cert`` that cannot be used): the command maps
them to UNKNOWN.

What other packages use is named here (``check.judge``, ``check.Result``); the rest lives in
its module.
"""

from __future__ import annotations

from .evaluate import judge
from .model import DEFAULT_CRITICAL, DEFAULT_WARNING, Result

__all__ = ["DEFAULT_CRITICAL", "DEFAULT_WARNING", "Result", "judge"]
