"""`python -m portal COMMAND`: serve, migrate, seed-demo, create-api-key, create-clerk,
set-password, disable-clerk (contract.md), shop-events retry-failed."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import cast

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
    clerk = sub.add_parser(
        "create-clerk", help="a store clerk (or, with --role manager, a manager of every store)"
    )
    clerk.add_argument("username", help="3-64 characters: a-z, 0-9, dot, underscore, hyphen")
    clerk.add_argument("--store", help="the clerk's store code (a manager has none)")
    clerk.add_argument("--role", choices=["clerk", "manager"], default="clerk")
    password = sub.add_parser(
        "set-password",
        help="a new password (from standard input) for an account: ends its sessions and "
        "unlocks its sign-in",
    )
    password.add_argument("username")
    disable = sub.add_parser(
        "disable-clerk", help="disable an account: it cannot sign in, its sessions end"
    )
    disable.add_argument("username")
    shop_events = sub.add_parser("shop-events", help="the outgoing shop webhook's events")
    shop_events_sub = shop_events.add_subparsers(dest="shop_events_command", required=True)
    shop_events_sub.add_parser(
        "retry-failed", help="send the events the shop refused for 3 days again, from now"
    )
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
    if args.command == "create-clerk":
        return create_clerk(settings, args.username, args.store, args.role)
    if args.command == "set-password":
        return set_password(settings, args.username)
    if args.command == "disable-clerk":
        return disable_clerk(settings, args.username)
    if args.command == "shop-events":
        return retry_failed_shop_events(settings)
    if args.command == "seed-demo":
        from portal.demo import seed_demo

        asyncio.run(_with_runtime(settings, seed_demo))
        return 0
    if args.command == "serve":
        from portal import serving

        if args.workers > 1 and settings.run_scheduler:
            logging.getLogger(__name__).warning(
                "several workers each run the scheduler; SKIP LOCKED keeps SMS single, but "
                "PORTAL_RUN_SCHEDULER=0 with one `python -m scheduler` is the usual set-up"
            )
        return serving.serve(
            "portal.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=None,
            access_log=False,
            **serving.proxy_options(settings),
        )
    return 2  # pragma: no cover - argparse rejects unknown commands


def read_password(command: str) -> str | None:
    """From a terminal: asked twice, unechoed. Otherwise: the first line of standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            print(f"{command}: the two passwords differ", file=sys.stderr)
            return None
        return first
    line = sys.stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


def create_clerk(settings: Settings, username: str, store: str | None, role: str) -> int:
    """Exit 0 when created; 2, with the reason on stderr and nothing written, when refused."""
    from portal.services.errors import ServiceError
    from portal.services.staff import CreatedStaff, create_staff

    password = read_password("create-clerk")
    if password is None:
        return 2
    try:
        created = cast(
            CreatedStaff,
            asyncio.run(
                _with_runtime(
                    settings,
                    lambda rt: create_staff(rt, username, password, role=role, store_code=store),
                )
            ),
        )
    except ServiceError as exc:
        print(f"create-clerk: {exc.detail}", file=sys.stderr)
        return 2
    where = f"store {created.store_code}" if created.store_code else "all stores"
    print(f"created {created.role} {created.username} ({where})")
    return 0


def set_password(settings: Settings, username: str) -> int:
    """Exit 0 when set (every session of the account ended, its sign-in unlocked); 2, with
    the reason on stderr and nothing written, when refused."""
    from portal.services.errors import ServiceError
    from portal.services.staff import set_password as set_staff_password

    password = read_password("set-password")
    if password is None:
        return 2
    try:
        asyncio.run(
            _with_runtime(
                settings,
                lambda rt: set_staff_password(rt, username, password, by="command line"),
            )
        )
    except ServiceError as exc:
        print(f"set-password: {exc.detail}", file=sys.stderr)
        return 2
    print(f"password set for {username.strip().lower()}; its sessions are ended")
    return 0


def disable_clerk(settings: Settings, username: str) -> int:
    """Exit 0 when disabled (its sessions end at their next request); 2 for no such account."""
    from portal.services.staff import set_active

    name = username.strip().lower()
    found = asyncio.run(
        _with_runtime(settings, lambda rt: set_active(rt, name, False, by="command line"))
    )
    if not found:
        print(f"disable-clerk: there is no account {name!r}", file=sys.stderr)
        return 2
    print(f"disabled {name}; its sessions are ended")
    return 0


def retry_failed_shop_events(settings: Settings) -> int:
    from portal.services.shop_events import retry_failed

    requeued = cast(int, asyncio.run(_with_runtime(settings, retry_failed)))
    print(f"requeued {requeued} failed shop event(s)")
    if requeued and not settings.shop_webhook_url:
        print("PORTAL_SHOP_WEBHOOK_URL is not set: they wait until it is", file=sys.stderr)
    return 0
