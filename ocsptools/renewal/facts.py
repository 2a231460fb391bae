"""The state cache's entries and the facts they record: encode, decode, and the fast path.

An entry records what loading a certificate/staple pair established (the
certificate's serial, validity and responder URLs, the installed staple's
verified facts), the instants between which that staple is fresh under the
renewal rule in force (``win``) and the end of its effective life (``end``).  While the identities of the certificate,
issuer and staple files are unchanged, ``fast_decision`` decides such a pair
without loading anything.  Pure: the caller passes the clock's reading.
"""

from __future__ import annotations

from datetime import datetime
from typing import Collection, Optional, Tuple

from .. import life, policy
from ..policy import CertFacts, Decision, StapleFacts
from ..statecache import from_epoch, to_epoch
from .items import Item, RunOptions, cert_newer, renew_options_for, responder_urls_for


def cert_facts(entry: dict) -> CertFacts:
    nb, na = from_epoch(entry["nb"]), from_epoch(entry["na"])
    assert nb is not None and na is not None
    return CertFacts(entry["serial"], nb, na, tuple(entry.get("urls") or ()))


def staple_json(st: Optional[StapleFacts]) -> Optional[dict]:
    if st is None:
        return None
    return {"status": st.status, "serial": st.serial, "tu": to_epoch(st.this_update),
            "nu": to_epoch(st.next_update), "pa": to_epoch(st.produced_at),
            "sna": to_epoch(st.signer_not_after), "problem": st.problem}


def staple_facts(data: Optional[dict]) -> Optional[StapleFacts]:
    if data is None:
        return None
    return StapleFacts(data.get("status"), data.get("serial"), from_epoch(data.get("tu")),
                       from_epoch(data.get("nu")), from_epoch(data.get("pa")),
                       from_epoch(data.get("sna")), data.get("problem") or "")


def cached_facts(item: Item) -> Tuple[Optional[CertFacts], Optional[StapleFacts]]:
    """The item's certificate and staple facts: as loaded in this run, or, for an item the
    state cache's fast path decided without loading, as its cache entry records them."""
    entry = item.entry
    if item.cert is not None or not entry or entry.get("kind") != "leaf":
        return item.cert, item.staple
    return cert_facts(entry), staple_facts(entry.get("staple"))


def leaf_entry(item: Item, issuer_id: Optional[list], opts: RunOptions) -> dict:
    """The cache entry for a loaded leaf (ISSUER_ID: its issuer file's identity, if any)."""
    assert item.cert is not None
    entry = {
        "cert_id": item.cert_id, "kind": "leaf", "staple_id": item.staple_id,
        "issuer_spec": item.cand.issuer, "issuer_path": item.issuer_path, "issuer_id": issuer_id,
        "serial": item.cert.serial, "nb": to_epoch(item.cert.not_before),
        "na": to_epoch(item.cert.not_after), "urls": list(item.cert.ocsp_urls),
        "staple": staple_json(item.staple),
    }
    old = item.entry or {}
    if old.get("reported"):
        entry["reported"] = old["reported"]
    st = item.staple
    if st is not None and st.status == "good" and st.serial == item.cert.serial \
            and st.next_update is not None and st.this_update is not None:
        ropts = renew_options_for(item.cand, opts.renew)
        lf = st.life(item.cert.not_after)
        assert lf is not None
        due, _ = life.renewal_due(lf, ropts.rule)
        entry["win"] = [to_epoch(lf.this_update - ropts.skew), to_epoch(due)]
        entry["win_key"] = ropts.key()
        entry["end"] = to_epoch(lf.end)
    return entry


def fast_decision(item: Item, entry: dict, opts: RunOptions, now: datetime,
                  force: Collection[str]) -> Optional[Decision]:
    """"Fresh" from ENTRY alone, when its window holds NOW under the same renewal rule and
    nothing asks for a closer look (-B, -v, a touched certificate, a forced key); else None."""
    ropts = renew_options_for(item.cand, opts.renew)
    win = entry.get("win")
    t = int(now.timestamp())
    if not (win and responder_urls_for(item, opts) and not ropts.always and entry.get("win_key") == ropts.key()
            and not cert_newer(item) and item.key not in force
            and win[0] <= t < win[1] and not opts.verbose):
        return None
    if "end" in entry:
        end = from_epoch(entry["end"])
    else:                   # an entry written before the end was recorded
        st = staple_facts(entry.get("staple"))
        lf = st.life(from_epoch(entry["na"])) if st is not None else None
        end = lf.end if lf is not None else None
    return Decision(policy.FRESH, "fresh (state cache)", renew_at=from_epoch(win[1]),
                    valid_until=end)
