"""ocsptools/watch/hooks.py: --on-change run in the background, once per batch, with OCSP_CHANGED;
failures logged and counted."""

from __future__ import annotations

import io
import json
import time

import pytest

from ocsptools.watch.eventlog import EventLog
from ocsptools.watch.hooks import HookRunner


def runner(command: str):
    out = io.StringIO()
    return HookRunner(command, EventLog("p", "json", stream=out)), out


def events(out: io.StringIO) -> list:
    return [json.loads(l) for l in out.getvalue().splitlines()]


def test_the_command_sees_the_changed_staples_one_a_line(tmp_path):
    seen = tmp_path / "seen"
    hooks, out = runner(f'printf "%s" "$OCSP_CHANGED" > {seen}')
    hooks.submit(["/c/a.pem.ocsp", "/c/b pem.ocsp"])
    assert hooks.wait(10) and hooks.idle()
    assert seen.read_text() == "/c/a.pem.ocsp\n/c/b pem.ocsp"
    (rec,) = events(out)
    assert rec["event"] == "on-change" and rec["staples"] == 2
    assert (hooks.runs, hooks.failures) == (1, 0)


def test_batches_queued_while_it_runs_are_merged_into_one_run(tmp_path):
    log, started, gate = tmp_path / "runs", tmp_path / "started", tmp_path / "go"
    hooks, _ = runner(f'touch {started}; while [ ! -e {gate} ]; do sleep 0.02; done; '
                      f'printf "%s\\n--\\n" "$OCSP_CHANGED" >> {log}')
    hooks.submit(["/a"])
    deadline = time.monotonic() + 10
    while not started.exists() and time.monotonic() < deadline:    # the first run is under way
        time.sleep(0.01)
    hooks.submit(["/b", "/a"])
    hooks.submit(["/c"])
    assert not hooks.idle()
    gate.touch()
    assert hooks.wait(10)
    assert log.read_text().split("--\n")[:-1] == ["/a\n", "/b\n/a\n/c\n"]
    assert hooks.runs == 2


@pytest.mark.parametrize("command,how,status", [
    ("exit 3", "exited with status 3", 3),
    ("kill -TERM $$", "was killed by signal 15", -15),
])
def test_a_failing_command_is_logged_and_counted(command, how, status):
    hooks, out = runner(command)
    hooks.submit(["/a", "/b"])
    assert hooks.wait(10)
    (rec,) = events(out)
    assert rec == {"time": rec["time"], "event": "on-change-failed",
                   "message": f"the --on-change command {how} (2 changed staples)",
                   "staples": 2, "status": status}
    assert (hooks.runs, hooks.failures) == (1, 1)


def test_a_command_that_cannot_start_is_logged_and_the_runner_lives_on(monkeypatch):
    """Too many staples for the environment (E2BIG), or a stderr without a descriptor: logged
    and counted, and the next batch still runs."""
    hooks, out = runner("true")
    hooks.submit(["/" + "x" * 200] * 3000)
    assert hooks.wait(10)
    (rec,) = events(out)
    assert rec["event"] == "on-change-failed" and "status" not in rec
    assert rec["message"].startswith("cannot run the --on-change command: ")
    monkeypatch.setattr("sys.stderr", io.StringIO())          # no file descriptor behind it
    hooks.submit(["/a"])
    assert hooks.wait(10)
    monkeypatch.undo()
    hooks.submit(["/b"])
    assert hooks.wait(10)
    assert [r["event"] for r in events(out)] == ["on-change-failed", "on-change-failed", "on-change"]
    assert (hooks.runs, hooks.failures) == (3, 2)
