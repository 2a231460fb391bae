"""Property tests: the pure parsers only ever return a value or raise ValueError, whatever they read,
and the values they return keep their promises: a verdict is never "verified" unless stderr holds
the line ``Response verify OK`` (and not ``Response Verify Failure``), a status only comes from the
line of the exact ``-cert`` label, every time is an aware UTC datetime, durations and percentages
are within their documented ranges."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocsptools import durations
from ocsptools.codec.pem import split_pem_certs
from ocsptools.openssl.parse import parse_storeutl_text, parse_time
from ocsptools.openssl.parse_ocsp import (parse_nonce, parse_resp_text, parse_response,
                                          parse_responder_error, parse_verdict)
from ocsptools.staple import decode_staple

FIX = Path(__file__).resolve().parent / "fixtures" / "openssl"
RECORDED = [json.loads(p.read_text()) for p in sorted(FIX.glob("*.json"))]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mutate(text: str, data) -> str:
    """Delete, duplicate, truncate or corrupt lines of a real openssl output."""
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(0, 4))):
        if not lines:
            break
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["del", "dup", "cut", "junk", "swap"]))
        if op == "del":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "cut":
            lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i])))]
        elif op == "junk":
            lines[i] = data.draw(st.text(max_size=40))
        else:
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def only_value_error(fn, *args):
    """FN(*ARGS), or None when it raised ValueError (any other exception fails the test)."""
    try:
        return fn(*args)
    except ValueError:
        return None


def assert_utc(value) -> None:
    """VALUE is None or an aware datetime at UTC offset 0."""
    if value is not None:
        assert isinstance(value, datetime) and value.tzinfo is not None, value
        assert value.utcoffset() == timedelta(0), value


def check_verdict(stdout: str, stderr: str, label: str) -> None:
    v = only_value_error(parse_verdict, stdout, stderr, label)
    if v is None:
        return
    err_lines = [l.strip() for l in stderr.splitlines()]
    if v.signature_ok:
        assert "Response verify OK" in err_lines and "Response Verify Failure" not in err_lines
    if v.cert_status is not None or v.no_status_found:
        assert any(l.startswith(label + ": ") for l in stdout.splitlines())
    assert v.cert_status in (None, "good", "revoked", "unknown")
    for t in (v.this_update, v.next_update, v.revocation_time):
        assert_utc(t)


def check_response_info(info) -> None:
    if info is None:
        return
    assert_utc(info.produced_at)
    for single in info.responses:
        for t in (single.this_update, single.next_update, single.revocation_time):
            assert_utc(t)


@SETTINGS
@given(st.data())
def test_response_parsers_on_mutated_real_output(data):
    rec = data.draw(st.sampled_from(RECORDED))
    out = mutate(rec["stdout"], data)
    err = mutate(rec["stderr"], data)
    check_response_info(only_value_error(parse_response, out))
    parsed = only_value_error(parse_resp_text, out)
    if parsed is not None:
        check_response_info(parsed[0])
    check_verdict(out, err, rec["label"] or "good1.pem")
    only_value_error(parse_storeutl_text, out)
    parse_responder_error(out)
    parse_nonce(out, "Response Extensions")


LABEL = "good1.pem"
# lines of real openssl output mixed with arbitrary text, so that the verdict's promises are put
# to the test (pure random text almost never holds "Response verify OK" or a label line)
STDOUT_LINE = st.one_of(
    st.sampled_from([f"{LABEL}: good", f"{LABEL}: revoked", f"{LABEL}: unknown",
                     f"{LABEL}: ERROR: No Status found.", f"{LABEL}: WARNING: Status times invalid.",
                     f"x{LABEL}: good", f"other.pem: good", "\tThis Update: Nov  1 12:00:00 2026 GMT",
                     "\tNext Update: Feb 30 12:00:00 2026 GMT", "\tRevocation Time: Nov  1 12:00:00 2026 GMT",
                     "\tReason: keyCompromise", "\tThis Update: Nov  1 25:00:00 2026 GMT"]),
    st.text(max_size=40))
STDERR_LINE = st.one_of(
    st.sampled_from(["Response verify OK", "  Response verify OK  ", "Response Verify Failure",
                     "xResponse verify OK", "Response verify OK.", "response verify ok",
                     "40E7:error:13800084:OCSP routines:OCSP_basic_verify:root ca not trusted:x.c:1:"]),
    st.text(max_size=40))


@SETTINGS
@given(st.lists(STDOUT_LINE, max_size=8), st.lists(STDERR_LINE, max_size=5))
def test_verdict_on_arbitrary_text(out_lines, err_lines):
    stdout, stderr = "\n".join(out_lines), "\n".join(err_lines)
    check_verdict(stdout, stderr, LABEL)
    check_response_info(only_value_error(parse_response, stdout))


@SETTINGS
@given(st.text(), st.text(), st.text(min_size=1, max_size=20))
def test_verdict_on_random_text(stdout, stderr, label):
    check_verdict(stdout, stderr, label)
    check_response_info(only_value_error(parse_response, stdout))


def test_verdict_needs_the_exact_verify_line():
    """The properties above are not vacuous: the parser does say "verified" for the real line."""
    assert parse_verdict(f"{LABEL}: good\n", "Response verify OK\n", LABEL).signature_ok
    for bad in ("xResponse verify OK", "Response verify OK\nResponse Verify Failure", "response verify ok"):
        assert not parse_verdict(f"{LABEL}: good\n", bad, LABEL).signature_ok, bad


@SETTINGS
@given(st.one_of(st.text(max_size=60),
                 st.from_regex(r"\A[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d(\.\d{1,3})? \d{4} GMT\Z")))
def test_parse_time_arbitrary(text):
    assert_utc(only_value_error(parse_time, text))


@SETTINGS
@given(st.binary(max_size=2000))
def test_pem_and_staple_decoding_arbitrary_bytes(blob):
    only_value_error(split_pem_certs, blob)
    assert isinstance(decode_staple(blob), bytes)


@SETTINGS
@given(st.one_of(st.text(max_size=40),
                 st.from_regex(r"\A\s*(\d{1,4}(\.\d)?\s*(s|m|h|d|w|min|hours?|days?|weeks?)?\s*){1,4}%?\Z")))
def test_duration_and_threshold_parsers(text):
    td = only_value_error(durations.parse_duration, text)
    if td is not None:
        assert timedelta(0) <= td <= timedelta(seconds=durations.MAX_SECONDS), td
    th = only_value_error(durations.parse_threshold, text)
    if th is not None:
        assert (th.duration is None) != (th.percent is None)
        if th.percent is not None:
            assert 0 <= th.percent <= 100, th
        else:
            assert timedelta(0) <= th.duration <= timedelta(seconds=durations.MAX_SECONDS), th
    pct = only_value_error(durations.parse_percent, text)
    if pct is not None:
        assert 0 < pct <= 100, pct


@given(st.integers(0, 10 * 365 * 86400))
def test_duration_round_trip(seconds):
    text = durations.format_duration(timedelta(seconds=seconds))
    assert durations.parse_duration(text) == timedelta(seconds=seconds)
