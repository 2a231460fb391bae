"""One ocsp-check run: every staple file, what ocsp-renew-dir recorded of them, then the live server.

The staples are checked in the order given (``acquire.check_file``), each against the
``--cert`` certificate when one is given (loaded once: an unusable one raises, the command
says UNKNOWN) or its own by convention; with ``--renew-state`` the renewal status of each
file is judged too (``renewstatus.judge``); a live server (``-H``) comes last.
"""

from __future__ import annotations

from datetime import datetime
from typing import List, Optional, Sequence

from .. import renewstatus
from ..openssl import OpenSSL
from .acquire import check_file, load_certificate
from .live import check_live
from .model import CheckOptions, Result


def run_checks(staples: Sequence[str], opts: CheckOptions, ossl: OpenSSL, now: datetime, *,
               cert_path: Optional[str] = None, live: Optional[dict] = None) -> List[Result]:
    """Check every staple file, then the live server if one is given."""
    cert = load_certificate(cert_path, opts, ossl) if cert_path is not None else None
    status = (renewstatus.StatusFile(renewstatus.path_for(opts.renew_state)).load(strict=True)
              if opts.renew_state else None)
    results = [check_file(path, opts, ossl, now, cert=cert) for path in staples]
    if status is not None:
        for path, result in zip(staples, results):
            if path == "-" or result.not_applicable:
                continue
            result.renewal = status.get(path)
            result.add_all(renewstatus.judge(result.renewal, now, opts.renew_failing, status.path))
    if live is not None:
        results.append(check_live(live["host"], live["port"], opts, ossl, now,
                                  servername=live.get("servername"), starttls=live.get("starttls"),
                                  timeout=live.get("timeout")))
    return results
