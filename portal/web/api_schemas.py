"""What the shop API answers: one msgspec Struct per body, so that the OpenAPI schema at
`/schema` states every answer (issue 18, item 10); the error responses each operation may
give; the example bodies the schema shows.

Services still return plain dicts; handlers turn them into these (`out`), which also checks
that the answer has the declared shape. Enum-typed fields name the domain's states.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

import msgspec
from litestar._openapi.schema_generation import SchemaCreator
from litestar._openapi.schema_generation.plugins import StructSchemaPlugin
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, Operation, RequestBody, Schema
from litestar.params import Body
from litestar.typing import FieldDefinition
from msgspec import Meta, Struct

from portal.domain.delivery import ChangeKind, ChangeStatus
from portal.domain.order import EventType, Fulfilment, OrderStatus, ShipmentStatus
from portal.domain.refunds import RefundReason, RefundStatus
from portal.domain.returns import Method, Reason, ReturnStatus
from portal.services.inputs import DAY_OR_MOMENT, EventIn, OrderIn, RefundIn, StoreIn

T = TypeVar("T")


def out(kind: type[T], data: Any) -> T:
    """The service's dict as the declared answer."""
    return msgspec.convert(data, kind)


class ErrorOut(Struct, omit_defaults=True):
    """Every error of the API (and of webhooks): contract.md, "Decisions"."""

    status_code: int
    detail: str
    # The dotted path of the field at fault (`lines[1].unit_price`), when there is one.
    field: str | None = None


# ------------------------------------------------------------------ orders and stores


class OrderReceiptOut(Struct):
    id: int
    external_id: str
    status: OrderStatus
    tracking_url: str


class WarningOut(Struct):
    field: str
    detail: str


class EventOut(Struct):
    external_id: str
    status: OrderStatus
    event_id: int | None
    duplicate: bool
    # What was set aside from an accepted event (an ETA outside the date window).
    warnings: list[WarningOut]


class StoreOut(Struct):
    code: str
    name: str
    timezone: str
    address: dict[str, Any]
    phone: str | None
    opening_hours: dict[str, list[str]]
    pickup_hold_days: int
    pickup_reminder_days: int


class RevokedOut(Struct):
    revoked: int


class ShipmentOut(Struct):
    tracking_number: str
    carrier: str
    # An RFC 3339 date-time in UTC, or a day alone (YYYY-MM-DD) where the shop gave one.
    eta: (
        Annotated[
            str,
            Meta(
                description="an RFC 3339 date-time (UTC), or YYYY-MM-DD for a day alone",
                extra_json_schema=DAY_OR_MOMENT,
            ),
        ]
        | None
    )
    status: ShipmentStatus
    # The day the shopper chose (YYYY-MM-DD) and their instructions for the courier.
    delivery_day: date | None
    instructions: dict[str, Any] | None


class TimelineEntryOut(Struct):
    type: EventType
    occurred_at: datetime
    recorded_at: datetime
    tracking_number: str | None
    note: str | None


class OrderOut(Struct):
    id: int
    external_id: str
    status: OrderStatus
    fulfilment: Fulfilment
    store: str | None
    currency: str
    total: str
    placed_at: datetime
    tracking_url: str
    shipments: list[ShipmentOut]
    timeline: list[TimelineEntryOut]


# ----------------------------------------------------------------- delivery changes


class ChangeOut(Struct):
    id: int
    order: str
    kind: ChangeKind
    status: ChangeStatus
    tracking_number: str | None
    # What the shopper asked for and what it replaces; their keys depend on `kind`.
    data: dict[str, Any]
    previous: dict[str, Any]
    reason: str | None
    decided_by: str | None
    requested_at: datetime
    decided_at: datetime | None
    # The earlier change this one replaces (issue 18, item 3); null when it replaces none.
    supersedes: int | None = None


class ChangesOut(Struct):
    changes: list[ChangeOut]
    # The cursor for the next poll (`after`).
    next: int


# --------------------------------------------------------------- returns and refunds


class LabelOut(Struct):
    url: str
    carrier: str | None
    tracking_number: str | None


class ReturnLineOut(Struct):
    id: int
    sku: str
    name: str
    quantity: int
    reason: Reason
    note: str | None
    # Set by the inspection: how many were accepted, and why the rest were not.
    accepted: int | None
    rejection_reason: str | None


class ReturnOut(Struct):
    id: int
    order: str
    code: str
    status: ReturnStatus
    method: Method
    store: str | None
    label: LabelOut | None
    rejection_reason: str | None
    lines: list[ReturnLineOut]
    created_at: datetime
    approved_at: datetime | None
    received_at: datetime | None
    inspected_at: datetime | None
    refund_ids: list[int]


class ReturnsOut(Struct):
    returns: list[ReturnOut]
    next: int


class RefundOut(Struct):
    id: int
    order: str
    amount: str
    currency: str
    reason: RefundReason
    status: RefundStatus
    return_id: int | None
    paid_at: datetime | None
    failure_reason: str | None
    created_at: datetime


# ------------------------------------------------------------- example request bodies

# The schema shows these (the README's); schemathesis sends them too.
_ADDRESS = {"line1": "Via Torino 21", "city": "Milano", "postcode": "20123", "country": "IT"}
StoreBody = Annotated[
    StoreIn,
    Body(
        examples=[
            Example(
                value={
                    "name": "Milano Centro",
                    "timezone": "Europe/Rome",
                    "address": _ADDRESS,
                    "opening_hours": {"mon": ["09:30-13:00", "15:00-19:30"]},
                }
            )
        ]
    ),
]
OrderBody = Annotated[
    OrderIn,
    Body(
        examples=[
            Example(
                value={
                    "external_id": "100234",
                    "currency": "EUR",
                    "customer": {"name": "Giulia Bianchi", "phone": "347 123 4567"},
                    "fulfilment": {"method": "delivery", "address": _ADDRESS},
                    "lines": [
                        {"sku": "TSHIRT-M", "name": "T-shirt", "quantity": 2, "unit_price": "19.90"}
                    ],
                }
            )
        ]
    ),
]
EventBody = Annotated[
    EventIn,
    Body(
        examples=[
            Example(
                value={
                    "type": "shipped",
                    "shipment": {"tracking_number": "BRT123", "carrier": "BRT"},
                }
            )
        ]
    ),
]
RefundBody = Annotated[
    RefundIn, Body(examples=[Example(value={"amount": "10.00", "reason": "goodwill"})])
]


# ------------------------------------------------------------------ error responses

_ERRORS = {
    400: "The request could not be read: malformed JSON, a wrong type, an unknown field, "
    "or a value outside the schema's rules",
    401: "No API key, or one that is not valid",
    404: "No such object",
    409: "The request conflicts with the object's current state",
    413: "The body is larger than the portal accepts",
    422: "A well-formed value the portal refuses (`field` names it)",
    503: "The database cannot be reached; try again after `Retry-After` seconds",
}


def answer(body: type[Struct], description: str) -> ResponseSpec:
    """A response the schema declares besides the operation's usual one."""
    return ResponseSpec(body, generate_examples=False, description=description)


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """The error answers an operation may give, besides those of every operation
    (400, 401, 503), each with the body `ErrorOut`."""
    return {code: answer(ErrorOut, _ERRORS[code]) for code in sorted({400, 401, 503, *codes})}


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's schema of a Struct, saying `additionalProperties: false` when the Struct
    refuses unknown fields (every input does: 400)."""

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        if field_definition.type_.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        return schema


@dataclass
class OptionalBody(Operation):
    """An operation whose JSON body may be left out (Litestar states every body required)."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False
