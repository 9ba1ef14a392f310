"""Database access: engines from a URL, binding the tables, transactions that write."""

from __future__ import annotations

import logging
import re
import sqlite3
import time
import traceback
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlparse

import asyncpg
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType
from piccolo.querystring import QueryString

from portal.db.batch import KeyedReads


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        # timeout: writers wait for each other instead of failing with "database is locked".
        return SQLiteEngine(path=path, timeout=30)
    parsed = urlparse(url)
    config = {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": unquote(parsed.username or "postgres"),
        "password": unquote(parsed.password or "") or None,
        "database": (parsed.path or "/postgres").lstrip("/") or "postgres",
    }
    return PostgresEngine(config=config, extensions=())


def is_sqlite(engine: Engine) -> bool:
    return isinstance(engine, SQLiteEngine)


def bind(engine: Engine) -> None:
    """Point every table at `engine` (one process talks to one database at a time)."""
    from portal.db.tables import ALL_TABLES

    for table in ALL_TABLES:
        table._meta.db = engine


@asynccontextmanager
async def writing(engine: Engine) -> AsyncIterator[None]:
    """A write transaction. On SQLite it takes the write lock up front (BEGIN IMMEDIATE), so a
    read-then-write never fails half-way with SQLITE_BUSY."""
    if is_sqlite(engine):
        async with engine.transaction(transaction_type=TransactionType.immediate):
            yield
    else:
        async with engine.transaction():
            yield


_UNAVAILABLE_PG = (
    asyncpg.PostgresConnectionError,  # connection lost, refused by the server, ...
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
)
# SQLite's words for a file it cannot reach (a lost mount, a moved directory), for a lock
# held longer than the engine's timeout, and for a failing disk.
_UNAVAILABLE_SQLITE = ("unable to open database file", "database is locked", "disk i/o error")
_DRIVERS = ("asyncpg", "aiosqlite", "piccolo", "portal.db")


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be reached or used for a moment (stopped or
    restarting, a connection lost or refused, out of connections, a timeout on the way to
    it, an unreachable or long-locked SQLite file): worth a 503 and a retry, unlike a bug
    or a statement the database refused."""
    seen: BaseException | None = exc
    for _ in range(5):  # the exception and what it was raised from
        if seen is None:
            return False
        if isinstance(seen, _UNAVAILABLE_PG):
            return True
        if isinstance(seen, asyncpg.InterfaceError) and "closed" in str(seen):
            return True
        if isinstance(seen, sqlite3.OperationalError):
            return str(seen).lower().startswith(_UNAVAILABLE_SQLITE)
        if isinstance(seen, OSError) and _raised_by_driver(seen):  # TimeoutError is one
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class OutageLog:
    """One warning a minute while the database is out, saying what is done meanwhile and
    how many times since the last warning, instead of a traceback each time."""

    EVERY = timedelta(minutes=1)

    def __init__(self, log: logging.Logger, meanwhile: str) -> None:
        self.log = log
        self.meanwhile = meanwhile
        self.warned_at: datetime | None = None
        self.unlogged = 0

    def note(self, now: datetime, exc: BaseException) -> None:
        if self.warned_at is not None and now - self.warned_at < self.EVERY:
            self.unlogged += 1
            return
        self.log.warning(
            "database unavailable (%s): %s (%d more since the last warning)",
            type(exc).__name__,
            self.meanwhile,
            self.unlogged,
        )
        self.warned_at, self.unlogged = now, 0


class _PoolRetries(logging.Filter):
    """asyncpg's pool logs a warning with a traceback each time it fails to reconnect its
    minimum of connections (1, 2, 4 ... 60 s apart, for each pool) while the database is
    out. Keep one line a minute, naming the error, without the traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.logged_at = -3600.0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING or not record.exc_info:
            return True
        now = time.monotonic()
        if now - self.logged_at < 60:
            return False
        self.logged_at = now
        error = record.exc_info[1]
        record.msg, record.args = f"{record.getMessage()} ({type(error).__name__})", None
        record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("asyncpg.pool").addFilter(_PoolRetries())


def _raised_by_driver(exc: BaseException) -> bool:
    """A socket error or timeout counts only when it came from the database's driver."""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        if str(frame.f_globals.get("__name__", "")).startswith(_DRIVERS):
            return True
    return False


def is_unique_violation(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.UniqueViolationError):
        return True
    return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)


@lru_cache(maxsize=64)
def dollar_params(sql: str) -> str:
    """Piccolo's `{}` placeholders as PostgreSQL's `$1, $2, ...` (for `fetch_row`)."""
    count = 0

    def number(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    return re.sub(r"\{\}", number, sql)


# Per started engine: the pool of the fixed reads below (fetch_row, fetch_rows, fetch_by_key).
# Each is a lookup by key whose best plan is the same for every key, so its connections keep
# one plan per statement (force_generic_plan). PostgreSQL's default would plan these
# statements again on every run, since a plan for the keys at hand always looks cheaper than
# the generic one: measured on the page's query, planning cost more than running it (0.88
# against 0.35 ms of the server's CPU for one link). The ORM's queries keep the default on
# their own pool: some filter by time or state, where the values do choose the plan.
_READ_POOLS: dict[int, asyncpg.Pool] = {}
READ_POOL_SIZE = 4
FIXED_PLANS = {"plan_cache_mode": "force_generic_plan"}


def _direct_pool(engine: Engine) -> asyncpg.Pool | None:
    """The pool of fixed reads, when a read may go straight to it: PostgreSQL, the pools
    started, and no transaction open in this task (whose own writes the read must see)."""
    if isinstance(engine, PostgresEngine) and engine.current_transaction.get() is None:
        return _READ_POOLS.get(id(engine))
    return None


async def fetch_row(engine: Engine, sql: str, *args: object) -> Mapping[str, Any] | None:
    """One row of a read on the hottest paths (the shopper's page and its poll), straight
    from the pool: Piccolo's query machinery and its row-to-dict copy cost more than the
    query. `sql` uses `{}` placeholders; a read inside a transaction (or on SQLite, or with
    no pool yet) goes through Piccolo so that it sees the transaction's writes."""
    pool = _direct_pool(engine)
    if pool is not None:
        async with pool.acquire() as connection:
            row: Mapping[str, Any] | None = await connection.fetchrow(dollar_params(sql), *args)
            return row
    rows = await engine.run_querystring(QueryString(sql, *args))
    return rows[0] if rows else None


async def fetch_rows(engine: Engine, sql: str, *args: object) -> list[dict[str, Any]]:
    """All rows of a read, as dicts, by the same road as `fetch_row`."""
    pool = _direct_pool(engine)
    if pool is not None:
        async with pool.acquire() as connection:
            return [dict(row) for row in await connection.fetch(dollar_params(sql), *args)]
    return list(await engine.run_querystring(QueryString(sql, *args)))


# Per started pool: its batched readers, one per query (portal/db/batch.py).
_KEYED: dict[int, dict[str, KeyedReads]] = {}


async def fetch_by_key(
    engine: Engine, sql: str, key_column: str, key: Any
) -> Mapping[str, Any] | None:
    """The row of `key`, read together with the other readers of the same query waiting at
    that moment (PostgreSQL only: `sql` selects `key_column` and takes the array of keys as
    its `{}`, as in `WHERE x = ANY({})`). Inside a transaction it reads alone, through
    Piccolo, and sees the transaction's writes."""
    pool = _direct_pool(engine)
    if pool is None:
        return await fetch_row(engine, sql, [key])
    readers = _KEYED.setdefault(id(pool), {})
    reader = readers.get(sql)
    if reader is None:
        reader = readers[sql] = KeyedReads(pool, dollar_params(sql), key_column)
    return await reader.get(key)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset (RESET ALL, UNLISTEN, CLOSE ALL, advisory
    unlock): a round trip on every query. We keep no session state; asyncpg still rolls
    back a transaction left open before calling this."""


async def start(engine: Engine) -> None:
    if isinstance(engine, PostgresEngine) and engine.pool is None:
        await engine.start_connection_pool(min_size=2, max_size=20, reset=_keep_session)
        try:
            _READ_POOLS[id(engine)] = await asyncpg.create_pool(
                **engine.config,
                min_size=1,
                max_size=READ_POOL_SIZE,
                reset=_keep_session,
                # Its few connections stay open: no idle timer is set and cancelled on
                # every release (asyncpg's default closes them after 300 s unused).
                max_inactive_connection_lifetime=0,
                server_settings=FIXED_PLANS,
            )
        except BaseException:
            await engine.close_connection_pool()
            raise


async def stop(engine: Engine) -> None:
    if isinstance(engine, PostgresEngine) and engine.pool is not None:
        try:
            await engine.close_connection_pool()
        finally:
            reads = _READ_POOLS.pop(id(engine), None)
            if reads is not None:
                try:
                    await reads.close()
                finally:  # after: a read that came while it closed is gone too
                    _KEYED.pop(id(reads), None)
