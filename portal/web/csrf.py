"""CSRF protection for every form: Litestar's CSRF middleware, with a lean path for the
safe methods (GET, HEAD, OPTIONS), which are most of what a worker serves.

Posts (and every other unsafe method) go through Litestar's own checks unchanged: the token
in the `x-csrftoken` header or the `_csrf_token` form field must match the `csrftoken`
cookie, both signed with the secret key, or the request is refused (403). The tokens and the
cookie are Litestar's own (a random value and its HMAC), so the two read each other's.

What differs on a safe request, where Litestar's middleware cost about a tenth of the
shopper's page: no Request object is made and no header but the cookie is read; the
Set-Cookie header is written from a template rather than through `http.cookies`; and a
cookie whose signature does not hold (the secret key was changed, or it was tampered with)
is replaced by a new one. Litestar kept such a cookie and rendered its token into the
forms, so every post from that browser was refused until the browser was closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from litestar.config.csrf import CSRFConfig
from litestar.middleware._utils import should_bypass_middleware
from litestar.middleware.csrf import CSRFMiddleware, generate_csrf_token
from litestar.utils.scope.state import ScopeState

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send


class PortalCSRFMiddleware(CSRFMiddleware):
    def __init__(self, app: ASGIApp, config: CSRFConfig) -> None:
        super().__init__(app, config)
        self._safe = frozenset(config.safe_methods)
        self._name = config.cookie_name.encode("latin-1")
        attributes = [f"Path={config.cookie_path}"]
        if config.cookie_domain:
            attributes.append(f"Domain={config.cookie_domain}")
        if config.cookie_httponly:
            attributes.append("HttpOnly")
        attributes.append(f"SameSite={config.cookie_samesite}")
        if config.cookie_secure:
            attributes.append("Secure")
        self._cookie_template = f"{config.cookie_name}={{}}; {'; '.join(attributes)}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in self._safe:  # type: ignore[typeddict-item]
            await super().__call__(scope, receive, send)
            return
        if should_bypass_middleware(
            scope=scope,
            scopes=self.scopes,
            exclude_opt_key=self.config.exclude_from_csrf_key,
            exclude_path_pattern=self.exclude,
        ):
            await self.app(scope, receive, send)
            return
        state = ScopeState.from_scope(scope)
        cookie = cookie_value(scope["headers"], self._name)
        if cookie is not None and self._decode_csrf_token(cookie) is not None:
            state.csrf_token = cookie
            await self.app(scope, receive, send)
            return
        token = state.csrf_token = generate_csrf_token(secret=self.config.secret)
        header = (b"set-cookie", self._cookie_template.format(token).encode("latin-1"))

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def cookie_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The value of cookie `name` in the request's Cookie headers (the last one wins, as in
    Litestar's parser); None when it is not there or is not plain text."""
    found = None
    for key, value in headers:
        if key == b"cookie" and name in value:
            for part in value.split(b";"):
                k, sep, v = part.partition(b"=")
                if sep and k.strip() == name:
                    found = v.strip()
    if found is None:
        return None
    try:
        return found.decode("ascii")
    except UnicodeDecodeError:
        return None
