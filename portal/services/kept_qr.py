"""The QR codes a page shows, kept on their row (an SVG without its title, portal.domain.qr,
and the URL it encodes): the pickup's handover QR while the order waits in the store, and
the return's counter QR while the return is live.

A QR is made once, after the transaction that created the need for it has committed, and
off the event loop (a few ms of CPU), so no lock waits on it; a guard on the update keeps a
row that moved on meanwhile from getting one. Until it is kept, or if keeping it fails, the
page makes the QR itself. Once no page shows it, the row's move clears it (`cleared`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from piccolo.columns import Column
from piccolo.columns.combination import Combinable

from portal.db.tables import Pickup, ReturnRequest
from portal.domain import qr
from portal.runtime import Runtime

Keeper = type[Pickup] | type[ReturnRequest]


def cleared(table: Keeper) -> dict[Column | str, Any]:
    """The values that drop a row's kept QR, for the update that ends its need."""
    return {table.qr_svg: "", table.qr_url: ""}


async def keep(rt: Runtime, table: Keeper, url: str, where: Combinable) -> None:
    """Make the QR of `url` and keep it on the row `where` selects (with its guard)."""
    svg = await asyncio.to_thread(qr.image, url)
    async with rt.writing():
        await table.update({table.qr_svg: svg, table.qr_url: url}).where(where)
