"""Single-flight: one call per key at a time; concurrent callers for that key share its result.

The proxy's cache misses go through it, so a burst of clients asking for the same CertID causes
one upstream exchange, not one each.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Dict, Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """The calls in flight, by key."""

    def __init__(self) -> None:
        self.inflight: Dict[str, "asyncio.Future[T]"] = {}

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> T:
        """CALL's result, or the result of the call for KEY already in flight (its exception too)."""
        fut = self.inflight.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self.inflight[key] = fut
        try:
            result = await call()
            fut.set_result(result)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()          # mark retrieved
            raise
        finally:
            self.inflight.pop(key, None)
        return result
