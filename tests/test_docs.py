"""Every option of every command is in its --help, its man page and README, and the man pages render cleanly."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# command name -> module with build_parser(); each command adds itself here.
COMMANDS = {
    "ocsp-fetch": "ocsptools.cli.fetch",
    "ocsp-renew-dir": "ocsptools.cli.renew_dir",
    "ocsp-check": "ocsptools.cli.check",
    "ocsp-proxy": "ocsptools.cli.proxy",
}


def option_strings(parser):
    seen = []
    for action in parser._actions:
        for opt in action.option_strings:
            if opt not in seen:
                seen.append(opt)
    for action in parser._actions:       # subcommands (ocsp-proxy serve/warm/...)
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict):
            for sub in choices.values():
                if hasattr(sub, "_actions"):
                    seen.extend(o for o in option_strings(sub) if o not in seen)
    return seen


def man_text(name: str) -> str:
    raw = (ROOT / "man" / f"{name}.1").read_text()
    return raw.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "").replace("\\fP", "")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_options_in_help_man_and_readme(name):
    parser = importlib.import_module(COMMANDS[name]).build_parser()
    help_text = parser.format_help()
    man = man_text(name)
    readme = (ROOT / "README.md").read_text()
    missing = {"help": [], "man": [], "README": []}
    for opt in option_strings(parser):
        if opt not in help_text:
            missing["help"].append(opt)
        if opt not in man:
            missing["man"].append(opt)
        if opt not in readme:
            missing["README"].append(opt)
    assert not any(missing.values()), f"{name}: options not documented: {missing}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_man_page_has_required_sections(name):
    man = man_text(name)
    for section in ("EXIT STATUS", "FILES", "EXAMPLES"):
        assert f".SH {section}" in man, f"man/{name}.1 lacks {section}"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff not installed (Debian groff-base)")
def test_man_pages_render_without_warnings():
    pages = sorted(str(p) for p in (ROOT / "man").glob("*.[15]"))
    assert pages
    res = subprocess.run(["groff", "-man", "-ww", "-z", *pages], capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == "", res.stderr


def test_setup_cfg_installs_every_man_page():
    cfg = (ROOT / "setup.cfg").read_text()
    for page in (ROOT / "man").glob("*.[15]"):
        assert f"man/{page.name}" in cfg, f"{page.name} is not installed by setup.cfg"


DOCS = ["README.md", "DEVELOPERS.md", "BENCHMARKS.md", *sorted(p.relative_to(ROOT).as_posix()
                                                        for p in (ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS)
def test_the_tests_and_modules_the_docs_cite_exist(doc):
    """A document that cites `tests/test_x.py::test_y` (or `::test_z` after it) or a module path
    `ocsptools/...` must name things that exist: the tests move with the code."""
    import re
    text = (ROOT / doc).read_text()
    missing = []
    current = None
    for m in re.finditer(r"(?<![\w/])(tests/[\w/]+\.py)|(?<![\w/\[])::([A-Za-z_]\w*)"
                         r"|(?<![\w/])(ocsptools/[\w/]+(?:\.py|/))", text):
        path, name, module = m.groups()
        if path:
            current = ROOT / path
            if not current.exists():
                missing.append(path)
                current = None
            tail = text[m.end():m.end() + 2 + 80]
            follow = re.match(r"::([A-Za-z_]\w*)", tail)
            if follow and current is not None and \
                    not re.search(rf"def {follow.group(1)}\b", current.read_text()):
                missing.append(f"{path}::{follow.group(1)}")
        elif name and current is not None:
            if not re.search(rf"def {name}\b", current.read_text()):
                missing.append(f"{current.relative_to(ROOT)}::{name}")
        elif module and not (ROOT / module).exists():
            missing.append(module)
    assert not missing, f"{doc} cites what does not exist: {sorted(set(missing))}"
