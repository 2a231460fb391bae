"""docs/servers.md cites the tests that back each statement: every cited test exists, and every
server test is cited (so the page and the observations cannot drift apart silently)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.servers

HERE = Path(__file__).resolve().parent
DOC = HERE.parents[1] / "docs" / "servers.md"
CONTRIB = HERE.parents[1] / "contrib"


def server_tests() -> set:
    names = set()
    for path in HERE.glob("test_*.py"):
        if path.name == Path(__file__).name:
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


def test_every_cited_test_exists_and_every_test_is_cited():
    cited = set(re.findall(r"`(test_\w+)`", DOC.read_text()))
    tests = server_tests()
    assert cited - tests == set(), "docs/servers.md cites tests that do not exist"
    assert tests - cited == set(), "server tests not cited in docs/servers.md"


def test_contrib_hooks_are_documented_and_executable():
    doc = DOC.read_text()
    for hook in ("certbot/deploy-hook", "haproxy/haproxy-ocsp-push"):
        path = CONTRIB / hook
        assert path.stat().st_mode & 0o111, f"contrib/{hook} is not executable"
        assert f"contrib/{hook}" in doc, f"docs/servers.md does not mention contrib/{hook}"
