"""ocsptools/watch/options.py: the backoff from OCSPTOOLS_WATCH_BACKOFF_BASE (tests scale it)."""

from __future__ import annotations

import pytest

from ocsptools import life
from ocsptools.errors import UsageError
from ocsptools.watch.options import backoff_from_env
from ocsptools.watch.schedule import BACKOFF


@pytest.mark.parametrize("raw,backoff", [
    (None, BACKOFF), ("", BACKOFF), ("1", life.Backoff(1.0, 60.0)), ("2m", life.Backoff(120.0, 7200.0)),
])
def test_backoff_from_env(monkeypatch, raw, backoff):
    if raw is None:
        monkeypatch.delenv("OCSPTOOLS_WATCH_BACKOFF_BASE", raising=False)
    else:
        monkeypatch.setenv("OCSPTOOLS_WATCH_BACKOFF_BASE", raw)
    assert backoff_from_env() == backoff
    assert BACKOFF == life.Backoff(base=60.0, cap=3600.0)


@pytest.mark.parametrize("raw,needle", [("soon", "not a duration"), ("0s", "must be positive")])
def test_a_bad_backoff_base_is_a_usage_error(monkeypatch, raw, needle):
    monkeypatch.setenv("OCSPTOOLS_WATCH_BACKOFF_BASE", raw)
    with pytest.raises(UsageError, match=needle):
        backoff_from_env()
