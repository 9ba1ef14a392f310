"""Stores, created and updated by the shop (PUT is idempotent)."""

from __future__ import annotations

import json
import time
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
    rt.cache.pop(STORE_CHOICES, None)
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


STORE_CHOICES = "store_choices"
# How long a worker reuses the list of stores it shows shoppers (other workers see a new or
# renamed store after at most this; the worker that wrote it, at once).
STORE_CHOICES_SECONDS = 60.0


async def store_choices(rt: Runtime) -> list[dict[str, str]]:
    """Every store as the shopper picks one (code, name, city), by name; cached briefly,
    since pages that offer a store are common and stores change rarely."""
    cached = rt.cache.get(STORE_CHOICES)
    if cached is not None and time.monotonic() - cached[0] < STORE_CHOICES_SECONDS:
        return list(cached[1])
    rows = await Store.select(Store.code, Store.name, Store.address).order_by(Store.name)
    choices = []
    for r in rows:
        address = json.loads(r["address"]) if isinstance(r["address"], str) else r["address"]
        city = str((address or {}).get("city") or "")
        choices.append({"code": r["code"], "name": r["name"], "city": city})
    rt.cache[STORE_CHOICES] = (time.monotonic(), choices)
    return list(choices)
