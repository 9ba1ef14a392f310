"""Typed settings, read once from environment variables (names are in shared/contract.md).

Tests build `Settings(...)` explicitly instead of patching the environment.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any

log = logging.getLogger(__name__)

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-0123456789abcdef"  # noqa: S105


class SettingsError(ValueError):
    """A setting is missing or unsafe; the message says which and why."""


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _on_off(name: str, value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    choice = value.strip().lower()
    if choice not in {"on", "off"}:
        raise SettingsError(f"{name} must be on or off, not {value!r}")
    return choice == "on"


def _networks(name: str, value: str | None) -> tuple[str, ...]:
    """Comma-separated addresses or networks ("10.0.0.1, 192.168.0.0/16, ::1"), each
    written as a network ("10.0.0.1/32")."""
    found = []
    for item in (value or "").split(","):
        if item.strip():
            try:
                found.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise SettingsError(
                    f"{name}: {item.strip()!r} is not an IP address or network"
                ) from None
    return tuple(found)


def _int(name: str, value: str | None, default: int) -> int:
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {value!r}") from None


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite:///portal.db"
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = DEV_SECRET_KEY
    env: str = "development"
    run_scheduler: bool = True
    default_region: str = "IT"
    messagebird_access_key: str | None = None
    messagebird_endpoint: str = "https://rest.messagebird.com"
    messagebird_originator: str = "Shop"
    messagebird_signing_key: str | None = None
    # MessageBird's webhooks (delivery reports, inbound texts): off makes both routes 404
    # and leaves out the texts that invite a reply (the survey).
    messagebird_webhooks: bool = True
    # Peers whose X-Forwarded-For counts (portal/web/client.py); none by default.
    trusted_proxies: tuple[str, ...] = ()
    # /metrics wants `Authorization: Bearer <token>` when set; in production, unset is 404.
    metrics_token: str | None = None
    # `python -m scheduler` serves its metrics on this port when set.
    metrics_port: int | None = None
    # Outgoing webhook to the shop's systems (delivery changes, returns, refunds ...):
    # events are POSTed there, signed with HMAC-SHA256 of the body with the secret.
    shop_webhook_url: str | None = None
    shop_webhook_secret: str | None = None
    # Delivery changes: "auto" accepts them at once; "manual" leaves them for the shop to
    # accept or reject through the API.
    delivery_changes: str = "auto"
    # Cut-offs. The address (or a switch to a store) can change until the order reaches
    # this status (exclusive): "packed" means while placed or back-ordered only; "shipped"
    # (default) means until it leaves the warehouse.
    address_change_until: str = "shipped"
    # A new day or new instructions must come this many hours before the delivery day
    # begins (store/shopper time): 6 means until 18:00 the evening before.
    delivery_change_cutoff_hours: int = 6
    # Returns: days after delivery or collection, and whether the shop approves each one.
    return_days: int = 30
    return_approval: str = "auto"
    # Per-order limits on what the shopper does from their link (counted in the database):
    # changes of any kind in the last hour, and texts their own actions caused in the last
    # 24 hours (one-time codes apart: at most five an hour of those).
    shopper_changes_per_hour: int = 5
    shopper_texts_per_day: int = 6
    # A text whose send may or may not have happened (timeout, connection cut, dispatcher
    # killed) is settled by delivery report or by asking MessageBird; still unresolved after
    # this many minutes, it is marked unknown and never sent again.
    sms_settle_minutes: int = 30
    # Not in the contract: tuning knobs with safe defaults.
    sms_send_timeout: float = 10.0
    sms_max_attempts: int = 6
    # A dispatcher's claim on the texts it sends lasts this long and is renewed while it
    # lives; a claim not renewed in time (the process died) is taken over.
    sms_lease_seconds: float = 30.0
    dispatch_interval_seconds: float = 5.0
    dispatch_batch: int = 50
    poll_seconds: int = 20
    token_days_open: int = 365
    token_days_after_close: int = 90
    max_body_bytes: int = 64 * 1024
    tracking_rate_limit_per_minute: int = 120
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite:")

    @property
    def status_report_url(self) -> str:
        return f"{self.base_url}/webhooks/messagebird/status"

    def tracking_url(self, token: str) -> str:
        return f"{self.base_url}/t/{token}"

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        get = env.get
        d = cls()  # the defaults
        settings = cls(
            database_url=get("PORTAL_DATABASE_URL", d.database_url),
            base_url=get("PORTAL_BASE_URL", d.base_url).rstrip("/"),
            secret_key=get("PORTAL_SECRET_KEY", DEV_SECRET_KEY),
            env=get("PORTAL_ENV", d.env).strip().lower(),
            run_scheduler=_bool(get("PORTAL_RUN_SCHEDULER", "1")),
            default_region=get("PORTAL_DEFAULT_REGION", d.default_region).upper(),
            messagebird_access_key=get("MESSAGEBIRD_ACCESS_KEY") or None,
            messagebird_endpoint=get("MESSAGEBIRD_ENDPOINT", d.messagebird_endpoint).rstrip("/"),
            messagebird_originator=get("MESSAGEBIRD_ORIGINATOR", d.messagebird_originator),
            messagebird_signing_key=get("MESSAGEBIRD_SIGNING_KEY") or None,
            messagebird_webhooks=_on_off(
                "PORTAL_MESSAGEBIRD_WEBHOOKS", get("PORTAL_MESSAGEBIRD_WEBHOOKS"), True
            ),
            trusted_proxies=_networks("PORTAL_TRUSTED_PROXIES", get("PORTAL_TRUSTED_PROXIES")),
            metrics_token=get("PORTAL_METRICS_TOKEN") or None,
            metrics_port=_int("PORTAL_METRICS_PORT", get("PORTAL_METRICS_PORT"), 0) or None,
            shop_webhook_url=(get("PORTAL_SHOP_WEBHOOK_URL") or "").strip() or None,
            shop_webhook_secret=get("PORTAL_SHOP_WEBHOOK_SECRET") or None,
            delivery_changes=get("PORTAL_DELIVERY_CHANGES", d.delivery_changes).strip().lower(),
            address_change_until=get("PORTAL_ADDRESS_CHANGE_UNTIL", d.address_change_until)
            .strip()
            .lower(),
            delivery_change_cutoff_hours=_int(
                "PORTAL_DELIVERY_CHANGE_CUTOFF_HOURS",
                get("PORTAL_DELIVERY_CHANGE_CUTOFF_HOURS"),
                d.delivery_change_cutoff_hours,
            ),
            return_days=_int("PORTAL_RETURN_DAYS", get("PORTAL_RETURN_DAYS"), d.return_days),
            return_approval=get("PORTAL_RETURN_APPROVAL", d.return_approval).strip().lower(),
            shopper_changes_per_hour=_int(
                "PORTAL_SHOPPER_CHANGES_PER_HOUR",
                get("PORTAL_SHOPPER_CHANGES_PER_HOUR"),
                d.shopper_changes_per_hour,
            ),
            shopper_texts_per_day=_int(
                "PORTAL_SHOPPER_TEXTS_PER_DAY",
                get("PORTAL_SHOPPER_TEXTS_PER_DAY"),
                d.shopper_texts_per_day,
            ),
            sms_settle_minutes=_int(
                "PORTAL_SMS_SETTLE_MINUTES", get("PORTAL_SMS_SETTLE_MINUTES"), d.sms_settle_minutes
            ),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.env not in {"development", "production"}:
            raise SettingsError(f"PORTAL_ENV must be development or production, not {self.env!r}")
        if not (
            self.database_url.startswith("sqlite:///")
            or self.database_url.startswith(("postgresql://", "postgres://"))
        ):
            raise SettingsError(
                "PORTAL_DATABASE_URL must look like sqlite:///path.db or postgresql://user@host/db"
            )
        if self.production:
            if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
                raise SettingsError(
                    "PORTAL_SECRET_KEY must be set to a random value of at least 32 characters "
                    "when PORTAL_ENV=production"
                )
            if not self.base_url.startswith("https://"):
                raise SettingsError("PORTAL_BASE_URL must be https:// when PORTAL_ENV=production")
            if self.messagebird_webhooks and not self.messagebird_signing_key:
                raise SettingsError(
                    "MESSAGEBIRD_SIGNING_KEY must be set when PORTAL_ENV=production (or set "
                    "PORTAL_MESSAGEBIRD_WEBHOOKS=off): unsigned calls could opt shoppers out"
                )
        elif self.secret_key == DEV_SECRET_KEY:
            log.warning("PORTAL_SECRET_KEY is not set: using the development key")
        if self.delivery_changes not in {"auto", "manual"}:
            raise SettingsError(
                f"PORTAL_DELIVERY_CHANGES must be auto or manual, not {self.delivery_changes!r}"
            )
        if self.address_change_until not in {"packed", "shipped"}:
            raise SettingsError(
                "PORTAL_ADDRESS_CHANGE_UNTIL must be packed or shipped, "
                f"not {self.address_change_until!r}"
            )
        if self.return_approval not in {"auto", "manual"}:
            raise SettingsError(
                f"PORTAL_RETURN_APPROVAL must be auto or manual, not {self.return_approval!r}"
            )
        if not 1 <= self.return_days <= 365:
            raise SettingsError("PORTAL_RETURN_DAYS must be between 1 and 365")
        if self.shopper_changes_per_hour < 1:
            raise SettingsError("PORTAL_SHOPPER_CHANGES_PER_HOUR must be at least 1")
        if self.shopper_texts_per_day < 1:
            raise SettingsError("PORTAL_SHOPPER_TEXTS_PER_DAY must be at least 1")
        if not 1 <= self.sms_settle_minutes <= 1440:
            raise SettingsError("PORTAL_SMS_SETTLE_MINUTES must be between 1 and 1440")
        if not 0 <= self.delivery_change_cutoff_hours <= 72:
            raise SettingsError("PORTAL_DELIVERY_CHANGE_CUTOFF_HOURS must be between 0 and 72")
        if self.shop_webhook_url:
            if not self.shop_webhook_url.startswith(("http://", "https://")):
                raise SettingsError("PORTAL_SHOP_WEBHOOK_URL must be an http(s):// URL")
            if not self.shop_webhook_secret or len(self.shop_webhook_secret) < 16:
                raise SettingsError(
                    "PORTAL_SHOP_WEBHOOK_SECRET (at least 16 characters) must be set with "
                    "PORTAL_SHOP_WEBHOOK_URL: the shop checks each call's signature with it"
                )
        if self.metrics_port is not None and not 1 <= self.metrics_port <= 65535:
            raise SettingsError("PORTAL_METRICS_PORT must be a port number (1-65535)")
        if (
            len(self.messagebird_originator) > 11
            and not self.messagebird_originator.lstrip("+").isdigit()
        ):
            raise SettingsError("MESSAGEBIRD_ORIGINATOR: at most 11 letters/digits, or a number")


def from_env_or_explain() -> Settings | None:
    """Settings for a command; on a bad setting, say which on stderr and return None."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return None
