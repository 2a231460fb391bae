"""What ``ocsp-proxy stats`` says about a cache (pure): counts, ages and, with ``--list``, one line
per cached answer."""

from __future__ import annotations

from typing import Dict, List, Optional, cast

from ..durations import format_duration
from ..staple import iso
from .entry import Entry, describe
from .upstream import utc


def lines(url: str, entries: List[Entry], now: float, listing: bool = False) -> List[str]:
    """The report on ENTRIES of the cache at URL, at NOW."""
    info = describe(entries, now)
    out = [f"cache: {url}",
           f"entries: {info['entries']}",
           f"valid: {info['valid']}",
           f"expired: {info['expired']}"]
    by_status = cast(Dict[str, int], info["by_status"])
    oldest_age = cast(float, info["oldest_age"])
    next_expiry = cast(Optional[float], info["next_expiry"])
    out += [f"status {status}: {count}" for status, count in by_status.items()]
    out.append(f"oldest: {format_duration(utc(now) - utc(now - oldest_age))}" if entries else "oldest: -")
    out.append(f"next expiry: {iso(utc(next_expiry)) if next_expiry else '-'}")
    if listing:
        out += [f"{e.serial} {e.hash_alg} {e.cert_status} this-update={iso(utc(e.this_update))} "
                f"next-update={iso(utc(e.next_update))} valid-until={iso(utc(e.valid_until))} "
                f"refresh={iso(utc(e.due))} "
                f"failures={e.failures} {e.url}" for e in entries]
    return out
