"""Orders: created by the shop, moved on by its events, read by the shopper's page."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from piccolo.columns import Column

from portal import db, metrics
from portal.db.tables import AccessToken, Customer, Order, OrderEvent, OrderLine, Shipment, Store
from portal.domain import DomainError, InvalidTransition, dates, locale, tokens
from portal.domain import pickup as pickup_rules
from portal.domain import returns as return_rules
from portal.domain.money import InvalidMoney, check_currency, format_decimal_string, to_minor
from portal.domain.order import (
    SHOP_EVENTS,
    EventType,
    Fulfilment,
    OrderStatus,
    ShipmentStatus,
    Step,
    first_name,
    is_final,
    plan_event,
    progress,
    sms_for,
)
from portal.domain.phone import InvalidPhone, mask, normalise, page_zone, region_of, timezone_of
from portal.runtime import Runtime
from portal.services import messaging, pickup, surveys
from portal.services.errors import Conflict, Invalid, Malformed, NotFound
from portal.services.inputs import EventIn, OrderIn, PickupIn

MAX_CREATE_TRIES = 3
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OrderReceipt:
    id: int
    external_id: str
    status: str
    tracking_url: str


def _date(value: datetime | None, field: str, now: datetime | None = None) -> datetime | None:
    """A date field by the date rule (in UTC), or 422 naming the field. With `now`: an
    event's time, which may not lie more than a day ahead."""
    if value is None:
        return None
    try:
        return dates.accepted(value) if now is None else dates.occurred(value, now)
    except dates.DateRefused as exc:
        raise Invalid(str(exc), field=field) from exc


def _check_order(rt: Runtime, data: OrderIn) -> tuple[str, str, list[int]]:
    """Rules beyond the shape; each failure names its field."""
    _date(data.placed_at, "placed_at")
    try:
        phone = normalise(data.customer.phone, rt.settings.default_region)
    except InvalidPhone as exc:
        raise Invalid(str(exc), field="customer.phone") from exc
    try:
        currency = check_currency(data.currency)
    except InvalidMoney as exc:
        raise Invalid(str(exc), field="currency") from exc
    prices = []
    for i, line in enumerate(data.lines):
        try:
            prices.append(to_minor(line.unit_price, currency))
        except InvalidMoney as exc:
            raise Invalid(str(exc), field=f"lines[{i}].unit_price") from exc
    return phone, currency, prices


async def _receipt(rt: Runtime, external_id: str) -> OrderReceipt | None:
    row = await (
        Order.select(Order.id, Order.external_id, Order.status)
        .where(Order.external_id == external_id)
        .first()
    )
    if row is None:
        return None
    salt = await _track_salt(row["id"])
    url = (
        rt.settings.tracking_url(tokens.derive_token(rt.settings.secret_key, salt)) if salt else ""
    )
    return OrderReceipt(row["id"], row["external_id"], row["status"], url)


async def _track_salt(order_id: int) -> str | None:
    token = await messaging.link_token(order_id)
    return token["salt"] if token else None


async def create_order(rt: Runtime, data: OrderIn) -> tuple[OrderReceipt, bool]:
    """Create the order, its link and its confirmation SMS in one transaction.

    Idempotent on `external_id`: a repeat (or a racing twin) gets the first one's receipt
    and changes nothing. Returns (receipt, created).
    """
    phone, currency, prices = _check_order(rt, data)
    for _ in range(MAX_CREATE_TRIES):
        existing = await _receipt(rt, data.external_id)
        if existing:
            return existing, False
        try:
            return await _insert_order(rt, data, phone, currency, prices), True
        except Exception as exc:
            # A twin request won the race for external_id (or for the customer's phone).
            if not db.is_unique_violation(exc):
                raise
    raise Conflict("the order is being created by another request; try again", field="external_id")


async def _insert_order(
    rt: Runtime, data: OrderIn, phone: str, currency: str, prices: list[int]
) -> OrderReceipt:
    now = rt.clock.now()
    placed_at = _date(data.placed_at, "placed_at") or now
    lang = locale.pick(data.customer.locale, region_of(phone))
    async with rt.writing():
        store_id = None
        store_name = None
        if isinstance(data.fulfilment, PickupIn):
            store = (
                await Store.select(Store.id, Store.name)
                .where(Store.code == data.fulfilment.store)
                .first()
            )
            if store is None:
                raise Invalid(
                    f"no store with code {data.fulfilment.store!r}", field="fulfilment.store"
                )
            store_id, store_name = store["id"], store["name"]
            method, address = Fulfilment.PICKUP, None
        else:
            method = Fulfilment.DELIVERY
            address = {
                k: v for k, v in _struct_dict(data.fulfilment.address).items() if v is not None
            }
            address["country"] = address["country"].upper()

        customer_id = await _upsert_customer(data, phone, lang, now)
        total = sum(p * line.quantity for p, line in zip(prices, data.lines, strict=True))
        inserted = await Order.insert(
            Order(
                external_id=data.external_id,
                customer=customer_id,
                status=OrderStatus.PLACED,
                fulfilment=method,
                store=store_id,
                delivery_address=address,
                currency=currency,
                total_minor=total,
                placed_at=placed_at,
                created_at=now,
                updated_at=now,
            )
        ).returning(Order.id)
        order_id = inserted[0]["id"]
        await OrderLine.insert(
            *(
                OrderLine(
                    order=order_id,
                    position=i,
                    sku=line.sku,
                    name=line.name,
                    quantity=line.quantity,
                    unit_price_minor=price,
                    returnable=line.returnable,
                )
                for i, (line, price) in enumerate(zip(data.lines, prices, strict=True))
            )
        )
        event = await OrderEvent.insert(
            OrderEvent(
                order=order_id,
                type=EventType.PLACED,
                occurred_at=placed_at,
                recorded_at=now,
                data={},
            )
        ).returning(OrderEvent.id)
        if store_id is not None:
            await pickup.open_pickup(rt, order_id, store_id)
        salt = tokens.new_salt()
        token = tokens.derive_token(rt.settings.secret_key, salt)
        token_row = await AccessToken.insert(
            AccessToken(
                token_hash=tokens.hash_token(token),
                salt=salt,
                order=order_id,
                purpose="track",
                expires_at=tokens.token_expiry(
                    now,
                    closed=False,
                    days_open=rt.settings.token_days_open,
                    days_after_close=rt.settings.token_days_after_close,
                ),
                created_at=now,
            )
        ).returning(AccessToken.id)
        await messaging.enqueue(
            rt,
            order_id=order_id,
            access_token_id=token_row[0]["id"],
            recipient=phone,
            locale=lang,
            kind="order_confirmed",
            dedupe_key=f"event:{event[0]['id']}",
            context={
                "first_name": first_name(data.customer.name),
                "order_number": data.external_id,
                "pickup": method is Fulfilment.PICKUP,
                "store_name": store_name,
            },
        )
    metrics.order_created()
    return OrderReceipt(
        order_id, data.external_id, OrderStatus.PLACED, rt.settings.tracking_url(token)
    )


def _struct_dict(struct: Any) -> dict[str, Any]:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}


async def _upsert_customer(data: OrderIn, phone: str, lang: str, now: datetime) -> int:
    row = await Customer.select(Customer.id).where(Customer.phone == phone).first()
    name, email = data.customer.name, data.customer.email
    # What the page shows of the number, worked out here once rather than on every view
    # (a customer from before they were kept gets them with the next order).
    masked, zone = mask(phone), timezone_of(phone, "")
    if row:
        await Customer.update(
            {
                Customer.name: name,
                Customer.email: email,
                Customer.locale: lang,
                Customer.phone_masked: masked,
                Customer.timezone: zone,
            }
        ).where(Customer.id == row["id"])
        return int(row["id"])
    customer = Customer(
        phone=phone,
        name=name,
        email=email,
        locale=lang,
        created_at=now,
        phone_masked=masked,
        timezone=zone,
    )
    inserted = await Customer.insert(customer).returning(Customer.id)
    return int(inserted[0]["id"])


@dataclass(frozen=True, slots=True)
class FieldWarning:
    """Something the portal set aside from an accepted request, and why."""

    field: str
    detail: str


@dataclass(frozen=True, slots=True)
class EventOutcome:
    external_id: str
    status: str
    event_id: int | None
    duplicate: bool
    warnings: tuple[FieldWarning, ...] = ()


def _check_event(data: EventIn, now: datetime) -> datetime | None:
    """The event's dates by the date rule (the ETA apart: see `_eta`); its time in UTC."""
    occurred_at = _date(data.occurred_at, "occurred_at", now)
    for i, day in enumerate((data.shipment.delivery_days or []) if data.shipment else []):
        try:
            dates.accepted_day(day)
        except dates.DateRefused as exc:
            raise Invalid(str(exc), field=f"shipment.delivery_days[{i}]") from exc
    return occurred_at


def _eta(data: EventIn, zone: str) -> tuple[dates.Eta | None, tuple[FieldWarning, ...]]:
    """The parcel's ETA. One outside the window is a shop's "no date" placeholder
    ("0001-01-01T00:00:00Z"): treated as absent and named in a warning, so that the event
    it came with (a `shipped`) is not lost."""
    text = data.shipment.eta if data.shipment else None
    if text is None:
        return None, ()
    try:
        return dates.parse_eta(text, zone), ()
    except dates.DateUnreadable as exc:
        raise Malformed(str(exc), field="shipment.eta") from exc
    except dates.DateRefused as exc:
        return None, (FieldWarning("shipment.eta", f"{exc}; the ETA was left out"),)


def parse_event_type(value: str) -> EventType:
    try:
        event = EventType(value)
    except ValueError:
        event = None
    if event is None or event not in SHOP_EVENTS:
        allowed = ", ".join(sorted(e.value for e in SHOP_EVENTS))
        raise Invalid(f"unknown event type {value!r}; one of: {allowed}", field="type")
    return event


async def record_event(rt: Runtime, external_id: str, data: EventIn) -> EventOutcome:
    """Apply one shop event: a guarded transition, a timeline entry and maybe an SMS, at once."""
    event = parse_event_type(data.type)
    occurred_at = _check_event(data, rt.clock.now())
    tracking = data.shipment.tracking_number if data.shipment else None
    async with rt.writing():
        query = Order.select(
            Order.id,
            Order.status,
            Order.fulfilment,
            Order.version,
            Order.store.name.as_alias("store_name"),
            Order.store.timezone.as_alias("store_zone"),
            Order.customer.name.as_alias("customer_name"),
            Order.customer.phone.as_alias("phone"),
            Order.customer.locale.as_alias("locale"),
            Order.customer.timezone.as_alias("customer_zone"),
        ).where(Order.external_id == external_id)
        # Concurrent events for one order queue up here instead of racing.
        order = await rt.for_update(query).first()
        if order is None:
            raise NotFound(f"no order with external_id {external_id!r}", field="external_id")
        parcels = await Shipment.select(
            Shipment.id, Shipment.tracking_number, Shipment.status
        ).where(Shipment.order == order["id"])
        fulfilment = Fulfilment(order["fulfilment"])
        try:
            plan = plan_event(
                fulfilment,
                OrderStatus(order["status"]),
                event,
                {p["tracking_number"]: ShipmentStatus(p["status"]) for p in parcels},
                tracking,
            )
        except InvalidTransition as exc:
            raise Conflict(str(exc), field="type") from exc
        except DomainError as exc:
            raise Invalid(str(exc), field="shipment") from exc
        eta, warnings = _eta(
            data, page_zone(order["store_zone"], order["customer_zone"], order["phone"])
        )
        if plan.duplicate:
            return EventOutcome(external_id, order["status"], None, True, warnings)

        now = rt.clock.now()
        shipment_id = await _apply_shipment(order["id"], plan, data, eta, parcels, now)
        values: dict[Column | str, Any] = {
            Order.status: plan.order_status,
            Order.version: Order.version + 1,
            Order.updated_at: now,
        }
        if is_final(plan.order_status):
            values[Order.closed_at] = now
        else:
            values[Order.closed_at] = None
        await Order.update(values).where(Order.id == order["id"])
        await _set_token_expiry(rt, order["id"], now, closed=is_final(plan.order_status))
        event_id = await add_event(
            rt,
            order["id"],
            event,
            shipment_id=shipment_id,
            note=data.note,
            occurred_at=occurred_at,
        )
        if plan.order_status is OrderStatus.DELIVERED:
            # One satisfaction SMS the day after (the pickup counter plans its own).
            await surveys.plan_survey(rt, order["id"], now)
        kind = sms_for(event, fulfilment)
        if kind:
            await messaging.text_shopper(
                rt,
                order_id=order["id"],
                phone=order["phone"],
                locale=order["locale"],
                name=order["customer_name"],
                order_number=external_id,
                kind=kind,
                dedupe_key=f"event:{event_id}",
                context={
                    "carrier": data.shipment.carrier if data.shipment else "",
                    "tracking_number": tracking or "",
                    "pickup": fulfilment is Fulfilment.PICKUP,
                    "store_name": order["store_name"],
                },
            )
    metrics.order_event(event)
    return EventOutcome(external_id, plan.order_status, event_id, False, warnings)


async def add_event(
    rt: Runtime,
    order_id: int,
    event: EventType,
    *,
    shipment_id: int | None = None,
    note: str | None = None,
    data: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> int:
    """One timeline entry (inside the caller's transaction); returns its id."""
    now = rt.clock.now()
    entry = await OrderEvent.insert(
        OrderEvent(
            order=order_id,
            type=event,
            occurred_at=occurred_at or now,
            recorded_at=now,
            shipment=shipment_id,
            note=note,
            data=data or {},
        )
    ).returning(OrderEvent.id)
    return int(entry[0]["id"])


async def _apply_shipment(
    order_id: int,
    plan: Any,
    data: EventIn,
    eta: dates.Eta | None,
    parcels: list[dict[str, Any]],
    now: datetime,
) -> int | None:
    if plan.shipment_key is None:
        return None
    if plan.new_shipment:
        assert data.shipment is not None
        inserted = await Shipment.insert(
            Shipment(
                order=order_id,
                key=f"{order_id}:{plan.shipment_key}",
                tracking_number=plan.shipment_key,
                carrier=data.shipment.carrier,
                eta=eta.moment if eta else None,
                eta_date_only=bool(eta and eta.date_only),
                delivery_days=_days(data.shipment.delivery_days),
                status=plan.shipment_status,
                created_at=now,
                updated_at=now,
            )
        ).returning(Shipment.id)
        return int(inserted[0]["id"])
    shipment_id = next(p["id"] for p in parcels if p["tracking_number"] == plan.shipment_key)
    values: dict[Column | str, Any] = {
        Shipment.status: plan.shipment_status,
        Shipment.updated_at: now,
    }
    if eta is not None:
        values[Shipment.eta] = eta.moment
        values[Shipment.eta_date_only] = eta.date_only
    if data.shipment and data.shipment.delivery_days is not None:
        values[Shipment.delivery_days] = _days(data.shipment.delivery_days)
    if plan.shipment_status is ShipmentStatus.DELIVERY_FAILED:
        # The day the shopper chose has passed without a delivery: they choose again.
        values[Shipment.delivery_day] = None
    await Shipment.update(values).where(Shipment.id == shipment_id)
    return int(shipment_id)


def _days(days: list[date] | None) -> list[str] | None:
    return [d.isoformat() for d in sorted(set(days))] if days else None


async def _set_token_expiry(rt: Runtime, order_id: int, now: datetime, *, closed: bool) -> None:
    expires = tokens.token_expiry(
        now,
        closed=closed,
        days_open=rt.settings.token_days_open,
        days_after_close=rt.settings.token_days_after_close,
    )
    await AccessToken.update({AccessToken.expires_at: expires}).where(
        (AccessToken.order == order_id) & AccessToken.revoked_at.is_null()
    )


async def revoke_links(rt: Runtime, external_id: str) -> int:
    """Make every link of an order stop working (a new one is not issued here)."""
    async with rt.writing():
        order = await Order.select(Order.id).where(Order.external_id == external_id).first()
        if order is None:
            raise NotFound(f"no order with external_id {external_id!r}", field="external_id")
        revoked = (
            await AccessToken.update({AccessToken.revoked_at: rt.clock.now()})
            .where((AccessToken.order == order["id"]) & AccessToken.revoked_at.is_null())
            .returning(AccessToken.id)
        )
        await Order.update({Order.version: Order.version + 1}).where(Order.id == order["id"])
    return len(revoked)


# ---------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class TrackingState:
    """The cheap part of a page view: enough to answer an unchanged poll with 304."""

    order_id: int
    version: int
    status: str
    locale: str

    @property
    def etag(self) -> str:
        return f'"o{self.order_id}v{self.version}{self.locale}"'

    @property
    def final(self) -> bool:
        return is_final(OrderStatus(self.status))


@dataclass(frozen=True, slots=True)
class PickupView:
    """The click-and-collect part of the shopper's page. The code is only kept while the
    order waits at the counter: never before it is ready, never once it is final."""

    status: str
    ready_items: int
    total_items: int
    code: str | None
    ready_at: datetime | None
    hold_until: datetime | None
    visit_start: datetime | None
    visit_end: datetime | None
    delegate_name: str | None
    collected_at: datetime | None
    # Who took it when it was not the shopper (None: "you").
    collected_by: str | None
    # While ready: the handover QR made when it became ready, and the URL it encodes.
    qr_svg: str = ""
    qr_url: str = ""

    @property
    def final(self) -> bool:
        return self.status in pickup_rules.FINAL

    @property
    def display_code(self) -> str:
        return pickup_rules.display_code(self.code) if self.code else ""


@dataclass(slots=True)
class TrackingView:
    state: TrackingState
    order_number: str
    fulfilment: str
    first_name: str
    masked_phone: str
    currency: str
    total_minor: int
    # None: the stored value is one no page can show (see `readable_dates`).
    placed_at: datetime | None
    timezone: str
    steps: list[Step]
    lines: list[dict[str, Any]] = field(default_factory=list)
    shipments: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    store: dict[str, Any] | None = None
    address: dict[str, Any] | None = None
    pickup: PickupView | None = None
    # When the order was delivered, collected or cancelled; whether it has returns or
    # refunds to show (the page reads them only then).
    closed_at: datetime | None = None
    has_returns: bool = False
    has_refunds: bool = False
    # A code waits to confirm a change; a change waits for the shop (the delivery card
    # reads them only then).
    has_open_code: bool = False
    has_waiting_change: bool = False
    # The shopper turned SMS updates off (on the page, or by texting STOP).
    sms_off: bool = False
    # The returns card's rows (REFUNDS_SQL, RETURN_ROWS_SQL), when the page's query read
    # them (PostgreSQL); None: services.returns reads them if the flags above say so.
    refunds: list[dict[str, Any]] | None = None
    return_rows: list[dict[str, Any]] | None = None


# The page's reads as fixed SQL: this is the hottest path, and building Piccolo queries
# cost more than running them. Every lookup is by primary key or an indexed foreign key.
_STATE_COLUMNS = """o.id AS order_id, o.version, o.status, c.locale, t.expires_at, t.revoked_at"""
# The flags' EXISTS probes take `{fence}`: " OFFSET 0" on PostgreSQL keeps each one an index
# lookup for its order. Without it PostgreSQL may instead hash a whole table (one it deems
# small) for every query, and the page's plan, made once per connection (db.FIXED_PLANS),
# would keep doing so as the table grows. SQLite has no OFFSET without LIMIT; it has no need.
_ORDER_COLUMNS = """o.external_id, o.fulfilment, o.currency, o.total_minor, o.placed_at,
       o.delivery_address, c.name AS customer_name, c.phone, c.phone_masked,
       c.timezone AS customer_zone,
       c.sms_opt_out_at IS NOT NULL AS sms_off, s.name AS store_name,
       s.address AS store_address, s.timezone AS store_timezone, s.opening_hours AS store_hours,
       s.pickup_hold_days AS store_hold_days,
       p.status AS pickup_status, p.code AS pickup_code, p.ready_at AS pickup_ready_at,
       p.hold_until AS pickup_hold_until, p.visit_start AS pickup_visit_start,
       p.visit_end AS pickup_visit_end, p.delegate_name AS pickup_delegate,
       p.collected_at AS pickup_collected_at, p.handed_to AS pickup_handed_to,
       CASE WHEN p.status = 'ready' THEN p.qr_svg END AS pickup_qr_svg,
       p.qr_url AS pickup_qr_url,
       o.closed_at,
       EXISTS (SELECT 1 FROM one_time_code oc WHERE oc."order" = o.id
               AND oc.used_at IS NULL{fence}) AS has_open_code,
       EXISTS (SELECT 1 FROM delivery_change dc WHERE dc."order" = o.id
               AND dc.status = 'requested'{fence}) AS has_waiting_change"""
_FROM_LINK = """FROM access_token t JOIN orders o ON o.id = t."order"
     JOIN customer c ON c.id = o.customer"""
# A pickup order has one pickup row (unique on "order"); delivery orders get NULLs.
_JOIN_STORE_PICKUP = """LEFT JOIN store s ON s.id = o.store
     LEFT JOIN pickup p ON p."order" = o.id"""
STATE_SQL = f"SELECT {_STATE_COLUMNS} {_FROM_LINK} WHERE t.token_hash = {{}}"
# PostgreSQL: the reads of one worker that wait at the same moment go together (db.batch).
STATE_SQL_PG = f"""SELECT t.token_hash, {_STATE_COLUMNS} {_FROM_LINK}
WHERE t.token_hash = ANY({{}})"""
ORDER_SQL = f"""SELECT {_ORDER_COLUMNS.format(fence="")},
       EXISTS (SELECT 1 FROM return_request rr WHERE rr."order" = o.id) AS has_returns,
       EXISTS (SELECT 1 FROM refund rf WHERE rf."order" = o.id) AS has_refunds
FROM orders o JOIN customer c ON c.id = o.customer {_JOIN_STORE_PICKUP}
WHERE o.id = {{}}"""
LINE_COLUMNS = ("id", "name", "sku", "quantity", "unit_price_minor", "ready_quantity", "returnable")
# With what the delivery card needs (offered days, the chosen day, instructions).
SHIPMENT_COLUMNS = (
    "id",
    "tracking_number",
    "carrier",
    "eta",
    "status",
    "delivery_day",
    "delivery_days",
    "instructions",
)
EVENT_COLUMNS = ("type", "occurred_at", "shipment", "note")
LINES_SQL = (
    f'SELECT {", ".join(LINE_COLUMNS)} FROM order_line WHERE "order" = {{}} ORDER BY position'
)
SHIPMENTS_SQL = (
    f'SELECT {", ".join(SHIPMENT_COLUMNS)} FROM shipment WHERE "order" = {{}} ORDER BY id'
)
# The returns card's reads (services.returns): an order's refunds, and its returns with
# their lines, one row per line (a return has at least one).
REFUND_COLUMNS = (
    "id",
    "amount_minor",
    "currency",
    "reason",
    "status",
    "return_request",
    "paid_at",
    "failure_reason",
    "created_at",
    "updated_at",
)
_FINAL_RETURNS = ", ".join(sorted(f"'{status.value}'" for status in return_rules.FINAL))
RETURN_ROW_COLUMNS = {  # name: what it is
    "id": "rr.id",
    "code": "rr.code",
    "status": "rr.status",
    "method": "rr.method",
    # By its key (a join to store may hash the whole store table for each page).
    "store_name": "(SELECT st.name FROM store st WHERE st.id = rr.store)",
    "label_url": "rr.label_url",
    "label_carrier": "rr.label_carrier",
    "return_rejection_reason": "rr.rejection_reason",
    "created_at": "rr.created_at",
    "line_id": "rl.id",
    "order_line": "rl.order_line",
    "name": "ol.name",
    "sku": "ol.sku",
    "unit_price_minor": "ol.unit_price_minor",
    "quantity": "rl.quantity",
    "reason": "rl.reason",
    "note": "rl.note",
    "accepted_quantity": "rl.accepted_quantity",
    "rejection_reason": "rl.rejection_reason",
    # The counter's QR, while the page shows it (the return is not over).
    "qr_svg": f"CASE WHEN rr.status IN ({_FINAL_RETURNS}) THEN '' ELSE rr.qr_svg END",
    "qr_url": "rr.qr_url",
}
_RETURNS_OF_ORDER = """FROM return_request rr
     LEFT JOIN return_line rl ON rl.return_request = rr.id
     LEFT JOIN order_line ol ON ol.id = rl.order_line
WHERE rr."order" = {} ORDER BY rr.id, rl.id"""
_REFUNDS_OF_ORDER = 'FROM refund rf WHERE rf."order" = {} ORDER BY rf.id'
REFUNDS_SQL = f"SELECT {', '.join(REFUND_COLUMNS)} {_REFUNDS_OF_ORDER}"
RETURN_ROWS_SQL = f"""SELECT {", ".join(f"{e} AS {n}" for n, e in RETURN_ROW_COLUMNS.items())}
{_RETURNS_OF_ORDER}"""
EVENTS_SQL = """SELECT type, occurred_at, shipment, note FROM order_event WHERE "order" = {}
ORDER BY occurred_at DESC, id DESC"""
# PostgreSQL: the whole page in one round trip (lines, parcels and events as arrays of rows),
# with the other pages the worker is waiting for at that moment (db.batch).
PAGE_SQL_PG = f"""SELECT t.token_hash, {_STATE_COLUMNS}, {_ORDER_COLUMNS.format(fence=" OFFSET 0")},
  ARRAY(SELECT ROW({", ".join("l." + c for c in LINE_COLUMNS)})
        FROM order_line l
        WHERE l."order" = o.id ORDER BY l.position) AS lines,
  ARRAY(SELECT ROW({", ".join("sh." + c for c in SHIPMENT_COLUMNS)})
        FROM shipment sh
        WHERE sh."order" = o.id ORDER BY sh.id) AS shipments,
  ARRAY(SELECT ROW(e.type, e.occurred_at, e.shipment, e.note) FROM order_event e
        WHERE e."order" = o.id ORDER BY e.occurred_at DESC, e.id DESC) AS events,
  ARRAY(SELECT ROW({", ".join("rf." + c for c in REFUND_COLUMNS)})
        {_REFUNDS_OF_ORDER.format("o.id")}) AS refunds,
  ARRAY(SELECT ROW({", ".join(RETURN_ROW_COLUMNS.values())})
        {_RETURNS_OF_ORDER.format("o.id")}) AS return_rows
{_FROM_LINK} {_JOIN_STORE_PICKUP}
WHERE t.token_hash = ANY({{}})"""


def _usable_state(rt: Runtime, row: Mapping[str, Any] | None) -> TrackingState | None:
    if row is None or not tokens.is_usable(row["expires_at"], row["revoked_at"], rt.clock.now()):
        return None
    return TrackingState(row["order_id"], row["version"], row["status"], row["locale"])


async def tracking_state(rt: Runtime, token: str) -> TrackingState | None:
    """None for unknown, malformed, expired and revoked tokens alike."""
    if not tokens.looks_like_token(token):
        return None
    hashed = tokens.hash_token(token)
    if rt.is_sqlite:
        return _usable_state(rt, await db.fetch_row(rt.engine, STATE_SQL, hashed))
    return _usable_state(rt, await db.fetch_by_key(rt.engine, STATE_SQL_PG, "token_hash", hashed))


async def tracking_page(rt: Runtime, token: str) -> TrackingView | None:
    """Everything the shopper's page shows, or None (as tracking_state)."""
    if not tokens.looks_like_token(token):
        return None
    if rt.is_sqlite:
        state = await tracking_state(rt, token)
        return None if state is None else await tracking_view(rt, state)
    row = await db.fetch_by_key(rt.engine, PAGE_SQL_PG, "token_hash", tokens.hash_token(token))
    state = _usable_state(rt, row)
    if state is None or row is None:
        return None
    return _build_view(
        state,
        row,
        [dict(zip(LINE_COLUMNS, r, strict=True)) for r in row["lines"]],
        [dict(zip(SHIPMENT_COLUMNS, r, strict=True)) for r in row["shipments"]],
        [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in row["events"]],
        refunds=[dict(zip(REFUND_COLUMNS, r, strict=True)) for r in row["refunds"]],
        return_rows=[dict(zip(RETURN_ROW_COLUMNS, r, strict=True)) for r in row["return_rows"]],
    )


async def tracking_view(rt: Runtime, state: TrackingState) -> TrackingView:
    order_id = state.order_id
    order = (await Order.raw(ORDER_SQL, order_id))[0]
    lines = await Order.raw(LINES_SQL, order_id)
    shipments = await Order.raw(SHIPMENTS_SQL, order_id)
    events = await Order.raw(EVENTS_SQL, order_id)
    return _build_view(state, order, lines, shipments, events)


def _build_view(
    state: TrackingState,
    order: Mapping[str, Any],
    lines: list[dict[str, Any]],
    shipments: list[dict[str, Any]],
    events: list[dict[str, Any]],
    *,
    refunds: list[dict[str, Any]] | None = None,
    return_rows: list[dict[str, Any]] | None = None,
) -> TrackingView:
    fulfilment = Fulfilment(order["fulfilment"])
    store = None
    if order["store_name"]:
        store = {
            "name": order["store_name"],
            "address": _json(order["store_address"]),
            "timezone": order["store_timezone"],
            "opening_hours": _json(order["store_hours"]),
            "hold_days": order["store_hold_days"],
        }
    # The customer's zone and masked phone as stored when the customer was created; worked
    # out here for customers from before (and for a number without a zone).
    tz = page_zone(store["timezone"] if store else None, order["customer_zone"], order["phone"])
    order_id = state.order_id
    parcel_no = {s["id"]: i + 1 for i, s in enumerate(shipments)}
    for e in events:
        e["parcel"] = parcel_no.get(e["shipment"]) if len(shipments) > 1 else None
        e["occurred_at"] = readable(e["occurred_at"], "order_event.occurred_at", order_id)
    for parcel in shipments:
        readable_parcel(parcel, order_id)
    return TrackingView(
        state=state,
        order_number=order["external_id"],
        fulfilment=fulfilment,
        first_name=first_name(order["customer_name"]),
        masked_phone=order["phone_masked"] or mask(order["phone"]),
        currency=order["currency"],
        total_minor=order["total_minor"],
        placed_at=readable(order["placed_at"], "orders.placed_at", order_id),
        timezone=tz,
        steps=progress(fulfilment, OrderStatus(state.status)),
        lines=lines,
        shipments=shipments,
        events=events,
        store=store,
        address=_partial_address(_json(order["delivery_address"])),
        pickup=_pickup_view(order, lines),
        closed_at=readable(order["closed_at"], "orders.closed_at", order_id),
        has_returns=bool(order["has_returns"] if return_rows is None else return_rows),
        has_refunds=bool(order["has_refunds"] if refunds is None else refunds),
        refunds=refunds,
        return_rows=return_rows,
        has_open_code=bool(order["has_open_code"]),
        has_waiting_change=bool(order["has_waiting_change"]),
        sms_off=bool(order["sms_off"]),
    )


# What was logged of stored dates no page can show: each (column, order) once per process.
_UNREADABLE_LOGGED: set[tuple[str, int]] = set()


def readable(value: datetime | None, column: str, order_id: int) -> datetime | None:
    """A stored moment as a page may show it: None for one the date rule would refuse (from
    before the rule, or written by hand), which no zone conversion can be trusted with. The
    page shows the rest; the first time, the log says which column of which order."""
    shown = dates.shown(value)
    if shown is None and value is not None:
        _log_unreadable(column, order_id)
    return shown


def _readable_day(value: Any, column: str, order_id: int) -> str | None:
    day = dates.shown_day(value)
    if day is None and value not in (None, ""):
        _log_unreadable(column, order_id)
    return day.isoformat() if day else None


def _log_unreadable(column: str, order_id: int) -> None:
    if (column, order_id) in _UNREADABLE_LOGGED:
        return
    if len(_UNREADABLE_LOGGED) >= 10_000:  # a bound, not a cache: forget and log again
        _UNREADABLE_LOGGED.clear()
    _UNREADABLE_LOGGED.add((column, order_id))
    log.warning("a stored date outside the window is not shown: %s of order %s", column, order_id)


def readable_parcel(parcel: dict[str, Any], order_id: int) -> dict[str, Any]:
    """A parcel row (the page's, or a delivery change's) with only dates pages can use:
    its ETA, the shopper's chosen day and the shop's offered days (ISO text in JSON)."""
    parcel["eta"] = readable(parcel["eta"], "shipment.eta", order_id)
    parcel["delivery_day"] = _readable_day(
        parcel["delivery_day"], "shipment.delivery_day", order_id
    )
    offered = _json(parcel["delivery_days"])
    if offered:
        days = [_readable_day(d, "shipment.delivery_days", order_id) for d in offered]
        parcel["delivery_days"] = [d for d in days if d]
    return parcel


def _pickup_view(order: Mapping[str, Any], lines: list[dict[str, Any]]) -> PickupView | None:
    status = order["pickup_status"]
    if status is None:
        return None
    ready, total = pickup_rules.items_ready(
        pickup_rules.Line(i, line["quantity"], line["ready_quantity"] or 0)
        for i, line in enumerate(lines)
    )
    handed_to = order["pickup_handed_to"]
    return PickupView(
        status=status,
        ready_items=ready,
        total_items=total,
        code=order["pickup_code"] if status == pickup_rules.PickupStatus.READY else None,
        ready_at=order["pickup_ready_at"],
        hold_until=order["pickup_hold_until"],
        visit_start=order["pickup_visit_start"],
        visit_end=order["pickup_visit_end"],
        delegate_name=order["pickup_delegate"],
        collected_at=order["pickup_collected_at"],
        collected_by=handed_to if handed_to and handed_to != order["customer_name"] else None,
        qr_svg=order["pickup_qr_svg"] or "",
        qr_url=order["pickup_qr_url"] or "",
    )


def _json(value: Any) -> Any:
    """A JSON column as read: asyncpg gives text (msgspec reads it 4x faster than json)."""
    return msgspec.json.decode(value) if isinstance(value, str) else value


def _partial_address(address: dict[str, Any] | None) -> dict[str, Any] | None:
    """Enough for the shopper to recognise it; not the street of someone who found the link."""
    if not address:
        return None
    return {
        "city": address.get("city"),
        "postcode": address.get("postcode"),
        "country": address.get("country"),
    }


def _utc(value: datetime) -> datetime:
    """A stored moment with its offset, as RFC 3339 needs: PostgreSQL's -infinity and
    infinity come back naive (taken as UTC); one UTC cannot hold is given as stored."""
    return dates.in_utc(value) or value


async def order_detail(rt: Runtime, external_id: str) -> dict[str, Any]:
    """The shop's view of one order (API)."""
    order = (
        await Order.select(
            Order.id,
            Order.external_id,
            Order.status,
            Order.fulfilment,
            Order.currency,
            Order.total_minor,
            Order.placed_at,
            Order.store.code.as_alias("store"),
            Order.store.timezone.as_alias("store_zone"),
            Order.customer.timezone.as_alias("customer_zone"),
            Order.customer.phone.as_alias("phone"),
        )
        .where(Order.external_id == external_id)
        .first()
    )
    if order is None:
        raise NotFound(f"no order with external_id {external_id!r}", field="external_id")
    shipments = (
        await Shipment.select(
            Shipment.id,
            Shipment.tracking_number,
            Shipment.carrier,
            Shipment.eta,
            Shipment.eta_date_only,
            Shipment.status,
            Shipment.delivery_day,
            Shipment.instructions,
        )
        .where(Shipment.order == order["id"])
        .order_by(Shipment.id)
        .output(load_json=True)
    )
    zone = page_zone(order["store_zone"], order["customer_zone"], order["phone"])
    for s in shipments:
        # RFC 3339 in UTC; a day alone comes back as the day the shop gave.
        eta = dates.shown(s["eta"])
        if eta is None:
            s["eta"] = None
        elif s["eta_date_only"]:
            s["eta"] = eta.astimezone(ZoneInfo(zone)).date().isoformat()
        else:
            s["eta"] = eta.isoformat().replace("+00:00", "Z")
        # Text in the database: what is not a day (written by hand) is null, not a 500.
        s["delivery_day"] = _readable_day(s["delivery_day"], "shipment.delivery_day", order["id"])
    by_id = {s["id"]: s["tracking_number"] for s in shipments}
    events = (
        await OrderEvent.select(
            OrderEvent.type,
            OrderEvent.occurred_at,
            OrderEvent.recorded_at,
            OrderEvent.shipment,
            OrderEvent.note,
        )
        .where(OrderEvent.order == order["id"])
        .order_by(OrderEvent.id)
    )
    receipt = await _receipt(rt, external_id)
    return {
        "id": order["id"],
        "external_id": order["external_id"],
        "status": order["status"],
        "fulfilment": order["fulfilment"],
        "store": order["store"],
        "currency": order["currency"],
        "total": format_decimal_string(order["total_minor"], order["currency"]),
        "placed_at": _utc(order["placed_at"]),
        "tracking_url": receipt.tracking_url if receipt else "",
        "shipments": [
            {
                k: s[k]
                for k in (
                    "tracking_number",
                    "carrier",
                    "eta",
                    "status",
                    "delivery_day",  # the shopper's choice
                    "instructions",  # for the courier
                )
            }
            for s in shipments
        ],
        "timeline": [
            {
                "type": e["type"],
                "occurred_at": _utc(e["occurred_at"]),
                "recorded_at": e["recorded_at"],
                "tracking_number": by_id.get(e["shipment"]),
                "note": e["note"],
            }
            for e in events
        ],
    }
