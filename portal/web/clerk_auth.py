"""Clerk sessions: who is signed in, and how a clerk route asks for it.

A handler that declares `staff: Staff` only runs for a signed-in, active person; everyone
else is sent to the sign-in page (`303`, or `HX-Redirect` for htmx) and comes back to
where they were afterwards. Sessions are Litestar's encrypted client-side cookie holding
only the staff id and a session version, so any web worker can read them with no shared
state; each request checks the account still exists, is active and has the same password.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote, urlsplit

from litestar import MediaType, Request, Response
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.status_codes import HTTP_303_SEE_OTHER

from portal.domain.staff import CurrentStaff, visible_store_ids
from portal.runtime import Runtime
from portal.services import staff as staff_service
from portal.services.staff import SignedIn, ensure_manager, ensure_visible
from portal.settings import Settings

__all__ = [
    "CurrentStaff",
    "SignInRequired",
    "Staff",
    "current_staff",
    "ensure_manager",
    "ensure_visible",
    "safe_next",
    "visible_store_ids",
]

HOME = "/clerk/"
LOGIN = "/clerk/login"
SESSION_COOKIE = "portal_session"
SESSION_MAX_AGE = 12 * 60 * 60


def session_config(settings: Settings) -> CookieBackendConfig:
    return CookieBackendConfig(
        # AES-GCM wants 16, 24 or 32 bytes: derive 32 from the one secret the operator sets.
        secret=hashlib.sha256(b"portal-session:" + settings.secret_key.encode()).digest(),
        key=SESSION_COOKIE,
        path="/clerk",
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=settings.production,
        # Only the console has sessions: the shopper's pages and the API never touch them.
        # (The trailing `.` spares "/" itself, which keeps Litestar's match-all check quiet.)
        exclude=["^/(?!clerk(/|$))."],
    )


class SignInRequired(HTTPException):
    status_code = 401
    detail = "Please sign in"

    def __init__(self, next_path: str) -> None:
        super().__init__(detail=self.detail)
        self.next_path = next_path


def safe_next(value: str | None) -> str | None:
    """`value` if it is a path on this site, else None: never `//host`, a scheme, a
    backslash (browsers read `/\\host` as `//host`) or a control character."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def login_url(next_path: str | None) -> str:
    target = safe_next(next_path)
    if not target or target in (HOME, "/clerk"):
        return LOGIN
    return f"{LOGIN}?next={quote(target, safe='/')}"


def _session(request: Request[Any, Any, Any]) -> dict[str, Any]:
    # The session middleware skips paths outside /clerk; there is no session there.
    session = request.scope.get("session")
    return session if isinstance(session, dict) else {}


def _here(request: Request[Any, Any, Any]) -> str:
    """The page to come back to: for htmx, the page the fragment lives on."""
    if request.headers.get("hx-request"):
        current = urlsplit(request.headers.get("hx-current-url", ""))
        base = urlsplit(request.app.state.rt.settings.base_url)
        if current.path and (not current.netloc or current.netloc == base.netloc):
            return current.path + (f"?{current.query}" if current.query else "")
    path = request.url.path
    return path + (f"?{request.url.query}" if request.url.query else "")


async def current_staff(
    request: Request[Any, Any, Any], rt: NamedDependency[Runtime]
) -> CurrentStaff:
    """The `staff` dependency: the signed-in person, or SignInRequired."""
    session = _session(request)
    staff_id, version = session.get("staff_id"), session.get("v")
    staff = None
    if isinstance(staff_id, int) and isinstance(version, str):
        staff = await staff_service.session_staff(rt, staff_id, version)
    if staff is None:
        if session:
            request.clear_session()  # deactivated, deleted or password changed
        raise SignInRequired(_here(request))
    return staff


Staff = NamedDependency[CurrentStaff]


def start_session(request: Request[Any, Any, Any], signed_in: SignedIn) -> None:
    request.set_session({"staff_id": signed_in.staff.id, "v": signed_in.version})


def end_session(request: Request[Any, Any, Any]) -> None:
    request.clear_session()


def handle_sign_in_required(request: Request[Any, Any, Any], exc: SignInRequired) -> Response[Any]:
    target = login_url(exc.next_path)
    headers = {"Cache-Control": "no-store"}
    if request.headers.get("hx-request"):
        # 200, as Litestar's ClientRedirect answers: htmx then loads the sign-in page.
        return Response(
            "",
            status_code=200,
            media_type=MediaType.HTML,
            headers={**headers, "HX-Redirect": target},
        )
    return Response(
        "",
        status_code=HTTP_303_SEE_OTHER,
        media_type=MediaType.HTML,
        headers={**headers, "Location": target},
    )
