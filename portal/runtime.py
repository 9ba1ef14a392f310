"""What every service call needs, built once per process from settings (the composition root)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment
from piccolo.engine.base import Engine
from piccolo.query import Select

from portal import db
from portal.clock import Clock, SystemClock
from portal.settings import Settings
from portal.sms.gateway import DevInboxGateway, Gateway
from portal.sms.lease import Dispatching
from portal.sms.messagebird import MessageBirdGateway
from portal.templating import make_environment


@dataclass(slots=True)
class Runtime:
    settings: Settings
    engine: Engine
    gateway: Gateway
    clock: Clock
    templates: Environment
    # Small per-process caches of rarely changing reads (e.g. the list of stores).
    cache: dict[str, Any] = field(default_factory=dict)
    # The SMS dispatcher of this process: its claims' owner name, and its stop.
    dispatching: Dispatching = field(default_factory=Dispatching)

    def writing(self):  # type: ignore[no-untyped-def]
        return db.writing(self.engine)

    @property
    def is_sqlite(self) -> bool:
        return db.is_sqlite(self.engine)

    def for_update(self, query: Select, *, skip_locked: bool = False) -> Select:
        """Lock the rows `query` reads (of its own table) until the transaction ends:
        FOR UPDATE [SKIP LOCKED] on PostgreSQL. SQLite has no row locks and needs none:
        its write transactions (BEGIN IMMEDIATE) run one at a time."""
        if self.is_sqlite:
            return query
        return query.lock_rows("UPDATE", skip_locked=skip_locked, of=(query.table,))


def make_gateway(settings: Settings) -> Gateway:
    if settings.messagebird_access_key:
        return MessageBirdGateway(
            settings.messagebird_access_key,
            endpoint=settings.messagebird_endpoint,
            originator=settings.messagebird_originator,
            report_url=settings.status_report_url,
            timeout=settings.sms_send_timeout,
        )
    return DevInboxGateway()


def build_runtime(
    settings: Settings, *, clock: Clock | None = None, gateway: Gateway | None = None
) -> Runtime:
    engine = db.make_engine(settings.database_url)
    db.bind(engine)
    return Runtime(
        settings=settings,
        engine=engine,
        gateway=gateway or make_gateway(settings),
        clock=clock or SystemClock(),
        templates=make_environment(),
    )
