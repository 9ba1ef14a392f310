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
    token = ScopeState.from_scope(request.scope).csrf_token
    csrf = token if isinstance(token, str) else ""  # routes the CSRF middleware skips: none
    ctx = {"request": request, **page_callables(context.get("locale"), csrf), **context}
    if block is None:
        html = env.get_template(name).render(ctx)
    else:
        html = render_block(env, name, block, ctx)
    return Response(html, status_code=status_code, media_type=MediaType.HTML, headers=headers)


def page_callables(locale: str | None, csrf_token: str) -> dict[str, Any]:
    """What pages call most, `_()` and `csrf_token()`, bound for one render as plain
    callables: Jinja calls them directly, where a context function costs a copy of the
    whole context for each call inside a loop or after a `{% set %}` block."""
    gettext = page_gettext(locale or DEFAULT)
    return {"_": gettext, "gettext": gettext, "csrf_token": lambda: csrf_token}
