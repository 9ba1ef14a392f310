"""A shopper's link flooding their own phone: N delivery-day changes posted from one link in
S seconds to a real `python -m portal serve` (its scheduler on: texts and shop webhook calls
leave as they would), MessageBird and the shop's webhook endpoint faked (tests/fakes). After
the burst and a wait, it prints what was written and what left.

    .venv/bin/python bench/shopper_burst.py                     # SQLite, 577 posts in 20 s
    .venv/bin/python bench/shopper_burst.py --db postgresql://postgres@127.0.0.1:5432/burst
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import TEST_SECRET  # noqa: E402
from tests.factories import order_payload  # noqa: E402
from tests.fakes.messagebird_server import FakeMessageBird  # noqa: E402
from tests.fakes.shop_receiver import ShopReceiver  # noqa: E402
from tests.web.test_operations import run_cli  # noqa: E402
from tests.web.test_serving import free_port  # noqa: E402

HOOK_SECRET = "bench-hook-secret-0123456789"  # noqa: S105
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def burst(base: str, auth: dict[str, str], posts: int, seconds: float) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        eta = (datetime.now(UTC) + timedelta(days=3)).replace(hour=11, minute=0)
        order = order_payload(external_id="BURST-1")
        made = (await client.post("/api/v1/orders", json=order, headers=auth)).json()
        shipped = await client.post(
            "/api/v1/orders/BURST-1/events",
            json={
                "type": "shipped",
                "shipment": {"tracking_number": "T1", "carrier": "BRT", "eta": eta.isoformat()},
            },
            headers=auth,
        )
        assert shipped.status_code == 201, shipped.text
        path = made["tracking_url"].split("/t/", 1)[1]
        page = await client.get(f"/t/{path}")
        token = CSRF.search(page.text).group(1)
        action = re.search(r'action="(/t/[^"]+/parcels/\d+/day)"', page.text).group(1)
        days = sorted(set(re.findall(r'name="day" value="(\d{4}-\d\d-\d\d)"', page.text)))
        assert len(days) >= 2, days
        statuses: dict[int, int] = {}
        start = time.monotonic()

        async def post(n: int) -> None:
            await asyncio.sleep(start + n * seconds / posts - time.monotonic())
            answer = await client.post(
                action, data={"_csrf_token": token, "day": days[n % 2]}, follow_redirects=False
            )
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        await asyncio.gather(*(post(n) for n in range(posts)))
        statuses["elapsed_ms"] = int((time.monotonic() - start) * 1000)
        return statuses


def count(db: str, sql: str) -> int:
    if db.startswith("sqlite:///"):
        with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
            return int(conn.execute(sql).fetchone()[0])
    import asyncpg

    async def go() -> int:
        conn = await asyncpg.connect(db)
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", help="a database URL (default: a new SQLite file)")
    parser.add_argument("--posts", type=int, default=577)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--wait", type=float, default=30.0, help="seconds after the first post")
    args = parser.parse_args()
    db = args.db or f"sqlite:///{tempfile.mkdtemp()}/burst.db"
    port = free_port()
    with FakeMessageBird(access_key="bench_key") as mb, ShopReceiver(secret=HOOK_SECRET) as shop:
        env = {
            **os.environ,
            "PORTAL_DATABASE_URL": db,
            "PORTAL_SECRET_KEY": TEST_SECRET,
            "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
            "MESSAGEBIRD_ACCESS_KEY": "bench_key",
            "MESSAGEBIRD_ENDPOINT": mb.base_url,
            "PORTAL_SHOP_WEBHOOK_URL": shop.url,
            "PORTAL_SHOP_WEBHOOK_SECRET": HOOK_SECRET,
            "PORTAL_RUN_SCHEDULER": "1",
        }
        for args_ in (["migrate"], ["create-api-key", "bench"]):
            done = run_cli(db, *args_)
            assert done.returncode == 0, done.stderr
        key = done.stdout.strip().splitlines()[-1]
        server = subprocess.Popen(
            [sys.executable, "-m", "portal", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.2)
            first = time.monotonic()
            statuses = asyncio.run(
                burst(base, {"Authorization": f"Bearer {key}"}, args.posts, args.seconds)
            )
            time.sleep(max(0.0, first + args.wait - time.monotonic()))
            sent_changes = sum(1 for m in mb.messages if "delivery" in m.get("body", "").lower())
            print(f"posts: {args.posts} in {statuses.pop('elapsed_ms')} ms; answers: {statuses}")
            kind = "kind = 'delivery_changed'"
            print(
                "texts written:",
                count(db, f"SELECT count(*) FROM sms_message WHERE {kind}"),
                "| of which superseded before sending:",
                count(db, f"SELECT count(*) FROM sms_message WHERE {kind} AND status = 'dropped'"),
                "| sent within the wait:",
                count(db, f"SELECT count(*) FROM sms_message WHERE {kind} AND sent_at IS NOT NULL"),
                f"(all texts at the fake MessageBird: {len(mb.messages)}, "
                f"about the change: {sent_changes})",
            )
            print("feed rows:", count(db, "SELECT count(*) FROM delivery_change"))
            print(
                "shop webhook events written:",
                count(db, "SELECT count(*) FROM shop_event"),
                "| superseded:",
                count(db, "SELECT count(*) FROM shop_event WHERE status = 'superseded'"),
                "| calls the shop received:",
                len(shop.calls),
            )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
