"""ocsptools/paths.py: ``abspath`` is exactly ``os.path.abspath``, whatever the spelling and the
current directory, with each directory's answer remembered."""

from __future__ import annotations

import os

import pytest

from ocsptools.paths import abspath

SPELLINGS = ["a/b", "./a/b", "../x/y", "/abs/p/q", "/x", "x", "a/../b", "a/b/..", "a/b/.", "a//b",
             "/a/./b/c", "a/./b", "../../../../x", "/", "//x/y", "a/b/", "..", ".", "/../x/y",
             "a b/c\td", "dir.d/..x", "a/.../b"]


@pytest.mark.parametrize("path", SPELLINGS)
def test_the_same_answer_as_os_path_abspath_wherever_we_are(path, tmp_path, monkeypatch):
    assert abspath(path) == os.path.abspath(path)
    sub = tmp_path / "deeper" / "still"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)              # a remembered directory must follow the cwd
    assert abspath(path) == os.path.abspath(path)
    monkeypatch.chdir("/")
    assert abspath(path) == os.path.abspath(path)
