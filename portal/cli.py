"""`python -m portal COMMAND`: serve, migrate, seed-demo, create-api-key (contract.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from portal.logging_setup import configure_logging
from portal.settings import Settings, from_env_or_explain


async def migrate(settings: Settings) -> None:
    """Apply Piccolo migrations to PORTAL_DATABASE_URL (the same code path tests use)."""
    os.environ["PORTAL_DATABASE_URL"] = settings.database_url
    os.environ["PICCOLO_CONF"] = "portal.piccolo_conf"
    from piccolo.apps.migrations.commands.forwards import run_forwards

    from portal import db

    engine = db.make_engine(settings.database_url)
    if db.is_sqlite(engine):
        # WAL: readers (pages) do not wait for the writer (dispatcher, API). Persistent.
        await engine.run_ddl("PRAGMA journal_mode=WAL;")
    result = await run_forwards(app_name="all")
    if not result.success:
        raise SystemExit(f"migrate: {result.message}")


async def _with_runtime(settings: Settings, fn: Callable[..., Awaitable[object]]) -> object:
    from portal import db
    from portal.runtime import build_runtime

    rt = build_runtime(settings)
    await db.start(rt.engine)
    try:
        return await fn(rt)
    finally:
        await db.stop(rt.engine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m portal", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="web (and the scheduler unless PORTAL_RUN_SCHEDULER=0)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    sub.add_parser("migrate", help="apply migrations to PORTAL_DATABASE_URL")
    sub.add_parser("seed-demo", help="a demo shop: a store, orders in several states, an API key")
    key = sub.add_parser("create-api-key", help="print a new API key on the last line")
    key.add_argument("name")
    args = parser.parse_args(argv)

    configure_logging()
    settings = from_env_or_explain()
    if settings is None:
        return 2

    if args.command == "migrate":
        asyncio.run(migrate(settings))
        print("migrations applied")
        return 0
    if args.command == "create-api-key":
        from portal.services.api_keys import create_api_key

        key_value = asyncio.run(_with_runtime(settings, lambda rt: create_api_key(rt, args.name)))
        print(f"API key for {args.name} (shown once, store it now):")
        print(key_value)
        return 0
    if args.command == "seed-demo":
        from portal.demo import seed_demo

        asyncio.run(_with_runtime(settings, seed_demo))
        return 0
    if args.command == "serve":
        import uvicorn

        if args.workers > 1 and settings.run_scheduler:
            logging.getLogger(__name__).warning(
                "several workers each run the scheduler; SKIP LOCKED keeps SMS single, but "
                "PORTAL_RUN_SCHEDULER=0 with one `python -m scheduler` is the usual set-up"
            )
        uvicorn.run(
            "portal.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=None,
            access_log=False,
            proxy_headers=True,
        )
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands
