"""The proxy's cached answer: ``Entry`` (one verified response per CertID), its JSON, what earlier
versions stored rewritten for this one, and the counts ``stats`` shows (all pure).
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Dict, List, Optional, Tuple

from . import rules

#: Fields holding DER, stored as base64 in the JSON.
_BYTES = ("request", "response")


@dataclass(frozen=True)
class Entry:
    """One verified response and what the proxy needs to serve and refresh it."""

    key: str                  # CertID.key
    url: str                  # the responder it came from (refreshes go there)
    hash_alg: str
    name_hash: str            # hex
    key_hash: str             # hex
    serial: str               # hex, as CertID.serial_hex
    request: bytes            # the canonical request DER (sent again on refresh)
    response: bytes           # the verified response DER
    cert_status: str
    this_update: float
    next_update: float
    produced_at: Optional[float]
    fetched_at: float
    valid_until: float = 0.0  # when it stops verifying (``life``); an old entry: its nextUpdate
    due: float = 0.0          # when the refresher should look at it next
    failures: int = 0         # consecutive failed refreshes

    @property
    def version(self) -> Tuple[float, Optional[float]]:
        return (self.this_update, self.produced_at)

    def to_json(self) -> str:
        data = asdict(self)
        for name in _BYTES:
            if data[name] is not None:
                data[name] = base64.b64encode(data[name]).decode("ascii")
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text) -> "Entry":
        """An entry from its JSON, also as earlier versions wrote it (no ``valid_until``: its
        nextUpdate stands in until the next refresh; ``issuer``/``leaf``: ignored)."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for name in _BYTES:
            if data.get(name) is not None:
                data[name] = base64.b64decode(data[name])
        if not data.get("valid_until"):
            data["valid_until"] = data.get("next_update", 0.0)
        return cls(**data)


def migrated(text: str, now: float) -> str:
    """An entry's JSON as an earlier version stored it, rewritten for this one: the dead
    ``issuer``/``leaf`` dropped and, when it had no ``valid_until``, due for refresh at NOW
    (its signer's notAfter is learnt again from a fresh, verified answer)."""
    data = json.loads(text)
    stale = not data.get("valid_until")
    entry = Entry.from_json(text)
    if stale:
        entry = replace(entry, due=min(entry.due, now))
    return entry.to_json()


def describe(entries: List[Entry], now: float) -> Dict[str, object]:
    """Counts and ages for ``stats`` and /metrics (pure)."""
    valid = [e for e in entries if rules.usable(e.valid_until, now)]
    oldest = min((e.this_update for e in entries), default=None)
    return {
        "entries": len(entries),
        "valid": len(valid),
        "expired": len(entries) - len(valid),
        "oldest_age": (now - oldest) if oldest is not None else 0.0,
        "next_expiry": min((e.valid_until for e in valid), default=None),
        "by_status": {s: sum(1 for e in entries if e.cert_status == s)
                      for s in sorted({e.cert_status for e in entries})},
    }
