"""Certificate serial numbers as text: upper-case hex without leading zeros, a minus for negatives.

One spelling everywhere a serial is shown or matched (CertIDs, certificates,
the proxy's cache keys and purges); ``parse`` reads what a user types.
"""

from __future__ import annotations

import re

_HEX = re.compile(r"[0-9A-F]+")


def to_hex(serial: int) -> str:
    """SERIAL as upper-case hex without leading zeros ("-" and the magnitude when negative)."""
    return format(serial, "X") if serial >= 0 else "-" + format(-serial, "X")


def parse(text: str) -> int:
    """A serial number as typed: hex, with or without 0x and colons, surrounding blanks ignored.
    ValueError when it is not one."""
    t = text.strip().upper()
    sign, t = ("-", t[1:]) if t.startswith("-") else ("", t)
    t = t[2:] if t.startswith("0X") else t
    t = t.replace(":", "")
    if not _HEX.fullmatch(t):
        raise ValueError(f"not a hexadecimal serial number: {text!r}")
    return int(sign + t, 16)


def normal(text: str) -> str:
    """``parse`` then ``to_hex``: the one spelling of a typed serial."""
    return to_hex(parse(text))
