"""ocsptools/codec/serial.py: one spelling of a serial number, and what a user may type for one
(the ``ocsp-proxy purge --serial`` option and ``POST /admin/purge?serial=`` read it alike)."""

from __future__ import annotations

import pytest

from ocsptools.codec import serial


@pytest.mark.parametrize("number, text", [(0, "0"), (0xABC, "ABC"), (-26, "-1A"), (2**159, "8" + "0" * 39)])
def test_to_hex(number, text):
    assert serial.to_hex(number) == text


@pytest.mark.parametrize("typed, text", [
    ("abc", "ABC"), ("0x00ab:cd", "ABCD"), (" 0XFF ", "FF"), ("00", "0"),
    ("-5", "-5"), ("-01A", "-1A"), ("-0x1a", "-1A"), ("AB:CD:EF", "ABCDEF"),
])
def test_normal(typed, text):
    assert serial.normal(typed) == text


@pytest.mark.parametrize("typed", ["xyz", "", "0x", "-", "1_0", "+1", "- 1", "0x-1", "12 34"])
@pytest.mark.parametrize("read", [serial.parse, serial.normal])
def test_not_a_serial(read, typed):
    with pytest.raises(ValueError):
        read(typed)
