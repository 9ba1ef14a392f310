"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from litestar import MediaType, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from portal.web.deps import RT


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(rt: RT) -> Response[dict[str, str]]:
    try:
        await rt.engine.run_ddl("SELECT 1")
    except Exception as exc:  # any failure means "not ready", never a 500
        return Response({"status": "unavailable", "detail": type(exc).__name__}, status_code=503)
    return Response({"status": "ready"}, status_code=200)


@get("/metrics", include_in_schema=False, media_type=MediaType.TEXT)
async def metrics() -> Response[bytes]:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
