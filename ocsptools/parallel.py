"""Thread helpers for batch runs: cutting work into even pieces and mapping a function over them.

``ocsp-renew-dir`` runs openssl for many certificates at once: one process per piece of at most
``BATCH`` certificates (``batches``), up to ``-j`` of them at a time (``parallel_map``).  Pure
apart from the threads; no I/O of their own.
"""

from __future__ import annotations

from typing import Callable, List, Sequence, TypeVar

__all__ = ["BATCH", "MIN_CHUNK", "batches", "parallel_map"]

T = TypeVar("T")
R = TypeVar("R")

#: Certificates per batched openssl process (keeps argument lists and outputs modest).
BATCH = 500
#: Fewer certificates than this are not worth an openssl process of their own.
MIN_CHUNK = 50


def batches(items: Sequence[T], workers: int) -> List[List[T]]:
    """ITEMS cut into pieces of at most BATCH, at least as many as WORKERS (when there are
    enough items to be worth a process each), so that parallel runs share the work evenly."""
    size = max(1, min(BATCH, max(MIN_CHUNK, -(-len(items) // max(1, workers)))))
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def parallel_map(fn: Callable[[T], R], pieces: Sequence[T], workers: int) -> List[R]:
    """fn over PIECES, results in order, in up to WORKERS threads (openssl runs at once)."""
    if workers <= 1 or len(pieces) <= 1:
        return [fn(p) for p in pieces]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=min(workers, len(pieces))) as pool:
        return list(pool.map(fn, pieces))
