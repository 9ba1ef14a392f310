"""Every error answers in the caller's language: JSON for the API and webhooks, a page for
people. Nothing leaks a traceback; unexpected errors are logged without request data.

When the database is out (stopped, restarting, unreachable; portal.db.is_unavailable),
every request that needs it answers 503 with Retry-After, a translated "try again in a
moment" page for people, and the log gets one warning a minute instead of a traceback per
request. Requests recover by themselves once it is back (the pools reconnect).
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from portal import db
from portal.domain.locale import from_accept_language
from portal.services.errors import ServiceError
from portal.web.render import render

log = logging.getLogger(__name__)

_MACHINE_PREFIXES = ("/api/", "/webhooks/", "/healthz", "/readyz", "/metrics", "/schema")

_TITLES = {
    400: "That request could not be read",
    401: "Please sign in",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed",
    413: "Too much data",
    429: "Too many requests",
}


def _wants_json(request: Request[Any, Any, Any]) -> bool:
    return request.url.path.startswith(_MACHINE_PREFIXES)


def _json(status: int, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"status_code": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(body, status_code=status, media_type=MediaType.JSON)


def _page(request: Request[Any, Any, Any], status: int, message: str) -> Response[Any]:
    title = _TITLES.get(status, "Something went wrong")
    try:
        return render(
            request,
            "errors/error.html",
            {"title": title, "message": message, "status": status},
            status_code=status,
        )
    except Exception:  # the error page itself failed: answer plainly rather than not at all
        log.exception("error page failed")
        return Response(
            f"<!doctype html><title>{title}</title><h1>{title}</h1>",
            status_code=status,
            media_type=MediaType.HTML,
        )


_DECODE_HINTS = ("malformed", "truncated", "invalid character", "trailing characters", "utf-8")


def validation_detail(exc: ValidationException) -> tuple[str, str | None]:
    """'lines[0].quantity: Expected `int` >= 1' from msgspec's '... - at `$.lines[0].quantity`'."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", ""))
        field = None
        if " - at `$" in message:
            message, _, path = message.partition(" - at `$")
            field = path.rstrip("`").lstrip(".") or None
        elif item.get("key") and item.get("key") != "body":
            field = str(item["key"])
        if field is None and any(hint in message.lower() for hint in _DECODE_HINTS):
            return f"the body is not valid JSON ({message})", None
        return (f"{field}: {message}" if field else message), field
    return exc.detail or "the request is not valid", None


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    detail, field = validation_detail(exc)
    if _wants_json(request):
        return _json(400, detail, field=field)
    return _page(request, 400, detail)


def handle_service_error(request: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    if _wants_json(request):
        return _json(exc.status_code, exc.as_detail(), field=exc.field)
    return _page(request, exc.status_code, exc.detail)


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        log.error("http %s on %s %s", status, request.method, request.scope.get("route_handler"))
    headers = exc.headers or None
    detail = exc.detail
    if (
        status == 400
        and not detail.startswith("the body")  # portal.web.bodies said it already
        and any(hint in detail.lower() for hint in _DECODE_HINTS)
    ):
        detail = f"the body is not valid JSON ({detail})"
    if _wants_json(request):
        response = _json(status, detail)
    else:
        response = _page(request, status, exc.detail if status < 500 else "")
    if headers:
        response.headers.update(headers)
    return response


RETRY_AFTER_SECONDS = 5


def handle_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    rt = request.app.state.rt
    outage = rt.cache.get("web_db_outage")
    if outage is None:  # one per process: each warns once a minute
        outage = rt.cache["web_db_outage"] = db.OutageLog(log, "answering 503 with Retry-After")
    outage.note(rt.clock.now(), exc)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
    if request.headers.get("hx-request") and request.method != "GET":
        # An htmx form leaves a 5xx unswapped (the click did nothing): the page reloads
        # instead, to this page while the database is out, as a plain form shows it. A poll
        # (GET) leaves the page as it was.
        headers["HX-Refresh"] = "true"
    if _wants_json(request):
        response = _json(503, "the service is unavailable for a moment; try again in a few seconds")
        response.headers.update(headers)
        return response
    lang = from_accept_language(request.headers.get("accept-language"))
    try:
        return render(
            request,
            "errors/unavailable.html",
            {"locale": lang, "ui_lang": lang, "again": request.method == "GET"},
            status_code=503,
            headers=headers,
        )
    except Exception:  # answer plainly rather than not at all
        return Response(
            "<!doctype html><title>503</title><h1>Please try again in a moment</h1>",
            status_code=503,
            media_type=MediaType.HTML,
            headers=headers,
        )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if db.is_unavailable(exc):
        return handle_unavailable(request, exc)
    # The path can hold a token: log the route's name, not the URL.
    handler = request.scope.get("route_handler")
    log.exception("unexpected %s in %s", type(exc).__name__, getattr(handler, "handler_name", "?"))
    if _wants_json(request):
        return _json(500, "something went wrong on our side; it has been logged")
    return _page(request, HTTP_500_INTERNAL_SERVER_ERROR, "")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ValidationException: handle_validation,
    ServiceError: handle_service_error,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}
