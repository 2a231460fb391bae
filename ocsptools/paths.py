"""``abspath`` for many files in few directories: ``os.path.abspath``, the directory part's answer kept.

A run over 10,000 certificates names each staple and certificate by absolute
path several times (state cache keys, status file keys, the directories to
clean); they sit in a few dozen directories, so normalising each directory
once is enough.  The result is exactly ``os.path.abspath``'s.
"""

from __future__ import annotations

import os
import threading
from typing import Dict, Tuple

_LIMIT = 4096
_dirs: Dict[Tuple[str, str], str] = {}
_lock = threading.Lock()


def abspath(path: str) -> str:
    """``os.path.abspath(PATH)`` (relative to the current directory as it is now)."""
    head, sep, tail = path.rpartition("/")
    if not sep or not head or tail in ("", ".", "..") or "//" in path:
        return os.path.abspath(path)
    cwd = "" if head.startswith("/") else os.getcwd()
    base = _dirs.get((cwd, head))
    if base is None:
        base = os.path.abspath(os.path.join(cwd, head) if cwd else head)
        with _lock:
            if len(_dirs) >= _LIMIT:
                _dirs.clear()
            _dirs[(cwd, head)] = base
    return base + tail if base == "/" else base + "/" + tail
