"""The link-guessing limit over its stores: one worker's own memory, or a store the
workers share (where a miss counted by one worker blocks the client at the others)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from litestar import Request
from litestar.stores.file import FileStore
from litestar.stores.memory import MemoryStore

from portal.web.limits import MissLimiter


def request_from(host: str) -> Request[Any, Any, Any]:
    return Request(scope={"type": "http", "client": (host, 50_000), "headers": []})  # type: ignore[typeddict-item]


async def test_a_client_is_blocked_after_its_misses_and_others_are_not() -> None:
    limiter = MissLimiter(MemoryStore(), limit_per_minute=3)
    guesser, shopper = request_from("203.0.113.7"), request_from("198.51.100.1")
    for _ in range(3):
        assert not await limiter.blocked(guesser)
        await limiter.record_miss(guesser)
    assert await limiter.blocked(guesser)
    assert not await limiter.blocked(shopper)


async def test_misses_counted_by_one_worker_block_the_client_at_another(tmp_path: Path) -> None:
    shared = tmp_path / "limits"
    first = MissLimiter(FileStore(shared), limit_per_minute=2)
    second = MissLimiter(FileStore(shared), limit_per_minute=2)
    guesser = request_from("203.0.113.7")
    await first.record_miss(guesser)
    await first.record_miss(guesser)
    assert await second.blocked(guesser)
    assert not await second.blocked(request_from("198.51.100.1"))


async def test_a_blocked_client_is_let_through_again_in_the_next_minute(monkeypatch) -> None:
    now = [1_800_000_000.0]  # the start of a minute
    monkeypatch.setattr("portal.web.limits.time.time", lambda: now[0])
    limiter = MissLimiter(MemoryStore(), limit_per_minute=2)
    guesser = request_from("203.0.113.7")
    await limiter.record_miss(guesser)
    await limiter.record_miss(guesser)
    now[0] += 59
    assert await limiter.blocked(guesser)
    now[0] += 1
    assert not await limiter.blocked(guesser)
    await limiter.record_miss(guesser)
    assert not await limiter.blocked(guesser)  # one miss in this minute


async def test_misses_at_the_same_moment_all_count() -> None:
    limiter = MissLimiter(MemoryStore(), limit_per_minute=20)
    guesser = request_from("203.0.113.7")
    await asyncio.gather(*(limiter.record_miss(guesser) for _ in range(20)))
    assert await limiter.blocked(guesser)
