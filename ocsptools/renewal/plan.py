"""Pure planning of a run: one ``Decision`` per loaded leaf, then the steps the run will take.

``decide`` applies ``policy.renewal_decision`` (the one-shot rule, which the
--watch scheduler also uses) to every loaded leaf; ``steps`` turns the
decisions into what the run does: print a line, print it once (the state
cache remembers it), count it as pending (-n/-q), delete a stale staple
(--prune), or renew.  Both are pure: no I/O, no clock (``now`` is given).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Collection, List, Sequence

from .. import policy
from .items import (FRESH, SKIPPED, STALE, WOULD_RENEW, Item, RunOptions, cert_newer,
                    renew_options_for, responder_urls_for)

# What a step does.
REPORT = "report"       # print ACTION/DETAIL for the item
ONCE = "once"           # print it unless the state cache says TOKEN was printed already
PENDING = "pending"     # -n/-q: would change something (printed under -n)
PRUNE = "prune"         # delete the stale staple of a certificate without OCSP
RENEW = "renew"         # fetch, verify and install a new staple


@dataclass(frozen=True)
class Step:
    do: str
    item: Item
    action: str = ""
    detail: str = ""
    token: str = ""


def decide(items: Sequence[Item], now: datetime, opts: RunOptions,
           force: Collection[str] = ()) -> None:
    """Decide every loaded leaf (sets ``item.decision``).  Pure: no I/O, no clock.

    Items whose key is in FORCE are decided as with ``--always-renew`` (the --watch
    scheduler's jittered instant for them has come)."""
    for item in items:
        if item.kind != "leaf" or item.cert is None:
            continue
        ropts = renew_options_for(item.cand, opts.renew)
        if item.key in force:
            ropts = replace(ropts, always=True)
        item.decision = policy.renewal_decision(item.cert, item.staple, now, ropts,
                                                applicable=bool(responder_urls_for(item, opts)),
                                                cert_newer=cert_newer(item))


def steps(items: Sequence[Item], opts: RunOptions) -> List[Step]:
    """What the run does with each decided item, in order."""
    out: List[Step] = []
    for item in items:
        if item.kind == "ignore" and opts.verbose:
            why = item.error or (item.entry or {}).get("why", "")
            out.append(Step(REPORT, item, SKIPPED, f"not a leaf certificate ({why})"))
        if item.kind != "leaf" or item.decision is None:
            continue
        d = item.decision
        if d.action == policy.FRESH:
            if opts.verbose:
                out.append(Step(REPORT, item, FRESH, d.reason))
        elif d.action == policy.CERT_EXPIRED:
            out.append(Step(ONCE, item, SKIPPED, d.reason, token=f"expired:{item.cert_id}"))
        elif d.action == policy.NOT_APPLICABLE:
            out += _not_applicable(item, d.reason, opts)
        elif d.action == policy.RENEW:
            out.append(Step(PENDING, item, WOULD_RENEW, d.reason) if opts.dry else Step(RENEW, item))
    return out


def _not_applicable(item: Item, reason: str, opts: RunOptions) -> List[Step]:
    if item.staple_id is None:
        return [Step(REPORT, item, SKIPPED, reason)] if opts.verbose else []
    if opts.prune:
        if opts.dry:
            return [Step(PENDING, item, STALE, "stale staple for a certificate without OCSP; "
                                               "would delete it (--prune)")]
        return [Step(PRUNE, item, STALE, "stale staple for a certificate without OCSP; deleted "
                                         "(--prune)")]
    return [Step(ONCE, item, STALE, "stale staple for a certificate without OCSP; servers may "
                                    "still serve it: delete it or run with --prune",
                 token=f"stale:{item.staple_id}")]


def renewals(plan: Sequence[Step]) -> List[Item]:
    """The items the plan renews."""
    return [s.item for s in plan if s.do == RENEW]

