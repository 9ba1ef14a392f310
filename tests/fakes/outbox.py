"""What the SMS outbox tests and bench/sms_kill.py share: texts queued in bulk, and a
database that really refuses the write recording a text as sent (a trigger), until allowed.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import asyncpg

from portal.runtime import Runtime
from portal.services import messaging

# Makes the database itself refuse the write that records a text as sent (what a hiccup or
# exhausted connections do to that write), until ALLOW drops it.
REFUSE_OUTCOMES = {
    "sqlite": [
        "CREATE TRIGGER refuse_outcome BEFORE UPDATE OF status ON sms_message "
        "WHEN NEW.status IN ('sent', 'delivered') "
        "BEGIN SELECT RAISE(ABORT, 'outcome refused'); END"
    ],
    "postgres": [
        "CREATE FUNCTION refuse_outcome() RETURNS trigger AS $$ BEGIN "
        "IF NEW.status IN ('sent', 'delivered') THEN RAISE EXCEPTION 'outcome refused'; "
        "END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_outcome BEFORE UPDATE ON sms_message "
        "FOR EACH ROW EXECUTE FUNCTION refuse_outcome()",
    ],
}
ALLOW_OUTCOMES = {
    "sqlite": ["DROP TRIGGER refuse_outcome"],
    "postgres": ["DROP TRIGGER refuse_outcome ON sms_message", "DROP FUNCTION refuse_outcome()"],
}


def kind_of(db_url: str) -> str:
    return "sqlite" if db_url.startswith("sqlite") else "postgres"


async def run_sql(db_url: str, statements: list[str]) -> list[tuple[Any, ...]]:
    """On a connection of its own, as an operator (or another program) would; the rows of
    the last statement."""
    rows: list[tuple[Any, ...]] = []
    if db_url.startswith("sqlite:///"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=30) as conn:
            for statement in statements:
                rows = conn.execute(statement).fetchall()
        return rows
    conn = await asyncpg.connect(db_url)
    try:
        for statement in statements:
            rows = [tuple(r) for r in await conn.fetch(statement)]
    finally:
        await conn.close()
    return rows


async def queue_urgent_texts(rt: Runtime, count: int, key: str) -> None:
    """`count` one-time-code texts to distinct numbers: urgent, so no quiet hours (whatever
    the hour a test or the bench runs at)."""
    async with rt.writing():
        for i in range(count):
            await messaging.enqueue(
                rt,
                order_id=None,
                access_token_id=None,
                recipient=f"+39347{i:07d}",
                locale="en",
                kind="otp",
                dedupe_key=f"{key}:{i}",
                context={"code": "123456", "order_number": f"{key}-{i}", "minutes": 10},
                urgent=True,
            )
