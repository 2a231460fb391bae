"""Staple bytes -> findings in a Result: verify the DER (or only inspect it), then judge it.

The one step files, stdin and live servers share once they hold the bytes of a staple:
``verify.verify`` against the certificate and its issuer when both are known (``target``),
``verify.inspect`` otherwise (and the Result says why); then the pure rules of ``evaluate``.
A response that must not be used is a CRITICAL finding, never an exception.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from .. import verify
from ..errors import ResponderStatusError, ResponseError, without_label
from ..fetch import Target
from ..nagios import CRITICAL
from ..openssl import OpenSSL
from . import evaluate
from .model import CheckOptions, Result


def check_der(result: Result, der: bytes, target: Optional[Target], opts: CheckOptions,
              ossl: OpenSSL) -> Result:
    """Verify (or, without a target, inspect) DER and judge it; findings go into RESULT."""
    label = result.label
    try:
        if target is not None:
            staple = verify.verify(der, target.leaf, target.issuer, ossl, label=label)
        else:
            staple = verify.inspect(der, ossl, label=label)
    except ResponderStatusError as exc:
        result.response_status = exc.status
        result.add(CRITICAL, without_label(str(exc), label))
        return result
    except ResponseError as exc:
        result.add(CRITICAL, without_label(str(exc), label))
        return result
    cert = target.leaf if target is not None else result.certificate
    if target is None and cert is not None and not cert.ocsp_urls:
        mine = staple.info.find(cert.serial)
        if not mine:
            result.add(*evaluate.leftover(cert, staple))
            return result
        staple = dataclasses.replace(staple, single=mine[0])
    result.staple = staple
    result.verified = staple.verified
    result.response_status = staple.info.response_status
    judgement = evaluate.judge(staple, result.now, opts.warning, opts.critical, skew=opts.skew)
    result.warning_seconds = judgement.warning_seconds
    result.critical_seconds = judgement.critical_seconds
    result.add_all(judgement.findings)
    finding = evaluate.must_staple(cert, result.state, result.verified)
    if finding is not None:
        result.add(*finding)
    return result
