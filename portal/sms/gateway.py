"""How SMS leave: a Gateway protocol with two implementations, chosen once from settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True, slots=True)
class Lookup:
    """What to ask the gateway about a message whose send may or may not have happened."""

    reference: str
    recipient: str  # E.164
    since: datetime  # the message cannot have been created before
    until: datetime  # nor after


@dataclass(frozen=True, slots=True)
class Found:
    gateway_id: str
    status: str  # the gateway's status for the recipient ("sent", "delivered" ...)


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

    async def find(self, lookup: Lookup) -> Found | None:
        """What the gateway has for this reference, recipient and time: Found, or None when
        it has nothing (the message never left). TransientError when it cannot tell now."""
        ...


class DevInboxGateway:
    """Development: nothing leaves the machine; /dev/sms lists what would have been sent."""

    name = "dev"

    async def send(self, sms: OutgoingSms) -> Accepted:
        return Accepted(gateway_id=f"dev-{sms.reference}", status="delivered")

    async def find(self, lookup: Lookup) -> Found | None:
        return None  # nothing ever left: a claim cut short sent nothing
