"""The shopper's returns: open the form (its own step, GET /t/{token}/returns/new), choose
lines, review, confirm (without JavaScript too: each step is a plain link or form post), and
the card that follows each return to its refund.

Routes live in their own controller under /t/{token}/returns; the page itself (order.html's
`returns` block) is rendered by the shopper controller with `returns_context`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.status_codes import HTTP_303_SEE_OTHER
from markupsafe import Markup

from portal.domain import qr
from portal.domain.i18n import N_
from portal.services import orders, returns
from portal.services.errors import ServiceError
from portal.templating import Words, translate
from portal.web.bodies import read_form, refuse
from portal.web.deps import RT
from portal.web.render import render

KEPT = 300


@dataclass(slots=True)
class ReturnForm:
    """The return form: empty (its own step), after a refusal (values and errors), or its
    review step."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    review: list[dict[str, Any]] | None = None
    store_name: str = ""
    amount: int = 0


# The card's fixed words, translated once per language rather than on every render.
REASON_WORDS = {
    "too_small": N_("Too small"),
    "too_big": N_("Too big"),
    "not_as_described": N_("Not as described"),
    "damaged": N_("Arrived damaged"),
    "wrong_item": N_("Wrong item sent"),
    "changed_mind": N_("Changed my mind"),
    "arrived_late": N_("Arrived too late"),
    "other": N_("Other reason"),
}
RETURN_STEP_WORDS = {
    "requested": N_("Requested"),
    "approved": N_("Approved"),
    "in_transit": N_("On its way"),
    "received": N_("Received"),
    "inspected": N_("Checked"),
    "refunded": N_("Refunded"),
}
REFUND_WORDS = {
    "pending": N_("pending"),
    "processing": N_("processing"),
    "paid": N_("paid"),
    "failed": N_("failed"),
}


words = Words(reason_words=REASON_WORDS, return_steps=RETURN_STEP_WORDS, refund_words=REFUND_WORDS)


def returns_context(
    rt: RT, view: returns.ReturnsView | None, locale: str, rform: ReturnForm | None = None
) -> dict[str, Any]:
    qrs: dict[int, Markup] = {}
    if view is not None:
        title = translate(locale, N_("QR code of the return code"))
        for ret in view.returns:
            if ret.live:
                url = qr.counter_url(rt.settings.base_url, ret.id, ret.code)
                qrs[ret.id] = qr.kept_or_made(ret.qr_svg, ret.qr_url, url, title)
    return {"r": view, "rform": rform, "return_qr": qrs, **words(locale)}


def _picks(form: dict[str, str]) -> list[returns.PickIn]:
    picks = []
    for key, value in form.items():
        if key.startswith("qty_") and key[4:].isdigit() and len(key) <= 13:
            line_id = int(key[4:])
            picks.append(
                returns.PickIn(
                    line_id,
                    value,
                    form.get(f"reason_{line_id}", ""),
                    form.get(f"note_{line_id}", "")[:KEPT],
                )
            )
    return picks


class ReturnsController(Controller):
    path = "/t"
    include_in_schema = False  # pages, not the shop API (/schema)

    async def _view(
        self, request: Request[Any, Any, Any], rt: RT, token: str
    ) -> orders.TrackingView | None:
        from portal.web.shopper import resolve  # the shared miss limiter

        return await resolve(request, orders.tracking_page(rt, token))

    async def _form(
        self, request: Request[Any, Any, Any]
    ) -> tuple[dict[str, str], returns.ReturnFormErrors | None]:
        """What was typed, and the text rule's refusal as the form shows it: by its line
        (`note_<id>`, `reason_<id>`, `qty_<id>`) or by its field."""
        form, refused = await read_form(request)
        values = {k: str(v)[:KEPT] for k, v in form.items() if k != "_csrf_token"}
        if refused is None or refused.field is None:
            return values, None
        prefix, _, line_id = refused.field.partition("_")
        key = (
            line_id if prefix in ("note", "reason", "qty") and line_id.isdigit() else refused.field
        )
        return values, returns.ReturnFormErrors({key: refused.detail})

    async def _answer(
        self,
        request: Request[Any, Any, Any],
        rt: RT,
        token: str,
        view: orders.TrackingView,
        rform: ReturnForm,
        status_code: int,
    ) -> Response[Any]:
        from portal.web.shopper import page_response

        htmx = request.headers.get("hx-request") == "true"
        return await page_response(
            request,
            rt,
            token,
            view,
            block="returns" if htmx else None,
            status_code=status_code,
            rform=rform,
        )

    @get("/{token:str}/returns/new", name="track_return_new")
    async def new(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        """The return form: its own step, so that every other page is lighter to send."""
        view = await self._view(request, rt, token)
        if view is None:
            return await _not_found(request)
        return await self._answer(request, rt, token, view, ReturnForm(), 200)

    @post("/{token:str}/returns/review", name="track_return_review")
    async def review(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        view = await self._view(request, rt, token)
        if view is None:
            return await _not_found(request)
        values, refused = await self._form(request)
        try:
            refuse(refused)
            chosen, _, store = await returns.check_return(
                rt,
                view.state.order_id,
                _picks(values),
                values.get("method", ""),
                values.get("store"),
            )
        except returns.ReturnFormErrors as exc:
            return await self._answer(
                request, rt, token, view, ReturnForm(values, exc.errors), exc.status_code
            )
        except ServiceError as exc:
            return await self._answer(
                request, rt, token, view, ReturnForm(values, message=exc.detail), exc.status_code
            )
        lines = await returns.order_lines(view.state.order_id)
        review = [
            {
                "name": lines[p.line_id]["name"],
                "quantity": p.quantity,
                "reason": p.reason.value,
                "note": p.note,
            }
            for p in chosen
        ]
        amount = sum(lines[p.line_id]["unit_price_minor"] * p.quantity for p in chosen)
        rform = ReturnForm(
            values,
            review=review,
            store_name=store["name"] if store else "",
            amount=amount,
        )
        return await self._answer(request, rt, token, view, rform, 200)

    @post("/{token:str}/returns/edit", name="track_return_edit")
    async def edit(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        view = await self._view(request, rt, token)
        if view is None:
            return await _not_found(request)
        values, refused = await self._form(request)
        rform = ReturnForm(values, refused.errors if refused else {})
        status = refused.status_code if refused else 200
        return await self._answer(request, rt, token, view, rform, status)

    @post("/{token:str}/returns", name="track_return")
    async def confirm(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        view = await self._view(request, rt, token)
        if view is None:
            return await _not_found(request)
        values, refused = await self._form(request)
        try:
            refuse(refused)
            await returns.start_return(
                rt,
                view.state.order_id,
                _picks(values),
                values.get("method", ""),
                values.get("store"),
            )
        except returns.ReturnFormErrors as exc:
            return await self._answer(
                request, rt, token, view, ReturnForm(values, exc.errors), exc.status_code
            )
        except ServiceError as exc:
            return await self._answer(
                request, rt, token, view, ReturnForm(values, message=exc.detail), exc.status_code
            )
        if request.headers.get("hx-request") == "true":
            fresh = await orders.tracking_page(rt, token)
            if fresh is None:
                return await _not_found(request)
            from portal.web.shopper import page_response

            return await page_response(request, rt, token, fresh, block="returns", saved="return")
        return Redirect(
            f"/t/{token}?saved=return#returns",
            status_code=HTTP_303_SEE_OTHER,
            headers={"Referrer-Policy": "no-referrer"},
        )


async def _not_found(request: Request[Any, Any, Any]) -> Response[Any]:
    return render(request, "shopper/link_not_found.html", {}, status_code=404)
