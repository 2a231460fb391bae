"""proxy/flight.py: one call per key at a time; concurrent callers share its result or its error."""

from __future__ import annotations

import asyncio

import pytest

from ocsptools.proxy.flight import SingleFlight


def test_concurrent_callers_share_one_call_per_key():
    calls = []

    async def scenario():
        flights: SingleFlight[str] = SingleFlight()
        gate = asyncio.Event()

        def call(key):
            async def run():
                calls.append(key)
                await gate.wait()
                return f"answer for {key}"
            return run
        tasks = [asyncio.create_task(flights.run(k, call(k))) for k in ("a", "a", "b", "a")]
        await asyncio.sleep(0)
        assert sorted(flights.inflight) == ["a", "b"]
        gate.set()
        results = await asyncio.gather(*tasks)
        assert flights.inflight == {}
        again = await flights.run("a", call("a"))                # finished: a new call
        return results, again
    results, again = asyncio.run(scenario())
    assert results == ["answer for a", "answer for a", "answer for b", "answer for a"]
    assert again == "answer for a" and calls == ["a", "b", "a"]


def test_every_caller_gets_the_error():
    async def scenario():
        flights: SingleFlight[str] = SingleFlight()

        async def boom():
            await asyncio.sleep(0.01)
            raise ValueError("upstream broke")
        return await asyncio.gather(flights.run("k", boom), flights.run("k", boom),
                                    return_exceptions=True), flights.inflight
    errors, left = asyncio.run(scenario())
    assert [str(e) for e in errors] == ["upstream broke"] * 2 and left == {}


def test_a_waiter_cancelled_leaves_the_call_running():
    async def scenario():
        flights: SingleFlight[int] = SingleFlight()

        async def slow():
            await asyncio.sleep(0.05)
            return 7
        first = asyncio.create_task(flights.run("k", slow))
        waiter = asyncio.create_task(flights.run("k", slow))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return await first
    assert asyncio.run(scenario()) == 7
