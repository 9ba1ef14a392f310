"""The page's own reads (`orders.tracking_state`, `orders.tracking_page`): straight from the
pool on PostgreSQL, yet inside a write transaction they see what it wrote."""

from __future__ import annotations

import pytest

from portal import db
from portal.db.tables import AccessToken
from portal.services import orders
from tests.web.helpers import create_order, path_of


class Undo(Exception):
    pass


async def test_a_link_revoked_inside_a_transaction_is_dead_there_and_alive_after_its_rollback(
    rt, client, auth
):
    body = await create_order(client, auth, external_id="T-READS-1")
    token = path_of(body["tracking_url"]).removeprefix("/t/")
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
