"""Jobs: thin and idempotent. Each claims due work through a service, logs counts, returns them.

Registered in one place (`register`) with stable ids, so several processes agree on them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from portal.metrics import JOB_FAILURES, SMS_OUTCOMES
from portal.runtime import Runtime
from portal.services import messaging

log = logging.getLogger(__name__)


async def dispatch_outbox(rt: Runtime) -> dict[str, int]:
    result = await messaging.dispatch_due(rt)
    counts = {
        "claimed": result.claimed,
        "sent": result.sent,
        "retrying": result.retrying,
        "unknown": result.unknown,
        "failed": result.failed,
    }
    for outcome, n in counts.items():
        if n and outcome != "claimed":
            SMS_OUTCOMES.labels(outcome).inc(n)
    if result.claimed:
        log.info("outbox: %s", " ".join(f"{k}={v}" for k, v in counts.items()))
    return counts


def _guarded(
    name: str, job: Callable[[Runtime], Awaitable[Any]], rt: Runtime
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await job(rt)
        except Exception:  # a failing run must not kill the scheduler; the next run retries
            JOB_FAILURES.labels(name).inc()
            log.exception("job %s failed", name)

    return run


def register(scheduler: AsyncIOScheduler, rt: Runtime) -> None:
    scheduler.add_job(
        _guarded("dispatch_outbox", dispatch_outbox, rt),
        "interval",
        seconds=rt.settings.dispatch_interval_seconds,
        id="dispatch_outbox",
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=30,
    )


def build_scheduler(rt: Runtime) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    register(scheduler, rt)
    return scheduler
