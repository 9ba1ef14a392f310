"""Staff accounts: create clerks and managers, sign in and out, the audit log.

Password hashing (scrypt, about 50 ms) runs in a worker thread and outside any write
transaction, so a sign-in never holds SQLite's write lock while it hashes.

Sessions carry a version made of the password hash and the account's `session_version`
counter; signing out, a new password and disabling the account raise the counter, which
ends every session of that person on every worker (each request compares the two).
Sign-in attempts are counted per username in the database before the password is checked
(`sign_in_throttle`): past a few failures, every attempt for that username waits a little
longer (domain.staff.sign_in_delay), from any client, but is still checked.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal import db
from portal.db.tables import AuditLog, SignInThrottle, StaffUser, Store
from portal.domain import DomainError
from portal.domain.staff import (
    DUMMY_HASH,
    SIGN_IN_WINDOW_SECONDS,
    CurrentStaff,
    Role,
    can_see_store,
    check_password,
    hash_password,
    normalise_username,
    parse_role,
    session_version,
    sign_in_delay,
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
    PASSWORD_SET = "password_set"  # noqa: S105 - an audit action, not a password
    DISABLED = "disabled"
    ENABLED = "enabled"
    SIGN_IN_UNLOCKED = "sign_in_unlocked"


# Throttle rows idle this long are deleted: the limiter's counts made under them (which
# expire a window after their first failure) are gone by then.
THROTTLE_KEEP_SECONDS = 4 * SIGN_IN_WINDOW_SECONDS


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


def _account_name(username: str) -> str:
    try:
        return normalise_username(username)
    except DomainError as exc:
        raise NotFound(f"there is no account {username.strip()[:64]!r}", field="username") from exc


async def set_active(rt: Runtime, username: str, active: bool, *, by: str = "console") -> bool:
    """Disable (or enable again) an account, audited. Disabling ends all its sessions at
    their next request; `by` says where it was done (the audit keeps it)."""
    name = username.strip().lower()
    changes: dict[Any, Any] = {StaffUser.active: active}
    if not active:
        changes[StaffUser.session_version] = StaffUser.session_version + 1
    async with rt.writing():
        rows = (
            await StaffUser.update(changes)
            .where(StaffUser.username == name)
            .returning(StaffUser.id, StaffUser.store)
        )
        if rows:
            await record_audit(
                rt,
                staff_id=rows[0]["id"],
                action=Action.ENABLED if active else Action.DISABLED,
                store_id=rows[0]["store"],
                details={"by": by},
            )
    return bool(rows)


async def set_password(rt: Runtime, username: str, password: str, *, by: str) -> None:
    """A new password: ends every session of the account and lifts its sign-in limits
    (every client's count, and the delay), audited. NotFound for an unknown username."""
    name = _account_name(username)
    try:
        check_password(password)
    except DomainError as exc:
        raise Invalid(str(exc), field="password") from exc
    password_hash = await asyncio.to_thread(hash_password, password)
    async with rt.writing():
        rows = (
            await StaffUser.update(
                {
                    StaffUser.password_hash: password_hash,
                    StaffUser.session_version: StaffUser.session_version + 1,
                }
            )
            .where(StaffUser.username == name)
            .returning(StaffUser.id, StaffUser.store)
        )
        if not rows:
            raise NotFound(f"there is no account {name!r}", field="username")
        await _lift_limits(name)
        await record_audit(
            rt,
            staff_id=rows[0]["id"],
            action=Action.PASSWORD_SET,
            store_id=rows[0]["store"],
            details={"by": by},
        )


async def unlock_sign_in(rt: Runtime, manager: CurrentStaff, username: str) -> None:
    """A manager lifts an account's sign-in limits (every client's count, and the delay)."""
    ensure_manager(manager)
    name = _account_name(username)
    async with rt.writing():
        row = (
            await StaffUser.select(StaffUser.id, StaffUser.store)
            .where(StaffUser.username == name)
            .first()
        )
        if row is None:
            raise NotFound(f"there is no account {name!r}", field="username")
        await _lift_limits(name)
        await record_audit(
            rt,
            staff_id=manager.id,
            action=Action.SIGN_IN_UNLOCKED,
            store_id=row["store"],
            details={"username": name},
        )


async def _lift_limits(name: str) -> None:
    await SignInThrottle.update(
        {SignInThrottle.failures: 0, SignInThrottle.epoch: SignInThrottle.epoch + 1}
    ).where(SignInThrottle.username == name)


def throttle_key(username: str) -> str:
    """The username as sign-in limits count it, whether or not it is a valid one."""
    return username.strip().lower()[:64]


async def sign_in_epoch(rt: Runtime, username: str) -> int:
    """The username's current limiter epoch (raised by each unlock; 0 when never counted)."""
    row = (
        await SignInThrottle.select(SignInThrottle.epoch)
        .where(SignInThrottle.username == throttle_key(username))
        .first()
    )
    return int(row["epoch"]) if row else 0


_COUNT_ATTEMPT = """
INSERT INTO sign_in_throttle (username, failures, window_start, last_at, epoch)
VALUES ({}, 1, {}, {}, 0)
ON CONFLICT (username) DO UPDATE SET
  failures = CASE WHEN sign_in_throttle.window_start <= {} THEN 1
                  ELSE sign_in_throttle.failures + 1 END,
  window_start = CASE WHEN sign_in_throttle.window_start <= {} THEN {}
                      ELSE sign_in_throttle.window_start END,
  last_at = {}
RETURNING failures
"""


async def _count_attempt(rt: Runtime, username: str) -> int:
    """Count one attempt for `username` as a failure, before its password is checked (a
    success takes it back), in one statement: racing attempts each get their own number.
    Returns the failures in the window before this one."""
    now = int(rt.clock.now().timestamp())
    expired = now - SIGN_IN_WINDOW_SECONDS
    async with rt.writing():
        rows = await SignInThrottle.raw(
            _COUNT_ATTEMPT, throttle_key(username), now, now, expired, expired, now, now
        )
        await SignInThrottle.delete().where(SignInThrottle.last_at < now - THROTTLE_KEEP_SECONDS)
    return int(rows[0]["failures"]) - 1


_STAFF_COLUMNS = (
    StaffUser.id,
    StaffUser.username,
    StaffUser.password_hash,
    StaffUser.role,
    StaffUser.active,
    StaffUser.session_version,
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
    The attempt is counted for the username first, and waits as long as the username's
    recent failures ask (sign_in_delay) before the password is checked. Both outcomes are
    audited; a failure keeps the typed username, never the password."""
    prior_failures = await _count_attempt(rt, username)
    delay = sign_in_delay(prior_failures)
    if delay:
        await asyncio.sleep(delay)
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
            await SignInThrottle.update({SignInThrottle.failures: 0}).where(
                SignInThrottle.username == throttle_key(username)
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
    return SignedIn(_current(row), _version(row))


def _version(row: dict[str, Any]) -> str:
    return session_version(row["password_hash"], row["session_version"])


async def session_staff(rt: Runtime, staff_id: int, version: str) -> CurrentStaff | None:
    """The person behind a session, or None when the account is gone, inactive, or its
    sessions were ended (signed out, new password, disabled) since this one began."""
    row = await StaffUser.select(*_STAFF_COLUMNS).where(StaffUser.id == staff_id).first()
    if row is None or not row["active"] or _version(row) != version:
        return None
    return _current(row)


async def sign_out(rt: Runtime, staff: CurrentStaff) -> None:
    """Ends every session of this person, on every device and worker, not only this one:
    a copied cookie stops working too."""
    async with rt.writing():
        await StaffUser.update({StaffUser.session_version: StaffUser.session_version + 1}).where(
            StaffUser.id == staff.id
        )
        await record_audit(rt, staff_id=staff.id, action=Action.LOGOUT, store_id=staff.store_id)


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    role: Role
    store_code: str | None
    active: bool
    last_login_at: datetime | None
    recent_failures: int  # failed sign-ins in the current window


async def accounts(rt: Runtime, manager: CurrentStaff) -> list[Account]:
    """Managers: every account, with its failed sign-ins of the last 15 minutes."""
    ensure_manager(manager)
    rows = await StaffUser.select(
        StaffUser.username,
        StaffUser.role,
        StaffUser.active,
        StaffUser.last_login_at,
        StaffUser.store.code.as_alias("store_code"),
    ).order_by(StaffUser.username)
    since = int(rt.clock.now().timestamp()) - SIGN_IN_WINDOW_SECONDS
    names = [row["username"] for row in rows]
    failures = (
        {
            t["username"]: t["failures"]
            for t in await SignInThrottle.select(
                SignInThrottle.username, SignInThrottle.failures
            ).where(
                SignInThrottle.username.is_in(names),
                SignInThrottle.window_start > since,
            )
        }
        if names
        else {}
    )
    return [
        Account(
            username=row["username"],
            role=Role(row["role"]),
            store_code=row["store_code"],
            active=row["active"],
            last_login_at=row["last_login_at"],
            recent_failures=failures.get(row["username"], 0),
        )
        for row in rows
    ]


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
