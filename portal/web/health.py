"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.exceptions import NotAuthorizedException, NotFoundException
from prometheus_client import CONTENT_TYPE_LATEST

from portal import metrics as portal_metrics
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
async def metrics(request: Request[Any, Any, Any], rt: RT) -> Response[bytes]:
    """Every worker's counts; with PORTAL_METRICS_TOKEN set, for its bearer only (in
    production, not there at all without one)."""
    refused = portal_metrics.refusal(rt.settings, request.headers.get("authorization"))
    if refused == 404:
        raise NotFoundException()
    if refused is not None:
        raise NotAuthorizedException(
            detail="/metrics needs Authorization: Bearer $PORTAL_METRICS_TOKEN"
        )
    return Response(portal_metrics.render(), media_type=CONTENT_TYPE_LATEST)
