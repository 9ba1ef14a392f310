"""MessageBird calls us: delivery reports (GET or POST) and inbound texts (POST). Signatures
are checked when a signing key is set; replays and duplicates change nothing."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from litestar import Controller, Request, Response, post, route
from litestar.exceptions import NotAuthorizedException
from messagebird.error import ValidationError as SignatureError
from messagebird.request_validator import RequestValidator

from portal.services import inbound, messaging
from portal.web.deps import RT

log = logging.getLogger(__name__)


async def verified_params(request: Request[Any, Any, Any], rt: RT) -> dict[str, str]:
    """The call's parameters (query, then form or JSON body), after the signature check."""
    body = await request.body()
    key = rt.settings.messagebird_signing_key
    if key:
        # MessageBird signs the public URL it called: rebuild it from PORTAL_BASE_URL so a
        # proxy in front does not change what is checked.
        query = request.scope.get("query_string", b"").decode("latin-1")
        url = rt.settings.base_url + request.url.path + (f"?{query}" if query else "")
        signature = request.headers.get("messagebird-signature-jwt", "")
        try:
            RequestValidator(key).validate_signature(signature, url, body)
        except SignatureError as exc:
            raise NotAuthorizedException(
                detail="MessageBird-Signature-JWT is missing or invalid"
            ) from exc
    params = dict(request.query_params.items())
    if body:
        content_type = request.headers.get("content-type", "")
        if "json" in content_type:
            try:
                data = await request.json()
            except Exception:  # a malformed body is answered, not raised
                data = None
            if isinstance(data, dict):
                params.update(
                    {k: str(v) for k, v in data.items() if not isinstance(v, dict | list)}
                )
        else:
            params.update(parse_qsl(body.decode("utf-8", "replace")))
    return params


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class MessageBirdWebhooks(Controller):
    path = "/webhooks/messagebird"
    include_in_schema = False

    @route("/status", http_method=["GET", "POST"], status_code=200)
    async def status(self, request: Request[Any, Any, Any], rt: RT) -> Response[dict[str, str]]:
        params = await verified_params(request, rt)
        report = messaging.StatusReport(
            reference=params.get("reference"),
            gateway_id=params.get("id"),
            recipient=params.get("recipient"),
            status=params.get("status", ""),
            status_at=_parse_time(params.get("statusDatetime")),
        )
        outcome = await messaging.apply_status_report(rt, report)
        log.info("delivery report %s: %s", report.reference, outcome)
        # 200 even for reports we do not know: a retry would not make them known.
        return Response({"result": outcome}, status_code=200)

    @post("/inbound", status_code=200)
    async def inbound_sms(
        self, request: Request[Any, Any, Any], rt: RT
    ) -> Response[dict[str, Any]]:
        """A shopper's text (`originator`, `body`, `id`; form or JSON). Bad fields get a 422
        naming the field; a text we could not store now gets a 503, so it comes again."""
        params = await verified_params(request, rt)
        message = inbound.InboundIn.parse(params, rt.settings.default_region)
        try:
            outcome = await inbound.receive(rt, message)
        except Exception:  # the database: answer so that MessageBird retries, never a 500
            log.exception("inbound sms could not be stored")
            return Response(
                {"status_code": 503, "detail": "could not store the message now; retry later"},
                status_code=503,
                headers={"Retry-After": "60"},
            )
        log.info("inbound sms: %s", outcome)
        return Response({"result": outcome}, status_code=200)
