"""The renewal driver of ocsp-renew-dir, the --watch passes and ``api.renew``.

==============  ===============================================================
``items``       one candidate's way through a run (``Item``), options, reports, result
``facts``       the state cache's entries and the fast path ("fresh" without loading)
``load``        batched loading: certificates, issuers (checked by signature), staples
``plan``        pure: a ``Decision`` per leaf, then the steps (report, renew, prune)
``execute``     the renewals: fetch, verify, install only what is good and newer
``session``     ``Driver``: one run, facts -> plan -> execute
``held``        what a run holds under its lock: the lock, the state cache, the status file
==============  ===============================================================
"""

from .execute import WriteGate
from .facts import cached_facts
from .items import FAILED, RENEWED, REVOKED, UNCHANGED, Item, Report, RunOptions
from .plan import decide
from .session import Driver

__all__ = ["Driver", "FAILED", "Item", "RENEWED", "REVOKED", "Report", "RunOptions", "UNCHANGED",
           "WriteGate", "cached_facts", "decide"]
