"""How SMS leave: a Gateway protocol with two implementations, chosen once from settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    reference: str  # our message id; MessageBird echoes it in delivery reports
    recipient: str  # E.164
    body: str
    datacoding: str  # "plain" | "unicode"
    # Seconds the network may keep trying; undelivered by then, it is discarded. None: the
    # gateway's default.
    validity: int | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    gateway_id: str
    status: str = "sent"  # what the gateway says it did


class TransientError(Exception):
    """Nothing was sent (the gateway said so, or we never reached it): safe to retry."""


class PermanentError(Exception):
    """The gateway refused this message for good (bad number, bad content): do not retry."""


class UnknownOutcome(Exception):
    """The request may have reached the gateway (timeout after sending): retrying could
    send the message twice."""


class Gateway(Protocol):
    name: str

    async def send(self, sms: OutgoingSms) -> Accepted:
        """Send one SMS; raise TransientError, PermanentError or UnknownOutcome."""
        ...


class DevInboxGateway:
    """Development: nothing leaves the machine; /dev/sms lists what would have been sent."""

    name = "dev"

    async def send(self, sms: OutgoingSms) -> Accepted:
        return Accepted(gateway_id=f"dev-{sms.reference}", status="delivered")
