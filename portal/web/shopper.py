"""The shopper's page for one order (/t/{token}), its live progress fragment, and the
forms on it: click-and-collect (visit, delegate), delivery changes (address, store,
day, instructions, the one-time code) and the page's language."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_429_TOO_MANY_REQUESTS
from markupsafe import Markup

from portal.domain import qr
from portal.domain.delivery import ChangeStatus
from portal.domain.i18n import N_
from portal.domain.locale import NATIVE_NAMES, PAGE_LOCALES, from_accept_language, page_locale
from portal.domain.order import Fulfilment, OrderStatus
from portal.services import delivery, orders, preferences, returns
from portal.services import pickup as pickup_service
from portal.services.errors import ServiceError
from portal.services.shopper_limits import TooManyChanges
from portal.templating import translate
from portal.web import delivery_card, pickup_card, returns_card
from portal.web.bodies import FormTextRefused, read_form, refuse
from portal.web.deps import RT, RowId
from portal.web.labels import PAGE_WORDS
from portal.web.limits import MissLimiter
from portal.web.render import render

T = TypeVar("T")
PAGE = "shopper/order.html"
# Links carry the token: never send them onwards, never index them, never cache the page.
PRIVATE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
PAGE_HEADERS = {**PRIVATE_HEADERS, "Cache-Control": "no-store"}
# Where the delivery card has something to offer or to explain; elsewhere it is not read.
CHANGEABLE = frozenset(
    {
        OrderStatus.PLACED,
        OrderStatus.BACKORDERED,
        OrderStatus.PACKED,
        OrderStatus.SHIPPED,
        OrderStatus.OUT_FOR_DELIVERY,
        OrderStatus.DELIVERY_FAILED,
    }
)

# The language switch: each page language by its own name.
LANGUAGES = tuple((code, NATIVE_NAMES[code]) for code in PAGE_LOCALES)


class ShopperController(Controller):
    path = "/t"
    include_in_schema = False  # pages, not the shop API (/schema)

    async def _resolve(
        self, request: Request[Any, Any, Any], lookup: Coroutine[Any, Any, T | None]
    ) -> T | None:
        return await resolve(request, lookup)

    def _not_found(self, request: Request[Any, Any, Any], *, fragment: bool) -> Response[Any]:
        # Unknown, expired and revoked links all look the same; with no order to go by,
        # the page speaks the browser's language.
        name = "shopper/link_not_found.html"
        lang = from_accept_language(request.headers.get("accept-language"))
        return render(
            request,
            name,
            {"locale": lang, "ui_lang": lang},
            block="progress" if fragment else None,
            status_code=404,
            headers=PRIVATE_HEADERS,
        )

    @get("/{token:str}", name="track")
    async def page(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        view = await self._resolve(request, orders.tracking_page(rt, token))
        if view is None:
            return self._not_found(request, fragment=False)
        saved = request.query_params.get("saved")
        return await page_response(request, rt, token, view, saved=saved)

    @get("/{token:str}/progress", name="track_progress")
    async def progress(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        state = await self._resolve(request, orders.tracking_state(rt, token))
        if state is None:
            return self._not_found(request, fragment=True)
        # Revalidate every time; an unchanged order costs one indexed lookup and a 304.
        headers = {**PRIVATE_HEADERS, "ETag": state.etag, "Cache-Control": "private, no-cache"}
        if _etag_matches(request.headers.get("if-none-match"), state.etag):
            return Response(b"", status_code=304, headers=headers)
        view = await orders.tracking_view(rt, state)
        # 286 tells htmx to stop polling; the final fragment also has no trigger left.
        status = 286 if state.final and request.headers.get("hx-request") else 200
        context = _context(rt, token, view, with_forms=False)
        response = render(
            request, PAGE, context, block="progress", status_code=status, headers=headers
        )
        if state.final and view.pickup is not None:
            # The pickup card's forms go with the last swap (htmx applies it out of band).
            card = render(request, PAGE, {**context, "oob": True}, block="pickup")
            response.content = f"{response.content}{card.content}"
        return response

    # ------------------------------------------------------------ click-and-collect forms

    async def _pickup_order(
        self, request: Request[Any, Any, Any], rt: RT, token: str
    ) -> orders.TrackingView | None:
        view = await self._resolve(request, orders.tracking_page(rt, token))
        return view if view is not None and view.pickup is not None else None

    def _pickup_answer(
        self,
        request: Request[Any, Any, Any],
        rt: RT,
        token: str,
        view: orders.TrackingView,
        *,
        forms: pickup_card.PickupForms | None,
        status_code: int,
    ) -> Response[Any]:
        """The page again (or its pickup card for htmx), with the message by the form."""
        return render(
            request,
            PAGE,
            _context(rt, token, view, forms=forms),
            block="pickup" if _is_htmx(request) else None,
            status_code=status_code,
            headers={**PRIVATE_HEADERS, "Cache-Control": "no-store"},
        )

    async def _pickup_saved(
        self, request: Request[Any, Any, Any], rt: RT, token: str
    ) -> Response[Any]:
        if not _is_htmx(request):
            return Redirect(
                f"/t/{token}#pickup", status_code=HTTP_303_SEE_OTHER, headers=PRIVATE_HEADERS
            )
        view = await orders.tracking_page(rt, token)
        if view is None:  # the link was revoked in between
            return self._not_found(request, fragment=False)
        return self._pickup_answer(request, rt, token, view, forms=None, status_code=200)

    @post("/{token:str}/visit", name="track_visit")
    async def visit(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        view = await self._pickup_order(request, rt, token)
        if view is None:
            return self._not_found(request, fragment=False)
        form, refused = await read_form(request)
        day = str(form.get("day") or "")[:10]
        at = str(form.get("time") or "")[:5]
        now = rt.clock.now()
        try:
            refuse(refused)
            start, end = pickup_card.parse_visit(view, day, at, now)
            await pickup_service.choose_visit(rt, view.state.order_id, start, end)
        except ServiceError as exc:
            forms = pickup_card.forms_for(
                view, now, _locale(view), day=day, at=at, visit_error=exc.detail
            )
            return self._pickup_answer(
                request, rt, token, view, forms=forms, status_code=exc.status_code
            )
        return await self._pickup_saved(request, rt, token)

    @post("/{token:str}/delegate", name="track_delegate")
    async def delegate(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        view = await self._pickup_order(request, rt, token)
        if view is None:
            return self._not_found(request, fragment=False)
        form, refused = await read_form(request)
        name = str(form.get("name") or "")
        take_back = form.get("action") == "myself"  # "I will collect it myself"
        try:
            refuse(refused)
            await pickup_service.name_delegate(rt, view.state.order_id, None if take_back else name)
        except ServiceError as exc:
            forms = pickup_card.forms_for(
                view,
                rt.clock.now(),
                _locale(view),
                delegate=name[: pickup_card.NAME_KEPT],
                delegate_error=exc.detail,
            )
            return self._pickup_answer(
                request, rt, token, view, forms=forms, status_code=exc.status_code
            )
        return await self._pickup_saved(request, rt, token)

    # ------------------------------------------------------------------ delivery changes

    async def _delivery_order(
        self, request: Request[Any, Any, Any], rt: RT, token: str
    ) -> orders.TrackingView | None:
        view = await self._resolve(request, orders.tracking_page(rt, token))
        return view if view is not None and view.fulfilment == Fulfilment.DELIVERY else None

    async def _delivery_answer(
        self,
        request: Request[Any, Any, Any],
        rt: RT,
        token: str,
        *,
        dform: delivery_card.DeliveryForm | None = None,
        saved: str | None = None,
        status_code: int = 200,
    ) -> Response[Any]:
        """After a delivery form: plain forms get the page (a refusal) or a 303 to it (done);
        htmx gets the card, with the progress and timeline swapped out of band."""
        if dform is None and not _is_htmx(request):
            return Redirect(
                f"/t/{token}?saved={saved}#delivery" if saved else f"/t/{token}#delivery",
                status_code=HTTP_303_SEE_OTHER,
                headers=PRIVATE_HEADERS,
            )
        view = await orders.tracking_page(rt, token)
        if view is None:  # the link was revoked in between
            return self._not_found(request, fragment=False)
        d = await _delivery_options(rt, view)
        if _is_htmx(request) and d is None:
            # The order is no longer one with a delivery card (it moved to a store): the
            # whole page changes.
            target = f"/t/{token}?saved={saved}" if saved else f"/t/{token}"
            return Response("", status_code=200, headers={**PAGE_HEADERS, "HX-Redirect": target})
        context = _context(rt, token, view, d=d, dform=dform, saved=saved)
        if not _is_htmx(request):
            return render(request, PAGE, context, status_code=status_code, headers=PAGE_HEADERS)
        card = render(
            request, PAGE, context, block="delivery", status_code=status_code, headers=PAGE_HEADERS
        )
        progress = render(request, PAGE, {**context, "oob_progress": True}, block="progress")
        card.content = f"{card.content}{progress.content}"
        return card

    async def _delivery_form(
        self, request: Request[Any, Any, Any], rt: RT, token: str
    ) -> tuple[orders.TrackingView | None, dict[str, str], int | None, FormTextRefused | None]:
        """The order, what was typed, the page's version, and the text rule's refusal (each
        form raises it with its other refusals, so it is shown back the same way)."""
        view = await self._delivery_order(request, rt, token)
        form, refused = await read_form(request)
        values = {k: str(v) for k, v in form.items() if k not in ("_csrf_token", "version")}
        raw = str(form.get("version") or "")
        return view, values, int(raw) if raw.isdigit() else None, refused

    def _done(self, result: delivery.ChangeResult) -> str:
        return result.kind.value if result.status is ChangeStatus.ACCEPTED else "requested"

    @post("/{token:str}/delivery/address", name="track_address")
    async def change_address(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        view, values, version, refused = await self._delivery_form(request, rt, token)
        if view is None:
            return self._not_found(request, fragment=False)
        try:
            refuse(refused)
            await delivery.request_address_change(rt, view.state.order_id, values, version=version)
        except ServiceError as exc:
            dform = delivery_card.refused("address", values, exc)
            return await self._delivery_answer(
                request, rt, token, dform=dform, status_code=exc.status_code
            )
        return await self._delivery_answer(request, rt, token, saved="code_sent")

    @post("/{token:str}/delivery/store", name="track_switch")
    async def switch_to_store(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        return await self._store(request, rt, token, None)

    @post("/{token:str}/parcels/{shipment_id:int}/store", name="track_parcel_switch")
    async def parcel_to_store(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str], shipment_id: RowId
    ) -> Response[Any]:
        return await self._store(request, rt, token, shipment_id)

    async def _store(
        self, request: Request[Any, Any, Any], rt: RT, token: str, shipment_id: int | None
    ) -> Response[Any]:
        view, values, version, refused = await self._delivery_form(request, rt, token)
        if view is None:
            return self._not_found(request, fragment=False)
        try:
            refuse(refused)
            await delivery.request_store_switch(
                rt,
                view.state.order_id,
                values.get("store", ""),
                shipment_id=shipment_id,
                version=version,
            )
        except ServiceError as exc:
            dform = delivery_card.refused("store", values, exc, shipment_id)
            return await self._delivery_answer(
                request, rt, token, dform=dform, status_code=exc.status_code
            )
        return await self._delivery_answer(request, rt, token, saved="code_sent")

    @post("/{token:str}/delivery/code", name="track_code")
    async def confirm_code(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        view, values, _, refused = await self._delivery_form(request, rt, token)
        if view is None:
            return self._not_found(request, fragment=False)
        try:
            refuse(refused)
            result = await delivery.confirm_code(rt, view.state.order_id, values.get("code", ""))
        except ServiceError as exc:
            dform = delivery_card.refused("code", values, exc)
            return await self._delivery_answer(
                request, rt, token, dform=dform, status_code=exc.status_code
            )
        return await self._delivery_answer(request, rt, token, saved=self._done(result))

    @post("/{token:str}/delivery/resend", name="track_code_resend")
    async def resend_code(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        view, values, _, refused = await self._delivery_form(request, rt, token)
        if view is None:
            return self._not_found(request, fragment=False)
        try:
            refuse(refused)
            await delivery.resend_code(rt, view.state.order_id)
        except ServiceError as exc:
            dform = delivery_card.refused("code", values, exc)
            return await self._delivery_answer(
                request, rt, token, dform=dform, status_code=exc.status_code
            )
        return await self._delivery_answer(request, rt, token, saved="code_sent")

    @post("/{token:str}/delivery/cancel", name="track_code_cancel")
    async def cancel_code(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        view = await self._delivery_order(request, rt, token)
        if view is None:
            return self._not_found(request, fragment=False)
        await delivery.cancel_code(rt, view.state.order_id)
        return await self._delivery_answer(request, rt, token, saved="cancelled")

    @post("/{token:str}/parcels/{shipment_id:int}/day", name="track_day")
    async def change_day(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str], shipment_id: RowId
    ) -> Response[Any]:
        view, values, version, refused = await self._delivery_form(request, rt, token)
        if view is None:
            return self._not_found(request, fragment=False)
        try:
            refuse(refused)
            result = await delivery.reschedule(
                rt, view.state.order_id, shipment_id, values.get("day", ""), version=version
            )
        except ServiceError as exc:
            dform = delivery_card.refused("day", values, exc, shipment_id)
            return await self._delivery_answer(
                request, rt, token, dform=dform, status_code=exc.status_code
            )
        return await self._delivery_answer(request, rt, token, saved=self._done(result))

    @post("/{token:str}/parcels/{shipment_id:int}/instructions", name="track_instructions")
    async def change_instructions(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str], shipment_id: RowId
    ) -> Response[Any]:
        view, values, version, refused = await self._delivery_form(request, rt, token)
        if view is None:
            return self._not_found(request, fragment=False)
        try:
            refuse(refused)
            result = await delivery.set_instructions(
                rt,
                view.state.order_id,
                shipment_id,
                safe_place=values.get("safe_place"),
                neighbour=values.get("neighbour"),
                note=values.get("note"),
                version=version,
            )
        except ServiceError as exc:
            dform = delivery_card.refused("instructions", values, exc, shipment_id)
            return await self._delivery_answer(
                request, rt, token, dform=dform, status_code=exc.status_code
            )
        return await self._delivery_answer(request, rt, token, saved=self._done(result))

    # -------------------------------------------------------------------------- language

    @post("/{token:str}/language", name="track_language")
    async def language(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        """The page's language switch: remembered on the customer, so their text messages
        follow it too. A plain form (no htmx): the whole page changes language."""
        state = await self._resolve(request, orders.tracking_state(rt, token))
        if state is None:
            return self._not_found(request, fragment=False)
        form, refused = await read_form(request)
        refuse(refused)  # a select: nothing to show back but the message
        try:
            await preferences.set_language(rt, state.order_id, str(form.get("language") or ""))
        except TooManyChanges as exc:  # a wrong value is the error page's, as before
            return await self._switch_refused(request, rt, token, exc)
        return Redirect(f"/t/{token}", status_code=HTTP_303_SEE_OTHER, headers=PRIVATE_HEADERS)

    @post("/{token:str}/sms", name="track_sms_updates")
    async def sms_updates(
        self, request: Request[Any, Any, Any], rt: RT, token: FromPath[str]
    ) -> Response[Any]:
        """SMS updates on or off (as STOP and START by text do)."""
        state = await self._resolve(request, orders.tracking_state(rt, token))
        if state is None:
            return self._not_found(request, fragment=False)
        form, refused = await read_form(request)
        refuse(refused)
        choice = str(form.get("updates") or "")
        if choice not in ("on", "off"):
            raise ValidationException(detail="updates: choose on or off")
        try:
            await preferences.set_sms_updates(rt, state.order_id, choice == "on")
        except TooManyChanges as exc:  # a wrong value is the error page's, as before
            return await self._switch_refused(request, rt, token, exc)
        return Redirect(
            f"/t/{token}#sms-updates", status_code=HTTP_303_SEE_OTHER, headers=PRIVATE_HEADERS
        )

    async def _switch_refused(
        self, request: Request[Any, Any, Any], rt: RT, token: str, exc: ServiceError
    ) -> Response[Any]:
        """The page again, with why the language or SMS switch did not change (plain forms:
        the whole page)."""
        view = await orders.tracking_page(rt, token)
        if view is None:  # the link was revoked in between
            return self._not_found(request, fragment=False)
        return await page_response(
            request, rt, token, view, status_code=exc.status_code, switch_error=exc.detail
        )


async def resolve(
    request: Request[Any, Any, Any], lookup: Coroutine[Any, Any, T | None]
) -> T | None:
    """Run a token lookup under the miss limiter: blocked clients get 429, misses count."""
    limiter: MissLimiter = request.app.state.miss_limiter
    if await limiter.blocked(request):
        lookup.close()
        raise HTTPException(
            status_code=HTTP_429_TOO_MANY_REQUESTS,
            detail="Too many links that do not work were tried from here. Wait a minute.",
            # htmx swaps a 429 (a form over the shopper's limits): not this error page.
            headers={"Retry-After": "60", "HX-Reswap": "none"},
        )
    found = await lookup
    if found is None:
        await limiter.record_miss(request)
    return found


SAVED_WORDS = frozenset({*delivery_card.SAVED_TEXT, "return"})


async def page_response(
    request: Request[Any, Any, Any],
    rt: RT,
    token: str,
    view: orders.TrackingView,
    *,
    block: str | None = None,
    status_code: int = 200,
    saved: str | None = None,
    rform: returns_card.ReturnForm | None = None,
    switch_error: str | None = None,
) -> Response[Any]:
    """The page (or one of its blocks) with every card's data: delivery changes, returns."""
    context = await page_context(rt, token, view, saved=saved, rform=rform)
    context["switch_error"] = switch_error
    return render(
        request, PAGE, context, block=block, status_code=status_code, headers=PAGE_HEADERS
    )


async def page_context(
    rt: RT,
    token: str,
    view: orders.TrackingView,
    *,
    saved: str | None = None,
    rform: returns_card.ReturnForm | None = None,
) -> dict[str, Any]:
    """What the whole page renders: the view, and the delivery and returns cards' data."""
    context = _context(
        rt,
        token,
        view,
        d=await _delivery_options(rt, view),
        saved=saved if saved in SAVED_WORDS else None,
    )
    card = await returns.returns_view(
        rt,
        view.state.order_id,
        status=view.state.status,
        closed_at=view.closed_at,
        has_returns=view.has_returns,
        has_refunds=view.has_refunds,
        # read by the page's query already (refunds and returns: on PostgreSQL)
        order_lines=view.lines,
        refunds=view.refunds,
        return_rows=view.return_rows,
    )
    context.update(returns_card.returns_context(rt, card, context["locale"], rform))
    return context


async def _delivery_options(rt: RT, view: orders.TrackingView) -> delivery.DeliveryOptions | None:
    if view.fulfilment != Fulfilment.DELIVERY or view.state.status not in CHANGEABLE:
        return None
    return await delivery.options(rt, view)


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {value.strip().removeprefix("W/") for value in header.split(",")}
    return etag in candidates or "*" in candidates


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def _locale(view: orders.TrackingView) -> str:
    return page_locale(view.state.locale)


def _handover_qr(
    rt: RT, order_id: int, pickup: orders.PickupView, code: str, locale: str
) -> Markup:
    """The pickup code's QR, kept since the order became ready."""
    url = qr.handover_url(rt.settings.base_url, order_id, code)
    title = translate(locale, N_("QR code of the pickup code"))
    return qr.kept_or_made(pickup.qr_svg, pickup.qr_url, url, title)


def _context(
    rt: RT,
    token: str,
    view: orders.TrackingView,
    *,
    forms: pickup_card.PickupForms | None = None,
    with_forms: bool = True,
    d: delivery.DeliveryOptions | None = None,
    dform: delivery_card.DeliveryForm | None = None,
    saved: str | None = None,
) -> dict[str, Any]:
    locale = _locale(view)
    handover_qr = None
    if view.pickup is not None:
        if view.pickup.code:
            handover_qr = _handover_qr(
                rt, view.state.order_id, view.pickup, view.pickup.code, locale
            )
        if forms is None and with_forms:
            forms = pickup_card.forms_for(view, rt.clock.now(), locale)
    return {
        "v": view,
        "token": token,
        "locale": locale,
        "ui_lang": locale,
        "languages": LANGUAGES,
        "w": PAGE_WORDS(locale),  # statuses, events, places: translated once per language
        "poll_seconds": rt.settings.poll_seconds,
        "live": not view.state.final,
        "qr": handover_qr,
        "forms": forms,
        "oob": False,
        "oob_progress": False,
        "d": d,
        "dform": dform,
        "saved": saved,
        "address_country": ((view.address or {}).get("country") or "").upper(),
        # The returns card (filled in by page_response).
        "r": None,
        "rform": None,
        "return_qr": {},
        # Why the language or SMS switch did not change (over the shopper's limits).
        "switch_error": None,
        **delivery_card.CONTEXT,
    }
