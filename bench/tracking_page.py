"""Tracking page benchmark: the shopper's page and its 304 poll on PostgreSQL, under wrk.

1. Creates (or, with --reuse, keeps) a PostgreSQL database, migrates it with
   `python -m portal migrate` and seeds N orders with COPY: stores, customers, orders with
   2-3 lines, 1-6 timeline events, a shipment per shipped order, a track token per order
   (portal.domain.tokens, a fixed bench secret, a random salt) and the SMS history (mostly
   sent/delivered, a few queued). VACUUM ANALYZE afterwards.
2. Picks a sample of tokens at random across the whole id range (re-derived from the stored
   salts, so --reuse needs no state besides the database) and writes it to --workdir.
3. Loads, with the same wrk settings: a bare Litestar app rendering the same template
   (bench/bare_app.py) from one constant view ("bare baseline") and from the sample's own
   pages held in memory ("bare same pages"), then `python -m portal serve`: the page, and
   the live fragment with the right If-None-Match (304). All of them run at once, idle but
   for their turn; --repeat N rounds each load every case once, in turn, so that a ratio
   compares runs a minute apart (the median of the rounds' ratios is reported). Prints
   requests/s, p50, p99, the ratios and the targets, the CPU split during each run, and the
   gzip size of a first page load.
4. --explain prints EXPLAIN (ANALYZE, BUFFERS) of the exact SQL the page runs (captured from
   the app's own service functions) for tokens at the start, middle and end of the id range.

    .venv/bin/python bench/tracking_page.py --orders 100000
    .venv/bin/python bench/tracking_page.py --orders 1000000 --explain
    .venv/bin/python bench/tracking_page.py --orders 1000000 --reuse --explain --no-load

Only 127.0.0.1 is used. Subprocesses are stopped on exit, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import http.client
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from portal.domain import qr, tokens  # noqa: E402
from portal.domain.order import EventType, Fulfilment, sms_for  # noqa: E402
from portal.domain.phone import mask, timezone_of  # noqa: E402
from portal.domain.returns import CODE_ALPHABET  # noqa: E402
from portal.domain.sms_text import measure  # noqa: E402
from portal.settings import Settings  # noqa: E402

PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
BENCH_SECRET = "bench-secret-key-not-for-production-0123456789abcdef"  # noqa: S105
# Where the app's links point (the app is started with it; the bare app uses the default).
BASE_URL = Settings().base_url
HOST = "127.0.0.1"
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0
TARGET_FIRST_LOAD = 40 * 1024
CLEAN_OTHER = 0.2  # cores used by other work during a run above which it is retried

# ----------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pg_url(args: argparse.Namespace, db: str | None = None) -> str:
    return f"{args.pg}/{db or args.db}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- seed data

COUNTRIES = [  # (code, share %, locale, currency, price factor, phone prefix, phone digits)
    ("IT", 55, "it", "EUR", 1.0, "+3934", 8),
    ("PL", 15, "pl", "PLN", 4.3, "+4860", 7),
    ("ES", 15, "es", "EUR", 1.0, "+3461", 7),
    ("GB", 15, "en", "GBP", 0.86, "+4477", 8),
]
_COUNTRY_BUCKETS = [c for c in COUNTRIES for _ in range(c[1])]
FIRST = {
    "IT": ["Giulia", "Marco", "Francesca", "Luca", "Chiara", "Alessandro", "Sara", "Matteo"],
    "PL": ["Anna", "Piotr", "Katarzyna", "Tomasz", "Magdalena", "Paweł", "Agnieszka"],
    "ES": ["Lucía", "Javier", "María", "Carlos", "Carmen", "Pablo", "Elena", "Sergio"],
    "GB": ["Emma", "Oliver", "Amelia", "Harry", "Isla", "Jack", "Sophie", "George"],
}
LAST = {
    "IT": ["Rossi", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno"],
    "PL": ["Kowalska", "Nowak", "Wiśniewski", "Wójcik", "Kamińska", "Lewandowski"],
    "ES": ["García", "Fernández", "González", "Rodríguez", "López", "Martínez"],
    "GB": ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Davies"],
}
CITIES = {
    "IT": [
        ("Milano", "201"),
        ("Roma", "001"),
        ("Torino", "101"),
        ("Bologna", "401"),
        ("Napoli", "801"),
        ("Firenze", "501"),
    ],
    "PL": [("Warszawa", "00-"), ("Kraków", "30-"), ("Wrocław", "50-"), ("Gdańsk", "80-")],
    "ES": [("Madrid", "280"), ("Barcelona", "080"), ("Valencia", "460"), ("Sevilla", "410")],
    "GB": [("London", "SW1"), ("Manchester", "M1 "), ("Leeds", "LS1"), ("Bristol", "BS1")],
}
STREETS = {
    "IT": "Via Roma",
    "PL": "ul. Marszałkowska",
    "ES": "Calle Mayor",
    "GB": "High Street",
}
STORE_TZ = {
    "IT": "Europe/Rome",
    "PL": "Europe/Warsaw",
    "ES": "Europe/Madrid",
    "GB": "Europe/London",
}
CARRIERS = {
    "IT": ["BRT", "GLS", "Poste"],
    "PL": ["InPost", "DPD"],
    "ES": ["SEUR", "Correos"],
    "GB": ["Royal Mail", "DPD", "Evri"],
}
PRODUCTS = [
    (f"{kind[:3].upper()}-{i:03d}", f"{kind} {variant}", price)
    for i, (kind, variant, price) in enumerate(
        (k, v, p)
        for k, base in [
            ("Organic cotton T-shirt", 1990),
            ("Ceramic mug", 1250),
            ("Linen tea towel", 1500),
            ("Merino scarf", 4900),
            ("Canvas tote bag", 1800),
            ("Wool socks", 990),
            ("Hooded sweatshirt", 5500),
            ("Notebook A5", 850),
            ("Enamel pin", 600),
            ("Rain jacket", 8900),
        ]
        for v, p in [
            ("S", base),
            ("M", base),
            ("L", base + 100),
            ("XL", base + 200),
            ("blue", base),
            ("green", base + 50),
            ("black", base),
            ("grey", base),
        ]
    )
]
HOURS = json.dumps(
    {d: ["09:30-13:00", "15:00-19:30"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}
)
HISTORY_DAYS = 80  # every link stays valid: open orders 365 d, closed ones 90 d after closing


def customer_country(cid: int) -> tuple[Any, ...]:
    return _COUNTRY_BUCKETS[(cid * 2_654_435_761) % 100]


def customer_row(cid: int, created: datetime) -> tuple[Any, ...]:
    code, _, lang, _, _, prefix, digits = customer_country(cid)
    first = FIRST[code][cid % len(FIRST[code])]
    last = LAST[code][(cid // 7) % len(LAST[code])]
    phone = f"{prefix}{cid:0{digits}d}"
    # As orders.create_order stores them (the page reads them, not the phone's metadata).
    facts = (mask(phone), timezone_of(phone, ""))
    return (cid, phone, f"{first} {last}", f"shopper{cid}@example.com", lang, created, *facts)


# Delivery and pickup paths (event types after each other) by age of the order, with weights.
H = 3600.0
D = "delivery"
P = "pickup"
PATHS: dict[str, list[tuple[float, list[tuple[int, list[str]]]]]] = {
    D: [
        (
            6 * H,
            [
                (60, ["placed"]),
                (30, ["placed", "packed"]),
                (5, ["placed", "backordered"]),
                (5, ["placed", "cancelled"]),
            ],
        ),
        (
            24 * H,
            [
                (30, ["placed", "packed"]),
                (60, ["placed", "packed", "shipped"]),
                (5, ["placed", "backordered"]),
                (5, ["placed", "backordered", "packed"]),
            ],
        ),
        (
            48 * H,
            [
                (40, ["placed", "packed", "shipped"]),
                (30, ["placed", "packed", "shipped", "out_for_delivery"]),
                (25, ["placed", "packed", "shipped", "out_for_delivery", "delivered"]),
                (5, ["placed", "packed", "shipped", "out_for_delivery", "delivery_failed"]),
            ],
        ),
        (
            math.inf,
            [
                (88, ["placed", "packed", "shipped", "out_for_delivery", "delivered"]),
                (
                    6,
                    [
                        "placed",
                        "packed",
                        "shipped",
                        "out_for_delivery",
                        "delivery_failed",
                        "delivered",
                    ],
                ),
                (
                    1,
                    ["placed", "backordered", "packed", "shipped", "out_for_delivery", "delivered"],
                ),
                (1, ["placed", "packed", "shipped", "out_for_delivery", "delivery_failed"]),
                (2, ["placed", "cancelled"]),
                (1, ["placed", "backordered", "cancelled"]),
                (1, ["placed", "packed", "cancelled"]),
            ],
        ),
    ],
    # Click-and-collect: ready at the counter (held 7 days), then collected or expired.
    P: [
        (6 * H, [(70, ["placed"]), (30, ["placed", "packed"])]),
        (
            48 * H,
            [
                (30, ["placed", "packed"]),
                (50, ["placed", "packed", "ready_for_pickup"]),
                (10, ["placed", "packed", "shipped"]),
                (10, ["placed", "packed", "shipped", "arrived_in_store"]),
            ],
        ),
        (
            7 * 24 * H,
            [
                (55, ["placed", "packed", "ready_for_pickup", "collected"]),
                (35, ["placed", "packed", "ready_for_pickup"]),
                (5, ["placed", "cancelled"]),
                (5, ["placed", "backordered", "cancelled"]),
            ],
        ),
        (
            math.inf,
            [
                (80, ["placed", "packed", "ready_for_pickup", "collected"]),
                (
                    8,
                    [
                        "placed",
                        "packed",
                        "shipped",
                        "arrived_in_store",
                        "ready_for_pickup",
                        "collected",
                    ],
                ),
                (5, ["placed", "packed", "ready_for_pickup", "pickup_expired"]),
                (4, ["placed", "cancelled"]),
                (3, ["placed", "backordered", "cancelled"]),
            ],
        ),
    ],
}
GAP_HOURS = {
    "placed": 0,
    "backordered": 3,
    "packed": 8,
    "shipped": 16,
    "out_for_delivery": 20,
    "delivery_failed": 6,
    "delivered": 5,
    "arrived_in_store": 20,
    "ready_for_pickup": 6,
    "collected": 40,
    "pickup_expired": 7 * 24,
    "cancelled": 10,
}
SHIPMENT_EVENTS = {"shipped", "out_for_delivery", "delivery_failed", "delivered"}
FINAL = {"delivered", "collected", "cancelled"}
STATUS_AFTER = {"pickup_expired": "cancelled"}  # events whose order status is another word
# pickup.status by the order's last event (services/pickup.py); otherwise "preparing".
PICKUP_STATUS = {
    "ready_for_pickup": "ready",
    "collected": "collected",
    "pickup_expired": "expired",
    "cancelled": "cancelled",
}


def pick_path(rng: random.Random, fulfilment: str, age_s: float) -> list[str]:
    for limit, choices in PATHS[fulfilment]:
        if age_s < limit:
            r = rng.uniform(0, sum(w for w, _ in choices))
            for w, path in choices:
                r -= w
                if r <= 0:
                    return path
            return choices[-1][1]
    raise AssertionError("unreachable")


@dataclass
class SeedContext:
    n_orders: int
    n_customers: int
    now: datetime
    start: datetime
    stores_by_country: dict[str, list[int]]
    sms_bodies: dict[tuple[str, str, bool], tuple[str, str, int]] = field(default_factory=dict)
    next_event: int = 1
    next_shipment: int = 1
    next_sms: int = 1
    next_pickup: int = 1
    next_return: int = 1
    next_return_line: int = 1
    next_refund: int = 1
    next_code: int = 1
    next_change: int = 1


def make_stores() -> tuple[list[tuple[Any, ...]], dict[str, list[int]]]:
    rows, by_country = [], {}
    sid = 0
    for code, *_ in COUNTRIES:
        for city, post in CITIES[code]:
            for n in (1, 2):
                sid += 1
                # All of AddressIn's fields, as services.stores.put_store stores them.
                address = {
                    "line1": f"{STREETS[code]} {10 * sid + n}",
                    "city": city,
                    "postcode": f"{post}{n:02d}".strip(),
                    "country": code,
                    "line2": None,
                    "name": None,
                    "region": None,
                }
                rows.append(
                    (
                        sid,
                        f"{code}{sid:03d}",
                        f"{city} {'Centro' if n == 1 else 'Nord'}",
                        json.dumps(address),
                        STORE_TZ[code],
                        None,
                        HOURS,
                    )
                )
                by_country.setdefault(code, []).append(sid)
    return rows, by_country


def sms_templates() -> dict[tuple[str, str, bool], tuple[str, str, int]]:
    """One stored body per (kind, locale, pickup), like messaging.render_sms stores it.

    Rendered leniently (unknown variables are empty) so that the seed does not break when
    the SMS templates gain a variable; the bodies only need a realistic length.
    """
    from jinja2 import Environment, FileSystemLoader

    from portal.templating import TEMPLATES_DIR

    try:
        from portal.services.messaging import LINK_MARKER
    except ImportError:
        LINK_MARKER = "⟦link⟧"
    env = Environment(  # noqa: S701
        loader=FileSystemLoader(str(TEMPLATES_DIR)), extensions=["jinja2.ext.i18n"]
    )
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    out = {}
    for kind in {sms_for(e, f) for e in EventType for f in Fulfilment} - {None}:
        for lang in ("it", "pl", "es", "en"):
            for pickup in (False, True):
                try:
                    body = env.get_template(f"sms/{lang}/{kind}.txt").render(
                        link=LINK_MARKER,
                        first_name="\x01",
                        order_number="\x02",
                        pickup=pickup,
                        store_name="Milano Centro",
                        carrier="BRT",
                        tracking_number="BRT0000000001",
                    )
                except Exception:
                    body = f"\x01, order \x02: {kind.replace('_', ' ')}. {LINK_MARKER}"
                body = " ".join(body.split())
                sample = body.replace("\x01", "Giulia").replace("\x02", "SO-00000001")
                length = measure(sample.replace(LINK_MARKER, "https://shop.example/t/" + "x" * 22))
                out[(kind, lang, pickup)] = (body, length.encoding, length.segments)
    return out


# The shares of orders with a return (of those delivered or collected) and with a delivery
# change (of home deliveries): the page reads both (EXISTS, and the returns card's rows).
RETURN_SHARE = 0.08
CHANGE_SHARE = 0.04


def return_code(rid: int) -> str:
    """Unique by construction: the id in base 22, 8 characters (22**8 > 5e10)."""
    out = []
    for _ in range(8):
        rid, digit = divmod(rid, len(CODE_ALPHABET))
        out.append(CODE_ALPHABET[digit])
    return "".join(reversed(out))


def add_return(
    ctx: SeedContext,
    out: dict[str, list[tuple[Any, ...]]],
    rng: random.Random,
    oid: int,
    closed: datetime,
    store: int | None,
    country: str,
    currency: str,
    unit: int,
) -> None:
    """A return of the order's first line, its progress by age, and its refund once done."""
    created = closed + timedelta(days=rng.uniform(0.5, 12))
    if created > ctx.now - timedelta(minutes=10):
        return
    age_days = (ctx.now - created).total_seconds() / 86_400
    by_store = store is not None or rng.random() < 0.2
    return_store = store or (rng.choice(ctx.stores_by_country[country]) if by_store else None)
    if age_days < 1:
        status = "requested" if rng.random() < 0.3 else "approved"
    elif age_days < 4:
        status = "in_transit" if not by_store else "received"
    elif age_days < 6:
        status = "inspected"
    else:
        status = "rejected" if rng.random() < 0.05 else "refunded"
    step = timedelta(hours=rng.uniform(2, 20))
    approved = created + step if status != "requested" else None
    received = created + 3 * step if status in ("received", "inspected", "refunded") else None
    inspected = received + step if received and status != "received" else None
    rid = ctx.next_return
    ctx.next_return += 1
    # The counter's QR the app keeps from the return's start (the page reads it only while
    # the return is live, so the refunded and rejected ones are left without).
    code = return_code(rid)
    qr_url = "" if status in ("refunded", "rejected") else qr.counter_url(BASE_URL, rid, code)
    accepted = {"inspected": 1, "refunded": 1, "rejected": 0}.get(status)
    out["return_request"].append(
        (
            rid,
            oid,
            code,
            status,
            "store" if by_store else "courier",
            return_store,
            None if by_store else f"https://labels.example/{rid}.pdf",
            None if by_store else "BRT",
            "Not the item sent" if status == "rejected" else None,
            created,
            approved,
            None if by_store else approved,
            received,
            inspected,
            inspected or received or approved or created,
            qr.image(qr_url) if qr_url else "",
            qr_url,
        )
    )
    out["return_line"].append(
        (
            ctx.next_return_line,
            rid,
            oid * 3,
            1,
            rng.choice(("too_small", "too_big", "changed_mind", "damaged")),
            None,
            accepted,
            "Not the item sent" if accepted == 0 else None,
        )
    )
    ctx.next_return_line += 1
    if status == "refunded" and inspected:
        paid = inspected + timedelta(days=rng.uniform(0.5, 2))
        if paid < ctx.now:
            out["refund"].append(
                (
                    ctx.next_refund,
                    oid,
                    unit,
                    currency,
                    "return",
                    "paid",
                    inspected,
                    paid,
                    None,
                    paid,
                    rid,
                )
            )
            ctx.next_refund += 1


def add_change(
    ctx: SeedContext,
    out: dict[str, list[tuple[Any, ...]]],
    rng: random.Random,
    oid: int,
    shipment_id: int | None,
    at: datetime,
    shipped: bool,
) -> None:
    decided = at + timedelta(minutes=rng.uniform(1, 30))
    if shipped and shipment_id is not None:
        kind, data = "instructions", {"instructions": {"safe_place": "porch"}}
    else:
        kind = "address"
        data = {
            "address": {
                "line1": "Via Nuova 3",
                "city": "Milano",
                "postcode": "20121",
                "country": "IT",
            }
        }
        code_at = at - timedelta(minutes=2)
        out["one_time_code"].append(
            (
                ctx.next_code,
                oid,
                "delivery_change",
                f"{rng.getrandbits(256):064x}",
                json.dumps(data),
                0,
                code_at + timedelta(minutes=10),
                None,
                at,
                code_at,
            )
        )
        ctx.next_code += 1
    out["delivery_change"].append(
        (
            ctx.next_change,
            oid,
            shipment_id if shipped else None,
            kind,
            "accepted",
            json.dumps(data),
            "{}",
            None,
            "shop",
            at,
            decided,
        )
    )
    ctx.next_change += 1


def gen_chunk(ctx: SeedContext, lo: int, hi: int, seed: int) -> dict[str, list[tuple[Any, ...]]]:
    """Rows for orders lo..hi-1 (ids assigned here; events/shipments/sms ids from ctx)."""
    rng = random.Random(seed * 1_000_003 + lo)
    n, now, start = ctx.n_orders, ctx.now, ctx.start
    span = (now - start).total_seconds()
    out: dict[str, list[tuple[Any, ...]]] = {
        "orders": [],
        "order_line": [],
        "order_event": [],
        "shipment": [],
        "access_token": [],
        "sms_message": [],
        "pickup": [],
        "return_request": [],
        "return_line": [],
        "refund": [],
        "one_time_code": [],
        "delivery_change": [],
    }
    orders_rows, lines_rows, ev_rows = out["orders"], out["order_line"], out["order_event"]
    ship_rows, tok_rows, sms_rows = out["shipment"], out["access_token"], out["sms_message"]
    td = timedelta
    empty = "{}"
    for oid in range(lo, hi):
        cid = rng.randint(1, ctx.n_customers)
        code, _, lang, currency, factor, prefix, digits = customer_country(cid)
        phone = f"{prefix}{cid:0{digits}d}"
        first = FIRST[code][cid % len(FIRST[code])]
        placed = start + td(seconds=span * (oid - 1) / n + rng.uniform(0, 300))
        if placed > now - td(seconds=90):
            placed = now - td(seconds=90 + rng.uniform(0, 600))
        age = (now - placed).total_seconds()
        pickup = rng.random() < 0.25
        fulfilment = P if pickup else D
        path = pick_path(rng, fulfilment, age)
        # Event times: typical gaps, squeezed into the order's age when it is young.
        gaps = [GAP_HOURS[e] * H * rng.uniform(0.5, 1.5) for e in path]
        total = sum(gaps)
        if total > age * 0.95:
            scale = age * 0.9 / total
            gaps = [g * scale for g in gaps]
        times, t = [], placed
        for g in gaps:
            t = t + td(seconds=g)
            times.append(t)
        status = STATUS_AFTER.get(path[-1], path[-1])
        last_at = times[-1]
        closed_at = last_at if status in FINAL else None
        external_id = f"SO-{oid:08d}"
        store = rng.choice(ctx.stores_by_country[code]) if pickup else None
        if pickup:
            address = None
        else:
            city, post = rng.choice(CITIES[code])
            address = json.dumps(
                {
                    "line1": f"{STREETS[code]} {rng.randint(1, 200)}",
                    "city": city,
                    "postcode": f"{post}{rng.randint(10, 99)}",
                    "country": code,
                }
            )
        total_minor = first_unit = 0
        set_aside = "ready_for_pickup" in path
        for pos in range(2 if rng.random() < 0.6 else 3):
            sku, name, price = PRODUCTS[rng.randrange(len(PRODUCTS))]
            qty = 1 if rng.random() < 0.8 else 2
            unit = int(price * factor)
            total_minor += unit * qty
            ready = qty if set_aside else 0
            lines_rows.append((oid * 3 + pos, oid, pos, sku, name, qty, unit, ready))
            if pos == 0:
                first_unit = unit
        if pickup:
            pstatus = PICKUP_STATUS.get(path[-1], "preparing")
            ready_at = times[path.index("ready_for_pickup")] if set_aside else None
            pickup_code = f"{rng.randrange(10**6):06d}"
            # The handover QR the app keeps from the moment an order is ready (the page
            # reads it only while ready, so the collected ones are left without).
            qr_url = qr.handover_url(BASE_URL, oid, pickup_code) if pstatus == "ready" else ""
            out["pickup"].append(
                (
                    ctx.next_pickup,
                    oid,
                    store,
                    pstatus,
                    pickup_code,
                    ready_at,
                    ready_at + td(days=7) if pstatus == "ready" and ready_at else None,
                    last_at if pstatus == "collected" else None,
                    placed,
                    last_at,
                    qr.image(qr_url) if qr_url else "",
                    qr_url,
                )
            )
            ctx.next_pickup += 1
        orders_rows.append(
            (
                oid,
                external_id,
                cid,
                status,
                fulfilment,
                store,
                address,
                currency,
                total_minor,
                placed,
                placed,
                last_at,
                closed_at,
                len(path),
            )
        )
        shipment_id = None
        if "shipped" in path:
            shipment_id = ctx.next_shipment
            ctx.next_shipment += 1
            shipped_at = times[path.index("shipped")]
            tracking = f"{rng.choice(CARRIERS[code])[:3].upper()}{oid:010d}"
            ship_status = (
                "shipped" if pickup else next(e for e in reversed(path) if e in SHIPMENT_EVENTS)
            )
            ship_rows.append(
                (
                    shipment_id,
                    oid,
                    f"{oid}:{tracking}",
                    tracking,
                    rng.choice(CARRIERS[code]),
                    shipped_at + td(days=2),
                    ship_status,
                    shipped_at,
                    last_at,
                )
            )
        if status in ("delivered", "collected") and rng.random() < RETURN_SHARE:
            add_return(ctx, out, rng, oid, last_at, store, code, currency, first_unit)
        if not pickup and rng.random() < CHANGE_SHARE:
            # An address change confirmed by SMS code before dispatch, accepted by the shop;
            # or, once shipped, courier instructions.
            at = placed + td(minutes=rng.uniform(5, 60))
            if at < now:
                add_change(ctx, out, rng, oid, shipment_id, at, "shipped" in path)
        salt = tokens.new_salt()
        token = tokens.derive_token(BENCH_SECRET, salt)
        expires = last_at + td(days=90 if closed_at else 365)
        tok_rows.append((oid, tokens.hash_token(token), salt, oid, "track", expires, None, placed))
        for etype, at in zip(path, times, strict=True):
            eid = ctx.next_event
            ctx.next_event += 1
            note = None
            if etype == "delivery_failed":
                note = "Nobody at home" if rng.random() < 0.5 else None
            elif etype == "delivered" and rng.random() < 0.1:
                note = "Left with the neighbour"
            sid = (
                shipment_id if etype in SHIPMENT_EVENTS or (pickup and etype == "shipped") else None
            )
            ev_rows.append(
                (eid, oid, etype, at, at + td(seconds=rng.uniform(1, 30)), sid, note, empty)
            )
            kind = sms_for(EventType(etype), Fulfilment(fulfilment))
            if kind is None:
                continue
            body, encoding, segments = ctx.sms_bodies[(kind, lang, pickup)]
            body = body.replace("\x01", first).replace("\x02", external_id)
            mid = ctx.next_sms
            ctx.next_sms += 1
            waiting = (now - at).total_seconds() < 600
            if waiting:  # the outbox: due rows, not sent yet
                sms_rows.append(
                    (
                        mid,
                        oid,
                        f"event:{eid}",
                        kind,
                        lang,
                        phone,
                        body,
                        oid,
                        encoding,
                        segments,
                        False,
                        "queued",
                        0,
                        at,
                        None,
                        "messagebird",
                        None,
                        None,
                        None,
                        at,
                        None,
                        None,
                    )
                )
                continue
            r = rng.random()
            st, gst, err = (
                ("delivered", "delivered", None)
                if r < 0.9
                else (
                    ("sent", "sent", None)
                    if r < 0.98
                    else ("failed", "delivery_failed", "delivery report: delivery_failed")
                )
            )
            sent_at = at + td(seconds=rng.uniform(1, 20))
            sms_rows.append(
                (
                    mid,
                    oid,
                    f"event:{eid}",
                    kind,
                    lang,
                    phone,
                    body,
                    oid,
                    encoding,
                    segments,
                    False,
                    st,
                    1,
                    None,
                    sent_at,
                    "messagebird",
                    uuid.UUID(int=rng.getrandbits(128)).hex,
                    gst,
                    err,
                    at,
                    sent_at,
                    sent_at + td(seconds=rng.uniform(5, 120)),
                )
            )
    return out


COLUMNS = {
    "return_request": [
        "id",
        "order",
        "code",
        "status",
        "method",
        "store",
        "label_url",
        "label_carrier",
        "rejection_reason",
        "created_at",
        "approved_at",
        "label_at",
        "received_at",
        "inspected_at",
        "updated_at",
        "qr_svg",
        "qr_url",
    ],
    "return_line": [
        "id",
        "return_request",
        "order_line",
        "quantity",
        "reason",
        "note",
        "accepted_quantity",
        "rejection_reason",
    ],
    "refund": [
        "id",
        "order",
        "amount_minor",
        "currency",
        "reason",
        "status",
        "created_at",
        "updated_at",
        "failure_reason",
        "paid_at",
        "return_request",
    ],
    "one_time_code": [
        "id",
        "order",
        "purpose",
        "code_hash",
        "pending",
        "attempts",
        "expires_at",
        "locked_until",
        "used_at",
        "created_at",
    ],
    "delivery_change": [
        "id",
        "order",
        "shipment",
        "kind",
        "status",
        "data",
        "previous",
        "reason",
        "decided_by",
        "requested_at",
        "decided_at",
    ],
    "store": ["id", "code", "name", "address", "timezone", "phone", "opening_hours"],
    "customer": [
        "id",
        "phone",
        "name",
        "email",
        "locale",
        "created_at",
        "phone_masked",
        "timezone",
    ],
    "orders": [
        "id",
        "external_id",
        "customer",
        "status",
        "fulfilment",
        "store",
        "delivery_address",
        "currency",
        "total_minor",
        "placed_at",
        "created_at",
        "updated_at",
        "closed_at",
        "version",
    ],
    "order_line": [
        "id",
        "order",
        "position",
        "sku",
        "name",
        "quantity",
        "unit_price_minor",
        "ready_quantity",
    ],
    "shipment": [
        "id",
        "order",
        "key",
        "tracking_number",
        "carrier",
        "eta",
        "status",
        "created_at",
        "updated_at",
    ],
    "order_event": [
        "id",
        "order",
        "type",
        "occurred_at",
        "recorded_at",
        "shipment",
        "note",
        "data",
    ],
    "access_token": [
        "id",
        "token_hash",
        "salt",
        "order",
        "purpose",
        "expires_at",
        "revoked_at",
        "created_at",
    ],
    "sms_message": [
        "id",
        "order",
        "dedupe_key",
        "kind",
        "locale",
        "recipient",
        "body",
        "access_token",
        "encoding",
        "segments",
        "urgent",
        "status",
        "attempts",
        "next_attempt_at",
        "claimed_at",
        "gateway",
        "gateway_id",
        "gateway_status",
        "last_error",
        "created_at",
        "sent_at",
        "status_at",
    ],
    "pickup": [
        "id",
        "order",
        "store",
        "status",
        "code",
        "ready_at",
        "hold_until",
        "collected_at",
        "created_at",
        "updated_at",
        "qr_svg",
        "qr_url",
    ],
}
SEQUENCES = [
    "return_request",
    "return_line",
    "refund",
    "one_time_code",
    "delivery_change",
    "store",
    "customer",
    "orders",
    "order_line",
    "shipment",
    "order_event",
    "access_token",
    "sms_message",
    "pickup",
]


async def _secondary_indexes(conn: asyncpg.Connection) -> list[tuple[str, str, str, str, str]]:
    """(table, index, index definition, constraint, constraint definition) of the
    non-primary-key indexes of the seeded tables; the constraint fields are '' for plain
    indexes."""
    rows = await conn.fetch(
        """
        SELECT t.relname AS tab, i.relname AS idx, pg_get_indexdef(i.oid) AS def,
               coalesce(c.conname, '') AS con, coalesce(pg_get_constraintdef(c.oid), '') AS condef
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
        LEFT JOIN pg_constraint c ON c.conindid = i.oid AND c.contype = 'u'
        WHERE NOT x.indisprimary AND t.relname = ANY($1::text[])
        """,
        list(COLUMNS),
    )
    return [(r["tab"], r["idx"], r["def"], r["con"], r["condef"]) for r in rows]


async def seed(args: argparse.Namespace) -> None:
    n = args.orders
    rng_seed = args.seed
    conn = await asyncpg.connect(pg_url(args))
    try:
        # Rows are consistent by construction: skip the per-row FK triggers, build the
        # secondary indexes once at the end (the same definitions, read from the catalog).
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        # The schema this checkout migrated to: columns (or tables) it lacks are left out.
        existing: dict[str, set[str]] = {}
        for r in await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        ):
            existing.setdefault(r["table_name"], set()).add(r["column_name"])
        keep = {
            t: [i for i, c in enumerate(cols) if c in existing[t]]
            for t, cols in COLUMNS.items()
            if t in existing
        }
        indexes = await _secondary_indexes(conn)
        for tab, idx, _, con, _ in indexes:
            if con:
                await conn.execute(f'ALTER TABLE "{tab}" DROP CONSTRAINT "{con}"')
            else:
                await conn.execute(f'DROP INDEX "{idx}"')
        now = datetime.now(UTC)
        start = now - timedelta(days=HISTORY_DAYS)
        store_rows, by_country = make_stores()
        ctx = SeedContext(
            n_orders=n,
            n_customers=max(1, int(n * 0.7)),
            now=now,
            start=start,
            stores_by_country=by_country,
        )
        ctx.sms_bodies = sms_templates()
        await conn.copy_records_to_table("store", records=store_rows, columns=COLUMNS["store"])
        t0 = time.monotonic()
        step = 50_000
        for lo in range(1, ctx.n_customers + 1, step):
            rows = [customer_row(c, start) for c in range(lo, min(lo + step, ctx.n_customers + 1))]
            await conn.copy_records_to_table("customer", records=rows, columns=COLUMNS["customer"])
        counts: dict[str, int] = {}
        chunk = 20_000
        pending: asyncio.Task[None] | None = None
        copy_conn = await asyncpg.connect(pg_url(args))
        await copy_conn.execute("SET session_replication_role = replica")

        async def copy_all(data: dict[str, list[tuple[Any, ...]]]) -> None:
            for table, rows in data.items():
                if rows and table in keep:
                    idx = keep[table]
                    if len(idx) < len(COLUMNS[table]):
                        rows = [tuple(r[i] for i in idx) for r in rows]
                    await copy_conn.copy_records_to_table(
                        table, records=rows, columns=[COLUMNS[table][i] for i in idx]
                    )

        try:
            for lo in range(1, n + 1, chunk):
                hi = min(lo + chunk, n + 1)
                data = gen_chunk(ctx, lo, hi, rng_seed)
                for table, rows in data.items():
                    counts[table] = counts.get(table, 0) + len(rows)
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(copy_all(data))
                await asyncio.sleep(0)
                if (hi - 1) % 200_000 < chunk or hi > n:
                    rate = (hi - 1) / (time.monotonic() - t0)
                    log(f"  seeded {hi - 1:,}/{n:,} orders ({rate:,.0f} orders/s)")
            if pending is not None:
                await pending
        finally:
            await copy_conn.close()
        log(
            f"  rows: {ctx.n_customers:,} customers, "
            + ", ".join(f"{v:,} {k}" for k, v in counts.items())
        )
        t1 = time.monotonic()
        for tab, _, definition, con, condef in indexes:
            if con:
                await conn.execute(f'ALTER TABLE "{tab}" ADD CONSTRAINT "{con}" {condef}')
            else:
                await conn.execute(definition)
        log(f"  rebuilt {len(indexes)} secondary indexes in {time.monotonic() - t1:.1f}s")
        for table in (t for t in SEQUENCES if t in existing):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                f'(SELECT coalesce(max(id), 1) FROM "{table}"))'
            )
        await conn.execute("SET session_replication_role = origin")
        t2 = time.monotonic()
        # VACUUM as well as ANALYZE: sets hint bits and the visibility map once, so the
        # load phase does not pay for the first touch of freshly copied pages.
        await conn.execute("VACUUM (ANALYZE)")
        log(f"  VACUUM ANALYZE in {time.monotonic() - t2:.1f}s")
    finally:
        await conn.close()


# ----------------------------------------------------------------------------- database


async def prepare_database(args: argparse.Namespace) -> bool:
    """Create (or keep, with --reuse) the database. True when it must be seeded."""
    admin = await asyncpg.connect(pg_url(args, "postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", args.db)
        if exists and args.reuse:
            try:
                conn = await asyncpg.connect(pg_url(args))
                try:
                    have = await conn.fetchval("SELECT count(*) FROM orders")
                finally:
                    await conn.close()
            except asyncpg.UndefinedTableError:
                have = 0
            if have == args.orders:
                log(f"reusing database {args.db} ({have:,} orders)")
                return False
            raise SystemExit(
                f"--reuse: {args.db} has {have:,} orders, not {args.orders:,}; "
                "run without --reuse to re-create it"
            )
        if exists:
            log(f"dropping database {args.db}")
            await admin.execute(f'DROP DATABASE "{args.db}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{args.db}"')
        log(f"created database {args.db}")
        return True
    finally:
        await admin.close()


def migrate(args: argparse.Namespace) -> None:
    env = {**os.environ, "PORTAL_DATABASE_URL": pg_url(args), "PORTAL_SECRET_KEY": BENCH_SECRET}
    out = subprocess.run(
        [PY, "-m", "portal", "migrate"],
        cwd=ROOT,
        env=env,
        timeout=300,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        hint = (
            "\n(--reuse: the database was migrated with another migration history; "
            "run without --reuse to re-create it)"
            if args.reuse
            else ""
        )
        raise SystemExit(f"migrate failed:\n{out.stdout}\n{out.stderr[-3000:]}{hint}")
    log("migrated (python -m portal migrate)")


@dataclass
class Sample:
    token: str
    order_id: int
    version: int
    locale: str
    status: str

    @property
    def etag(self) -> str:
        # portal.services.orders.TrackingState.etag; checked against the app before loading.
        from portal.services.orders import TrackingState

        return TrackingState(self.order_id, self.version, self.status, self.locale).etag


async def make_sample(args: argparse.Namespace) -> list[Sample]:
    conn = await asyncpg.connect(pg_url(args))
    try:
        max_id = await conn.fetchval("SELECT max(id) FROM orders")
        ids = random.Random(args.seed).sample(range(1, max_id + 1), min(args.sample, max_id))
        rows = await conn.fetch(
            """
            SELECT t.salt, t.token_hash, o.id, o.version, o.status, c.locale
            FROM access_token t JOIN orders o ON o.id = t."order"
            JOIN customer c ON c.id = o.customer
            WHERE t."order" = ANY($1::int[]) AND t.purpose = 'track' AND t.revoked_at IS NULL
              AND t.expires_at > now()
            """,
            ids,
        )
    finally:
        await conn.close()
    out = []
    for r in rows:
        token = tokens.derive_token(BENCH_SECRET, r["salt"])
        if tokens.hash_token(token) != r["token_hash"]:
            raise SystemExit("the stored token hashes were not made with the bench secret")
        out.append(Sample(token, r["id"], r["version"], r["locale"], r["status"]))
    random.Random(args.seed).shuffle(out)
    return out


# ----------------------------------------------------------------------------- processes


class Server:
    def __init__(
        self, name: str, cmd: list[str], env: dict[str, str], port: int, workdir: Path
    ) -> None:
        self.name, self.cmd, self.env, self.port = name, cmd, env, port
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file: Any = None

    def start(self, timeout: float = 60.0) -> None:
        self.log_file = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=ROOT,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _RUNNING.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"{self.name} exited; see {self.log_path}:\n"
                    + self.log_path.read_text()[-3000:]
                )
            try:
                status, _, _ = http_get(self.port, "/healthz", timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not answer /healthz within {timeout:.0f}s")

    def stop(self) -> None:
        if self in _RUNNING:
            _RUNNING.remove(self)
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        pgid = self.proc.pid  # start_new_session: the group is ours, with this id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        # Workers of the group that outlived the parent.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.proc = None


_RUNNING: list[Server] = []


def stop_all() -> None:
    while _RUNNING:
        _RUNNING.pop().stop()


def _on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def http_get(
    port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


# ----------------------------------------------------------------------------- CPU split


def _proc_stats() -> dict[int, tuple[str, int, int]]:
    """pid -> (name, session id, utime+stime ticks); postgres backends named by their title."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            if comm == "postgres":  # "postgres: postgres portal_bench 127.0.0.1(5678) idle"
                comm = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, ValueError):
            continue
        rest = raw[raw.rindex(")") + 2 :].split()
        out[int(entry)] = (comm, int(rest[3]), int(rest[11]) + int(rest[12]))
    return out


def _system_busy_ticks() -> int:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:8]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


def _ours_or_shared(title: str, db: str) -> bool:
    """A backend of our database, or a background process (checkpointer, walwriter ...)."""
    is_backend = "(" in title or "[local]" in title
    return f" {db} " in title or not is_backend


def cpu_split(
    before: dict[int, tuple[str, int, int]],
    after: dict[int, tuple[str, int, int]],
    server_sid: int,
    wrk_seconds: float,
    system_seconds: float,
    db: str,
) -> dict[str, float]:
    """CPU seconds by who used them: the server's process group, postgres (the backends of
    our database and the shared background processes), wrk, and everything else on the
    machine (from /proc/stat, so processes that came and went are counted too)."""
    hz = os.sysconf("SC_CLK_TCK")
    split = {"server": 0.0, "postgres": 0.0, "wrk": wrk_seconds, "other": 0.0}
    for pid, (comm, sid, ticks) in after.items():
        delta = (ticks - before[pid][2]) if pid in before else ticks
        if delta <= 0:
            continue
        if sid == server_sid:
            split["server"] += delta / hz
        elif comm.startswith("postgres") and _ours_or_shared(comm, db):
            split["postgres"] += delta / hz
    split["other"] = max(0.0, system_seconds - split["server"] - split["postgres"] - wrk_seconds)
    return split


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _system_busy(seconds: float = 1.0) -> float:
    """Share (0..1) of all cores busy over `seconds`, from /proc/stat."""

    def read() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields), idle

    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_for_quiet(limit_s: float, threshold: float = 0.15) -> float:
    """Wait (at most limit_s) until the machine is idle apart from us; the last busy share."""
    deadline = time.monotonic() + limit_s
    busy = _system_busy()
    warned = False
    while busy > threshold and time.monotonic() < deadline:
        if not warned:
            log(f"  the machine is {busy:.0%} busy with other work: waiting up to {limit_s:.0f}s")
            warned = True
        time.sleep(2)
        busy = _system_busy()
    if busy > threshold:
        log(f"  still {busy:.0%} busy: measuring anyway (see the 'other' CPU column)")
    return busy


# ----------------------------------------------------------------------------- wrk

LUA = r"""
-- generated by bench/tracking_page.py
local tokens = {%(tokens)s}
local etags = {%(etags)s}
local mode = "%(mode)s"
local gzip = %(gzip)s
local cookie = "%(cookie)s"
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(tid * 7919 + %(seed)d)
end

function request()
  local i = math.random(#tokens)
  local headers = {}
  if gzip then headers["Accept-Encoding"] = "gzip" end
  if mode == "poll" then
    -- A poll comes from an open page: it carries the page's ETag and its cookie.
    headers["If-None-Match"] = etags[i]
    headers["HX-Request"] = "true"
    if cookie ~= "" then headers["Cookie"] = cookie end
    return wrk.format("GET", "/t/" .. tokens[i] .. "/progress", headers)
  end
  return wrk.format("GET", "/t/" .. tokens[i], headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d, ' ..
    '"read": %%d, "write": %%d, "status": %%d, "timeout": %%d, "p50": %%d, "p90": %%d, ' ..
    '"p99": %%d, "max": %%d, "mean": %%f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def write_lua(
    workdir: Path, sample: list[Sample], mode: str, gzip_on: bool, seed: int, cookie: str = ""
) -> Path:
    path = workdir / f"{mode}.lua"
    path.write_text(
        LUA
        % {
            "tokens": ",".join(f'"{s.token}"' for s in sample),
            "etags": ",".join("'" + s.etag + "'" for s in sample),
            "mode": mode,
            "gzip": "true" if gzip_on else "false",
            "seed": seed,
            "cookie": cookie.replace('"', ""),
        }
    )
    return path


@dataclass
class RunResult:
    label: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int
    bytes_per_req: float
    cpu: dict[str, float]
    seconds: float
    wrk_text: str
    all_rps: list[float] = field(default_factory=list)
    # The counted (clean, or least disturbed) run of each round, in order (see `rounds`).
    round_rps: list[float] = field(default_factory=list)

    def cpu_ms(self, who: str) -> float:
        return self.cpu[who] / max(self.requests, 1) * 1000

    @property
    def clean(self) -> bool:
        return self.cpu["other"] / self.seconds < CLEAN_OTHER

    @property
    def alone_rps(self) -> float:
        """What the box would serve with nothing else on it: cores / CPU per request."""
        ms = self.cpu_ms("server") + self.cpu_ms("postgres") + self.cpu_ms("wrk")
        return (os.cpu_count() or 1) * 1000 / max(ms, 1e-9)


def run_wrk(
    args: argparse.Namespace, label: str, port: int, script: Path, server: Server, duration: int
) -> RunResult:
    cmd = [
        args.wrk,
        "-t",
        str(args.threads),
        "-c",
        str(args.connections),
        "-d",
        f"{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        f"http://{HOST}:{port}/",
    ]
    before = _proc_stats()
    children0 = _children_cpu()
    busy0 = _system_busy_ticks()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        text, _ = proc.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    seconds = time.monotonic() - t0
    after = _proc_stats()
    wrk_cpu = _children_cpu() - children0
    system_cpu = (_system_busy_ticks() - busy0) / os.sysconf("SC_CLK_TCK")
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{text}")
    match = re.search(r"^BENCHJSON (\{.*\})$", text, re.M)
    if not match:
        raise SystemExit(f"no result from wrk:\n{text}")
    d = json.loads(match.group(1))
    assert server.proc is not None
    cpu = cpu_split(before, after, server.proc.pid, wrk_cpu, system_cpu, args.db)
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = (
        d["connect"]
        + d["read"]
        + d["write"]
        + d["timeout"]
        + d["status"]
        + (int(non_ok.group(1)) if non_ok else 0)
    )
    return RunResult(
        label=label,
        rps=d["requests"] / (d["duration_us"] / 1e6),
        p50_ms=d["p50"] / 1000,
        p90_ms=d["p90"] / 1000,
        p99_ms=d["p99"] / 1000,
        max_ms=d["max"] / 1000,
        requests=d["requests"],
        errors=errors,
        bytes_per_req=d["bytes"] / max(d["requests"], 1),
        cpu=cpu,
        seconds=seconds,
        wrk_text=text.split("BENCHJSON")[0].rstrip(),
    )


@dataclass
class Case:
    key: str
    label: str
    server: Server
    script: Path


def one_run(args: argparse.Namespace, case: Case) -> tuple[RunResult, list[RunResult]]:
    """A measured run, tried again while other work on the machine disturbed it (other
    work at or above CLEAN_OTHER cores; at most 3 tries): the clean one, or the least
    disturbed, and every try."""
    tries: list[RunResult] = []
    for attempt in range(3):
        wait_for_quiet(args.quiet_wait)
        r = run_wrk(args, case.label, case.server.port, case.script, case.server, args.duration)
        busy = ", ".join(f"{k} {v / r.seconds:.2f}" for k, v in r.cpu.items())
        note = "" if r.clean else "  (disturbed by other work: retried)" if attempt < 2 else ""
        log(
            f"  {case.label}: {r.rps:,.0f} req/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, "
            f"errors {r.errors}; cores busy: {busy}{note}"
        )
        if args.verbose:
            print(r.wrk_text)
        tries.append(r)
        if r.clean:
            return r, tries
    return min(tries, key=lambda r: r.cpu["other"]), tries


def rounds(args: argparse.Namespace, cases: list[Case]) -> dict[str, RunResult]:
    """Each case warmed up, then args.repeat rounds, each round one run of every case in
    turn. This machine's speed drifts over minutes (the same bare baseline measured 2,740
    and 3,526 req/s in two runs of one session), so a ratio is taken within a round, where
    its two runs are a minute apart at most, and the ratios of the rounds are reported
    with their median. The table shows each case's best counted run."""
    for case in cases:
        if args.warmup > 0:
            wait_for_quiet(args.quiet_wait)
            run_wrk(
                args,
                case.label + " (warm-up)",
                case.server.port,
                case.script,
                case.server,
                args.warmup,
            )
    counted: dict[str, list[RunResult]] = {case.key: [] for case in cases}
    tried: dict[str, list[RunResult]] = {case.key: [] for case in cases}
    for n in range(args.repeat):
        log(f"round {n + 1} of {args.repeat}")
        for case in cases:
            r, tries = one_run(args, case)
            counted[case.key].append(r)
            tried[case.key] += tries
    results = {}
    for case in cases:
        runs = counted[case.key]
        clean = [r for r in runs if r.clean]
        best = max(clean, key=lambda r: r.rps) if clean else min(runs, key=lambda r: r.cpu["other"])
        best.all_rps = [r.rps for r in tried[case.key]]
        best.round_rps = [r.rps for r in runs]
        results[case.key] = best
    return results


# ----------------------------------------------------------------------------- checks


def check_app(port: int, sample: list[Sample]) -> None:
    """The page answers 200, the fragment 304 with our ETag: the load measures what we mean."""
    for s in sample[:20]:
        status, headers, body = http_get(port, f"/t/{s.token}")
        if status != 200 or b"progress" not in body:
            raise SystemExit(f"/t/<token> of order {s.order_id} answered {status}")
        status, headers, _ = http_get(port, f"/t/{s.token}/progress")
        if headers.get("etag") != s.etag:
            raise SystemExit(f"ETag {headers.get('etag')} != computed {s.etag}")
        status, _, _ = http_get(port, f"/t/{s.token}/progress", {"If-None-Match": s.etag})
        if status != 304:
            raise SystemExit(f"the poll with If-None-Match answered {status}, not 304")


def first_load(port: int, token: str) -> dict[str, tuple[int, int]]:
    """Bytes on the wire (gzip) and decoded, for the page and what it links to."""
    gz = {"Accept-Encoding": "gzip"}
    status, headers, body = http_get(port, f"/t/{token}", gz)
    if status != 200:
        raise SystemExit(f"first load: {status}")
    html = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
    sizes = {"page (HTML)": (len(body), len(html))}
    for ref in re.findall(r'(?:href|src)="(/static/[^"]+)"', html.decode()):
        status, headers, body = http_get(port, ref.replace("&amp;", "&"), gz)
        if status != 200:
            raise SystemExit(f"first load: {ref} answered {status}")
        plain = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
        sizes[ref.split("?")[0].removeprefix("/static/")] = (len(body), len(plain))
    return sizes


# ----------------------------------------------------------------------------- EXPLAIN


async def explain_generic(conn: asyncpg.Connection, sql: str, params: list[Any]) -> list[str]:
    """EXPLAIN ANALYZE of `sql` run as a prepared statement on this connection's plan mode
    (generic here), with `params` written as literals: EXECUTE takes no bound parameters."""
    types = (await conn.prepare(sql)).get_parameters()
    literals = [
        await conn.fetchval(f"SELECT quote_nullable(($1::{t.schema}.{t.name})::text)", value)
        for value, t in zip(params, types, strict=True)
    ]
    await conn.execute(f"PREPARE bench_explain AS {sql}")
    try:
        plan = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE bench_explain"
            + (f"({', '.join(literals)})" if literals else "")
        )
    finally:
        await conn.execute("DEALLOCATE bench_explain")
    return [r[0] for r in plan]


async def explain(args: argparse.Namespace, sample: list[Sample]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the SQL the app's own service functions send."""
    from portal import db
    from portal.db.tables import SmsMessage
    from portal.runtime import build_runtime
    from portal.services import orders
    from portal.settings import Settings

    rt = build_runtime(
        Settings(database_url=pg_url(args), secret_key=BENCH_SECRET, run_scheduler=False)
    )
    await db.start(rt.engine)
    # Every statement the app sends, as asyncpg sends it (through Piccolo, db.fetch_row, or
    # the batched reads of db.batch), while the service functions below run.
    captured: list[tuple[str, list[Any]]] = []
    original = asyncpg.connection.Connection._execute

    async def spy(self: Any, query: str, params: Any, *rest: Any, **kw: Any) -> Any:
        captured.append((query, list(params or [])))
        return await original(self, query, params, *rest, **kw)

    asyncpg.connection.Connection._execute = spy  # type: ignore[method-assign]
    # The plan the app runs: these reads keep one generic plan per statement (db.FIXED_PLANS),
    # which an EXPLAIN with parameters would not show (it plans for the values at hand).
    conn = await asyncpg.connect(pg_url(args), server_settings=db.FIXED_PLANS)
    try:
        by_id = sorted(sample, key=lambda s: s.order_id)
        picks = [
            ("lowest id", by_id[0]),
            ("middle", by_id[len(by_id) // 2]),
            ("highest id", by_id[-1]),
        ]
        summary = []
        for where, s in picks:
            # What the handlers call: the page (tracking_page, or state + view in older
            # code) and the poll (tracking_state). The SQL is captured as it is sent.
            queries: list[tuple[str, str, list[Any]]] = []
            captured.clear()
            if hasattr(orders, "tracking_page"):
                assert await orders.tracking_page(rt, s.token) is not None
            else:
                state = await orders.tracking_state(rt, s.token)
                assert state is not None
                await orders.tracking_view(rt, state)
            queries += [("page", sql, params) for sql, params in captured]
            captured.clear()
            assert await orders.tracking_state(rt, s.token) is not None
            queries += [("poll", sql, params) for sql, params in captured]
            n_page = sum(1 for who, _, _ in queries if who == "page")
            print(
                f"\n=== EXPLAIN ANALYZE: order {s.order_id:,} ({where} of the sample, status "
                f"{s.status}): the page runs {n_page} quer{'y' if n_page == 1 else 'ies'}, "
                f"the poll {len(queries) - n_page} ==="
            )
            for n, (who, sql, params) in enumerate(queries, 1):
                lines = await explain_generic(conn, sql, params)
                exec_ms = next(
                    (
                        float(m.group(1))
                        for ln in lines
                        if (m := re.search(r"Execution Time: ([\d.]+)", ln))
                    ),
                    0.0,
                )
                scans = sorted(
                    set(
                        re.findall(
                            r"((?:Index Only|Index|Seq|Bitmap Heap) Scan)"
                            r"(?: using (\S+))? on (\S+)",
                            "\n".join(lines),
                        )
                    )
                )
                # Pages touched by the whole plan (its top node): flat as history grows.
                top = re.search(r"Buffers: shared((?: \w+=\d+)+)", "\n".join(lines))
                pages = sum(int(x) for x in re.findall(r"=(\d+)", top.group(1))) if top else 0
                summary.append((s.order_id, f"{who} q{n}", exec_ms, pages, scans))
                if where == "middle" or args.verbose:
                    print(f"\n-- {who}, query {n}: {' '.join(sql.split())}\n-- params: {params}")
                    print("\n".join(lines))
        print("\n=== per query: execution time and scans, for the three orders ===")
        for oid, n, ms, pages, scans in summary:
            scan_text = "; ".join(
                f"{kind} {idx or ''} on {tab}".replace("  ", " ") for kind, idx, tab in scans
            )
            print(f"order {oid:>9,} {n}: {ms:6.3f} ms {pages:>3} pages  {scan_text}")
        # store is a reference table (a few dozen rows, not history): a seq scan is right.
        if any(
            kind.startswith("Seq") and tab != "store"
            for *_, scans in summary
            for kind, _, tab in scans
        ):
            print("WARNING: a sequential scan over history: this query's cost grows with it")
        else:
            print(
                "every history table (orders, customer, access_token, order_line, shipment, "
                "order_event, pickup, return_request, refund, one_time_code, delivery_change) "
                "is reached by an index scan"
            )
        # The outbox sweep (SKIP LOCKED claim), the other per-row lookup that must stay flat.
        query = (
            SmsMessage.select(
                SmsMessage.id,
                SmsMessage.recipient,
                SmsMessage.body,
                SmsMessage.encoding,
                SmsMessage.attempts,
                SmsMessage.status,
                SmsMessage.access_token.salt.as_alias("salt"),
            )
            .where(SmsMessage.next_attempt_at <= datetime.now(UTC))
            .order_by(SmsMessage.next_attempt_at)
            .limit(50)
            .lock_rows("UPDATE", skip_locked=True, of=(SmsMessage,))
        )
        sql, params = query.querystrings[0].compile_string(engine_type="postgres")
        tx = conn.transaction()
        await tx.start()
        try:  # FOR UPDATE takes row locks: release them, change nothing
            plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, *params)
        finally:
            await tx.rollback()
        print("\n=== the outbox claim (scheduler), for reference ===")
        print(f"-- {sql}")
        print("\n".join(r[0] for r in plan))
    finally:
        asyncpg.connection.Connection._execute = original  # type: ignore[method-assign]
        await conn.close()
        await db.stop(rt.engine)


# ----------------------------------------------------------------------------- main


def code_version() -> str:
    """The commit measured; '+changes' when portal/, templates/ or static/ differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "portal", "templates", "static"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head, dirty = "", ""
    if not head:
        return "unknown (not a git checkout)"
    return f"{head}{' +changes' if dirty else ''}"


def print_table(
    results: dict[str, RunResult], sizes: dict[str, tuple[int, int]], args: argparse.Namespace
) -> list[str]:
    cores = os.cpu_count() or 1
    out = [
        f"code: {code_version()}   python {sys.version.split()[0]}   {time.strftime('%Y-%m-%d %H:%M')}",
        f"orders: {args.orders:,}   workers: {args.workers}   wrk: {args.threads} threads,"
        f" {args.connections} connections, {args.duration}s (+{args.warmup}s warm-up),"
        f" {args.repeat} rounds (best shown), Accept-Encoding: {'gzip' if args.gzip else 'none'}"
        f"   cores: {cores}",
        "",
        f"{'run':<15}{'req/s':>7}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'max ms':>8}"
        f"{'errors':>7}{'B/resp':>7} | {'CPU ms/req app':>14}{'pg':>6}{'wrk':>6}"
        f"{'alone req/s':>12} | {'cores busy app':>14}{'pg':>5}{'wrk':>5}{'other':>6}",
    ]
    for key in ("bare", "same", "page", "poll"):
        r = results.get(key)
        if r is None:
            continue
        c = {k: v / r.seconds for k, v in r.cpu.items()}
        label = r.label if r.clean else r.label[:14] + "*"
        out.append(
            f"{label:<15}{r.rps:>7,.0f}{r.p50_ms:>8.1f}{r.p90_ms:>8.1f}"
            f"{r.p99_ms:>8.1f}{r.max_ms:>8.1f}{r.errors:>7}{r.bytes_per_req:>7,.0f}"
            f" | {r.cpu_ms('server'):>14.2f}{r.cpu_ms('postgres'):>6.2f}{r.cpu_ms('wrk'):>6.2f}"
            f"{r.alone_rps:>12,.0f} | {c['server']:>14.2f}{c['postgres']:>5.2f}"
            f"{c['wrk']:>5.2f}{c['other']:>6.2f}"
        )
    out += [
        "CPU ms/req: CPU time of the app's processes, of postgres (our backends and its",
        f"background processes) and of wrk, per request. alone req/s = {cores} cores / their",
        "sum: the rate with nothing else on the machine. cores busy: CPU seconds per second;",
        "'other' is everything else running on the machine during the run (from /proc/stat).",
    ]
    if any(not r.clean for r in results.values()):
        out.append(f"* no run of this case had other work below {CLEAN_OTHER} cores: disturbed.")
    out.append("")
    for key, name in (("bare", "bare baseline"), ("same", "bare same pages")):
        if key not in results or "page" not in results:
            continue
        page, bare = results["page"], results[key]
        per_round = [p / b for p, b in zip(page.round_rps, bare.round_rps, strict=True)]
        ratio = statistics.median(per_round)
        ok = ratio >= TARGET_RATIO
        out.append(
            f"tracking page / {name + ':':<16} {ratio:.2f} (median of the rounds: "
            f"{', '.join(f'{r:.2f}' for r in per_round)}); best runs {page.rps / bare.rps:.2f}, "
            f"by CPU per request {page.alone_rps / bare.alone_rps:.2f}"
            f"  (target >= {TARGET_RATIO})  {'OK' if ok else 'MISSED'}"
        )
    if "poll" in results and "page" in results:
        out.append(
            f"304 poll / tracking page:      {results['poll'].rps / results['page'].rps:.2f}"
        )
    if "page" in results:
        p99 = results["page"].p99_ms
        ok = p99 < TARGET_P99_MS
        out.append(
            f"tracking page p99:             {p99:.1f} ms  (target < {TARGET_P99_MS:.0f} ms"
            f" at {args.connections} connections)  {'OK' if ok else 'MISSED'}"
        )
    if "poll" in results:
        out.append(f"304 poll p99:                  {results['poll'].p99_ms:.1f} ms")
    floor = args.connections / (TARGET_P99_MS / 1000)
    out.append(
        f"(wrk is a closed loop: mean latency = {args.connections} connections / req/s, so p99 <"
        f" {TARGET_P99_MS:.0f} ms needs more than {floor:,.0f} req/s whatever the spread)"
    )
    if sizes:
        total = sum(w for w, _ in sizes.values())
        ok = total < TARGET_FIRST_LOAD
        parts = " + ".join(f"{k} {w:,}" for k, (w, _) in sizes.items())
        plain = sum(p for _, p in sizes.values())
        out.append(
            f"first load, gzip on the wire (heaviest status): {total:,} B = {parts}"
            f"  ({plain:,} B decoded)"
            f"  (target < {TARGET_FIRST_LOAD:,} B)  {'OK' if ok else 'MISSED'}"
        )
    print("\n" + "\n".join(out) + "\n", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--db", default="portal_bench")
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432",
        help="server URL without the database name (127.0.0.1 only)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep an existing, already seeded database of the same size",
    )
    parser.add_argument("--sample", type=int, default=2000, help="tokens used by the load")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (both apps)")
    parser.add_argument("--duration", type=int, default=20, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--no-gzip",
        dest="gzip",
        action="store_false",
        help="load without Accept-Encoding: gzip (default: gzip, like phones)",
    )
    parser.add_argument(
        "--explain", action="store_true", help="print EXPLAIN ANALYZE of the page's queries"
    )
    parser.add_argument("--no-load", action="store_true", help="seed (and explain) only")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare baseline")
    parser.add_argument(
        "--cases",
        default="bare,same,page,poll",
        help="which loads to run (comma-separated): bare (one constant view), same (the"
        " sample's own pages from memory), page, poll",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "portal-bench",
        help="token sample, wrk scripts, server logs, results",
    )
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds: each runs every case once, in turn (a disturbed run is retried); the"
        " ratios are the median of the rounds', the table shows each case's best run",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=180,
        help="seconds to wait for other load on the machine to stop, per run",
    )
    parser.add_argument("--verbose", action="store_true", help="also print wrk's own output")
    args = parser.parse_args(argv)
    if "127.0.0.1" not in args.pg:
        parser.error("--pg must point at 127.0.0.1")

    args.workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGINT, _on_signal)  # also when started in the background
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    started = time.monotonic()
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping servers", file=sys.stderr)
        return 130
    finally:
        stop_all()
        log(f"done in {time.monotonic() - started:.0f}s")


def _run(args: argparse.Namespace) -> int:
    must_seed = asyncio.run(prepare_database(args))
    migrate(args)
    if must_seed:
        t0 = time.monotonic()
        log(f"seeding {args.orders:,} orders")
        asyncio.run(seed(args))
        log(f"seeded in {time.monotonic() - t0:.0f}s")
    sample = asyncio.run(make_sample(args))
    sample_path = args.workdir / f"{args.db}.tokens.tsv"
    with sample_path.open("w") as f:
        f.write("token\torder_id\tversion\tlocale\tstatus\tetag\n")
        for s in sample:
            f.write(f"{s.token}\t{s.order_id}\t{s.version}\t{s.locale}\t{s.status}\t{s.etag}\n")
    statuses = statistics.multimode([s.status for s in sample])
    log(
        f"sample: {len(sample):,} tokens across ids {min(s.order_id for s in sample):,}.."
        f"{max(s.order_id for s in sample):,} -> {sample_path} (commonest status {statuses})"
    )

    if args.explain:
        asyncio.run(explain(args, sample))
    if args.no_load:
        return 0

    cases_wanted = {c.strip() for c in args.cases.split(",")}
    page_lua = write_lua(args.workdir, sample, "page", args.gzip, args.seed)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    pythonpath = f"{ROOT / 'bench'}:{ROOT}"
    results: dict[str, RunResult] = {}
    sizes: dict[str, tuple[int, int]] = {}

    # The bare baselines: one constant view, and the sample's own pages held in memory.
    # Every server is started first and stays up (idle but for its turn): see `rounds`.
    baselines = {"bare": ("constant", "bare baseline"), "same": ("sample", "bare same pages")}
    servers: list[Server] = []
    cases: list[Case] = []
    try:
        for key, (pages, label) in baselines.items():
            if key not in cases_wanted or args.no_bare:
                continue
            port = free_port()
            bare = Server(
                f"bare-{pages}",
                [PY, str(ROOT / "bench" / "bare_app.py"), HOST, str(port), str(args.workers)],
                {
                    **base_env,
                    "PYTHONPATH": pythonpath,
                    "BARE_PAGES": pages,
                    "BARE_SAMPLE": str(sample_path),
                    "BARE_DATABASE_URL": pg_url(args),
                },
                port,
                args.workdir,
            )
            log(f"{label}: bare_app.py (BARE_PAGES={pages}), port {port}")
            servers.append(bare)
            bare.start()
            cases.append(Case(key, label, bare, page_lua))

        port = free_port()
        app_env = {
            **base_env,
            "PYTHONPATH": str(ROOT),
            "PORTAL_DATABASE_URL": pg_url(args),
            "PORTAL_SECRET_KEY": BENCH_SECRET,
            "PORTAL_BASE_URL": BASE_URL,
            "PORTAL_RUN_SCHEDULER": "0",
            "PORTAL_LOG_LEVEL": "WARNING",
        }
        app = Server(
            "app",
            [
                PY,
                "-m",
                "portal",
                "serve",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            app_env,
            port,
            args.workdir,
        )
        log(f"app: python -m portal serve, {args.workers} workers, port {port}")
        servers.append(app)
        app.start()
        check_app(port, sample)
        # The heaviest first load among one order of each status (a ready pickup has a QR).
        by_status = {s.status: s for s in sample}
        loads = {st: first_load(port, s.token) for st, s in sorted(by_status.items())}
        heaviest = max(loads, key=lambda st: sum(w for w, _ in loads[st].values()))
        sizes = loads[heaviest]
        log(
            "first load (gzip bytes) by status: "
            + ", ".join(f"{st} {sum(w for w, _ in v.values()):,}" for st, v in loads.items())
        )
        if "page" in cases_wanted:
            cases.append(Case("page", "tracking page", app, page_lua))
        if "poll" in cases_wanted:
            # Browsers poll with the cookies the page set (the CSRF cookie): without them
            # every poll answer would mint and set a new one.
            _, headers, _ = http_get(port, f"/t/{sample[0].token}")
            cookie = headers.get("set-cookie", "").split(";")[0]
            poll_lua = write_lua(args.workdir, sample, "poll", args.gzip, args.seed, cookie)
            cases.append(Case("poll", "304 poll", app, poll_lua))
        results = rounds(args, cases)
    finally:
        for server in reversed(servers):
            server.stop()
    lines = print_table(results, sizes, args)
    (args.workdir / f"{args.db}.result.json").write_text(
        json.dumps(
            {
                "orders": args.orders,
                "table": lines,
                "runs": {k: {**r.__dict__, "wrk_text": r.wrk_text} for k, r in results.items()},
                "first_load": sizes,
            },
            indent=2,
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
