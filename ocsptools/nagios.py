"""Monitoring Plugins conventions, as pure functions: states, thresholds, perfdata.

Nothing here does I/O or reads the clock.  The rules come from the
Monitoring Plugins development guidelines (``../shared/notes/monitoring-plugins.md``):

* exit status 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN;
* several results combine to the worst one in the order
  OK < UNKNOWN < WARNING < CRITICAL (so a real problem is never masked by
  an UNKNOWN);
* critical is evaluated before warning;
* perfdata is ``'label'=value[UOM];warn;crit;min;max`` with thresholds in
  range syntax: seconds left before nextUpdate is a "minimum" metric, so an
  alert below 259200 s is written ``259200:``;
* no ``|`` in the text (it starts the perfdata), no ``=`` or ``'`` in labels.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Dict, Iterable, List, Optional

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATES = (OK, WARNING, CRITICAL, UNKNOWN)
NAMES: Dict[int, str] = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
#: Severity used to combine results: OK < UNKNOWN < WARNING < CRITICAL.
SEVERITY: Dict[int, int] = {OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3}


def name(state: int) -> str:
    return NAMES[state]


def worst(states: Iterable[int], default: int = OK) -> int:
    """The most severe state (OK < UNKNOWN < WARNING < CRITICAL); DEFAULT when there is none."""
    result = None
    for state in states:
        if result is None or SEVERITY[state] > SEVERITY[result]:
            result = state
    return default if result is None else result


def by_severity(items: Iterable, key=lambda item: item[0]) -> List:
    """ITEMS sorted most severe first (stable: equal states keep their order)."""
    return sorted(items, key=lambda item: -SEVERITY[key(item)])


def below(value: float, warn: Optional[float], crit: Optional[float]) -> int:
    """State of a "minimum" metric: CRITICAL if VALUE < CRIT, else WARNING if < WARN, else OK.

    Critical is tested first, as the guidelines require; a missing threshold never alerts."""
    if crit is not None and value < crit:
        return CRITICAL
    if warn is not None and value < warn:
        return WARNING
    return OK


def _number(value: float) -> str:
    """Perfdata number: integers without a decimal point, others with up to 3 decimals."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(int(value))


def whole_seconds(threshold: Optional[float]) -> Optional[int]:
    """A threshold in whole seconds, rounded UP: values are whole seconds, and ``left < 151199.75``
    holds for exactly the whole numbers below 151200 (rounding down would stop alerting at 151199)."""
    return None if threshold is None else math.ceil(threshold)


def min_range(threshold: Optional[float]) -> str:
    """Range syntax for "alert when below THRESHOLD": ``259200:`` (empty when there is none)."""
    seconds = whole_seconds(threshold)
    return "" if seconds is None else _number(seconds) + ":"


_LABEL_BAD = re.compile(r"['=|\x00-\x1f\x7f]")


def label(text: str) -> str:
    """A perfdata label from TEXT: no ``'``, ``=``, ``|`` or control characters."""
    cleaned = _LABEL_BAD.sub("_", text).strip()
    return cleaned or "staple"


def unique_labels(texts: Iterable[str], clean: Callable[[str], str] = label) -> List[str]:
    """Labels for TEXTS (each through CLEAN), made unique with ``#2``, ``#3`` ... where two would
    be equal: a series or perfdata item per staple, even for a path given twice."""
    used = set()
    out = []
    for text_ in texts:
        base = candidate = clean(text_)
        n = 1
        while candidate in used:
            n += 1
            candidate = f"{base}#{n}"
        used.add(candidate)
        out.append(candidate)
    return out


def perfdata(name_: str, value: Optional[float], uom: str = "", *, warn: str = "", crit: str = "",
             minimum: Optional[float] = None, maximum: Optional[float] = None) -> str:
    """One perfdata item ``'label'=value[UOM];warn;crit;min;max`` (trailing empty fields dropped).

    A value of None is written ``U`` (undeterminable), without UOM."""
    fields = ["U" if value is None else _number(value) + uom, warn, crit,
              "" if minimum is None else _number(minimum),
              "" if maximum is None else _number(maximum)]
    while len(fields) > 1 and fields[-1] == "":
        fields.pop()
    return f"'{label(name_)}'=" + ";".join(fields)


_TEXT_BAD = re.compile(r"[\x00-\x1f\x7f]+")


def text(value: str) -> str:
    """Plugin output text: one line, no ``|`` (which would start the perfdata)."""
    return _TEXT_BAD.sub(" ", value.replace("|", "/")).strip()
