"""The house rules of the package, checked on its source (issue 16): small modules with a docstring,
no import cycle, no private name of another module, no decision on message text."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Set

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ocsptools"
MAX_LINES = 400


def modules() -> Dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


MODULES = modules()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, path: Path) -> Set[str]:
    """Package modules MODULE imports at module level (TYPE_CHECKING blocks and imports inside
    functions are not cycles at import time)."""
    found: Set[str] = set()
    is_package = path.name == "__init__.py"
    for node in _tree(path).body:
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, is_package)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in MODULES and m != module}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_small_module_with_a_one_line_docstring(module):
    path = MODULES[module]
    lines = path.read_text().count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)}: {lines} lines (at most {MAX_LINES})"
    doc = ast.get_docstring(_tree(path))
    assert doc and doc.splitlines()[0].strip(), f"{module}: no docstring saying what it owns"


def test_no_import_cycle():
    graph = {m: imports(m, p) for m, p in MODULES.items()}
    cycles: List[List[str]] = []
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2
    for m in sorted(graph):
        if m not in state:
            visit(m)
    # a package importing its own submodules (its facade) is not a cycle of concerns
    real = [c for c in cycles if not all(c[0] == x or x.startswith(c[0] + ".") for x in c)]
    assert not real, "import cycles: " + "; ".join(" -> ".join(c) for c in real)


def test_no_module_imports_a_private_name_of_another():
    found = []
    for module, path in MODULES.items():
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                found += [f"{module}: from {node.module} import {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id not in ("self", "cls", "os", "sys") \
                    and node.attr.startswith("_") and not node.attr.startswith("__"):
                found.append(f"{module}: {node.value.id}.{node.attr}")
    assert not found, found


#: Comparisons of an exception's text (``"..." in str(exc)``) are decisions on message text.
_TEXT_DECISION = re.compile(r"""["'][^"'\n]{3,}["']\s+(?:not\s+)?in\s+(?:str\(\w+\)|message|text|problem|detail)\b""")


#: Modules whose job is reading another program's text (openssl's output, HAProxy's runtime
#: API answers): matching that text is parsing, not deciding on our own messages.
READERS_OF_OTHERS = ("ocsptools.openssl", "ocsptools.haproxy")


def test_no_decision_on_message_text():
    found = []
    for module, path in MODULES.items():
        if module.startswith(READERS_OF_OTHERS):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if _TEXT_DECISION.search(line):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
