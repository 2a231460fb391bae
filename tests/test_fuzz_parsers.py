"""Property tests: the pure parsers only ever return a value or raise ValueError, whatever they read."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocsptools import durations
from ocsptools.openssl import (parse_nonce, parse_resp_text, parse_response, parse_responder_error,
                               parse_storeutl_text, parse_time, parse_verdict, split_pem_certs)
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
    try:
        fn(*args)
    except ValueError:
        pass


@SETTINGS
@given(st.data())
def test_response_parsers_on_mutated_real_output(data):
    rec = data.draw(st.sampled_from(RECORDED))
    out = mutate(rec["stdout"], data)
    err = mutate(rec["stderr"], data)
    only_value_error(parse_response, out)
    only_value_error(parse_resp_text, out)
    only_value_error(parse_verdict, out, err, rec["label"] or "good1.pem")
    only_value_error(parse_storeutl_text, out)
    parse_responder_error(out)
    parse_nonce(out, "Response Extensions")


@SETTINGS
@given(st.text(), st.text(), st.text(min_size=1, max_size=20))
def test_verdict_on_arbitrary_text(stdout, stderr, label):
    only_value_error(parse_verdict, stdout, stderr, label)
    only_value_error(parse_response, stdout)


@SETTINGS
@given(st.text(max_size=60))
def test_parse_time_arbitrary(text):
    only_value_error(parse_time, text)


@SETTINGS
@given(st.binary(max_size=2000))
def test_pem_and_staple_decoding_arbitrary_bytes(blob):
    only_value_error(split_pem_certs, blob)
    assert isinstance(decode_staple(blob), bytes)


@SETTINGS
@given(st.one_of(st.text(max_size=40),
                 st.from_regex(r"\A\s*(\d{1,4}(\.\d)?\s*(s|m|h|d|w|min|hours?|days?|weeks?)?\s*){1,4}%?\Z")))
def test_duration_and_threshold_parsers(text):
    try:
        td = durations.parse_duration(text)
        assert td.total_seconds() >= 0
    except ValueError:
        pass
    try:
        th = durations.parse_threshold(text)
        assert (th.duration is None) != (th.percent is None)
    except ValueError:
        pass
    only_value_error(durations.parse_percent, text)


@given(st.integers(0, 10 * 365 * 86400))
def test_duration_round_trip(seconds):
    from datetime import timedelta
    text = durations.format_duration(timedelta(seconds=seconds))
    assert durations.parse_duration(text) == timedelta(seconds=seconds)
