"""What the --watch daemon says about an outcome: the event line of each target a pass did (pure).

``outcome_line`` turns an ``Outcome`` (what one pass did to one target, with
the slot the scheduler just updated) and ``now`` into the event, its text, its
level and its JSON fields; the daemon hands that to ``EventLog.event``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Dict, Optional

from ..renewal import FAILED, REVOKED, UNCHANGED
from ..durations import format_duration
from ..staple import iso
from .schedule import Outcome


@dataclass(frozen=True)
class Line:
    """One event for ``EventLog.event(event, text, level=level, **fields)``."""

    event: str
    text: str
    level: int = logging.INFO
    fields: Dict[str, object] = field(default_factory=dict)


def in_words(now: datetime, at: Optional[datetime]) -> str:
    """How long from NOW until AT, for a log line: ``4.2s`` under 10 s, else ``1h30m``-style."""
    if at is None:
        return ""
    secs = max((at - now).total_seconds(), 0.0)
    if secs < 10:
        return f"{secs:.1f}s"
    return format_duration(timedelta(seconds=round(secs)))


def outcome_line(o: Outcome, now: datetime) -> Line:
    """The line for O: what happened and when the target is looked at next (a failure says
    which retry and when; revoked is an error, a failure a warning)."""
    s = o.slot
    failing = o.event in (FAILED, REVOKED)
    nxt = ""
    if s.next_at is not None:
        if failing:
            nxt = f"; retry {s.failures} in {in_words(now, s.next_at)} at {iso(s.next_at)}"
        elif o.event == UNCHANGED:
            nxt = f"; again in {in_words(now, s.next_at)} at {iso(s.next_at)}"
        else:
            nxt = f"; next renewal in {in_words(now, s.next_at)} at {iso(s.next_at)}"
    level = logging.INFO
    if failing:
        level = logging.ERROR if o.event == REVOKED else logging.WARNING
    fields: Dict[str, object] = dict(
        cert=s.cand.cert, staple=s.cand.staple, status=s.status, detail=o.detail, next=s.next_at,
        valid_until=s.valid_until,
        retry_in=(round((s.next_at - now).total_seconds(), 3)
                  if s.next_at is not None and failing else None),
        failures=s.failures if failing else None)
    return Line(o.event, f"{s.cand.cert}: {o.detail}{nxt}", level, fields)
