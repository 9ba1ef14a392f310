"""create_app(settings) -> Litestar: wiring only (design.md §3)."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from jinja2 import Environment
from litestar import Litestar
from litestar.config.compression import CompressionConfig
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router
from litestar.stores.memory import MemoryStore
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from portal import db
from portal.clock import Clock
from portal.domain.locale import PAGE_LOCALES
from portal.logging_setup import configure_logging
from portal.metrics import count_response
from portal.runtime import Runtime, build_runtime
from portal.settings import Settings, from_env_or_explain
from portal.sms.gateway import Gateway
from portal.templating import STATIC_DIR, page_gettext
from portal.web.api import ShopApi
from portal.web.api_schemas import StrictStructSchemaPlugin
from portal.web.bodies import PortalRequest, check_query
from portal.web.clerk import ClerkController
from portal.web.clerk_auth import (
    SignInRequired,
    current_staff,
    handle_sign_in_required,
    session_config,
)
from portal.web.counter import CounterController
from portal.web.counter_returns import CounterReturnsController
from portal.web.csrf import PortalCSRFMiddleware
from portal.web.dev import DevController
from portal.web.errors import EXCEPTION_HANDLERS
from portal.web.health import healthz, metrics, readyz
from portal.web.labels import PAGE_WORDS
from portal.web.limits import LoginLimiter, MissLimiter
from portal.web.returns_card import ReturnsController
from portal.web.shopper import ShopperController
from portal.web.webhooks import MessageBirdWebhooks

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]


def security_headers(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *_SECURITY_HEADERS]
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


def allow_every_method(app: Litestar) -> None:
    """Litestar (2.25) makes a path's automatic OPTIONS answer when the path's first handler
    is registered, and its `Allow` reads that first route's methods: `GET, OPTIONS` for
    /api/v1/refunds/{id}, which also takes PATCH. Point each one at the path's whole route."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or "OPTIONS" not in route.route_handler_map:
            continue
        answer = route.route_handler_map["OPTIONS"][0].fn
        code = getattr(answer, "__code__", None)
        cells = dict(zip(code.co_freevars, answer.__closure__ or (), strict=False)) if code else {}
        if "self" in cells and isinstance(cells["self"].cell_contents, HTTPRoute):
            cells["self"].cell_contents = route


def _static_version() -> dict[str, str]:
    """Content hashes for cache busting: static files are cached for a year."""
    versions = {}
    for path in STATIC_DIR.iterdir():
        if path.is_file():
            versions[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    return versions


def settle_heap(templates: Environment) -> None:
    """Once a serving process has started: compile every template, then set aside what
    exists by now (modules, the app, the templates) from the cycle collector (gc.freeze).

    Those objects live as long as the process, yet each full collection walked all of them:
    under load, about every thousand pages, a pause of 70 to 120 ms in which the worker
    served nobody (the bench sample's pages, 32 at once, in one process). After this a full
    collection walks only what came later (a few ms). Only for serving processes: in a test
    run, apps come and go, and what is frozen is never collected."""
    for name in templates.list_templates(extensions=["html", "txt"]):
        templates.get_template(name)
    for locale in PAGE_LOCALES:  # what pages load on first use: catalogs, word tables
        page_gettext(locale)("Your order")
        PAGE_WORDS(locale)
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    gateway: Gateway | None = None,
    run_scheduler: bool | None = None,
    runtime: Runtime | None = None,
    serving: bool = False,
) -> Litestar:
    rt = runtime or build_runtime(settings, clock=clock, gateway=gateway)
    with_scheduler = settings.run_scheduler if run_scheduler is None else run_scheduler
    versions = _static_version()
    rt.templates.globals["static"] = lambda name: f"/static/{name}?v={versions.get(name, '0')}"
    rt.templates.globals["dev_inbox"] = (
        not settings.production and not settings.messagebird_access_key
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        db.bind(rt.engine)
        await db.start(rt.engine)
        scheduler = None
        if with_scheduler:
            from scheduler.jobs import build_scheduler

            scheduler = build_scheduler(rt)
            scheduler.start()
        if serving:
            settle_heap(rt.templates)
        try:
            yield
        finally:
            if scheduler is not None:
                # Texts being sent finish and their outcomes are written before the jobs
                # are cancelled and the pool closes: a deploy leaves none "maybe sent".
                await rt.dispatching.stop()
                scheduler.shutdown(wait=False)
                await asyncio.sleep(0)
            await db.stop(rt.engine)

    store = MemoryStore()
    app = Litestar(
        route_handlers=[
            ShopperController,
            ReturnsController,
            ClerkController,
            CounterController,
            CounterReturnsController,
            ShopApi,
            MessageBirdWebhooks,
            DevController,
            healthz,
            readyz,
            metrics,
            create_static_files_router(
                path="/static",
                directories=[STATIC_DIR],
                cache_control=CacheControlHeader(max_age=31_536_000, public=True),
            ),
        ],
        dependencies={
            "rt": Provide(lambda: rt, sync_to_thread=False),
            # A handler that declares `staff: Staff` requires a signed-in clerk or manager.
            "staff": Provide(current_staff),
        },
        lifespan=[lifespan],
        exception_handlers={**EXCEPTION_HANDLERS, SignInRequired: handle_sign_in_required},
        compression_config=CompressionConfig(
            backend="gzip", minimum_size=512, gzip_compress_level=6
        ),
        openapi_config=OpenAPIConfig(
            title="Order portal: shop API",
            version="1.0.0",
            path="/schema",
            render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"])],
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(
                        type="http", scheme="bearer", description="API key"
                    )
                }
            ),
        ),
        # The schema says `additionalProperties: false` for inputs that refuse unknown fields.
        plugins=[StrictStructSchemaPlugin()],
        request_max_body_size=settings.max_body_bytes,
        # Decodes bodies safely and applies the text rule to every API body and form.
        request_class=PortalRequest,
        before_request=check_query,
        middleware=[
            security_headers,
            session_config(settings).middleware,
            # Every form's CSRF check (Litestar's, with a lean path for GET: portal.web.csrf).
            DefineMiddleware(
                PortalCSRFMiddleware,
                config=CSRFConfig(
                    secret=settings.secret_key,
                    cookie_secure=settings.production,
                    cookie_samesite="lax",
                    exclude=["^/api/", "^/webhooks/"],
                ),
            ),
        ],
        stores={"rate_limit": store},
        before_send=[count_response],
        debug=False,
        logging_config=None,
    )
    allow_every_method(app)
    app.state.rt = rt
    app.state.miss_limiter = MissLimiter(store, settings.tracking_rate_limit_per_minute)
    app.state.login_limiter = LoginLimiter(store)
    return app


def app_from_env() -> Litestar:
    """uvicorn's factory (`python -m portal serve`, or uvicorn run by hand). A bad setting
    is one line on stderr and exit code 2, as for every command."""
    configure_logging()
    settings = from_env_or_explain()
    if settings is None:
        raise SystemExit(2)
    return create_app(settings, serving=True)
