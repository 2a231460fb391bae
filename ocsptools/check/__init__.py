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

The names below are re-exported so that ``from ocsptools import check; check.judge(...)``
keeps working.
"""

from __future__ import annotations

from .acquire import (CERT_CANDIDATE_SUFFIXES, MAX_STAPLE_SIZE, NO_URL_UNVERIFIED,
                      PEM_CERTIFICATE, STAPLE_SUFFIXES, CertificateFor, MissingStaple,
                      certificate_candidates, check_file, conventional_certificate,
                      holds_certificate, load_certificate, read_staple)
from .evaluate import (ENDED, Absence, Judgement, absent, describe_threshold, human, judge,
                       leftover, must_staple, thresholds_inverted)
from .live import (HTTPS_PORT, STARTTLS_PORTS, check_live, default_port, default_servername,
                   handshake_problem, live_label)
from .model import (DEFAULT_CRITICAL, DEFAULT_WARNING, CheckOptions, CheckTimeout, Finding,
                    Result)
from .run import run_checks
from .verdict import check_der

__all__ = [
    "Absence", "CERT_CANDIDATE_SUFFIXES", "CertificateFor", "CheckOptions", "CheckTimeout",
    "DEFAULT_CRITICAL", "DEFAULT_WARNING", "ENDED", "Finding", "HTTPS_PORT", "Judgement",
    "MAX_STAPLE_SIZE", "MissingStaple", "NO_URL_UNVERIFIED", "PEM_CERTIFICATE", "Result",
    "STAPLE_SUFFIXES", "STARTTLS_PORTS", "absent", "certificate_candidates", "check_der",
    "check_file", "check_live", "conventional_certificate", "default_port", "default_servername",
    "describe_threshold", "handshake_problem", "holds_certificate", "human", "judge", "leftover",
    "live_label", "load_certificate", "must_staple", "read_staple", "run_checks",
    "thresholds_inverted",
]
