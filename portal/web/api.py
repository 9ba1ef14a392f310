"""The shop's JSON API (/api/v1), bearer API keys. Thin: parse, one service call, JSON."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, patch, post, put
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import Example
from litestar.params import JSONBody, Parameter
from msgspec import Struct

from portal.domain.order import OrderStatus
from portal.domain.returns import ReturnStatus
from portal.services import api_keys, delivery, orders, returns, stores
from portal.services.inputs import (
    CODE_PATTERN,
    EXTERNAL_ID_PATTERN,
    InspectIn,
    LabelIn,
    Reason300,
    ReasonIn,
    RefundPatchIn,
)
from portal.web.api_schemas import (
    ChangeOut,
    ChangesOut,
    EventBody,
    EventOut,
    OptionalBody,
    OrderBody,
    OrderOut,
    OrderReceiptOut,
    RefundBody,
    RefundOut,
    ReturnOut,
    ReturnsOut,
    RevokedOut,
    StoreBody,
    StoreOut,
    WarningOut,
    answer,
    errors,
    out,
)
from portal.web.bodies import check_query, decode_json
from portal.web.deps import RT, RowId

# Path parameters, with the rules the schema states (and Litestar checks: 400).
Code = Annotated[
    str,
    Parameter(
        min_length=1,
        max_length=32,
        pattern=CODE_PATTERN,
        description="the store's code",
        examples=[Example(value="MI01")],
    ),
]
ExternalId = Annotated[
    str,
    Parameter(
        min_length=1,
        max_length=64,
        pattern=EXTERNAL_ID_PATTERN,
        description="the order's id in the shop's system",
        examples=[Example(value="WEB-1001")],
    ),
]


async def require_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Runs before the body is read: no key, no parsing."""
    header = connection.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise NotAuthorizedException(
            detail="Authorization: Bearer <api key> is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    name = await api_keys.authenticate(key.strip())
    if name is None:
        raise NotAuthorizedException(
            detail="this API key is not valid", headers={"WWW-Authenticate": "Bearer"}
        )
    connection.scope["state"]["api_client"] = name


def _whole_numbers(value: Any) -> Any:
    """`value` with each float that is a whole number (2.0) as an int: JSON Schema's
    `integer` takes 2.0, and so does the API. A loop, not recursion: any depth is safe."""
    root = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        holder, key = stack.pop()
        item = holder[key]
        if isinstance(item, float) and item.is_integer():
            holder[key] = int(item)
        elif isinstance(item, list):
            stack.extend((item, i) for i in range(len(item)))
        elif isinstance(item, dict):
            stack.extend((item, k) for k in item)
    return root[0]


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """Litestar converts a JSON body to its type leniently (the string "2" for a quantity, the
    number 0 for a date); the schema promises types, so the body is first checked strictly
    (a wrong type: 400 naming the field). A body that is not UTF-8, not JSON or too deeply
    nested gets the 400 of `decode_json`, as Litestar's own decoding would give it; an empty
    one is left to Litestar (some bodies are optional). It takes the place of the app's
    `before_request`, so it runs that first: query strings keep the text rule (422)."""
    await check_query(request)
    field = request.route_handler.parsed_data_field
    raw = await request.body() if field is not None else b""
    if field is None or not raw:
        return
    value = decode_json(raw)
    try:
        msgspec.convert(_whole_numbers(value), field.annotation)
    except msgspec.ValidationError as exc:
        # The shape of Litestar's own body errors, so that one handler answers both.
        message, _, at = str(exc).partition(" - at `$")
        key = at.rstrip("`").lstrip(".") or "data"
        raise ValidationException(
            f"Validation failed for {request.method} {request.url.path}",
            extra=[{"message": message, "key": key, "source": "body"}],
        ) from exc
    except (RecursionError, TypeError):
        return


class DecisionIn(Struct, forbid_unknown_fields=True):
    # Shown to the shopper when a change is rejected.
    reason: Reason300 | None = None


class ShopApi(Controller):
    path = "/api/v1"
    guards = [require_api_key]
    before_request = staticmethod(strict_body)
    tags = ["shop"]
    security = [{"BearerToken": []}]

    @put(
        "/stores/{code:str}",
        summary="Create or replace a store",
        responses={
            **errors(413, 422),
            201: answer(StoreOut, "The store was created"),
        },
        response_description="The store was replaced",
    )
    async def put_store(self, rt: RT, code: Code, data: StoreBody) -> Response[StoreOut]:
        store, created = await stores.put_store(rt, code, data)
        return Response(out(StoreOut, store), status_code=201 if created else 200)

    @post(
        "/orders",
        summary="Create an order (idempotent on external_id)",
        responses={
            **errors(409, 413, 422),
            200: answer(
                OrderReceiptOut,
                "An order with this external_id exists: its receipt, nothing new sent",
            ),
        },
        response_description="The order was created",
    )
    async def create_order(self, rt: RT, data: OrderBody) -> Response[OrderReceiptOut]:
        receipt, created = await orders.create_order(rt, data)
        body = OrderReceiptOut(
            receipt.id, receipt.external_id, OrderStatus(receipt.status), receipt.tracking_url
        )
        return Response(body, status_code=201 if created else 200)

    @get(
        "/orders/{external_id:str}",
        summary="An order with its status, shipments and timeline",
        responses=errors(404),
    )
    async def get_order(self, rt: RT, external_id: ExternalId) -> OrderOut:
        return out(OrderOut, await orders.order_detail(rt, external_id))

    @post(
        "/orders/{external_id:str}/events",
        summary="Record a fulfilment event",
        responses={
            **errors(404, 409, 413, 422),
            200: answer(EventOut, "A repeat of the event that made the current state"),
        },
        response_description="The event was recorded",
    )
    async def post_event(
        self, rt: RT, external_id: ExternalId, data: EventBody
    ) -> Response[EventOut]:
        outcome = await orders.record_event(rt, external_id, data)
        body = EventOut(
            outcome.external_id,
            OrderStatus(outcome.status),
            outcome.event_id,
            outcome.duplicate,
            [WarningOut(w.field, w.detail) for w in outcome.warnings],
        )
        return Response(body, status_code=200 if outcome.duplicate else 201)

    @post(
        "/orders/{external_id:str}/links/revoke",
        summary="Make the order's links stop working",
        responses=errors(404),
    )
    async def revoke_links(self, rt: RT, external_id: ExternalId) -> RevokedOut:
        return RevokedOut(await orders.revoke_links(rt, external_id))

    @get(
        "/changes",
        summary="Delivery changes in the order they were made, after a cursor",
        description="Poll with `after` set to the `next` of the previous answer; "
        "a change made while you poll is never skipped.",
        responses=errors(422),
    )
    async def list_changes(
        self,
        rt: RT,
        after: Annotated[
            int, Parameter(ge=0, le=2**31 - 1, description="the last change id you have")
        ] = 0,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> ChangesOut:
        return out(ChangesOut, await delivery.list_changes(rt, after=after, limit=limit))

    @get("/changes/{change_id:int}", summary="One delivery change", responses=errors(404))
    async def get_change(self, rt: RT, change_id: RowId) -> ChangeOut:
        return out(ChangeOut, await delivery.get_change(rt, change_id))

    @post(
        "/changes/{change_id:int}/accept",
        summary="Accept a requested delivery change",
        responses=errors(404, 409, 413, 422),
        operation_class=OptionalBody,
    )
    async def accept_change(
        self, rt: RT, change_id: RowId, data: JSONBody[DecisionIn | None] = None
    ) -> ChangeOut:
        return out(ChangeOut, await delivery.decide(rt, change_id, accept=True))

    @post(
        "/changes/{change_id:int}/reject",
        summary="Reject a requested delivery change",
        responses=errors(404, 409, 413, 422),
        operation_class=OptionalBody,
    )
    async def reject_change(
        self, rt: RT, change_id: RowId, data: JSONBody[DecisionIn | None] = None
    ) -> ChangeOut:
        reason = data.reason if data else None
        return out(ChangeOut, await delivery.decide(rt, change_id, accept=False, reason=reason))

    # ------------------------------------------------------------ returns and refunds

    @get(
        "/returns",
        summary="Returns in the order they were made, after a cursor",
        responses=errors(422),
    )
    async def list_returns(
        self,
        rt: RT,
        status: Annotated[
            ReturnStatus | None, Parameter(description="only returns in this status")
        ] = None,
        after: Annotated[
            int, Parameter(ge=0, le=2**31 - 1, description="the last return id you have")
        ] = 0,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> ReturnsOut:
        found = await returns.list_returns(rt, status=status, after=after, limit=limit)
        return out(ReturnsOut, found)

    @get("/returns/{return_id:int}", summary="One return with its lines", responses=errors(404))
    async def get_return(self, rt: RT, return_id: RowId) -> ReturnOut:
        return out(ReturnOut, await returns.return_detail(rt, return_id))

    @post(
        "/returns/{return_id:int}/approve",
        summary="Approve a requested return",
        responses=errors(404, 409),
    )
    async def approve_return(self, rt: RT, return_id: RowId) -> ReturnOut:
        return out(ReturnOut, await returns.approve(rt, return_id))

    @post(
        "/returns/{return_id:int}/reject",
        summary="Reject a return, saying why",
        responses=errors(404, 409, 413, 422),
    )
    async def reject_return(self, rt: RT, return_id: RowId, data: JSONBody[ReasonIn]) -> ReturnOut:
        return out(ReturnOut, await returns.reject(rt, return_id, data.reason))

    @post(
        "/returns/{return_id:int}/label",
        summary="The courier label for a return",
        responses=errors(404, 409, 413, 422),
    )
    async def label_return(self, rt: RT, return_id: RowId, data: JSONBody[LabelIn]) -> ReturnOut:
        found = await returns.set_label(rt, return_id, data.url, data.carrier, data.tracking_number)
        return out(ReturnOut, found)

    @post(
        "/returns/{return_id:int}/in_transit",
        summary="The return is on its way back",
        responses=errors(404, 409),
    )
    async def return_in_transit(self, rt: RT, return_id: RowId) -> ReturnOut:
        return out(ReturnOut, await returns.in_transit(rt, return_id))

    @post(
        "/returns/{return_id:int}/receive",
        summary="The return arrived at the warehouse",
        responses=errors(404, 409),
    )
    async def receive_return(self, rt: RT, return_id: RowId) -> ReturnOut:
        return out(ReturnOut, await returns.receive(rt, return_id))

    @post(
        "/returns/{return_id:int}/inspect",
        summary="Accept or reject each returned line; a pending refund follows for what is accepted",
        responses=errors(404, 409, 413, 422),
    )
    async def inspect_return(
        self, rt: RT, return_id: RowId, data: JSONBody[InspectIn]
    ) -> ReturnOut:
        verdicts = [returns.VerdictIn(v.line_id, v.accepted, v.reason) for v in data.lines]
        return out(ReturnOut, await returns.inspect(rt, return_id, verdicts))

    @post(
        "/orders/{external_id:str}/refunds",
        summary="Start a refund on an order",
        responses=errors(404, 409, 413, 422),
    )
    async def create_refund(self, rt: RT, external_id: ExternalId, data: RefundBody) -> RefundOut:
        body = await returns.create_refund(
            rt, external_id, data.amount, data.reason, data.return_id
        )
        return out(RefundOut, body)

    @get("/refunds/{refund_id:int}", summary="One refund", responses=errors(404))
    async def get_refund(self, rt: RT, refund_id: RowId) -> RefundOut:
        return out(RefundOut, await returns.refund_detail(rt, refund_id))

    @patch(
        "/refunds/{refund_id:int}",
        summary="Move a refund on: pending -> processing -> paid | failed",
        responses=errors(404, 409, 413, 422),
    )
    async def patch_refund(
        self, rt: RT, refund_id: RowId, data: JSONBody[RefundPatchIn]
    ) -> RefundOut:
        return out(RefundOut, await returns.update_refund(rt, refund_id, data.status, data.reason))
