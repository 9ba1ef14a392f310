"""Jobs: thin and idempotent. Each claims due work through a service, logs counts, returns them.

Registered in one place (`register`) with stable ids, so several processes agree on them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from portal import db, metrics
from portal.runtime import Runtime
from portal.services import messaging, pickup, returns, shop_events, surveys

log = logging.getLogger(__name__)


async def dispatch_outbox(rt: Runtime) -> dict[str, int]:
    return _counted(await messaging.send_due(rt))


async def settle_outbox(rt: Runtime) -> dict[str, int]:
    return _counted(await messaging.settle_due(rt))


def _counted(result: messaging.DispatchResult) -> dict[str, int]:
    counts = {
        "claimed": result.claimed,
        "sent": result.sent,
        "retrying": result.retrying,
        "unknown": result.unknown,
        "failed": result.failed,
        "taken_over": result.taken_over,
        "settled": result.settled,
        "requeued": result.requeued,
        "unresolved": result.unresolved,
        "given_back": result.given_back,
    }
    metrics.sms_outcomes(counts)
    if any(counts.values()):
        log.info("outbox: %s", " ".join(f"{k}={v}" for k, v in counts.items()))
    return counts


async def expire_pickups(rt: Runtime) -> dict[str, int]:
    expired = await pickup.expire_due(rt)
    if expired:
        log.info("pickups expired: %d", expired)
    return {"expired": expired}


async def satisfaction_surveys(rt: Runtime) -> dict[str, int]:
    queued = await surveys.send_due_surveys(rt)
    if queued:
        log.info("surveys queued: %d", queued)
    return {"queued": queued}


async def pickup_reminders(rt: Runtime) -> dict[str, int]:
    queued = await pickup.send_due_reminders(rt)
    if queued:
        log.info("pickup reminders queued: %d", queued)
    return {"queued": queued}


async def return_reminders(rt: Runtime) -> dict[str, int]:
    queued = await returns.send_due_reminders(rt)
    if queued:
        log.info("return reminders queued: %d", queued)
    return {"queued": queued}


async def deliver_shop_events(rt: Runtime) -> dict[str, int]:
    if not rt.settings.shop_webhook_url:
        return {}
    result = await shop_events.deliver_due(rt)
    counts = result.counts()
    metrics.shop_webhook_calls(counts)
    if result.claimed or result.errors:
        log.info("shop webhook: %s", " ".join(f"{k}={v}" for k, v in counts.items()))
    return counts


# id -> (job, seconds between runs). Reminders and expiry are queued as SMS rows; the
# outbox job sends them, so these need not run often.
JOBS: dict[str, tuple[Callable[[Runtime], Awaitable[Any]], float | None]] = {
    "dispatch_outbox": (dispatch_outbox, None),  # settings.dispatch_interval_seconds
    "settle_outbox": (settle_outbox, None),  # likewise
    "deliver_shop_events": (deliver_shop_events, None),  # likewise
    "expire_pickups": (expire_pickups, 60.0),
    "pickup_reminders": (pickup_reminders, 60.0),
    "satisfaction_surveys": (satisfaction_surveys, 60.0),
    "return_reminders": (return_reminders, 60.0),
}


def _guarded(
    name: str, job: Callable[[Runtime], Awaitable[Any]], rt: Runtime
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await job(rt)
        except Exception as exc:  # a failing run must not kill the scheduler; the next retries
            metrics.job_run(name, failed=True)
            if db.is_unavailable(exc):
                outage = rt.cache.get("jobs_db_outage")
                if outage is None:  # a line a minute, not a traceback a run
                    outage = rt.cache["jobs_db_outage"] = db.OutageLog(log, "jobs wait for it")
                outage.note(rt.clock.now(), exc)
            else:
                log.exception("job %s failed", name)
        else:
            metrics.job_run(name)

    return run


def register(scheduler: AsyncIOScheduler, rt: Runtime) -> None:
    for job_id, (job, seconds) in JOBS.items():
        scheduler.add_job(
            _guarded(job_id, job, rt),
            "interval",
            seconds=seconds or rt.settings.dispatch_interval_seconds,
            id=job_id,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=30,
            # The outbox at once: a restarted dispatcher does not wait an interval first.
            **({"next_run_time": datetime.now(UTC)} if seconds is None else {}),
        )


def build_scheduler(rt: Runtime) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    register(scheduler, rt)
    return scheduler
