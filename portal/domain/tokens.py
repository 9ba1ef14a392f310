"""Access tokens for the shopper's link.

A token is 128 bits: HMAC-SHA256(secret key, a random 128-bit salt) cut to 16 bytes. The
database keeps the salt and the token's SHA-256 (for the lookup), never the token: a copy of
the database alone opens no order page, and a copy of the key alone neither. The server can
still re-derive a token to put it in an SMS at send time, or to answer a repeated API call
with the same body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

TOKEN_BYTES = 16  # 128 bits
# base64url of 16 bytes is 22 characters; accept nothing else before touching the database.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{22}")
API_KEY_PREFIX = "pk_"


def new_salt() -> str:
    return secrets.token_hex(TOKEN_BYTES)


def derive_token(secret_key: str, salt: str) -> str:
    digest = hmac.new(secret_key.encode(), b"track:" + salt.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:TOKEN_BYTES]).rstrip(b"=").decode()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def looks_like_token(token: str) -> bool:
    return TOKEN_RE.fullmatch(token) is not None


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def token_expiry(now: datetime, *, closed: bool, days_open: int, days_after_close: int) -> datetime:
    """Links live long while the order is open and 90 days (by default) after it closes."""
    return now + timedelta(days=days_after_close if closed else days_open)


def is_usable(expires_at: datetime, revoked_at: datetime | None, now: datetime) -> bool:
    return revoked_at is None and expires_at > now
