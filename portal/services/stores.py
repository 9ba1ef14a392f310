"""Stores, created and updated by the shop (PUT is idempotent)."""

from __future__ import annotations

from typing import Any

from portal import db
from portal.db.tables import Store
from portal.domain import DomainError
from portal.domain.phone import InvalidPhone, normalise
from portal.domain.store import check_opening_hours, check_timezone
from portal.runtime import Runtime
from portal.services.errors import Invalid
from portal.services.inputs import StoreIn


async def put_store(rt: Runtime, code: str, data: StoreIn) -> tuple[dict[str, Any], bool]:
    """Create or replace the store `code`. Returns (store, created)."""
    try:
        timezone = check_timezone(data.timezone)
    except DomainError as exc:
        raise Invalid(str(exc), field="timezone") from exc
    try:
        hours = check_opening_hours(data.opening_hours or {})
    except DomainError as exc:
        raise Invalid(str(exc), field="opening_hours") from exc
    phone = None
    if data.phone:
        try:
            phone = normalise(data.phone, rt.settings.default_region)
        except InvalidPhone as exc:
            raise Invalid(str(exc), field="phone") from exc
    address = {k: getattr(data.address, k) for k in data.address.__struct_fields__}
    address["country"] = address["country"].upper()
    values = {
        "name": data.name,
        "address": address,
        "timezone": timezone,
        "phone": phone,
        "opening_hours": hours,
        "pickup_hold_days": data.pickup_hold_days,
        "pickup_reminder_days": data.pickup_reminder_days,
    }
    now = rt.clock.now()
    for _ in range(2):
        try:
            async with rt.writing():
                existing = await Store.select(Store.id).where(Store.code == code).first()
                if existing:
                    await Store.update(
                        {getattr(Store, k): v for k, v in values.items()} | {Store.updated_at: now}
                    ).where(Store.id == existing["id"])
                    return {"code": code, **values}, False
                await Store.insert(
                    Store(
                        {Store.code: code, Store.created_at: now, Store.updated_at: now}
                        | {getattr(Store, k): v for k, v in values.items()}
                    )
                )
                return {"code": code, **values}, True
        except Exception as exc:
            if not db.is_unique_violation(exc):
                raise  # a twin PUT created it first: the second round updates it
    raise Invalid("the store is being written by another request; try again", field="code")
