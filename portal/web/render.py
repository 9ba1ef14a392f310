"""Rendering pages and their HTMX fragments from one template (design.md §7.5)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.enums import MediaType
from litestar.utils.scope.state import ScopeState

from portal.domain.locale import DEFAULT
from portal.templating import page_gettext, render_block


def render(
    request: Request[Any, Any, Any],
    name: str,
    context: dict[str, Any],
    *,
    block: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    """The whole page, or only `block` (whose name is the element id HTMX swaps)."""
    env = request.app.state.rt.templates
    # Plain callables for what pages call most, `_()` and `csrf_token()`: Jinja calls them
    # directly, where a context function costs a copy of the context per call in a loop.
    gettext = page_gettext(context.get("locale") or DEFAULT)
    ctx = {"request": request, "_": gettext, "gettext": gettext, **_csrf(request), **context}
    if block is None:
        html = env.get_template(name).render(ctx)
    else:
        html = render_block(env, name, block, ctx)
    return Response(html, status_code=status_code, media_type=MediaType.HTML, headers=headers)


def csrf_value(request: Request[Any, Any, Any]) -> str | None:
    """The CSRF token the middleware set for this request (None on routes it skips)."""
    token = ScopeState.from_scope(request.scope).csrf_token
    return token if isinstance(token, str) else None


def _csrf(request: Request[Any, Any, Any]) -> dict[str, Any]:
    # Without a token here, the environment's `csrf_token` global answers.
    token = csrf_value(request)
    return {} if token is None else {"csrf_token": lambda: token}
