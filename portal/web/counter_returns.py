"""The store counter's returns: find one by its code (typed, or the shopper's QR scanned),
check each line (accepted or not, and why), and receive it.

Thin: each route calls one `services.returns` function. A clerk sees only their store's
returns (another store's is a 404 on every route, like an unknown code); a manager sees
every store's. A plain POST answers `303` to the return's page, an htmx one the page's
`return` block; a refused one shows the page again with the message, the typed values and
the service's status (422 for bad input, 409 for a return that cannot be received).
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery
from litestar.response import Redirect
from litestar.status_codes import HTTP_303_SEE_OTHER

from portal.domain.returns import normalise_code
from portal.services import returns
from portal.services.errors import Conflict, Invalid, NotFound
from portal.web.bodies import read_form, refuse
from portal.web.clerk_auth import CurrentStaff, Staff
from portal.web.deps import RT, RowId
from portal.web.render import render

NO_STORE = {"Cache-Control": "no-store"}
FIND_PAGE = "clerk/returns.html"
RETURN_PAGE = "clerk/return.html"
ACCEPTED = "accepted-"
REASON = "reason-"
REASON_MAX = 300
CODE_MAX = 32
NOT_HERE = "No return with this code at this store"
# `?done=` after a 303: a fixed set of notices, so a link cannot put words on the page.
DONE = ("received",)
# The domain names a return line by its id ("line 12: say why ..."); the clerk reads its name.
_LINE_MESSAGE = re.compile(r"^line (\d+): (.+)$")


def return_path(return_id: int) -> str:
    return f"/clerk/returns/{return_id}"


def _store_of(staff: CurrentStaff) -> int | None:
    """The store whose returns this person handles; None: every store (a manager)."""
    if staff.is_manager:
        return None
    if staff.store_id is None:  # a clerk without a store sees no store's returns
        raise NotFound(NOT_HERE, field="code")
    return staff.store_id


def _verdicts(form: Any, ret: returns.CounterReturn) -> list[returns.VerdictIn]:
    """One verdict per line of the return from `accepted-<id>` and `reason-<id>`; the reason
    only counts for what is not accepted."""
    verdicts = []
    for line in ret.lines:
        raw = str(form.get(f"{ACCEPTED}{line['id']}") or "").strip()
        if not raw.isdigit() or len(raw) > 5:
            raise Invalid(
                f"{line['name']}: choose how many were accepted", field=f"{ACCEPTED}{line['id']}"
            )
        accepted = int(raw)
        reason = str(form.get(f"{REASON}{line['id']}") or "").strip()[:REASON_MAX]
        verdicts.append(
            returns.VerdictIn(line["id"], accepted, reason if accepted < line["quantity"] else None)
        )
    return verdicts


def _typed(form: Any) -> dict[str, str]:
    return {
        key: str(value)[:REASON_MAX]
        for key, value in form.multi_items()
        if key.startswith((ACCEPTED, REASON))
    }


def _in_words(exc: Invalid, ret: returns.CounterReturn) -> tuple[str, str | None]:
    """The message with the line's name for its id, and the field to mark."""
    found = _LINE_MESSAGE.match(exc.detail)
    if found:
        names = {line["id"]: line["name"] for line in ret.lines}
        line_id = int(found.group(1))
        if line_id in names:
            return f"{names[line_id]}: {found.group(2)}", f"{REASON}{line_id}"
    field = exc.field if exc.field and exc.field.startswith((ACCEPTED, REASON)) else None
    return exc.detail, field


class CounterReturnsController(Controller):
    path = "/clerk/returns"
    include_in_schema = False

    def _find_page(
        self,
        request: Request[Any, Any, Any],
        staff: CurrentStaff,
        *,
        code: FromQuery[str] = "",
        error: str | None = None,
        status_code: int = 200,
    ) -> Response[Any]:
        return render(
            request,
            FIND_PAGE,
            {"staff": staff, "code": code, "error": error},
            status_code=status_code,
            headers=NO_STORE,
        )

    async def _return_page(
        self,
        request: Request[Any, Any, Any],
        rt: RT,
        staff: CurrentStaff,
        return_id: int,
        *,
        error: str | None = None,
        error_field: str | None = None,
        notice: str | None = None,
        typed: dict[str, str] | None = None,
        status_code: int = 200,
        block: str | None = None,
    ) -> Response[Any]:
        try:
            ret = await returns.counter_return(rt, _store_of(staff), return_id)
        except NotFound:
            return self._find_page(request, staff, error=NOT_HERE, status_code=404)
        return render(
            request,
            RETURN_PAGE,
            {
                "staff": staff,
                "ret": ret,
                "error": error,
                "error_field": error_field,
                "notice": notice,
                "typed": typed or {},
            },
            block=block,
            status_code=status_code,
            headers={**NO_STORE, "Referrer-Policy": "no-referrer"},
        )

    async def _find(
        self, request: Request[Any, Any, Any], rt: RT, staff: CurrentStaff, code: str
    ) -> Response[Any]:
        typed = code.strip()[:CODE_MAX]
        if not typed:
            return self._find_page(
                request,
                staff,
                error="Type the return code the shopper shows, or scan its QR code",
                status_code=422,
            )
        try:
            return_id = await returns.find_by_code(rt, _store_of(staff), typed)
        except NotFound:
            return self._find_page(request, staff, code=typed, error=NOT_HERE, status_code=404)
        return Redirect(return_path(return_id), status_code=HTTP_303_SEE_OTHER, headers=NO_STORE)

    @get("/", name="clerk_returns")
    async def find_form(
        self,
        request: Request[Any, Any, Any],
        rt: RT,
        staff: Staff,
        code: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """The code form; with `?code=` (a scanner typing into the address bar) it finds."""
        if code is None:
            return self._find_page(request, staff)
        return await self._find(request, rt, staff, code)

    @post("/", name="clerk_returns_find")
    async def find(self, request: Request[Any, Any, Any], rt: RT, staff: Staff) -> Response[Any]:
        form, refused = await read_form(request)
        if refused is not None:
            code = str(form.get("code") or "")[:CODE_MAX]
            return self._find_page(
                request, staff, code=code, error=refused.as_detail(), status_code=422
            )
        return await self._find(request, rt, staff, str(form.get("code") or ""))

    @get("/{return_id:int}", name="clerk_return")
    async def show(
        self,
        request: Request[Any, Any, Any],
        rt: RT,
        staff: Staff,
        return_id: RowId,
        code: FromQuery[str | None] = None,
        done: FromQuery[str | None] = None,
    ) -> Response[Any]:
        # Opened by the find form, or by scanning the QR on the shopper's page, which
        # carries the code: one that is not this return's finds nothing.
        if code is not None:
            typed = code.strip()[:CODE_MAX]
            try:
                ret = await returns.counter_return(rt, _store_of(staff), return_id)
            except NotFound:
                ret = None
            if ret is None or normalise_code(typed) != ret.code:
                return self._find_page(request, staff, code=typed, error=NOT_HERE, status_code=404)
        return await self._return_page(
            request, rt, staff, return_id, notice=done if done in DONE else None
        )

    @post("/{return_id:int}/receive", name="clerk_return_receive")
    async def receive(
        self, request: Request[Any, Any, Any], rt: RT, staff: Staff, return_id: RowId
    ) -> Response[Any]:
        form, refused = await read_form(request)
        # htmx swaps the `return` block (409/422 included, see base.html's responseHandling).
        block = "return" if request.headers.get("hx-request") else None
        store_id = _store_of(staff)
        try:
            ret = await returns.counter_return(rt, store_id, return_id)
        except NotFound:
            return self._find_page(request, staff, error=NOT_HERE, status_code=404)
        try:
            refuse(refused)
            # A return that cannot be received says so whatever the form holds.
            verdicts = _verdicts(form, ret) if ret.receivable else []
            await returns.receive_at_counter(rt, staff.id, store_id, return_id, verdicts)
        except Invalid as exc:
            message, field = _in_words(exc, ret)
            return await self._return_page(
                request,
                rt,
                staff,
                return_id,
                error=message,
                error_field=field,
                typed=_typed(form),
                status_code=exc.status_code,
                block=block,
            )
        except Conflict as exc:
            return await self._return_page(
                request,
                rt,
                staff,
                return_id,
                error=exc.detail,
                typed=_typed(form),
                status_code=exc.status_code,
                block=block,
            )
        except NotFound:
            return self._find_page(request, staff, error=NOT_HERE, status_code=404)
        if block:
            return await self._return_page(
                request, rt, staff, return_id, notice="received", block=block
            )
        return Redirect(
            f"{return_path(return_id)}?done=received",
            status_code=HTTP_303_SEE_OTHER,
            headers=NO_STORE,
        )
