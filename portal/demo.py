"""`python -m portal seed-demo`: a demo shop to click through. Safe to run again: it keeps
what exists, replaces the demo API key and prints the links."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from portal.db.tables import StaffUser
from portal.runtime import Runtime
from portal.services import api_keys, orders, pickup, staff, stores
from portal.services.inputs import (
    AddressIn,
    CustomerIn,
    DeliveryIn,
    EventIn,
    LineIn,
    OrderIn,
    PickupIn,
    ShipmentIn,
    ShopEventType,
    StoreIn,
)

HOURS = {d: ["09:30-13:00", "15:00-19:30"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}

DEMO_CLERK = ("demo.clerk", "demo-counter-2026")  # development only: printed on purpose

# (external id, customer, locale, fulfilment, events after "placed"; "ready" is the counter's)
DEMO_ORDERS = [
    ("DEMO-1001", "Giulia Bianchi", "+39 347 123 4567", "it", "delivery", ["packed", "shipped"]),
    ("DEMO-1002", "Marco Rossi", "+39 333 765 4321", "it", "delivery", []),
    (
        "DEMO-1003",
        "Anna Kowalska",
        "+48 601 234 567",
        "pl",
        "delivery",
        ["packed", "shipped", "out_for_delivery"],
    ),
    (
        "DEMO-1004",
        "Lucía García",
        "+34 612 345 678",
        "es",
        "delivery",
        ["packed", "shipped", "out_for_delivery", "delivered"],
    ),
    (
        "DEMO-1005",
        "Emma Clarke",
        "+39 320 111 2233",
        "en",
        "pickup",
        ["packed", "arrived_in_store"],
    ),
    (
        "DEMO-1006",
        "Paolo Verdi",
        "+39 345 999 0000",
        "it",
        "delivery",
        ["backordered", "cancelled"],
    ),
    ("DEMO-1007", "Sofia Romano", "+39 339 555 1212", "it", "pickup", ["packed", "ready"]),
]


async def seed_demo(rt: Runtime) -> None:
    await stores.put_store(
        rt,
        "MI01",
        StoreIn(
            name="Milano Centro",
            address=AddressIn(line1="Via Torino 21", city="Milano", postcode="20123", country="IT"),
            timezone="Europe/Rome",
            phone="+39 02 1234 5678",
            opening_hours=HOURS,
        ),
    )
    clerk_id = await _demo_clerk(rt)
    now = rt.clock.now()
    links = {}
    for n, (external_id, name, phone, locale, method, events) in enumerate(DEMO_ORDERS):
        fulfilment: DeliveryIn | PickupIn = (
            PickupIn(store="MI01")
            if method == "pickup"
            else DeliveryIn(
                address=AddressIn(line1="Via Roma 1", city="Milano", postcode="20121", country="IT")
            )
        )
        receipt, created = await orders.create_order(
            rt,
            OrderIn(
                external_id=external_id,
                customer=CustomerIn(name=name, phone=phone, locale=locale),
                fulfilment=fulfilment,
                lines=[
                    LineIn(
                        sku="TSHIRT-M",
                        name="Organic cotton T-shirt, M",
                        quantity=2,
                        unit_price="19.90",
                    ),
                    LineIn(sku="MUG-01", name="Ceramic mug", quantity=1, unit_price="12.50"),
                ],
                currency="EUR",
                placed_at=now - timedelta(days=3, hours=n),
            ),
        )
        if created:
            for event in events:
                if event == "ready":
                    await pickup.mark_ready(rt, pickup.Actor(clerk_id, None), receipt.id)
                    continue
                shipment = (
                    ShipmentIn(
                        tracking_number=f"BRT{8_000_000 + n}",
                        carrier="BRT",
                        # Two days out, so the demo page offers a new day and instructions.
                        eta=(now + timedelta(days=2)).isoformat(),
                    )
                    if event == "shipped"
                    else None
                )
                await orders.record_event(
                    rt, external_id, EventIn(type=cast(ShopEventType, event), shipment=shipment)
                )
        links[external_id] = (receipt.tracking_url, events[-1] if events else "placed")
    await api_keys.revoke_api_key(rt, "demo")
    key = await api_keys.create_api_key(rt, "demo")

    base = rt.settings.base_url
    print("\nDemo shop ready.\n")
    print("Tracking pages (one per order state):")
    for external_id, (url, state) in links.items():
        print(f"  {external_id} ({state}): {url}")
    if not rt.settings.messagebird_access_key and not rt.settings.production:
        print(f"\nDev SMS inbox: {base}/dev/sms")
    if not rt.settings.production:
        print(
            f"Clerk console: {base}/clerk/login  (user {DEMO_CLERK[0]}, password {DEMO_CLERK[1]})"
        )
    print(f"API schema:    {base}/schema")
    print(f"Demo API key:  {key}")
    print(
        "\nTry it:\n"
        f"  curl -s -X POST {base}/api/v1/orders/DEMO-1002/events \\\n"
        f"    -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
        '    -d \'{"type": "shipped", "shipment": {"tracking_number": "BRT123", "carrier": "BRT"}}\'\n'
    )


async def _demo_clerk(rt: Runtime) -> int:
    existing = (
        await StaffUser.select(StaffUser.id).where(StaffUser.username == DEMO_CLERK[0]).first()
    )
    if existing:
        return int(existing["id"])
    created = await staff.create_staff(rt, DEMO_CLERK[0], DEMO_CLERK[1], store_code="MI01")
    return created.id
