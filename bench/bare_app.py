"""The "bare Litestar" baseline for bench/tracking_page.py.

The tracking page's template, rendered by the app's own Jinja environment and render helper
from a constant, realistic TrackingView, with the app's compression setting, the same response
headers and no database. `uvicorn bare_app:create_app --factory` (run by the benchmark).

What it leaves out on purpose, so that the gap to the real page is what the page costs on top
of "Litestar + this template": the database, view building (phone mask, time zone lookup) and
the CSRF middleware (the page's csrf_token() gets a constant).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.config.compression import CompressionConfig
from litestar.params import FromPath
from litestar.utils.scope.state import ScopeState

from portal.app import _static_version, security_headers
from portal.domain.order import Fulfilment, OrderStatus, progress
from portal.domain.phone import mask
from portal.services.orders import TrackingState, TrackingView
from portal.settings import Settings
from portal.templating import make_environment
from portal.web.render import render
from portal.web.shopper import PAGE, PRIVATE_HEADERS, _context

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


def create_app() -> Litestar:
    env = make_environment()
    versions = _static_version()
    env.globals["static"] = lambda name: f"/static/{name}?v={versions.get(name, '0')}"
    env.globals["dev_inbox"] = False
    rt = SimpleNamespace(templates=env, settings=Settings(secret_key=CSRF_TOKEN))
    view = sample_view()

    @get("/t/{token:str}")
    async def page(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[Any]:
        ScopeState.from_scope(request.scope).csrf_token = CSRF_TOKEN  # as the middleware would
        return render(
            request,
            PAGE,
            _context(rt, token, view),  # type: ignore[arg-type]
            headers={**PRIVATE_HEADERS, "Cache-Control": "no-store"},
        )

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app = Litestar(
        route_handlers=[page, healthz],
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
