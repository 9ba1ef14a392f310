"""Rendering pages and their HTMX fragments from one template (design.md §7.5)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.enums import MediaType

from portal.templating import render_block


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
    ctx = {"request": request, **context}
    if block is None:
        html = env.get_template(name).render(ctx)
    else:
        html = render_block(env, name, block, ctx)
    return Response(html, status_code=status_code, media_type=MediaType.HTML, headers=headers)
