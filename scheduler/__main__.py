"""`python -m scheduler`: the scheduler alone (with PORTAL_RUN_SCHEDULER=0 on the web); its
metrics on PORTAL_METRICS_PORT when set."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from portal import db
from portal.logging_setup import configure_logging
from portal.metrics import serve_metrics
from portal.runtime import build_runtime
from portal.settings import from_env_or_explain
from scheduler.jobs import build_scheduler

log = logging.getLogger("scheduler")


async def main() -> int:
    configure_logging()
    settings = from_env_or_explain()
    if settings is None:
        return 2
    metrics_server = serve_metrics(settings)  # on PORTAL_METRICS_PORT, when set
    rt = build_runtime(settings)
    await db.start(rt.engine)
    scheduler = build_scheduler(rt)
    scheduler.start()
    log.info("scheduler running (gateway %s)", rt.gateway.name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Claim nothing more; the texts being sent finish and their outcomes are written (a
    # deploy leaves none "maybe sent"); claimed ones not yet sent are given back.
    # (Before the scheduler's shutdown, which would cancel the jobs under way.)
    log.info("scheduler stopping")
    await rt.dispatching.stop()
    scheduler.shutdown(wait=False)
    await db.stop(rt.engine)
    if metrics_server is not None:
        metrics_server.shutdown()
    log.info("scheduler stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
