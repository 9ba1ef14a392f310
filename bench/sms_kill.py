"""At most once, measured: real `python -m scheduler` processes, the fake MessageBird, a kill -9.

N urgent texts (no quiet hours) are queued. A first dispatcher starts and is killed with
SIGKILL `--kill-after` seconds in, while it holds claims and has sends in flight; a second one
starts at once and runs until no text is queued, sending or settling, then gets SIGTERM.

`--chaos` adds the failures of issue 18: MessageBird answers 20 texts after 12 s (past the
10 s send timeout; it took them), drops the answer of 20 more (it took them, then closed the
connection), and the database refuses every "sent" outcome write for the first seconds (a
trigger). Without it, MessageBird answers every text in 1 s (so sends are in flight).

Prints: texts lost (never reached MessageBird), doubled (reached it more than once), final
states, lookups made, and for the texts the killed dispatcher held, the longest delay after
the kill until MessageBird had them (1 s resolution) and until the portal recorded them.

    .venv/bin/python bench/sms_kill.py                 # SQLite in a temporary directory
    .venv/bin/python bench/sms_kill.py --chaos
    .venv/bin/python bench/sms_kill.py --texts 500 --database-url postgresql://...  # empty db
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.messagebird_server import FakeMessageBird  # noqa: E402
from tests.fakes.outbox import (  # noqa: E402
    ALLOW_OUTCOMES,
    REFUSE_OUTCOMES,
    kind_of,
    queue_urgent_texts,
    run_sql,
)

SECRET = "bench-secret-key-0123456789abcdef0123456789abcdef"  # noqa: S105


def sql(url: str, statements: list[str]) -> list[tuple[Any, ...]]:
    return asyncio.run(run_sql(url, statements))


async def queue(url: str, texts: int) -> None:
    from portal import db
    from portal.runtime import build_runtime
    from portal.settings import Settings

    rt = build_runtime(Settings(database_url=url, secret_key=SECRET))
    await db.start(rt.engine)
    await queue_urgent_texts(rt, texts, "bench-kill")
    await db.stop(rt.engine)


def scheduler(url: str, fake: FakeMessageBird, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": url,
        "PORTAL_SECRET_KEY": SECRET,
        "PORTAL_BASE_URL": "http://portal.test",
        "MESSAGEBIRD_ACCESS_KEY": "bench",
        "MESSAGEBIRD_ENDPOINT": fake.base_url,
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "scheduler"], cwd=ROOT, env=env, stdout=out, stderr=out
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--kill-after", type=float, default=3.0)
    parser.add_argument("--chaos", action="store_true")
    parser.add_argument("--database-url", help="an empty database (default: a new SQLite file)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sms-kill-"))
    url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    kind = kind_of(url)
    subprocess.run(
        [sys.executable, "-m", "portal", "migrate"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "PORTAL_DATABASE_URL": url, "PORTAL_SECRET_KEY": SECRET},
    )
    asyncio.run(queue(url, args.texts))
    if args.chaos:
        sql(url, REFUSE_OUTCOMES[kind])
    with FakeMessageBird(access_key="bench") as fake:
        if args.chaos:
            fake.delay_next(20, seconds=12)
            fake.drop_next(20)
        else:
            fake.delay_next(args.texts, seconds=1)
        first = scheduler(url, fake, work / "first.log")
        time.sleep(args.kill_after)
        held = {r[0] for r in sql(url, ["SELECT id FROM sms_message WHERE status = 'sending'"])}
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed = datetime.now(UTC)
        second = scheduler(url, fake, work / "second.log")
        if args.chaos:
            time.sleep(5)
            sql(url, ALLOW_OUTCOMES[kind])
        started = time.monotonic()
        busy = "SELECT count(*) FROM sms_message WHERE status IN ('queued','sending','settling')"
        while sql(url, [busy])[0][0] and time.monotonic() - started < 900:
            time.sleep(1)
        second.send_signal(signal.SIGTERM)
        second.wait(60)
        messages, requests = fake.messages, fake.requests
        created = {
            str(r["reference"]): datetime.fromisoformat(r["createdDatetime"])
            for r in fake._resources.values()
        }
    rows = sql(url, ["SELECT id, status, sent_at, status_at FROM sms_message"])
    copies = Counter(str(m["reference"]) for m in messages)
    states = Counter(r[1] for r in rows)
    lost = [r for r in rows if copies[str(r[0])] == 0]
    doubled = [ref for ref, n in copies.items() if n > 1]
    late = [(created[str(i)] - killed).total_seconds() for i in held if str(i) in created]

    def when(value: Any) -> datetime:
        return value if isinstance(value, datetime) else datetime.fromisoformat(value)

    recorded = [(when(r[2] or r[3]) - killed).total_seconds() for r in rows if r[0] in held]
    print(f"texts {args.texts}{' (chaos)' if args.chaos else ''}, database {kind}")
    print(f"held by the killed dispatcher: {len(held)}")
    print(f"final states: {dict(states)}")
    print(f"lost: {len(lost)}, doubled: {len(doubled)}")
    print(f"lookups (GET /messages): {sum(1 for q in requests if q['method'] == 'GET')}")
    print(f"of those held, reached MessageBird after the kill: {sum(1 for s in late if s > 0)}")
    print(f"longest delay after the kill until MessageBird had one: {max(late, default=0):.0f} s")
    print(f"longest delay after the kill until recorded: {max(recorded, default=0):.1f} s")
    print(f"logs: {work}")


if __name__ == "__main__":
    main()
