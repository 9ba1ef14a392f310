"""Shared fixtures: real databases (SQLite file and PostgreSQL), a fake MessageBird, a clock.

Every test that takes `db_url` (directly or through `rt`/`client`) runs twice: on SQLite and
on PostgreSQL. PostgreSQL gets a fresh database per test run, migrated with the real
`python -m portal migrate`; tests then start from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import asyncpg
import httpx
import pytest
from litestar import Litestar

from portal import db
from portal.app import create_app
from portal.db.tables import ALL_TABLES
from portal.runtime import Runtime, build_runtime
from portal.settings import Settings
from tests.fakes.clock import ManualClock
from tests.fakes.messagebird_server import FakeMessageBird
from tests.fakes.shop_receiver import ShopReceiver

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("PORTAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_SECRET = "test-secret-key-0123456789abcdef0123456789abcdef"
BASE_URL = "http://portal.test"


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, in a thread of its own: the sync
    Playwright API keeps an event loop marked as running in the main thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def migrate(url: str) -> None:
    env = {**os.environ, "PORTAL_DATABASE_URL": url, "PORTAL_SECRET_KEY": TEST_SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "portal", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"migrate failed for {url.split('@')[-1]}:\n{done.stdout}\n{done.stderr}"
        )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"portal_test_{uuid.uuid4().hex[:10]}"
    admin = urlparse(PG_ADMIN_URL)

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        run_async(admin_sql(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is needed at {admin.hostname}:{admin.port} ({exc}); see .ci/run")
    url = admin._replace(path=f"/{name}").geturl()
    migrate(url)
    yield url
    run_async(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _empty_pg(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        names = ", ".join(f'"{t._meta.tablename}"' for t in ALL_TABLES)
        await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "portal.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_url")
    run_async(_empty_pg(url))
    return url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake_mb(clock: ManualClock) -> Iterator[FakeMessageBird]:
    """MessageBird on the test's clock (its list filters by creation time)."""
    with FakeMessageBird(access_key="test_key") as fake:
        fake.clock = clock.now
        yield fake
        assert not fake.server_errors, fake.server_errors


@pytest.fixture
def settings(db_url: str, fake_mb: FakeMessageBird) -> Settings:
    """Real MessageBird gateway, pointed at the fake server."""
    return Settings(
        database_url=db_url,
        base_url=BASE_URL,
        secret_key=TEST_SECRET,
        messagebird_access_key="test_key",
        messagebird_endpoint=fake_mb.base_url,
        messagebird_originator="TestShop",
        sms_send_timeout=1.0,
        run_scheduler=False,
    )


@pytest.fixture
async def rt(settings: Settings, clock: ManualClock) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings, clock=clock)
    await db.start(runtime.engine)
    yield runtime
    await db.stop(runtime.engine)


@pytest.fixture
def app(rt: Runtime) -> Litestar:
    return create_app(rt.settings, runtime=rt, run_scheduler=False)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP into the app on the test's own event loop (the database pool lives there).
    The app's lifespan would only open that pool and the scheduler: `rt` does the one,
    tests drive the other by hand."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 51000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as test_client:
        yield test_client


@pytest.fixture
async def api_key(rt: Runtime) -> str:
    from portal.services.api_keys import create_api_key

    return await create_api_key(rt, "tests")


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


SHOP_WEBHOOK_SECRET = "shop-webhook-secret-0123456789abcdef"


@pytest.fixture
def shop_receiver() -> Iterator[ShopReceiver]:
    """The shop's webhook endpoint: records calls, checks their signatures, fails on demand."""
    with ShopReceiver(secret=SHOP_WEBHOOK_SECRET) as receiver:
        yield receiver
        assert not receiver.server_errors, receiver.server_errors
