"""What the shop's systems send: typed, strict shapes (unknown fields refused).

msgspec decodes and checks these before a service sees them; Litestar derives the OpenAPI
schema from them. Rules that need more than a shape (a phone number, a price, a store that
exists, a date in the window of portal.domain.dates) are checked by the services.

Every string goes through the text rule (portal.domain.text) before it is decoded here
(portal.web.bodies): single-line, unless its type carries `MULTILINE` (notes, reasons).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct

from portal.domain.refunds import RefundReason, RefundStatus


def whole(pattern: str) -> str:
    """A pattern the whole string must match, the same for msgspec (Python's `re.search`,
    whose `$` also matches before a final newline) and for the JSON Schema that states it."""
    return f"^(?:{pattern})(?!\\n)$"


# The schema states these rules (OpenAPI at /schema) and decoding checks them (400); what
# needs more than a pattern (a real phone number, a known currency or zone) answers 422.
CODE_PATTERN = whole(r"[A-Za-z0-9_.-]+")
EXTERNAL_ID_PATTERN = whole(r"[A-Za-z0-9_.:-]+")
# Digits with spaces, brackets, dots, dashes or slashes; an optional leading "+".
PHONE_PATTERN = whole(r"\+?[ ()./-]*[0-9][0-9 ()./-]*")
# An IANA time zone name such as Europe/Rome or America/Argentina/Buenos_Aires.
TIMEZONE_PATTERN = whole(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}")
POSTCODE_PATTERN = whole(r"[A-Za-z0-9][A-Za-z0-9 -]*")
CURRENCY_PATTERN = whole(r"[A-Za-z]{3}")
# A decimal string ("19.90"): no sign, no exponent, up to 4 decimals (fewer for most
# currencies: 422).
DECIMAL_PATTERN = whole(r"[0-9]{1,9}(\.[0-9]{1,4})?")

# A text field that may hold line breaks (portal.web.bodies reads this marker).
MULTILINE = {"multiline": True}
Note500 = Annotated[str, Meta(max_length=500, extra=MULTILINE)]
Reason300 = Annotated[str, Meta(max_length=300, extra=MULTILINE)]
# A moment (RFC 3339) or, for an ETA, a day alone: parsed by portal.domain.dates.parse_eta.
# The schema says so (Litestar's schema takes what msgspec's `extra_json_schema` holds
# under "extra"); the answer's ETA has the same formats.
DAY_OR_MOMENT = {"extra": {"anyOf": [{"format": "date"}, {"format": "date-time"}]}}
EtaText = Annotated[
    str,
    Meta(
        min_length=10,
        max_length=40,
        description="a date (YYYY-MM-DD, that day in the shopper's zone) or an RFC 3339 date-time",
        extra_json_schema=DAY_OR_MOMENT,
    ),
]

Text120 = Annotated[str, Meta(min_length=1, max_length=120)]
Text200 = Annotated[str, Meta(min_length=1, max_length=200)]
Code = Annotated[str, Meta(min_length=1, max_length=32, pattern=CODE_PATTERN)]
ExternalId = Annotated[str, Meta(min_length=1, max_length=64, pattern=EXTERNAL_ID_PATTERN)]
Phone = Annotated[
    str, Meta(min_length=3, max_length=32, pattern=PHONE_PATTERN, examples=["+39 347 123 4567"])
]
Amount = Annotated[str, Meta(min_length=1, max_length=14, pattern=DECIMAL_PATTERN)]
# The types of event a shop may post (portal.domain.order.SHOP_EVENTS).
ShopEventType = Literal[
    "arrived_in_store",
    "backordered",
    "cancelled",
    "delivered",
    "delivery_failed",
    "out_for_delivery",
    "packed",
    "shipped",
]


class AddressIn(Struct, forbid_unknown_fields=True):
    line1: Text200
    city: Text120
    postcode: Annotated[str, Meta(min_length=1, max_length=16, pattern=POSTCODE_PATTERN)]
    country: Annotated[str, Meta(min_length=2, max_length=2, pattern=whole(r"[A-Za-z]{2}"))]
    line2: Annotated[str, Meta(max_length=200)] | None = None
    name: Annotated[str, Meta(max_length=120)] | None = None
    region: Annotated[str, Meta(max_length=64)] | None = None


class CustomerIn(Struct, forbid_unknown_fields=True):
    name: Text120
    phone: Phone
    email: Annotated[str, Meta(max_length=254)] | None = None
    locale: Annotated[str, Meta(max_length=16)] | None = None


class DeliveryIn(Struct, tag="delivery", tag_field="method", forbid_unknown_fields=True):
    address: AddressIn


class PickupIn(Struct, tag="pickup", tag_field="method", forbid_unknown_fields=True):
    store: Code


class LineIn(Struct, forbid_unknown_fields=True):
    sku: Annotated[str, Meta(min_length=1, max_length=64)]
    name: Text200
    quantity: Annotated[int, Meta(ge=1, le=10_000)]
    unit_price: Amount
    # False for what cannot be sent back (hygiene products, made to measure ...).
    returnable: bool = True


class OrderIn(Struct, forbid_unknown_fields=True):
    external_id: ExternalId
    customer: CustomerIn
    fulfilment: DeliveryIn | PickupIn
    lines: Annotated[list[LineIn], Meta(min_length=1, max_length=200)]
    currency: Annotated[str, Meta(min_length=3, max_length=3, pattern=CURRENCY_PATTERN)]
    placed_at: datetime | None = None


class ShipmentIn(Struct, forbid_unknown_fields=True):
    tracking_number: Annotated[str, Meta(min_length=1, max_length=64)]
    carrier: Annotated[str, Meta(max_length=64)] = ""
    eta: EtaText | None = None
    # Days the shopper may move the delivery to (default: the 5 working days after the ETA).
    delivery_days: Annotated[list[date], Meta(max_length=31)] | None = None


class EventIn(Struct, forbid_unknown_fields=True):
    type: ShopEventType
    occurred_at: datetime | None = None
    shipment: ShipmentIn | None = None
    note: Note500 | None = None


OpeningHours = dict[
    str, list[Annotated[str, Meta(pattern=whole(r"[0-9]{2}:[0-9]{2}-[0-9]{2}:[0-9]{2}"))]]
]


class StoreIn(Struct, forbid_unknown_fields=True):
    name: Text120
    address: AddressIn
    timezone: Annotated[str, Meta(min_length=1, max_length=64, pattern=TIMEZONE_PATTERN)]
    phone: Phone | None = None
    opening_hours: OpeningHours | None = None
    # Click-and-collect: days a ready order is held; days before the first reminder.
    pickup_hold_days: Annotated[int, Meta(ge=1, le=60)] = 7
    pickup_reminder_days: Annotated[int, Meta(ge=1, le=30)] = 2


# ------------------------------------------------------------------ returns and refunds


class LabelIn(Struct, forbid_unknown_fields=True):
    url: Annotated[str, Meta(min_length=8, max_length=500, pattern=r"^https?://")]
    carrier: Annotated[str, Meta(max_length=64)] = ""
    tracking_number: Annotated[str, Meta(max_length=64)] | None = None


class ReasonIn(Struct, forbid_unknown_fields=True):
    reason: (
        Annotated[
            str,
            Meta(
                max_length=300,
                extra=MULTILINE,
                description="why: the shopper reads it (422 without)",
            ),
        ]
        | None
    ) = None


class VerdictIn(Struct, forbid_unknown_fields=True):
    line_id: Annotated[int, Meta(ge=1, le=2**31 - 1)]
    accepted: Annotated[int, Meta(ge=0, le=10_000)]
    reason: Reason300 | None = None


class InspectIn(Struct, forbid_unknown_fields=True):
    lines: Annotated[list[VerdictIn], Meta(min_length=1, max_length=200)]


class RefundIn(Struct, forbid_unknown_fields=True):
    amount: Amount
    reason: RefundReason = RefundReason.OTHER
    return_id: Annotated[int, Meta(ge=1, le=2**31 - 1)] | None = None


class RefundPatchIn(Struct, forbid_unknown_fields=True):
    status: RefundStatus
    # Shown to the shopper when a refund failed: what happens next.
    reason: Reason300 | None = None
