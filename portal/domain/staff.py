"""Staff rules: usernames, passwords (scrypt), roles, and which stores a person may see.

A stored password is self-describing, `scrypt$16384$8$1$<salt b64>$<hash b64>`, so the cost
can be raised later without breaking the hashes already stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from portal.domain import DomainError

USERNAME_RE = re.compile(r"[a-z0-9._-]{3,64}")
PASSWORD_MIN = 10
# scrypt reads all of it: a cap keeps a pasted novel from costing real CPU.
PASSWORD_MAX = 1024
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
_SCHEME = "scrypt"


class Role(StrEnum):
    CLERK = "clerk"
    MANAGER = "manager"


def normalise_username(raw: str) -> str:
    """Lowercased; 3 to 64 characters of a-z, 0-9, dot, underscore, hyphen."""
    name = raw.strip().lower()
    if not USERNAME_RE.fullmatch(name):
        raise DomainError(
            "a username is 3 to 64 characters: letters a-z, digits, dot, underscore or hyphen"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise DomainError(f"a password needs at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise DomainError(f"a password has at most {PASSWORD_MAX} characters")
    return password


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError as exc:
        raise DomainError(f"a role is one of {', '.join(r.value for r in Role)}") from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=64 * 1024 * 1024
    )


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return f"{_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored`; a malformed hash never matches."""
    if len(password) > PASSWORD_MAX:
        return False
    try:
        scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if scheme != _SCHEME:
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(hash_b64, validate=True)
        n_i, r_i, p_i = int(n), int(r), int(p)
        # Bounds keep a tampered row from asking for absurd memory or time.
        if not (2 <= n_i <= 2**20 and 1 <= r_i <= 32 and 1 <= p_i <= 16 and expected):
            return False
        actual = _scrypt(password, salt, n_i, r_i, p_i, len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# Checked against when the username is unknown, so a miss costs as long as a wrong password.
DUMMY_HASH = f"{_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(bytes(SALT_BYTES))}${_b64(bytes(HASH_BYTES))}"


def session_version(password_hash: str, counter: int) -> str:
    """Goes into the session cookie. Changing the password, or raising the account's
    counter (signing out, disabling it), changes it and ends every earlier session."""
    material = f"session:{counter}:{password_hash}".encode()
    return hashlib.sha256(material).hexdigest()[:16]


# Sign-in attempts per username, counted before the password is checked. The first ones
# cost nothing more; after that each attempt, from any client, waits a little longer
# before its password is checked: a username under attack slows down for every client,
# and the real clerk still gets in (never a lock). Per username and client there is a
# hard limit too (portal/web/limits.py), which an attacker elsewhere cannot reach.
SIGN_IN_WINDOW_SECONDS = 15 * 60
SIGN_IN_FREE_FAILURES = 5
SIGN_IN_FIRST_DELAY = 0.5
SIGN_IN_MAX_DELAY = 8.0


def sign_in_delay(prior_failures: int) -> float:
    """Seconds an attempt waits, given the username's failures in the window before it:
    0 for the first five, then 0.5, 1, 2, 4, 8, 8 ..."""
    extra = prior_failures - SIGN_IN_FREE_FAILURES
    if extra < 0:
        return 0.0
    return min(SIGN_IN_FIRST_DELAY * 2 ** min(extra, 16), SIGN_IN_MAX_DELAY)


@dataclass(frozen=True, slots=True)
class CurrentStaff:
    """The signed-in person, as clerk pages and services see them."""

    id: int
    username: str
    role: Role
    store_id: int | None
    store_code: str | None
    store_name: str | None
    store_timezone: str | None = None

    @property
    def is_manager(self) -> bool:
        return self.role is Role.MANAGER


def visible_store_ids(staff: CurrentStaff) -> frozenset[int] | None:
    """The stores whose orders this person may see; None means every store (managers)."""
    if staff.is_manager:
        return None
    return frozenset() if staff.store_id is None else frozenset({staff.store_id})


def can_see_store(staff: CurrentStaff, store_id: int | None) -> bool:
    visible = visible_store_ids(staff)
    return visible is None or (store_id is not None and store_id in visible)
