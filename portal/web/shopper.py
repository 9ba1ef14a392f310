"""The shopper's page for one order (/t/{token}) and its live progress fragment."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from litestar import Controller, Request, Response, get
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.status_codes import HTTP_429_TOO_MANY_REQUESTS

from portal.domain.locale import page_locale
from portal.services import orders
from portal.web.deps import RT
from portal.web.limits import MissLimiter
from portal.web.render import render

T = TypeVar("T")
PAGE = "shopper/order.html"
# Links carry the token: never send them onwards, never index them, never cache the page.
PRIVATE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


class ShopperController(Controller):
    path = "/t"

    async def _resolve(
        self, request: Request[Any, Any, Any], lookup: Coroutine[Any, Any, T | None]
    ) -> T | None:
        """Run a token lookup under the miss limiter: blocked clients get 429, misses count."""
        limiter: MissLimiter = request.app.state.miss_limiter
        if await limiter.blocked(request):
            lookup.close()
            raise HTTPException(
                status_code=HTTP_429_TOO_MANY_REQUESTS,
                detail="Too many links that do not work were tried from here. Wait a minute.",
                headers={"Retry-After": "60"},
            )
        found = await lookup
        if found is None:
            await limiter.record_miss(request)
        return found

    def _not_found(self, request: Request[Any, Any, Any], *, fragment: bool) -> Response[Any]:
        # Unknown, expired and revoked links all look the same.
        name = "shopper/link_not_found.html"
        return render(
            request,
            name,
            {},
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
        return render(
            request,
            PAGE,
            _context(rt, token, view),
            headers={**PRIVATE_HEADERS, "Cache-Control": "no-store"},
        )

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
        return render(
            request,
            PAGE,
            _context(rt, token, view),
            block="progress",
            status_code=status,
            headers=headers,
        )


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {value.strip().removeprefix("W/") for value in header.split(",")}
    return etag in candidates or "*" in candidates


def _context(rt: RT, token: str, view: orders.TrackingView) -> dict[str, Any]:
    return {
        "v": view,
        "token": token,
        "locale": page_locale(view.state.locale),
        "poll_seconds": rt.settings.poll_seconds,
        "live": not view.state.final,
    }
