"""The shop's JSON API (/api/v1), bearer API keys. Thin: parse, one service call, JSON."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, patch, post, put
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, JSONBody, Parameter
from msgspec import Struct

from portal.services import api_keys, delivery, orders, returns, stores
from portal.services.inputs import (
    Code,
    EventIn,
    ExternalId,
    InspectIn,
    LabelIn,
    OrderIn,
    Reason300,
    ReasonIn,
    RefundIn,
    RefundPatchIn,
    StoreIn,
)
from portal.web.deps import RT, RowId


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


class OrderReceiptOut(Struct):
    id: int
    external_id: str
    status: str
    tracking_url: str


class WarningOut(Struct):
    field: str
    detail: str


class EventOut(Struct):
    external_id: str
    status: str
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


class DecisionIn(Struct, forbid_unknown_fields=True):
    # Shown to the shopper when a change is rejected.
    reason: Reason300 | None = None


class ShopApi(Controller):
    path = "/api/v1"
    guards = [require_api_key]
    tags = ["shop"]
    security = [{"BearerToken": []}]

    @put("/stores/{code:str}", summary="Create or replace a store")
    async def put_store(
        self, rt: RT, code: FromPath[Code], data: JSONBody[StoreIn]
    ) -> Response[StoreOut]:
        store, created = await stores.put_store(rt, code, data)
        return Response(StoreOut(**store), status_code=201 if created else 200)

    @post("/orders", summary="Create an order (idempotent on external_id)")
    async def create_order(self, rt: RT, data: JSONBody[OrderIn]) -> Response[OrderReceiptOut]:
        receipt, created = await orders.create_order(rt, data)
        body = OrderReceiptOut(
            receipt.id, receipt.external_id, receipt.status, receipt.tracking_url
        )
        return Response(body, status_code=201 if created else 200)

    @get("/orders/{external_id:str}", summary="An order with its status, shipments and timeline")
    async def get_order(self, rt: RT, external_id: FromPath[ExternalId]) -> dict[str, Any]:
        return await orders.order_detail(rt, external_id)

    @post("/orders/{external_id:str}/events", summary="Record a fulfilment event")
    async def post_event(
        self, rt: RT, external_id: FromPath[ExternalId], data: JSONBody[EventIn]
    ) -> Response[EventOut]:
        outcome = await orders.record_event(rt, external_id, data)
        body = EventOut(
            outcome.external_id,
            outcome.status,
            outcome.event_id,
            outcome.duplicate,
            [WarningOut(w.field, w.detail) for w in outcome.warnings],
        )
        return Response(body, status_code=200 if outcome.duplicate else 201)

    @post("/orders/{external_id:str}/links/revoke", summary="Make the order's links stop working")
    async def revoke_links(
        self, request: Request[Any, Any, Any], rt: RT, external_id: FromPath[ExternalId]
    ) -> RevokedOut:
        return RevokedOut(await orders.revoke_links(rt, external_id))

    @get(
        "/changes",
        summary="Delivery changes in the order they were made, after a cursor",
        description="Poll with `after` set to the `next` of the previous answer; "
        "a change made while you poll is never skipped.",
    )
    async def list_changes(
        self,
        rt: RT,
        after: Annotated[
            int, Parameter(ge=0, le=2**31 - 1, description="the last change id you have")
        ] = 0,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        return await delivery.list_changes(rt, after=after, limit=limit)

    @get("/changes/{change_id:int}", summary="One delivery change")
    async def get_change(self, rt: RT, change_id: RowId) -> dict[str, Any]:
        return await delivery.get_change(rt, change_id)

    @post("/changes/{change_id:int}/accept", summary="Accept a requested delivery change")
    async def accept_change(
        self, rt: RT, change_id: RowId, data: JSONBody[DecisionIn | None] = None
    ) -> dict[str, Any]:
        return await delivery.decide(rt, change_id, accept=True)

    @post("/changes/{change_id:int}/reject", summary="Reject a requested delivery change")
    async def reject_change(
        self, rt: RT, change_id: RowId, data: JSONBody[DecisionIn | None] = None
    ) -> dict[str, Any]:
        return await delivery.decide(
            rt, change_id, accept=False, reason=data.reason if data else None
        )

    # ------------------------------------------------------------ returns and refunds

    @get("/returns", summary="Returns in the order they were made, after a cursor")
    async def list_returns(
        self,
        rt: RT,
        status: Annotated[str | None, Parameter(description="only returns in this status")] = None,
        after: Annotated[
            int, Parameter(ge=0, le=2**31 - 1, description="the last return id you have")
        ] = 0,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        return await returns.list_returns(rt, status=status, after=after, limit=limit)

    @get("/returns/{return_id:int}", summary="One return with its lines")
    async def get_return(self, rt: RT, return_id: RowId) -> dict[str, Any]:
        return await returns.return_detail(rt, return_id)

    @post("/returns/{return_id:int}/approve", summary="Approve a requested return")
    async def approve_return(self, rt: RT, return_id: RowId) -> dict[str, Any]:
        return await returns.approve(rt, return_id)

    @post("/returns/{return_id:int}/reject", summary="Reject a return, saying why")
    async def reject_return(
        self, rt: RT, return_id: RowId, data: JSONBody[ReasonIn]
    ) -> dict[str, Any]:
        return await returns.reject(rt, return_id, data.reason)

    @post("/returns/{return_id:int}/label", summary="The courier label for a return")
    async def label_return(
        self, rt: RT, return_id: RowId, data: JSONBody[LabelIn]
    ) -> dict[str, Any]:
        return await returns.set_label(rt, return_id, data.url, data.carrier, data.tracking_number)

    @post("/returns/{return_id:int}/in_transit", summary="The return is on its way back")
    async def return_in_transit(self, rt: RT, return_id: RowId) -> dict[str, Any]:
        return await returns.in_transit(rt, return_id)

    @post("/returns/{return_id:int}/receive", summary="The return arrived at the warehouse")
    async def receive_return(self, rt: RT, return_id: RowId) -> dict[str, Any]:
        return await returns.receive(rt, return_id)

    @post(
        "/returns/{return_id:int}/inspect",
        summary="Accept or reject each returned line; a pending refund follows for what is accepted",
    )
    async def inspect_return(
        self, rt: RT, return_id: RowId, data: JSONBody[InspectIn]
    ) -> dict[str, Any]:
        verdicts = [returns.VerdictIn(v.line_id, v.accepted, v.reason) for v in data.lines]
        return await returns.inspect(rt, return_id, verdicts)

    @post("/orders/{external_id:str}/refunds", summary="Start a refund on an order")
    async def create_refund(
        self, rt: RT, external_id: FromPath[ExternalId], data: JSONBody[RefundIn]
    ) -> Response[dict[str, Any]]:
        body = await returns.create_refund(
            rt, external_id, data.amount, data.reason, data.return_id
        )
        return Response(body, status_code=201)

    @get("/refunds/{refund_id:int}", summary="One refund")
    async def get_refund(self, rt: RT, refund_id: RowId) -> dict[str, Any]:
        return await returns.refund_detail(rt, refund_id)

    @patch(
        "/refunds/{refund_id:int}",
        summary="Move a refund on: pending -> processing -> paid | failed",
    )
    async def patch_refund(
        self, rt: RT, refund_id: RowId, data: JSONBody[RefundPatchIn]
    ) -> dict[str, Any]:
        return await returns.update_refund(rt, refund_id, data.status, data.reason)
