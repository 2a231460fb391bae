"""ocsptools: keep OCSP staples fresh for TLS servers, and tell monitoring when they are not.

The public Python API is what this module exports (``__all__``); it is
typed (``py.typed``) and documented in ``docs/api.md``.  Everything else in
the package is internal.

* Values: ``Staple``, ``Certificate``, ``SingleResponse``, ``ResponseInfo``,
  ``Target`` (a leaf with its verified issuer), ``Decision``, ``Problem``,
  ``CLOCK_SKEW``.
* Functions: ``load_target``, ``load_staple``, ``fetch_staple``,
  ``time_problems``, ``freshness``, ``write_staple``, ``install_staple``,
  ``renew`` (with ``RenewResult``/``RenewReport``).  Every ``now`` parameter
  takes an aware datetime, a function returning one, or None (the current time).
* In-process stapling for pyOpenSSL servers: ``ocsptools.stapler.Stapler``.
* Errors: one hierarchy under ``OcspToolsError`` (see ``ocsptools.errors``).

The functions are imported lazily so that the command-line tools, which
import this package first, do not pay for modules they do not use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (CertificateError, CertStatusError, ConfigError, FetchError, InputError,
                     IssuerNotFound, LockBusy, NotApplicable, OcspToolsError, OpensslError,
                     ResponderStatusError, ResponseError, Revoked, StaleResponse, StoreError,
                     UsageError)
from .staple import CLOCK_SKEW, Certificate, ResponseInfo, SingleResponse, Staple

__version__ = "0.1.0"

_LAZY = {
    "load_target": "api", "load_staple": "api", "fetch_staple": "api", "time_problems": "api",
    "freshness": "api", "write_staple": "api", "install_staple": "api", "renew": "api",
    "RenewResult": "api", "RenewReport": "api", "Target": "fetch", "Decision": "policy",
    "Problem": "life",
}

__all__ = [
    "__version__", "CLOCK_SKEW", "Certificate", "ResponseInfo", "SingleResponse", "Staple",
    "OcspToolsError", "UsageError", "InputError", "CertificateError", "IssuerNotFound",
    "ConfigError", "LockBusy", "NotApplicable", "OpensslError", "StoreError", "FetchError",
    "ResponseError", "ResponderStatusError", "StaleResponse", "CertStatusError", "Revoked",
    *_LAZY,
]

if TYPE_CHECKING:
    from .api import (RenewReport, RenewResult, fetch_staple, freshness, install_staple,
                      load_staple, load_target, renew, time_problems, write_staple)
    from .fetch import Target
    from .life import Problem
    from .policy import Decision


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ocsptools' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY))
