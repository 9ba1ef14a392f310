"""The store console: sign in and out, the pickup queue (the landing page), and for
managers the audit log and the survey and SMS report."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_400_BAD_REQUEST

from portal.services import inbound, pickup, surveys
from portal.services import staff as staff_service
from portal.web.bodies import read_form
from portal.web.clerk_auth import (
    HOME,
    LOGIN,
    SignInRequired,
    Staff,
    current_staff,
    end_session,
    safe_next,
    start_session,
)
from portal.web.counter import local_time
from portal.web.deps import RT
from portal.web.limits import LoginLimiter
from portal.web.render import render

NO_STORE = {"Cache-Control": "no-store"}
WRONG = "That username and password do not match an active account."
QUEUE_POLL_SECONDS = 15
TOO_MANY = (
    "Too many failed sign-ins from this device. Wait 15 minutes and try again, "
    "or ask your manager to unlock your account."
)


def _see_other(path: str) -> Redirect:
    return Redirect(path, status_code=HTTP_303_SEE_OTHER, headers=NO_STORE)


class ClerkController(Controller):
    path = "/clerk"
    include_in_schema = False

    def _form(
        self,
        request: Request[Any, Any, Any],
        *,
        username: str = "",
        next_path: str | None = None,
        error: str | None = None,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response[Any]:
        return render(
            request,
            "clerk/login.html",
            {"username": username, "next": next_path or "", "error": error},
            status_code=status_code,
            headers={**NO_STORE, **(headers or {})},
        )

    @get("/login", name="clerk_login")
    async def login_form(
        self, request: Request[Any, Any, Any], rt: RT, next: FromQuery[str | None] = None
    ) -> Response[Any]:
        try:
            await current_staff(request, rt)
        except SignInRequired:
            return self._form(request, next_path=safe_next(next))
        return _see_other(safe_next(next) or HOME)

    @post("/login", name="clerk_login_post")
    async def login(self, request: Request[Any, Any, Any], rt: RT) -> Response[Any]:
        form, refused = await read_form(request)
        username = str(form.get("username") or "").strip()[:200]
        password = str(form.get("password") or "")
        next_path = safe_next(str(form.get("next") or ""))
        if refused is not None:
            return self._form(
                request,
                username=username,
                next_path=next_path,
                error=refused.as_detail(),
                status_code=refused.status_code,
            )
        limiter: LoginLimiter = request.app.state.login_limiter
        # Taken before the password is checked: racing attempts cannot pass the limit.
        epoch = await staff_service.sign_in_epoch(rt, username)
        wait = await limiter.take(request, username, epoch)
        if wait:
            return self._form(
                request,
                username=username,
                next_path=next_path,
                error=TOO_MANY,
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        signed_in = await staff_service.sign_in(rt, username, password)
        if signed_in is None:
            return self._form(
                request,
                username=username,
                next_path=next_path,
                error=WRONG,
                status_code=HTTP_400_BAD_REQUEST,
            )
        await limiter.record_success(request, username, epoch)
        start_session(request, signed_in)
        return _see_other(next_path or HOME)

    @post("/logout", name="clerk_logout")
    async def logout(self, request: Request[Any, Any, Any], rt: RT) -> Response[Any]:
        try:
            staff = await current_staff(request, rt)
        except SignInRequired:
            staff = None
        if staff is not None:
            await staff_service.sign_out(rt, staff)
        end_session(request)
        return _see_other(LOGIN)

    @get("/", name="clerk_home")
    async def home(
        self,
        request: Request[Any, Any, Any],
        rt: RT,
        staff: Staff,
        store: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """The store's pickup queue. `?store=CODE` narrows it to one store (another store's
        code is a 404), `?q=` searches it; htmx's poll gets only the `queue` block."""
        viewing = await staff_service.visible_store(rt, staff, store) if store else None
        stores = await staff_service.visible_stores(rt, staff)
        actor = pickup.Actor.of(staff)
        if viewing is not None:
            actor = pickup.Actor(staff.id, viewing.id)
        search = (q or "").strip()[:100]
        sections = await pickup.store_queue(rt, actor, search or None)
        failed_sms = await inbound.failed_action_sms(rt, actor.store_id)
        params = {"store": viewing.code} if viewing else {}
        if search:
            params["q"] = search
        fragment = bool(request.headers.get("hx-request")) and not request.headers.get(
            "hx-history-restore-request"
        )
        return render(
            request,
            "clerk/home.html",
            {
                "staff": staff,
                "viewing": viewing,
                "stores": stores if staff.is_manager else [],
                "zones": {s.code: s.timezone for s in stores},
                "sections": sections,
                "failed_sms": failed_sms,
                "q": search,
                "now": rt.clock.now(),
                "poll_seconds": QUEUE_POLL_SECONDS,
                # The poll asks for the same view: the same store and the same search.
                "queue_url": HOME + (f"?{urlencode(params)}" if params else ""),
                "local_time": local_time,
            },
            block="queue" if fragment else None,
            headers=NO_STORE,
        )

    @get("/audit", name="clerk_audit")
    async def audit(
        self,
        request: Request[Any, Any, Any],
        rt: RT,
        staff: Staff,
        before: FromQuery[int | None] = None,
    ) -> Response[Any]:
        page = await staff_service.audit_page(rt, staff, before=before)
        return render(
            request,
            "clerk/audit.html",
            {"staff": staff, "page": page, "first_page": before is None},
            headers=NO_STORE,
        )

    @get("/staff", name="clerk_staff")
    async def staff_page(
        self, request: Request[Any, Any, Any], rt: RT, staff: Staff
    ) -> Response[Any]:
        """Managers: every account, its failed sign-ins, and a button that unlocks it."""
        accounts = await staff_service.accounts(rt, staff)
        return render(
            request,
            "clerk/staff.html",
            {
                "staff": staff,
                "accounts": accounts,
                "unlocked": request.query_params.get("unlocked"),
            },
            headers=NO_STORE,
        )

    @post("/staff/{username:str}/unlock", name="clerk_staff_unlock")
    async def unlock(
        self, request: Request[Any, Any, Any], rt: RT, staff: Staff, username: FromPath[str]
    ) -> Response[Any]:
        await staff_service.unlock_sign_in(rt, staff, username)
        return _see_other(f"/clerk/staff?{urlencode({'unlocked': username})}")

    @get("/surveys", name="clerk_surveys")
    async def survey_page(
        self, request: Request[Any, Any, Any], rt: RT, staff: Staff
    ) -> Response[Any]:
        """Managers: survey answers and averages per store, and texts sent per day."""
        report = await surveys.survey_report(rt, staff)
        return render(
            request, "clerk/surveys.html", {"staff": staff, "report": report}, headers=NO_STORE
        )
