"""Reads by key that wait together: one round trip for the lookups that queued up while the
previous one was at the database.

The shopper's page and its poll each read one row by the link's token hash. Under load a
worker has dozens of such reads at once, and each one alone costs a round trip: a pool
checkout, a protocol exchange, a wake-up of a PostgreSQL backend and of the worker, more
CPU than the row itself on both sides. `KeyedReads` sends the first read at once (no added
wait when the worker is quiet) and, while it is out, gathers the reads that arrive after
it; when it comes back, they all go in one query (`... = ANY($1)`), and so on. A read
always goes in a query sent after it arrived, so it sees every write committed before it
was asked for: this is not a cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from portal.metrics import KEYED_QUERIES, KEYED_READS

# Keys per query: a bound on one statement's size and on the wait of the last reader.
LIMIT = 64


class KeyedReads:
    """One query by key on one pool. `sql` uses `$1` for the array of keys and returns a
    column `key_column` with each row's key; a key without a row reads None."""

    def __init__(self, pool: asyncpg.Pool, sql: str, key_column: str) -> None:
        self._pool = pool
        self._sql = sql
        self._key_column = key_column
        self._waiting: dict[Any, list[asyncio.Future[Mapping[str, Any] | None]]] = {}
        self._sender: asyncio.Task[None] | None = None

    async def get(self, key: Any) -> Mapping[str, Any] | None:
        future: asyncio.Future[Mapping[str, Any] | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.setdefault(key, []).append(future)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send())
        try:
            return await future
        except asyncio.CancelledError:
            # A reader that gave up (its client went away) takes no place in a query.
            queued = self._waiting.get(key)
            if queued is not None and future in queued:
                queued.remove(future)
                if not queued:
                    del self._waiting[key]
            raise

    async def _send(self) -> None:
        batch: dict[Any, list[asyncio.Future[Mapping[str, Any] | None]]] = {}
        try:
            while self._waiting:
                keys = list(self._waiting)[:LIMIT]
                batch = {key: self._waiting.pop(key) for key in keys}
                KEYED_QUERIES.inc()
                KEYED_READS.inc(sum(len(futures) for futures in batch.values()))
                try:
                    async with self._pool.acquire() as connection:
                        rows = await connection.fetch(self._sql, keys)
                except Exception as exc:  # every reader of this batch gets the error
                    _fail(batch.values(), exc)
                    continue
                found = {row[self._key_column]: row for row in rows}
                for key, futures in batch.items():
                    for future in futures:
                        if not future.done():  # a reader that gave up
                            future.set_result(found.get(key))
        except asyncio.CancelledError:
            # The worker is stopping: nobody is left waiting for ever, neither the readers
            # of the query that was out nor those queued behind it.
            _fail([*batch.values(), *self._waiting.values()], None)
            raise
        except Exception as exc:  # a bug here: its readers see it, not a cancellation
            _fail([*batch.values(), *self._waiting.values()], exc)
        finally:
            self._sender = None
            self._waiting.clear()


def _fail(
    waiting: Iterable[list[asyncio.Future[Mapping[str, Any] | None]]], exc: Exception | None
) -> None:
    """Each reader still waiting gets `exc`, or is cancelled."""
    for futures in waiting:
        for future in futures:
            if future.done():
                continue
            if exc is None:
                future.cancel()
            else:
                future.set_exception(exc)
