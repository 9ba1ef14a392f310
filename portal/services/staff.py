"""Staff accounts: create clerks and managers, sign in and out, the audit log.

Password hashing (scrypt, about 50 ms) runs in a worker thread and outside any write
transaction, so a sign-in never holds SQLite's write lock while it hashes.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal import db
from portal.db.tables import AuditLog, StaffUser, Store
from portal.domain import DomainError
from portal.domain.staff import (
    DUMMY_HASH,
    CurrentStaff,
    Role,
    can_see_store,
    check_password,
    hash_password,
    normalise_username,
    parse_role,
    session_version,
    verify_password,
)
from portal.runtime import Runtime
from portal.services.errors import Conflict, Invalid, NotFound

AUDIT_PAGE_SIZE = 50


class Action:
    """Audit actions written by this module; later features add their own."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"


@dataclass(frozen=True, slots=True)
class CreatedStaff:
    id: int
    username: str
    role: Role
    store_code: str | None


@dataclass(frozen=True, slots=True)
class SignedIn:
    staff: CurrentStaff
    version: str


async def record_audit(
    rt: Runtime,
    *,
    staff_id: int | None,
    action: str,
    order_id: int | None = None,
    store_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit entry. Call it inside the caller's own `rt.writing()` transaction,
    so the entry and the change it records are written together or not at all."""
    await AuditLog.insert(
        AuditLog(
            staff=staff_id,
            action=action[:40],
            order=order_id,
            store=store_id,
            at=rt.clock.now(),
            details=details or {},
        )
    )


async def create_staff(
    rt: Runtime,
    username: str,
    password: str,
    *,
    role: str = Role.CLERK,
    store_code: str | None = None,
) -> CreatedStaff:
    """A new clerk (of one store) or manager (all stores). Nothing is written on refusal."""
    try:
        name = normalise_username(username)
    except DomainError as exc:
        raise Invalid(str(exc), field="username") from exc
    try:
        check_password(password)
    except DomainError as exc:
        raise Invalid(str(exc), field="password") from exc
    try:
        staff_role = parse_role(role)
    except DomainError as exc:
        raise Invalid(str(exc), field="role") from exc
    if staff_role is Role.CLERK and not store_code:
        raise Invalid("a clerk belongs to one store: give its code", field="store")
    if staff_role is Role.MANAGER and store_code:
        raise Invalid("a manager sees every store: leave the store out", field="store")
    password_hash = await asyncio.to_thread(hash_password, password)
    try:
        async with rt.writing():
            store_id = None
            if store_code:
                store = await Store.select(Store.id).where(Store.code == store_code).first()
                if store is None:
                    raise NotFound(f"there is no store with the code {store_code!r}", field="store")
                store_id = store["id"]
            if await StaffUser.exists().where(StaffUser.username == name):
                raise Conflict(f"the username {name!r} is taken", field="username")
            rows = await StaffUser.insert(
                StaffUser(
                    username=name,
                    password_hash=password_hash,
                    role=staff_role.value,
                    store=store_id,
                    active=True,
                    created_at=rt.clock.now(),
                )
            ).returning(StaffUser.id)
    except Exception as exc:
        if db.is_unique_violation(exc):  # created by a twin command a moment ago
            raise Conflict(f"the username {name!r} is taken", field="username") from exc
        raise
    return CreatedStaff(rows[0]["id"], name, staff_role, store_code)


async def set_active(rt: Runtime, username: str, active: bool) -> bool:
    """Deactivate (or reactivate) an account; its sessions stop at their next request."""
    async with rt.writing():
        rows = (
            await StaffUser.update({StaffUser.active: active})
            .where(StaffUser.username == username.strip().lower())
            .returning(StaffUser.id)
        )
    return bool(rows)


_STAFF_COLUMNS = (
    StaffUser.id,
    StaffUser.username,
    StaffUser.password_hash,
    StaffUser.role,
    StaffUser.active,
    StaffUser.store.id.as_alias("store_id"),
    StaffUser.store.code.as_alias("store_code"),
    StaffUser.store.name.as_alias("store_name"),
    StaffUser.store.timezone.as_alias("store_timezone"),
)


def _current(row: dict[str, Any]) -> CurrentStaff:
    return CurrentStaff(
        id=row["id"],
        username=row["username"],
        role=Role(row["role"]),
        store_id=row["store_id"],
        store_code=row["store_code"],
        store_name=row["store_name"],
        store_timezone=row["store_timezone"],
    )


async def sign_in(rt: Runtime, username: str, password: str) -> SignedIn | None:
    """The person if the credentials are right and the account active, else None.
    Both outcomes are audited; a failure keeps the typed username, never the password."""
    try:
        name = normalise_username(username)
    except DomainError:
        name = None
    row = (
        await StaffUser.select(*_STAFF_COLUMNS).where(StaffUser.username == name).first()
        if name
        else None
    )
    stored = row["password_hash"] if row else DUMMY_HASH
    matches = await asyncio.to_thread(verify_password, password, stored)
    ok = row is not None and matches and row["active"]
    async with rt.writing():
        if row is not None and ok:
            await StaffUser.update({StaffUser.last_login_at: rt.clock.now()}).where(
                StaffUser.id == row["id"]
            )
            await record_audit(
                rt, staff_id=row["id"], action=Action.LOGIN, store_id=row["store_id"]
            )
        else:
            details: dict[str, Any] = {"username": username.strip()[:64]}
            if row is not None and matches:
                details["reason"] = "inactive"
            await record_audit(
                rt,
                staff_id=row["id"] if row else None,
                action=Action.LOGIN_FAILED,
                store_id=row["store_id"] if row else None,
                details=details,
            )
    if row is None or not ok:
        return None
    return SignedIn(_current(row), session_version(row["password_hash"]))


async def session_staff(rt: Runtime, staff_id: int, version: str) -> CurrentStaff | None:
    """The person behind a session, or None when the account is gone, inactive, or its
    password changed since the session began."""
    row = await StaffUser.select(*_STAFF_COLUMNS).where(StaffUser.id == staff_id).first()
    if row is None or not row["active"] or session_version(row["password_hash"]) != version:
        return None
    return _current(row)


async def sign_out(rt: Runtime, staff: CurrentStaff) -> None:
    async with rt.writing():
        await record_audit(rt, staff_id=staff.id, action=Action.LOGOUT, store_id=staff.store_id)


def ensure_visible(staff: CurrentStaff, store_id: int | None) -> None:
    """Refuse another store's object with the same 404 as a missing one: a clerk learns
    nothing about other stores, not even that the object exists."""
    if not can_see_store(staff, store_id):
        raise NotFound("not found")


def ensure_manager(staff: CurrentStaff) -> None:
    if not staff.is_manager:
        raise NotFound("not found")


@dataclass(frozen=True, slots=True)
class StoreRef:
    id: int
    code: str
    name: str
    timezone: str


async def visible_store(rt: Runtime, staff: CurrentStaff, code: str) -> StoreRef:
    """The store `code` if this person may see it; otherwise the same 404 as an unknown code."""
    row = (
        await Store.select(Store.id, Store.code, Store.name, Store.timezone)
        .where(Store.code == code)
        .first()
    )
    if row is None:
        raise NotFound("not found")
    ensure_visible(staff, row["id"])
    return StoreRef(row["id"], row["code"], row["name"], row["timezone"])


async def visible_stores(rt: Runtime, staff: CurrentStaff) -> list[StoreRef]:
    query = Store.select(Store.id, Store.code, Store.name, Store.timezone).order_by(Store.code)
    if not staff.is_manager:
        query = query.where(Store.id == (staff.store_id or 0))
    return [StoreRef(r["id"], r["code"], r["name"], r["timezone"]) for r in await query]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    timezone: str
    who: str
    action: str
    order_external_id: str | None
    store_code: str | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditEntry]
    older_than: int | None  # `before` for the next page, None on the last one


async def audit_page(
    rt: Runtime, staff: CurrentStaff, *, before: int | None = None, limit: int = AUDIT_PAGE_SIZE
) -> AuditPage:
    """Newest first, `limit` entries older than `before` (an id): a keyset page, so the
    cost does not grow with the log."""
    ensure_manager(staff)
    query = (
        AuditLog.select(
            AuditLog.id,
            AuditLog.at,
            AuditLog.action,
            AuditLog.details,
            AuditLog.staff.username.as_alias("username"),
            AuditLog.order.external_id.as_alias("external_id"),
            AuditLog.store.code.as_alias("store_code"),
            AuditLog.store.timezone.as_alias("store_timezone"),
        )
        .order_by(AuditLog.id, ascending=False)
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(AuditLog.id < before)
    rows = await query
    entries = []
    for row in rows[:limit]:
        details = row["details"]
        details = json.loads(details) if isinstance(details, str) else (details or {})
        who = row["username"] or (f"({details['username']})" if details.get("username") else "")
        entries.append(
            AuditEntry(
                id=row["id"],
                at=row["at"],
                timezone=row["store_timezone"] or "UTC",
                who=who,
                action=row["action"],
                order_external_id=row["external_id"],
                store_code=row["store_code"],
                details=details,
            )
        )
    older = entries[-1].id if len(rows) > limit and entries else None
    return AuditPage(entries, older)
