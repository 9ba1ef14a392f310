"""The MessageBird gateway, through the real `messagebird` SDK.

The SDK is synchronous (`requests`) and sets no timeout, so each send runs in a worker
thread through an HttpClient that passes one, and the thread is bounded from outside too.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import requests
from messagebird.client import USER_AGENT, Client, ErrorException
from messagebird.http_client import HttpClient

from portal.domain.phone import msisdn
from portal.sms.gateway import (
    Accepted,
    Found,
    Lookup,
    OutgoingSms,
    PermanentError,
    TransientError,
    UnknownOutcome,
)

log = logging.getLogger(__name__)

# MessageBird error codes that retrying cannot fix: 2 bad key, 9 missing/invalid params,
# 10 not found, 20 not enough balance is retryable after a top-up, so it is not here.
_PERMANENT_CODES = {2, 9, 10, 21}
# `validity` when the message does not set one: never let the network deliver hours late.
DEFAULT_VALIDITY_SECONDS = 4 * 3600
# Looking a message up: `GET /messages` filtered by recipient, direction and creation time
# (`from`/`until`, RFC 3339), a page of this many, at most this many pages.
LOOKUP_PAGE = 20
LOOKUP_PAGES = 5


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).replace(microsecond=0).isoformat()


class TimeoutHttpClient(HttpClient):
    """The SDK's HttpClient with a timeout and a pooled session; same statuses, same errors."""

    _SUPPORTED = (200, 201, 204, 401, 404, 405, 422)

    def __init__(self, endpoint: str, access_key: str, timeout: float) -> None:
        super().__init__(endpoint, access_key, USER_AGENT)
        self.timeout = timeout
        self.session = requests.Session()

    def request(
        self, path: str, method: str = "GET", params: Any = None, format: Any = None
    ) -> str:
        from messagebird.serde import json_serialize

        headers = {
            "Accept": "application/json",
            "Authorization": "AccessKey " + self.access_key,
            "User-Agent": self.user_agent,
            "Content-Type": "application/json; charset=UTF-8",
        }
        url = urljoin(self.endpoint, path)
        if method == "GET":
            response = self.session.get(
                url, headers=headers, params=params or {}, timeout=self.timeout
            )
        else:
            response = self.session.request(
                method,
                url,
                headers=headers,
                data=json_serialize(params or {}),
                timeout=self.timeout,
            )
        if response.status_code not in self._SUPPORTED:
            response.raise_for_status()
        return response.text


class MessageBirdGateway:
    name = "messagebird"

    def __init__(
        self,
        access_key: str,
        *,
        endpoint: str,
        originator: str,
        report_url: str,
        timeout: float,
        validity_seconds: int = DEFAULT_VALIDITY_SECONDS,
    ) -> None:
        self.client = Client(
            access_key,
            http_client=TimeoutHttpClient(endpoint.rstrip("/") + "/", access_key, timeout),
        )
        self.originator = originator
        self.report_url = report_url
        self.timeout = timeout
        self.validity_seconds = validity_seconds

    def _send_sync(self, sms: OutgoingSms) -> Accepted:
        params: dict[str, Any] = {
            "reference": sms.reference,
            "reportUrl": self.report_url,
            "datacoding": sms.datacoding,
            "validity": sms.validity or self.validity_seconds,
        }
        message = self.client.message_create(
            self.originator, [msisdn(sms.recipient)], sms.body, params
        )
        items = (message.recipients or {}).get("items") or []
        status = (items[0].status if items else None) or "sent"
        return Accepted(gateway_id=str(message.id), status=status)

    def _find_sync(self, lookup: Lookup) -> Found | None:
        # The SDK's message_list filters by status only; MessageBird's REST API also takes
        # recipient, direction, from and until, so the request goes through the SDK's own
        # request path (its HttpClient; errors JSON raised as ErrorException).
        params: dict[str, Any] = {
            "recipient": msisdn(lookup.recipient),
            "direction": "mt",
            "from": _rfc3339(lookup.since),
            "until": _rfc3339(lookup.until),
            "limit": LOOKUP_PAGE,
        }
        for page in range(LOOKUP_PAGES):
            params["offset"] = page * LOOKUP_PAGE
            listing = self.client.request("messages", "GET", params) or {}
            items = listing.get("items") or []
            for item in items:
                if str(item.get("reference")) != lookup.reference:
                    continue
                recipients = (item.get("recipients") or {}).get("items") or []
                status = next(
                    (
                        str(r.get("status") or "sent")
                        for r in recipients
                        if str(r.get("recipient")) == params["recipient"]
                    ),
                    "sent",
                )
                return Found(gateway_id=str(item["id"]), status=status)
            if not items or params["offset"] + len(items) >= int(listing.get("totalCount") or 0):
                return None
        raise TransientError("messagebird: too many messages to look through")

    async def find(self, lookup: Lookup) -> Found | None:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._find_sync, lookup), timeout=self.timeout * 2 + 1
            )
        except (ErrorException, requests.RequestException, TimeoutError, ValueError) as exc:
            raise TransientError(f"messagebird lookup: {type(exc).__name__}") from exc

    async def send(self, sms: OutgoingSms) -> Accepted:
        try:
            # The HTTP timeout bounds the thread; wait_for bounds us if DNS or TLS hangs.
            return await asyncio.wait_for(
                asyncio.to_thread(self._send_sync, sms), timeout=self.timeout * 2 + 1
            )
        except ErrorException as exc:
            codes = {getattr(e, "code", None) for e in exc.errors}
            text = "; ".join(
                f"{getattr(e, 'code', '?')} {getattr(e, 'description', '')}".strip()
                for e in exc.errors
            )
            if codes & _PERMANENT_CODES:
                raise PermanentError(f"messagebird refused: {text}") from exc
            raise TransientError(f"messagebird error: {text}") from exc
        except requests.ConnectTimeout as exc:
            raise TransientError("messagebird: connect timeout") from exc
        except (requests.Timeout, TimeoutError) as exc:
            raise UnknownOutcome("messagebird: no answer in time") from exc
        except requests.ConnectionError as exc:
            # Refused or reset before a response; with requests we cannot tell whether the
            # body was read, so a reset mid-request is treated like a timeout.
            if "Connection refused" in str(exc) or "Failed to establish" in str(exc):
                raise TransientError("messagebird: cannot connect") from exc
            raise UnknownOutcome("messagebird: connection lost") from exc
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in (400, 403, 413):
                raise PermanentError(f"messagebird: HTTP {status}") from exc
            raise TransientError(f"messagebird: HTTP {status}") from exc
