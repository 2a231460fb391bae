"""Parsing durations (``3d``, ``12h``, ``1d12h``, ``2 hours 5 minutes``, ``90``) and thresholds (``25%``).

Pure functions; errors are ValueError with a message fit for a user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import List, Optional, Union

_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*,?")
MAX_SECONDS = 10 * 365 * 86400


def parse_duration(text: str) -> timedelta:
    """``3d``, ``12h``, ``1d12h``, ``2 hours 5 minutes``, ``1.5h`` or bare seconds (``90``)."""
    if not isinstance(text, str):
        raise ValueError(f"not a duration: {text!r}")
    s = text.strip().lower()
    if not s:
        raise ValueError("empty duration")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m or m.end() == pos:
            raise ValueError(f"not a duration: {text!r} (use e.g. 3d, 12h, 1d12h, "
                             f"'2 hours 5 minutes' or seconds)")
        number, unit = m.group(1), m.group(2)
        if unit == "" and (pos != 0 or m.end() != len(s)):
            raise ValueError(f"not a duration: {text!r} (a number without a unit must stand alone)")
        if unit and unit not in _UNITS:
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        total += float(number) * _UNITS.get(unit, 1)
        pos = m.end()
    if total > MAX_SECONDS:
        raise ValueError(f"duration {text!r} is longer than ten years")
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    """Compact ``1d2h3m4s`` (negative values get a leading ``-``)."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    out: List[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not out):
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return sign + "".join(out)


@dataclass(frozen=True)
class Threshold:
    """Either an absolute duration or a fraction of the staple's lifetime."""

    duration: Optional[timedelta] = None
    percent: Optional[float] = None
    text: str = ""

    def seconds(self, lifetime: Optional[timedelta]) -> Optional[float]:
        """The threshold in seconds for a staple of LIFETIME (None if a percentage of an unknown lifetime)."""
        if self.duration is not None:
            return self.duration.total_seconds()
        if lifetime is None or self.percent is None:
            return None
        return lifetime.total_seconds() * self.percent / 100.0


def parse_threshold(text: Union[str, "Threshold"]) -> Threshold:
    """A duration (see ``parse_duration``) or a percentage of the lifetime (``25%``)."""
    if isinstance(text, Threshold):
        return text
    s = text.strip() if isinstance(text, str) else ""
    if s.endswith("%"):
        try:
            pct = float(s[:-1])
        except ValueError:
            raise ValueError(f"not a percentage: {text!r}") from None
        if not 0 <= pct <= 100:
            raise ValueError(f"percentage out of range 0-100: {text!r}")
        return Threshold(percent=pct, text=s)
    return Threshold(duration=parse_duration(s), text=s)


def parse_percent(text: str) -> float:
    """``50`` or ``50%`` to 50.0 (0-100)."""
    s = str(text).strip().rstrip("%")
    try:
        pct = float(s)
    except ValueError:
        raise ValueError(f"not a percentage: {text!r}") from None
    if not 0 < pct <= 100:
        raise ValueError(f"percentage out of range (0-100]: {text!r}")
    return pct
