"""The store counter: one pickup order, setting items aside, and handing it over.

Thin: each route calls one `services.pickup` function. A plain POST answers `303` to the
order page, an htmx one the page's `order` block; a refused one shows the page again with the message, the typed values and the
service's status (422 for bad input, 409 for a state that does not allow it, 404 for an
order of another store). The pickup code is never put on a page as text: the shopper
shows it, the clerk types or scans it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_time
from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery
from litestar.response import Redirect
from litestar.status_codes import HTTP_303_SEE_OTHER

from portal.services import pickup
from portal.services.errors import Conflict, Invalid
from portal.web.bodies import read_form, refuse
from portal.web.clerk_auth import Staff
from portal.web.deps import RT, RowId
from portal.web.render import render

NO_STORE = {"Cache-Control": "no-store"}
ORDER_PAGE = "clerk/order.html"
CONFIRM_PAGE = "clerk/handover.html"
LINE_FIELD = "line-"
# `?done=` after a 303: a fixed set of notices, so a link cannot put words on the page.
DONE = ("ready", "handed-over")


def local_time(value: datetime | None, tz: str) -> str:
    """'16:00' in the store's zone: the end of a visit, when its day is already shown."""
    if value is None:
        return ""
    return format_time(value.astimezone(ZoneInfo(tz)), "short", locale="en")


def order_path(order_id: int) -> str:
    return f"/clerk/orders/{order_id}"


def _not_handable(view: pickup.CounterView) -> str | None:
    """Why the confirm screen cannot offer a handover, in the service's words."""
    if view.status == "collected":
        return "this order has already been handed over"
    if view.status != "ready":
        return f"this order cannot be handed over: it is {view.status.replace('_', ' ')}"
    return None


def _counts(form: Any) -> dict[int, int] | None:
    """`line-<id>` fields as {line id: items set aside}; None when the form has none (the
    "Mark ready" button: everything). Raises Invalid for a value that is not a number."""
    changes: dict[int, int] = {}
    for key, value in form.multi_items():
        if not key.startswith(LINE_FIELD):
            continue
        try:
            line_id = int(key.removeprefix(LINE_FIELD))
            count = int(str(value).strip())
        except ValueError as exc:
            raise Invalid("write a whole number of items for each line", field="ready") from exc
        changes[line_id] = count
    return changes or None


def _typed(form: Any) -> dict[str, str]:
    return {key: str(value)[:12] for key, value in form.multi_items() if key.startswith(LINE_FIELD)}


class CounterController(Controller):
    path = "/clerk/orders"
    include_in_schema = False

    async def _order_page(
        self,
        request: Request[Any, Any, Any],
        rt: RT,
        staff: Any,
        order_id: int,
        *,
        error: str | None = None,
        notice: str | None = None,
        typed: dict[str, str] | None = None,
        status_code: int = 200,
        block: str | None = None,
    ) -> Response[Any]:
        view = await pickup.counter_view(rt, pickup.Actor.of(staff), order_id)
        return render(
            request,
            ORDER_PAGE,
            {
                "staff": staff,
                "view": view,
                "now": rt.clock.now(),
                "error": error,
                "notice": notice,
                "typed": typed or {},
                "handover_blocked": _not_handable(view),
                "local_time": local_time,
            },
            block=block,
            status_code=status_code,
            headers=NO_STORE,
        )

    @get("/{order_id:int}", name="clerk_order")
    async def order(
        self,
        request: Request[Any, Any, Any],
        rt: RT,
        staff: Staff,
        order_id: RowId,
        done: FromQuery[str | None] = None,
    ) -> Response[Any]:
        return await self._order_page(
            request, rt, staff, order_id, notice=done if done in DONE else None
        )

    @post("/{order_id:int}/ready", name="clerk_order_ready")
    async def ready(
        self, request: Request[Any, Any, Any], rt: RT, staff: Staff, order_id: RowId
    ) -> Response[Any]:
        form, refused = await read_form(request)
        # htmx swaps the `order` block (409/422 included, see base.html's responseHandling).
        block = "order" if request.headers.get("hx-request") else None
        try:
            refuse(refused)
            await pickup.mark_ready(rt, pickup.Actor.of(staff), order_id, _counts(form))
        except (Invalid, Conflict) as exc:
            return await self._order_page(
                request,
                rt,
                staff,
                order_id,
                error=exc.detail,
                typed=_typed(form),
                status_code=exc.status_code,
                block=block,
            )
        if block:
            return await self._order_page(request, rt, staff, order_id, notice="ready", block=block)
        return Redirect(
            f"{order_path(order_id)}?done=ready", status_code=HTTP_303_SEE_OTHER, headers=NO_STORE
        )

    @get("/{order_id:int}/handover", name="clerk_handover_confirm")
    async def confirm(
        self,
        request: Request[Any, Any, Any],
        rt: RT,
        staff: Staff,
        order_id: RowId,
        code: FromQuery[str | None] = None,
    ) -> Response[Any]:
        # Opened by the order page's code form or by scanning the shopper's QR code. The
        # code is checked (and wrong ones counted) only when the clerk confirms.
        view = await pickup.counter_view(rt, pickup.Actor.of(staff), order_id)
        blocked = _not_handable(view)
        if blocked:
            return await self._order_page(
                request, rt, staff, order_id, error=blocked, status_code=409
            )
        typed = (code or "").strip()[:32]
        if not typed:
            return await self._order_page(
                request,
                rt,
                staff,
                order_id,
                error="type the pickup code the shopper shows, or scan its QR code",
                status_code=422,
            )
        return render(
            request,
            CONFIRM_PAGE,
            {"staff": staff, "view": view, "code": typed},
            headers={**NO_STORE, "Referrer-Policy": "no-referrer"},
        )

    @post("/{order_id:int}/handover", name="clerk_handover")
    async def hand_over(
        self, request: Request[Any, Any, Any], rt: RT, staff: Staff, order_id: RowId
    ) -> Response[Any]:
        form, refused = await read_form(request)
        typed = str(form.get("code") or "")[:32]
        try:
            refuse(refused)
            result = await pickup.hand_over(rt, pickup.Actor.of(staff), order_id, typed)
        except (Invalid, Conflict) as exc:
            return await self._order_page(
                request, rt, staff, order_id, error=exc.detail, status_code=exc.status_code
            )
        if not result.ok:
            return await self._order_page(
                request, rt, staff, order_id, error=result.message, status_code=422
            )
        return Redirect(
            f"{order_path(order_id)}?done=handed-over",
            status_code=HTTP_303_SEE_OTHER,
            headers=NO_STORE,
        )
