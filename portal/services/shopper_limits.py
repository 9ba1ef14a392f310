"""Per-order limits on what a shopper does from their link, counted in the database so that
every worker (and every machine) shares them.

Every shopper action (a delivery change, a code asked for again, the pickup visit, the
delegate, the language and SMS switches, a return) runs in `acting`: its write transaction,
which first takes the order's slot. PORTAL_SHOPPER_CHANGES_PER_HOUR counts the actions of the
last hour (rows of `shopper_action`, by the order's index); PORTAL_SHOPPER_TEXTS_PER_DAY the
texts the shopper's own actions caused in the last 24 hours (one-time codes apart: they
have their own ration, five an hour; texts a newer one superseded before they left do not
count). Over either, the action is refused before it does anything, with the time it may
be tried again.

Racing actions of one order queue for the slot: on PostgreSQL a transaction-scoped
advisory lock of the order, taken before any row lock (so no cycle with the counter's or
the shop's locks); SQLite's write transactions run one at a time already.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from portal.db.tables import Order, ShopperAction, SmsMessage
from portal.domain.i18n import N_, LocalTime, Msg, Nf_
from portal.domain.phone import page_zone
from portal.domain.sms import SmsStatus
from portal.runtime import Runtime
from portal.services.errors import ServiceError

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LOCK_SPACE = 74202  # the first key of the advisory lock; the second is the order's id


@dataclass(frozen=True, slots=True)
class Action:
    """A shopper action: `counted` against the changes an hour; `texts`: it makes (or leads
    to) a text other than a code, so it waits while the texts of the day are used up."""

    name: str
    texts: bool = False
    counted: bool = True


RESCHEDULE = Action("reschedule", texts=True)
INSTRUCTIONS = Action("instructions", texts=True)
# A code first; its confirmation texts when the change is made.
ADDRESS = Action("address", texts=True)
SWITCH_TO_PICKUP = Action("switch_to_pickup", texts=True)
CODE_RESEND = Action("code_resend", texts=True)
# Typing the code finishes a change already counted; it still needs a text left.
CODE_CONFIRM = Action("code_confirm", texts=True, counted=False)
VISIT = Action("visit")
DELEGATE = Action("delegate")
LANGUAGE = Action("language")
SMS_UPDATES = Action("sms_updates")
RETURN = Action("return", texts=True)

CHANGES_MESSAGE = N_("you can make another change after %(time)s")
TEXTS_MESSAGE = N_("we have sent you many text messages today: you can do this after %(time)s")


class TooManyChanges(ServiceError):
    """Over a per-order limit: `retry_at` is when the action may be tried again."""

    status_code = 429

    def __init__(self, detail: Msg, *, retry_at: datetime) -> None:
        super().__init__(detail)
        self.retry_at = retry_at


@asynccontextmanager
async def acting(rt: Runtime, order_id: int, action: Action) -> AsyncIterator[None]:
    """The write transaction of one shopper action: refused (TooManyChanges) before
    anything else when the order is over a limit; counted when it commits (an action that
    fails rolls its count back with it)."""
    async with rt.writing():
        await _take(rt, order_id, action)
        yield


async def _take(rt: Runtime, order_id: int, action: Action) -> None:
    if not rt.is_sqlite:
        await ShopperAction.raw("SELECT pg_advisory_xact_lock({}, {})", LOCK_SPACE, order_id)
    now = rt.clock.now()
    settings = rt.settings
    retry: list[tuple[datetime, str]] = []
    if action.counted:
        done = await ShopperAction.select(ShopperAction.at).where(
            (ShopperAction.order == order_id) & (ShopperAction.at > now - HOUR)
        )
        limit = settings.shopper_changes_per_hour
        if len(done) >= limit:
            oldest = sorted(row["at"] for row in done)[-limit]
            retry.append((oldest + HOUR, CHANGES_MESSAGE))
    if action.texts:
        texted = await SmsMessage.select(SmsMessage.created_at).where(
            (SmsMessage.order == order_id)
            & SmsMessage.requested.eq(True)
            & (SmsMessage.kind != "otp")
            & (SmsMessage.status != SmsStatus.DROPPED)
            & (SmsMessage.created_at > now - DAY)
        )
        limit = settings.shopper_texts_per_day
        if len(texted) >= limit:
            oldest = sorted(row["created_at"] for row in texted)[-limit]
            retry.append((oldest + DAY, TEXTS_MESSAGE))
    if retry:
        at, message = max(retry)
        raise TooManyChanges(
            Nf_(message, time=LocalTime(at, await _zone(order_id), now)), retry_at=at
        )
    if action.counted:
        await ShopperAction.delete().where(
            (ShopperAction.order == order_id) & (ShopperAction.at <= now - DAY)
        )
        await ShopperAction.insert(ShopperAction(order=order_id, action=action.name, at=now))


async def _zone(order_id: int) -> str:
    row = (
        await Order.select(
            Order.store.timezone.as_alias("store_zone"),
            Order.customer.timezone.as_alias("customer_zone"),
            Order.customer.phone.as_alias("phone"),
        )
        .where(Order.id == order_id)
        .first()
    )
    if row is None:
        return "Europe/Rome"
    return page_zone(row["store_zone"], row["customer_zone"], row["phone"])
