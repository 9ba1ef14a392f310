"""The page's own reads (`orders.tracking_state`, `orders.tracking_page`): straight from the
pool on PostgreSQL, the reads waiting at one moment together in one query (db.batch), yet
each sees what was committed before it was asked, and inside a write transaction what that
transaction wrote."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import asyncpg
import pytest
from piccolo.querystring import QueryString
from prometheus_client import REGISTRY

from portal import db
from portal.db.batch import KeyedReads
from portal.db.tables import AccessToken
from portal.domain import tokens
from portal.services import orders
from tests.web.helpers import create_order, path_of


def token_of(body: dict) -> str:
    return path_of(body["tracking_url"]).removeprefix("/t/")


def counted() -> tuple[float, float]:
    """The batched reads and their queries so far, as /metrics shows them."""
    value = REGISTRY.get_sample_value
    return value("portal_db_keyed_reads_total") or 0, value("portal_db_keyed_queries_total") or 0


class Undo(Exception):
    pass


async def test_a_link_revoked_inside_a_transaction_is_dead_there_and_alive_after_its_rollback(
    rt, client, auth
):
    body = await create_order(client, auth, external_id="T-READS-1")
    token = token_of(body)
    assert await orders.tracking_state(rt, token) is not None

    with pytest.raises(Undo):
        async with db.writing(rt.engine):
            await AccessToken.update({AccessToken.revoked_at: rt.clock.now()}).where(
                AccessToken.revoked_at.is_null()
            )
            assert await orders.tracking_state(rt, token) is None
            assert await orders.tracking_page(rt, token) is None
            raise Undo

    state = await orders.tracking_state(rt, token)
    view = await orders.tracking_page(rt, token)
    assert state is not None and view is not None
    assert view.order_number == "T-READS-1"
    assert view.state == state


def test_placeholders_are_numbered_for_postgresql_in_order():
    sql = "SELECT 1 FROM t WHERE a = {} AND b IN ({}, {})"
    assert db.dollar_params(sql) == "SELECT 1 FROM t WHERE a = $1 AND b IN ($2, $3)"


async def test_pages_read_at_once_each_show_their_own_order(rt, client, auth):
    """Dozens of shoppers at once: each page shows its own order; an unknown or revoked
    link is a miss for its reader only. On PostgreSQL they share round trips."""
    numbers = [f"T-MANY-{i}" for i in range(4)]
    links = {n: token_of(await create_order(client, auth, external_id=n)) for n in numbers}
    revoked = token_of(await create_order(client, auth, external_id="T-MANY-REVOKED"))
    await AccessToken.update({AccessToken.revoked_at: rt.clock.now()}).where(
        AccessToken.token_hash == tokens.hash_token(revoked)
    )
    asked = [*(numbers * 8), "unknown", "revoked"]
    link = {
        **links,
        "unknown": tokens.derive_token("another secret", tokens.new_salt()),
        "revoked": revoked,
    }
    reads_before, queries_before = counted()

    views = await asyncio.gather(*(orders.tracking_page(rt, link[n]) for n in asked))
    states = await asyncio.gather(*(orders.tracking_state(rt, link[n]) for n in asked))

    for n, view, state in zip(asked, views, states, strict=True):
        if n in links:
            assert view is not None and view.order_number == n
            assert state == view.state
        else:
            assert view is None and state is None
    if not rt.is_sqlite:
        reads_after, queries_after = counted()
        reads, queries = reads_after - reads_before, queries_after - queries_before
        assert reads == 2 * len(asked)
        assert queries < reads / 4  # 68 reads, a few round trips


async def test_a_read_sees_a_revocation_committed_before_it_was_asked(rt, client, auth):
    token = token_of(await create_order(client, auth, external_id="T-FRESH-1"))
    other = token_of(await create_order(client, auth, external_id="T-FRESH-2"))
    first = asyncio.gather(*(orders.tracking_page(rt, other) for _ in range(5)))
    await AccessToken.update({AccessToken.revoked_at: rt.clock.now()}).where(
        AccessToken.token_hash == tokens.hash_token(token)
    )
    assert await orders.tracking_page(rt, token) is None
    assert all(view is not None for view in await first)


@asynccontextmanager
async def table_locked(rt, table: str):
    """Reads of `table` wait at the database until the block ends."""
    blocker = await asyncpg.connect(rt.settings.database_url)
    try:
        async with blocker.transaction():
            await blocker.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
            yield
    finally:
        await blocker.close()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_read_asked_while_a_query_for_its_link_is_out_goes_in_the_next(rt, client, auth):
    token = token_of(await create_order(client, auth, external_id="T-FRESH-3"))
    _, queries_before = counted()
    async with table_locked(rt, "customer"):
        first = asyncio.ensure_future(orders.tracking_page(rt, token))
        await asyncio.sleep(0.2)  # its query is at the database, waiting for the lock
        await AccessToken.update({AccessToken.revoked_at: rt.clock.now()}).where(
            AccessToken.token_hash == tokens.hash_token(token)
        )
        second = asyncio.ensure_future(orders.tracking_page(rt, token))
        await asyncio.sleep(0.05)
    await first  # asked before the revocation: either answer is right
    assert await second is None  # asked after it: never the answer of the query already out
    assert counted()[1] - queries_before == 2


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_reader_that_gives_up_takes_no_place_in_the_next_query(rt):
    reads = KeyedReads(rt.engine.pool, "SELECT id AS k FROM store WHERE id = ANY($1)", "k")
    reads_before, queries_before = counted()
    async with table_locked(rt, "store"):
        out = asyncio.ensure_future(reads.get(1))  # the query out
        await asyncio.sleep(0.1)
        quitters = [asyncio.ensure_future(reads.get(k)) for k in (2, 3, 3)]
        stayer = asyncio.ensure_future(reads.get(4))
        await asyncio.sleep(0)
        for quitter in quitters:
            quitter.cancel()
        await asyncio.sleep(0)
    assert await out is None and await stayer is None  # no such stores
    reads_after, queries_after = counted()
    assert (reads_after - reads_before, queries_after - queries_before) == (2, 2)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_failed_query_fails_its_readers_and_the_next_reads_go_on(rt):
    broken = KeyedReads(rt.engine.pool, "SELECT k FROM no_such_table WHERE k = ANY($1)", "k")
    results = await asyncio.wait_for(
        asyncio.gather(*(broken.get(i) for i in range(5)), return_exceptions=True), timeout=5
    )
    assert all(isinstance(r, asyncpg.UndefinedTableError) for r in results)

    reads = KeyedReads(rt.engine.pool, "SELECT k FROM unnest($1::int[]) AS k WHERE k > 0", "k")
    quitter = asyncio.ensure_future(reads.get(7))
    others = asyncio.gather(*(reads.get(i) for i in range(-2, 5)))
    await asyncio.sleep(0)
    quitter.cancel()  # a reader that gave up does not hold up the others
    assert [row and row["k"] for row in await others] == [None, None, None, 1, 2, 3, 4]
    # A mistake past the query (here a wrong key column) reaches the readers as itself.
    wrong = KeyedReads(rt.engine.pool, "SELECT k FROM unnest($1::int[]) AS k", "key")
    with pytest.raises(KeyError):
        await asyncio.wait_for(wrong.get(1), timeout=5)
    with pytest.raises(asyncpg.UndefinedTableError):  # again at once, not hanging
        await asyncio.wait_for(broken.get(1), timeout=5)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_worker_stopping_mid_query_leaves_no_reader_waiting(rt):
    slow = KeyedReads(
        rt.engine.pool,
        "SELECT k FROM unnest($1::int[]) AS k WHERE pg_sleep(0.3) IS NOT NULL",
        "k",
    )
    out = [asyncio.ensure_future(slow.get(1))]
    await asyncio.sleep(0.05)  # the first query is at the database
    out += [asyncio.ensure_future(slow.get(k)) for k in (2, 3)]  # queued behind it
    await asyncio.sleep(0)
    slow._sender.cancel()  # as when the event loop shuts down
    results = await asyncio.wait_for(asyncio.gather(*out, return_exceptions=True), timeout=5)
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results
    row = await asyncio.wait_for(slow.get(4), timeout=5)  # and the next read goes on
    assert row is not None and row["k"] == 4


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_the_page_query_is_planned_once_not_on_every_read(rt, client, auth):
    token = token_of(await create_order(client, auth, external_id="T-PLAN-1"))
    sql = db.dollar_params(orders.PAGE_SQL_PG)
    pool = db._direct_pool(rt.engine)  # the pool the page's reads go to
    assert pool is not None
    async with pool.acquire() as connection:
        for _ in range(7):
            rows = await connection.fetch(sql, [tokens.hash_token(token)])
            assert [r["external_id"] for r in rows] == ["T-PLAN-1"]
        plans = await connection.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            sql,
        )
    # PostgreSQL's default plans such a statement afresh for each of its keys (custom plans).
    assert (plans["generic_plans"], plans["custom_plans"]) == (7, 0)
    # The ORM's own queries keep the default: there the values may choose the plan.
    setting = await rt.engine.run_querystring(
        QueryString("SELECT current_setting('plan_cache_mode') AS mode")
    )
    assert [row["mode"] for row in setting] == ["auto"]
