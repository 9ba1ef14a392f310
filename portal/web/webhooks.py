"""MessageBird calls us: delivery reports (GET or POST) and inbound texts (POST). Signatures
are checked when a signing key is set (production refuses to start without one unless
PORTAL_MESSAGEBIRD_WEBHOOKS=off, which takes both routes away); replays and duplicates
change nothing. An authentic report with values the portal cannot use (a reference that is
not ours, a time out of the date window) gets 200 with what can be applied applied."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from litestar import Controller, Request, Response, post, route
from litestar.exceptions import NotAuthorizedException, NotFoundException
from messagebird.error import ValidationError as SignatureError
from messagebird.request_validator import RequestValidator

from portal import db, metrics
from portal.services import inbound, messaging
from portal.web.deps import RT

log = logging.getLogger(__name__)


async def verified_params(request: Request[Any, Any, Any], rt: RT) -> dict[str, str]:
    """The call's parameters (query, then form or JSON body), after the signature check.

    With PORTAL_MESSAGEBIRD_WEBHOOKS=off the routes are not there (404). A signature
    without `url_hash` covers the body only: the query is then left out (and logged)."""
    if not rt.settings.messagebird_webhooks:
        raise NotFoundException()
    body = await request.body()
    params = dict(request.query_params.items())
    key = rt.settings.messagebird_signing_key
    if key and not _url_signed(request, rt, key, body):
        log.warning("messagebird webhook signed without url_hash: its query is ignored")
        params = {}
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
    # PostgreSQL stores no NUL, and no other control character means anything here.
    return {k: _CONTROL.sub("", v) for k, v in params.items()}


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _url_signed(request: Request[Any, Any, Any], rt: RT, key: str, body: bytes) -> bool:
    """Check `MessageBird-Signature-JWT` (401 when missing or wrong). True when it covers
    the URL (`url_hash`), False when it covers the body only."""
    # MessageBird signs the public URL it called: rebuild it from PORTAL_BASE_URL so a
    # proxy in front does not change what is checked.
    query = request.scope.get("query_string", b"").decode("latin-1")
    url = rt.settings.base_url + request.url.path + (f"?{query}" if query else "")
    signature = request.headers.get("messagebird-signature-jwt", "")
    try:
        # The SDK checks the issuer, the times and the body's hash here; the URL's below,
        # as it cannot tell a missing `url_hash` from a wrong one (it raises KeyError).
        claims = RequestValidator(key, skip_url_validation=True).validate_signature(
            signature, url, body
        )
        url_hash = claims.get("url_hash")
        if url_hash is None:
            return False
        expected = hashlib.sha256(url.encode("utf-8")).hexdigest()
        if not isinstance(url_hash, str) or not hmac.compare_digest(expected, url_hash):
            raise SignatureError("invalid jwt: claim url_hash is invalid")
    except (SignatureError, TypeError) as exc:  # TypeError: a hash that is not a string
        raise NotAuthorizedException(
            detail="MessageBird-Signature-JWT is missing or invalid"
        ) from exc
    return True


# The window of the contract's date rule; a report's time outside it is not kept.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_SERIAL = 2**31 - 1  # our references are the outbox's ids


def _status_time(value: str | None, now: datetime) -> datetime | None:
    """`statusDatetime` in UTC, or None when absent, unreadable or out of the window."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)  # OverflowError near year 1 or 9999
    except (ValueError, OverflowError):
        return None
    if not EARLIEST <= moment < LATEST or moment > now + timedelta(hours=24):
        return None
    return moment


def _reference(value: str | None) -> str | None:
    """One of our outbox ids (ASCII digits within a PostgreSQL integer), else None."""
    if value and len(value) <= 10 and value.isascii() and value.isdigit():
        return value if 0 < int(value) <= MAX_SERIAL else None
    return None


def status_report(params: dict[str, str], now: datetime) -> messaging.StatusReport:
    """The report's fields the portal can use; what it cannot is left out and logged once
    (names only: values may carry a phone number)."""
    report = messaging.StatusReport(
        reference=_reference(params.get("reference")),
        gateway_id=(params.get("id") or "")[:64] or None,
        recipient=params.get("recipient"),
        status=params.get("status", ""),
        status_at=_status_time(params.get("statusDatetime"), now),
    )
    unusable = [
        name
        for name, given, kept in (
            ("reference", params.get("reference"), report.reference),
            ("statusDatetime", params.get("statusDatetime"), report.status_at),
        )
        if given and kept is None
    ]
    if unusable:
        log.warning("delivery report: unusable %s left out", ", ".join(unusable))
    return report


class MessageBirdWebhooks(Controller):
    path = "/webhooks/messagebird"
    include_in_schema = False

    @route("/status", http_method=["GET", "POST"], status_code=200)
    async def status(self, request: Request[Any, Any, Any], rt: RT) -> Response[dict[str, str]]:
        params = await verified_params(request, rt)
        report = status_report(params, rt.clock.now())
        outcome = await messaging.apply_status_report(rt, report)
        metrics.delivery_report(outcome)
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
        except Exception as exc:  # answer so that MessageBird retries, never a 500
            if db.is_unavailable(exc):
                raise  # the outage answer (503) and its one warning a minute: web.errors
            log.exception("inbound sms could not be stored")
            return Response(
                {"status_code": 503, "detail": "could not store the message now; retry later"},
                status_code=503,
                headers={"Retry-After": "60"},
            )
        metrics.inbound_text(outcome)
        log.info("inbound sms: %s", outcome)
        return Response({"result": outcome}, status_code=200)
