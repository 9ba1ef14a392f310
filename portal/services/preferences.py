"""What a shopper chooses for themselves on the page: the language they read and are texted
in, and whether they get SMS updates at all."""

from __future__ import annotations

from portal.db.tables import Customer, Order
from portal.domain.i18n import N_
from portal.domain.locale import PAGE_LOCALES
from portal.runtime import Runtime
from portal.services import shopper_limits as limits
from portal.services.errors import Invalid, NotFound


async def set_language(rt: Runtime, order_id: int, language: str) -> str:
    """Remember the language on the order's customer: every page of theirs and every text
    message from now on uses it (until the shop sends an order stating another one)."""
    lang = language.strip().lower()
    if lang not in PAGE_LOCALES:
        raise Invalid(N_("choose one of the languages listed"), field="language")
    async with limits.acting(rt, order_id, limits.LANGUAGE):
        row = await Order.select(Order.customer).where(Order.id == order_id).first()
        if row is None:
            raise NotFound("no such order")
        await Customer.update({Customer.locale: lang}).where(Customer.id == row["customer"])
    return lang


async def set_sms_updates(rt: Runtime, order_id: int, on: bool) -> bool:
    """The page's "SMS updates: on/off" switch, the same flag as texting STOP or START: off,
    only what the shopper asks for on the page (a one-time code) is sent."""
    async with limits.acting(rt, order_id, limits.SMS_UPDATES):
        row = await Order.select(Order.customer).where(Order.id == order_id).first()
        if row is None:
            raise NotFound("no such order")
        await Customer.update({Customer.sms_opt_out_at: None if on else rt.clock.now()}).where(
            Customer.id == row["customer"]
        )
        # The page shows the switch: its fragment's ETag must change.
        await Order.update({Order.version: Order.version + 1}).where(Order.id == order_id)
    return on
