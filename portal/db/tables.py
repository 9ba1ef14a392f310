"""Piccolo tables (design.md §4). Money is integer minor units; times are UTC.

Indexes follow the lookups that pages and sweeps make, so their cost does not grow with
history: token hash, external id, an order's lines/events/shipments, and the outbox's
`next_attempt_at`, which is set only while a message waits to be sent.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    BigInt,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Serial,
    SmallInt,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class Store(Table, tablename="store"):
    id = Serial(primary_key=True)
    code = Varchar(length=32, unique=True)
    name = Varchar(length=120)
    address = JSON(default={})
    timezone = Varchar(length=64, default="Europe/Rome")
    phone = Varchar(length=32, null=True, default=None)
    opening_hours = JSON(default={})
    # Click-and-collect: how long a ready order is held, and when the shopper is reminded.
    pickup_hold_days = SmallInt(default=7)
    pickup_reminder_days = SmallInt(default=2)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class Customer(Table, tablename="customer"):
    id = Serial(primary_key=True)
    phone = Varchar(length=20, unique=True)  # E.164
    name = Varchar(length=120)
    email = Varchar(length=254, null=True, default=None)
    locale = Varchar(length=8, default="en")
    # Set when the number texted STOP (or turned SMS updates off on the page): only what the
    # shopper asks for (a one-time code) is sent until START.
    sms_opt_out_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    # From the phone, once, when the customer is created (the page shows both on every
    # view, and working them out costs more than reading the page). Empty for customers
    # from before: the page then works them out itself (portal.domain.phone).
    phone_masked = Varchar(length=40, default="")
    timezone = Varchar(length=64, default="")


class Order(Table, tablename="orders"):
    id = Serial(primary_key=True)
    external_id = Varchar(length=64, unique=True)
    customer = ForeignKey(references=Customer, index=True, on_delete=OnDelete.restrict)
    status = Varchar(length=24)
    fulfilment = Varchar(length=16)
    store = ForeignKey(
        references=Store, null=True, default=None, index=True, on_delete=OnDelete.restrict
    )
    delivery_address = JSON(null=True, default=None)
    currency = Varchar(length=3)
    total_minor = BigInt()
    placed_at = Timestamptz(default=TimestamptzNow())
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    closed_at = Timestamptz(null=True, default=None)
    # Bumped by every change a shopper could see: the tracking fragment's ETag.
    version = Integer(default=1)


class OrderLine(Table, tablename="order_line"):
    id = Serial(primary_key=True)
    order = ForeignKey(references=Order, index=True)
    position = SmallInt()
    sku = Varchar(length=64)
    name = Varchar(length=200)
    quantity = Integer()
    unit_price_minor = BigInt()
    # Click-and-collect: how many of `quantity` the store has set aside.
    ready_quantity = Integer(default=0)
    # The shop marks lines that cannot be sent back (hygiene, made to measure ...).
    returnable = Boolean(default=True)


class Shipment(Table, tablename="shipment"):
    id = Serial(primary_key=True)
    order = ForeignKey(references=Order, index=True)
    # "<order id>:<tracking number>": one parcel per tracking number and order.
    key = Varchar(length=120, unique=True)
    tracking_number = Varchar(length=64)
    carrier = Varchar(length=64, default="")
    eta = Timestamptz(null=True, default=None)
    # The shop gave a day without a time ("2026-12-05"): `eta` is noon of it in the
    # shopper's zone, and it is shown (and given back by the API) as that day alone.
    eta_date_only = Boolean(default=False)
    status = Varchar(length=24)
    # Delivery changes: the days the shop offers for a new delivery (ISO dates; none given:
    # the next working days after the ETA), the day the shopper chose, their instructions.
    delivery_days = JSON(null=True, default=None)
    delivery_day = Varchar(length=10, null=True, default=None)
    instructions = JSON(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class OrderEvent(Table, tablename="order_event"):
    """The append-only timeline."""

    id = Serial(primary_key=True)
    order = ForeignKey(references=Order, index=True)
    type = Varchar(length=32)
    occurred_at = Timestamptz(default=TimestamptzNow())
    recorded_at = Timestamptz(default=TimestamptzNow())
    shipment = ForeignKey(references=Shipment, null=True, default=None)
    note = Text(null=True, default=None)
    data = JSON(default={})


class AccessToken(Table, tablename="access_token"):
    id = Serial(primary_key=True)
    token_hash = Varchar(length=64, unique=True)
    salt = Varchar(length=32)  # the token is derived from it with the secret key
    order = ForeignKey(references=Order, index=True)
    purpose = Varchar(length=16, default="track")
    expires_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class SmsMessage(Table, tablename="sms_message"):
    """Outbox and history: a row first, written with the change that caused it."""

    id = Serial(primary_key=True)
    order = ForeignKey(references=Order, null=True, default=None, index=True)
    dedupe_key = Varchar(length=160, unique=True)
    kind = Varchar(length=40)
    locale = Varchar(length=8)
    recipient = Varchar(length=20)  # E.164
    # The link is kept out of the stored text (LINK_MARKER) and put in when it is sent.
    body = Text()
    access_token = ForeignKey(
        references=AccessToken, null=True, default=None, on_delete=OnDelete.set_null
    )
    encoding = Varchar(length=8)
    segments = SmallInt()
    urgent = Boolean(default=False)
    status = Varchar(length=16, default="queued")
    attempts = SmallInt(default=0)
    # Set only while the message waits for the dispatcher (to be sent, looked up, or its
    # claim's lease to run out); the dispatcher's indexed lookup.
    next_attempt_at = Timestamptz(null=True, default=None, index=True)
    claimed_at = Timestamptz(null=True, default=None)  # when the last send began
    # The dispatcher holding the claim (host:pid:nonce); its lease is next_attempt_at.
    claimed_by = Varchar(length=64, null=True, default=None)
    # MessageBird lookups made to settle a send of unknown outcome (bounded).
    lookups = SmallInt(default=0)
    gateway = Varchar(length=16, default="")
    gateway_id = Varchar(length=64, null=True, default=None, index=True)
    gateway_status = Varchar(length=24, null=True, default=None)
    last_error = Varchar(length=300, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    sent_at = Timestamptz(null=True, default=None)
    status_at = Timestamptz(null=True, default=None)
    # Asked for by the shopper (counted against PORTAL_SHOPPER_TEXTS_PER_DAY unless a code).
    requested = Boolean(default=False)
    # What it is about (e.g. "delivery_change:12"): a newer one about the same thing that
    # supersedes it drops it while it is still queued.
    subject = Varchar(length=64, null=True, default=None)


class StaffUser(Table, tablename="staff_user"):
    """Store clerks (one store) and managers (all stores)."""

    id = Serial(primary_key=True)
    username = Varchar(length=64, unique=True)
    password_hash = Varchar(length=255)
    role = Varchar(length=16, default="clerk")
    store = ForeignKey(
        references=Store, null=True, default=None, index=True, on_delete=OnDelete.restrict
    )
    active = Boolean(default=True)
    created_at = Timestamptz(default=TimestamptzNow())
    last_login_at = Timestamptz(null=True, default=None)
    # In every session cookie; raised by signing out, a new password or disabling the
    # account, which ends every session of this person on every worker.
    session_version = Integer(default=0)


class SignInThrottle(Table, tablename="sign_in_throttle"):
    """Sign-in attempts per username (known or not, so that the answer does not tell which),
    counted before the password is checked. `epoch` is part of the per-client limiter's
    keys: raising it (an unlock) clears every client's count for the username at once."""

    id = Serial(primary_key=True)
    username = Varchar(length=64, unique=True)
    failures = Integer(default=0)  # in the window that began at window_start
    window_start = BigInt(default=0)  # unix seconds
    last_at = BigInt(default=0, index=True)  # unix seconds: rows idle for long are pruned
    epoch = Integer(default=0)


class Pickup(Table, tablename="pickup"):
    """The click-and-collect side of a pickup order: readiness, code, visit, handover."""

    id = Serial(primary_key=True)
    order = ForeignKey(references=Order, unique=True)
    store = ForeignKey(references=Store, index=True, on_delete=OnDelete.restrict)
    status = Varchar(length=16, default="preparing")
    code = Varchar(length=12, index=True)
    ready_at = Timestamptz(null=True, default=None)
    # Set while the order waits at the counter: the expiry sweep's indexed lookup.
    hold_until = Timestamptz(null=True, default=None, index=True)
    visit_start = Timestamptz(null=True, default=None)
    visit_end = Timestamptz(null=True, default=None)
    delegate_name = Varchar(length=80, null=True, default=None)
    collected_at = Timestamptz(null=True, default=None)
    collected_by = ForeignKey(
        references=StaffUser, null=True, default=None, on_delete=OnDelete.restrict
    )
    handed_to = Varchar(length=80, null=True, default=None)
    wrong_codes = SmallInt(default=0)
    code_locked_until = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())
    # The handover QR (portal.domain.qr, an SVG without its title) and the URL it encodes,
    # made once when the order becomes ready and cleared once it is collected or expired;
    # the page makes its own when the URL is not this one (the base URL changed) or there
    # is none (orders ready before it was kept).
    qr_svg = Text(default="")
    qr_url = Text(default="")


class Reminder(Table, tablename="reminder"):
    """A message due later, at most once per key; `due_at` is cleared when done or cancelled."""

    id = Serial(primary_key=True)
    key = Varchar(length=160, unique=True)
    order = ForeignKey(references=Order, index=True)
    kind = Varchar(length=40)
    due_at = Timestamptz(null=True, default=None, index=True)
    sent_at = Timestamptz(null=True, default=None)
    cancelled_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class ReturnRequest(Table, tablename="return_request"):
    """A shopper's return of some lines of an order, from the request to the refund."""

    id = Serial(primary_key=True)
    order = ForeignKey(references=Order, index=True, on_delete=OnDelete.restrict)
    code = Varchar(length=12, unique=True)  # shown at the counter or put in the parcel
    status = Varchar(length=16, default="requested")
    method = Varchar(length=16)  # "store" | "courier"
    store = ForeignKey(
        references=Store, null=True, default=None, index=True, on_delete=OnDelete.restrict
    )
    label_url = Varchar(length=500, null=True, default=None)
    label_carrier = Varchar(length=64, null=True, default=None)
    label_tracking = Varchar(length=64, null=True, default=None)
    rejection_reason = Varchar(length=300, null=True, default=None)
    # The counter's QR (portal.domain.qr, without its title) and the URL it encodes, made
    # when the return is made and cleared once it is over; the page makes its own for
    # another URL or none (older ones).
    qr_svg = Text(default="")
    qr_url = Text(default="")
    received_by = ForeignKey(
        references=StaffUser, null=True, default=None, on_delete=OnDelete.restrict
    )
    created_at = Timestamptz(default=TimestamptzNow())
    approved_at = Timestamptz(null=True, default=None)
    label_at = Timestamptz(null=True, default=None)
    received_at = Timestamptz(null=True, default=None)
    inspected_at = Timestamptz(null=True, default=None)
    updated_at = Timestamptz(default=TimestamptzNow())


class ReturnLine(Table, tablename="return_line"):
    id = Serial(primary_key=True)
    return_request = ForeignKey(references=ReturnRequest, index=True)
    order_line = ForeignKey(references=OrderLine, index=True)
    quantity = Integer()
    reason = Varchar(length=24)
    note = Varchar(length=300, null=True, default=None)
    # After inspection: how many were accepted, and why the rest were not.
    accepted_quantity = Integer(null=True, default=None)
    rejection_reason = Varchar(length=300, null=True, default=None)


class Refund(Table, tablename="refund"):
    id = Serial(primary_key=True)
    order = ForeignKey(references=Order, index=True, on_delete=OnDelete.restrict)
    amount_minor = BigInt()
    currency = Varchar(length=3)
    reason = Varchar(length=32)
    status = Varchar(length=16, default="pending")
    # The return it pays back, if any.
    return_request = ForeignKey(
        references=ReturnRequest, null=True, default=None, index=True, on_delete=OnDelete.restrict
    )
    paid_at = Timestamptz(null=True, default=None)
    failure_reason = Varchar(length=300, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class AuditLog(Table, tablename="audit_log"):
    """Every clerk action: who, what, when, which order."""

    id = Serial(primary_key=True)
    staff = ForeignKey(
        references=StaffUser, null=True, default=None, index=True, on_delete=OnDelete.restrict
    )
    action = Varchar(length=40)
    order = ForeignKey(
        references=Order, null=True, default=None, index=True, on_delete=OnDelete.set_null
    )
    store = ForeignKey(
        references=Store, null=True, default=None, index=True, on_delete=OnDelete.set_null
    )
    at = Timestamptz(default=TimestamptzNow(), index=True)
    details = JSON(default={})


class DeliveryChange(Table, tablename="delivery_change"):
    """A shopper's change to a delivery, for the shop to read (`GET /api/v1/changes`, id as
    the cursor) and, when changes are not accepted automatically, to decide."""

    id = Serial(primary_key=True)
    order = ForeignKey(references=Order, index=True, on_delete=OnDelete.restrict)
    # The parcel it concerns; none before dispatch (the change is for the whole order).
    shipment = ForeignKey(references=Shipment, null=True, default=None)
    kind = Varchar(length=24)
    status = Varchar(length=16, default="requested")
    data = JSON(default={})  # what the shopper asked for
    previous = JSON(default={})  # what it replaces
    reason = Varchar(length=300, null=True, default=None)  # why the shop rejected it
    decided_by = Varchar(length=16, null=True, default=None)  # "auto" or "shop"
    requested_at = Timestamptz(default=TimestamptzNow())
    decided_at = Timestamptz(null=True, default=None)
    # The earlier change of the same kind (order or parcel) this one replaces; the feed
    # keeps both.
    supersedes = Integer(null=True, default=None)


class OneTimeCode(Table, tablename="one_time_code"):
    """A code sent by SMS to the order's phone to confirm a sensitive change (`pending`)."""

    id = Serial(primary_key=True)
    order = ForeignKey(references=Order, index=True, on_delete=OnDelete.restrict)
    purpose = Varchar(length=24)
    code_hash = Varchar(length=64)
    pending = JSON(default={})
    attempts = SmallInt(default=0)
    expires_at = Timestamptz()
    locked_until = Timestamptz(null=True, default=None)
    used_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class ShopEvent(Table, tablename="shop_event"):
    """Outgoing webhook outbox: each row is POSTed to PORTAL_SHOP_WEBHOOK_URL until it is
    accepted; `event_id` is sent with it, so the shop can drop a repeat."""

    id = Serial(primary_key=True)
    event_id = Varchar(length=40, unique=True)
    type = Varchar(length=48)
    order = ForeignKey(
        references=Order, null=True, default=None, index=True, on_delete=OnDelete.set_null
    )
    payload = JSON(default={})
    status = Varchar(length=16, default="pending")
    attempts = SmallInt(default=0)
    # Set only while the event waits to be (re)sent: the sender's indexed lookup.
    next_attempt_at = Timestamptz(null=True, default=None, index=True)
    claimed_at = Timestamptz(null=True, default=None)
    last_error = Varchar(length=300, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    delivered_at = Timestamptz(null=True, default=None)
    # What it is about (e.g. "delivery_change:12"): superseded while no try has started.
    subject = Varchar(length=64, null=True, default=None)


class InboundSms(Table, tablename="inbound_sms"):
    """Texts shoppers send us (MessageBird's inbound webhook); the gateway id makes a repeated
    call harmless."""

    id = Serial(primary_key=True)
    gateway_id = Varchar(length=64, unique=True)
    originator = Varchar(length=20)  # E.164
    body = Text()
    order = ForeignKey(
        references=Order, null=True, default=None, index=True, on_delete=OnDelete.set_null
    )
    handled_as = Varchar(length=24, default="")
    received_at = Timestamptz(default=TimestamptzNow())


class SurveyResponse(Table, tablename="survey_response"):
    """A shopper's 1-5 answer to the satisfaction SMS, once per order."""

    id = Serial(primary_key=True)
    order = ForeignKey(references=Order, unique=True, on_delete=OnDelete.restrict)
    store = ForeignKey(
        references=Store, null=True, default=None, index=True, on_delete=OnDelete.set_null
    )
    score = SmallInt()
    comment = Varchar(length=300, null=True, default=None)
    received_at = Timestamptz(default=TimestamptzNow())


class ApiKey(Table, tablename="api_key"):
    id = Serial(primary_key=True)
    name = Varchar(length=80)
    key_hash = Varchar(length=64, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())
    revoked_at = Timestamptz(null=True, default=None)


class ShopperAction(Table, tablename="shopper_action"):
    """One change a shopper made on the page (PORTAL_SHOPPER_CHANGES_PER_HOUR counts them by
    the order's index; rows older than a day are pruned as new ones come)."""

    id = Serial(primary_key=True)
    order = ForeignKey(references=Order, index=True, on_delete=OnDelete.cascade)
    action = Varchar(length=24)
    at = Timestamptz(default=TimestamptzNow())


ALL_TABLES: list[type[Table]] = [
    Store,
    Customer,
    Order,
    OrderLine,
    Shipment,
    OrderEvent,
    AccessToken,
    SmsMessage,
    StaffUser,
    SignInThrottle,
    Pickup,
    Reminder,
    ReturnRequest,
    ReturnLine,
    Refund,
    AuditLog,
    DeliveryChange,
    OneTimeCode,
    ShopEvent,
    InboundSms,
    SurveyResponse,
    ApiKey,
    ShopperAction,
]
