"""The "bare Litestar" baselines for bench/tracking_page.py.

The tracking page's template, rendered by the app's own Jinja environment and render helper
from constants, with the app's compression setting, the same response headers and no database
while serving. Served as the app is, by portal.serving (uvicorn workers on one port, each
with its own socket): `python bench/bare_app.py HOST PORT WORKERS` (run by the benchmark).
Two kinds of constants (env `BARE_PAGES`):

- `constant` (default): one realistic page for every request, a delivered home delivery
  with 3 lines and 5 events and its returns card (the return window over), no delivery
  card (a delivered order has none).
- `sample`: the very pages the load asks for. At start-up (before it answers /healthz) the
  app reads each token of the benchmark's sample (`BARE_SAMPLE`, the tokens file) from the
  database (`BARE_DATABASE_URL`) through the app's own services, keeps each page's whole
  context in memory and closes the database; a request renders its token's context. So the
  two apps render the same HTML for the same request, and the gap between them is only what
  the page costs beyond rendering it (the lookup, the view, the cards' data, the CSRF
  middleware), not a difference in content.

Both set their start-up heap aside from the cycle collector once started (portal.app's
`settle_heap`), as the app's serving processes do; here it also spares the cycle collector
the sample's contexts. What both leave out on purpose: the database, view building (phone mask, time zone lookup)
and the CSRF middleware (the page's csrf_token() gets a constant).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.config.compression import CompressionConfig
from litestar.params import FromPath
from litestar.utils.scope.state import ScopeState

from portal import db
from portal.app import _static_version, security_headers, settle_heap
from portal.domain.order import Fulfilment, OrderStatus, progress
from portal.domain.phone import mask
from portal.runtime import build_runtime
from portal.services import orders
from portal.services.orders import TrackingState, TrackingView
from portal.services.returns import ReturnsView
from portal.serving import serve
from portal.settings import Settings
from portal.templating import make_environment
from portal.web.render import render
from portal.web.returns_card import returns_context
from portal.web.shopper import PAGE, PAGE_HEADERS, _context, page_context

CSRF_TOKEN = "bench-constant-csrf-token-0123456789abcdef"  # noqa: S105


def sample_view() -> TrackingView:
    """A delivered home delivery with one parcel, 3 lines and 5 events: the commonest page."""
    placed = datetime(2026, 11, 2, 9, 14, tzinfo=UTC)
    shipped = placed + timedelta(hours=26)
    state = TrackingState(order_id=481_516, version=5, status="delivered", locale="it")
    shipment = {
        "id": 211_003,
        "tracking_number": "BRT0000481516",
        "carrier": "BRT",
        "eta": shipped + timedelta(days=2),
        "status": "delivered",
    }
    events = [
        ("delivered", shipped + timedelta(hours=30), 211_003, None),
        ("out_for_delivery", shipped + timedelta(hours=22), 211_003, None),
        ("shipped", shipped, 211_003, None),
        ("packed", placed + timedelta(hours=7), None, None),
        ("placed", placed, None, None),
    ]
    return TrackingView(
        state=state,
        order_number="SO-00481516",
        fulfilment=Fulfilment.DELIVERY,
        first_name="Giulia",
        masked_phone=mask("+393401234567"),
        currency="EUR",
        total_minor=8_730,
        placed_at=placed,
        timezone="Europe/Rome",
        steps=progress(Fulfilment.DELIVERY, OrderStatus.DELIVERED),
        lines=[
            {
                "name": "Organic cotton T-shirt, M",
                "sku": "TSH-014",
                "quantity": 2,
                "unit_price_minor": 1_990,
            },
            {
                "name": "Ceramic mug, 350 ml",
                "sku": "MUG-003",
                "quantity": 1,
                "unit_price_minor": 1_250,
            },
            {
                "name": "Linen tea towel (set of 2)",
                "sku": "TWL-021",
                "quantity": 1,
                "unit_price_minor": 3_500,
            },
        ],
        shipments=[shipment],
        events=[
            {"type": t, "occurred_at": at, "shipment": sid, "note": note, "parcel": None}
            for t, at, sid, note in events
        ],
        store=None,
        address={"city": "Milano", "postcode": "20121", "country": "IT"},
    )


def constant_context(rt: Any, token: str) -> dict[str, Any]:
    """The page context of `sample_view()` as the app builds it (shopper.page_context), with
    its returns card: every delivered order's page has one. Here the return window is over
    (the card says when it closed), as on most delivered pages of the benchmark's sample;
    built from constants, so the page is the same on any day."""
    view = sample_view()
    context = _context(rt, token, view)
    closes = view.events[0]["occurred_at"] + timedelta(days=rt.settings.return_days)
    card = ReturnsView(window_open=False, closes_at=closes)
    context.update(returns_context(rt, card, context["locale"]))
    return context


def sample_tokens(sample: Path) -> list[str]:
    """The tokens of the sample file tracking_page.py writes (a header line, then TSV)."""
    return [line.split("\t")[0] for line in sample.read_text().splitlines()[1:]]


async def sample_contexts(database_url: str, sample: Path) -> dict[str, dict[str, Any]]:
    """Each sample token's page context, as the app builds it, read once."""
    rt = build_runtime(Settings(database_url=database_url, run_scheduler=False))
    db.bind(rt.engine)
    await db.start(rt.engine)
    try:
        contexts = {}
        for token in sample_tokens(sample):
            view = await orders.tracking_page(rt, token)
            if view is not None:
                contexts[token] = await page_context(rt, token, view)
        return contexts
    finally:
        await db.stop(rt.engine)


def create_app() -> Litestar:
    env = make_environment()
    versions = _static_version()
    env.globals["static"] = lambda name: f"/static/{name}?v={versions.get(name, '0')}"
    env.globals["dev_inbox"] = False
    rt = SimpleNamespace(templates=env, settings=Settings(secret_key=CSRF_TOKEN))
    constant = constant_context(rt, "bench-token-0123456789")
    pages: dict[str, dict[str, Any]] = {}

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if os.environ.get("BARE_PAGES", "constant") == "sample":
            pages.update(
                await sample_contexts(
                    os.environ["BARE_DATABASE_URL"], Path(os.environ["BARE_SAMPLE"])
                )
            )
        settle_heap(env)  # as the app's serving processes do
        yield

    @get("/t/{token:str}")
    async def page(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[Any]:
        ScopeState.from_scope(request.scope).csrf_token = CSRF_TOKEN  # as the middleware would
        return render(request, PAGE, pages.get(token, constant), headers=PAGE_HEADERS)

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app = Litestar(
        route_handlers=[page, healthz],
        lifespan=[lifespan],
        # The same setting as portal/app.py.
        compression_config=CompressionConfig(
            backend="gzip", minimum_size=512, gzip_compress_level=6
        ),
        middleware=[security_headers],
        debug=False,
        logging_config=None,
    )
    app.state.rt = rt
    return app


if __name__ == "__main__":
    host, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    raise SystemExit(
        serve(
            "bare_app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            log_level="warning",
        )
    )
