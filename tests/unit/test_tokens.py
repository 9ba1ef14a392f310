"""Access tokens: derived, hashed, shape-checked, and usable only while live."""

from __future__ import annotations

import base64
import hashlib
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from portal.domain.tokens import (
    API_KEY_PREFIX,
    derive_token,
    hash_token,
    is_usable,
    looks_like_token,
    new_api_key,
    new_salt,
    token_expiry,
)

URL_SAFE = frozenset(string.ascii_letters + string.digits + "-_")
SECRETS = st.text(min_size=1, max_size=64)
SALTS = st.text(min_size=1, max_size=64)
FAST = settings(max_examples=100, database=None, deadline=None)


def _decode(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


@FAST
@given(secret=SECRETS, salt=SALTS)
def test_a_token_is_the_same_every_time_for_one_secret_and_salt(secret: str, salt: str) -> None:
    assert derive_token(secret, salt) == derive_token(secret, salt)


@FAST
@given(secret=SECRETS, salt=SALTS)
def test_a_token_is_22_url_safe_characters_holding_128_bits(secret: str, salt: str) -> None:
    token = derive_token(secret, salt)
    assert len(token) == 22
    assert set(token) <= URL_SAFE
    assert len(_decode(token)) == 16
    assert looks_like_token(token)


@FAST
@given(secret=SECRETS, salt=SALTS, other=SALTS)
def test_another_salt_gives_another_token(secret: str, salt: str, other: str) -> None:
    assume(salt != other)
    assert derive_token(secret, salt) != derive_token(secret, other)


@FAST
@given(secret=SECRETS, other=SECRETS, salt=SALTS)
def test_another_secret_gives_another_token(secret: str, other: str, salt: str) -> None:
    assume(secret != other)
    assert derive_token(secret, salt) != derive_token(other, salt)


def test_a_real_salt_gives_a_token_that_differs_from_the_salt_and_the_secret() -> None:
    salt = new_salt()
    token = derive_token("k" * 48, salt)
    assert token not in {salt, "k" * 48}
    assert salt not in token


def test_a_salt_is_128_random_bits_in_hex() -> None:
    salt = new_salt()
    assert len(salt) == 32
    assert len(bytes.fromhex(salt)) == 16


def test_salts_do_not_repeat_over_many_draws() -> None:
    salts = [new_salt() for _ in range(5000)]
    assert len(set(salts)) == len(salts)


@FAST
@given(token=st.text(max_size=40))
def test_the_stored_hash_is_the_tokens_sha256_in_hex_and_never_the_token(token: str) -> None:
    digest = hash_token(token)
    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")
    assert digest != token
    if token.isascii():
        assert digest == hashlib.sha256(token.encode()).hexdigest()


def test_hashing_a_derived_token_matches_hashlib() -> None:
    token = derive_token("secret", new_salt())
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "A" * 21,
        "A" * 23,
        "A" * 44,
        "A" * 21 + "+",  # standard base64, not URL-safe
        "A" * 21 + "/",
        "A" * 20 + "==",  # padding
        "A" * 21 + " ",
        " " + "A" * 21,
        "A" * 21 + "é",
        "A" * 21 + "\x00",
        "A" * 10 + "." + "A" * 11,
        "../../etc/passwd/AAAAA",
    ],
)
def test_anything_but_22_url_safe_characters_does_not_look_like_a_token(candidate: str) -> None:
    assert not looks_like_token(candidate)


@FAST
@given(st.text(alphabet=sorted(URL_SAFE), min_size=22, max_size=22))
def test_any_22_url_safe_characters_look_like_a_token(candidate: str) -> None:
    assert looks_like_token(candidate)


def test_a_token_with_a_trailing_newline_does_not_look_like_a_token() -> None:
    assert not looks_like_token("A" * 22 + "\n")


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_link_is_usable_until_it_expires_unless_revoked() -> None:
    assert is_usable(NOW + timedelta(seconds=1), None, NOW)
    assert not is_usable(NOW, None, NOW)  # the expiry moment itself is too late
    assert not is_usable(NOW - timedelta(days=1), None, NOW)
    assert not is_usable(NOW + timedelta(days=30), NOW - timedelta(minutes=1), NOW)
    assert not is_usable(NOW - timedelta(days=1), NOW - timedelta(days=2), NOW)


def test_a_link_lives_long_while_open_and_a_shorter_time_after_closing() -> None:
    assert token_expiry(NOW, closed=False, days_open=365, days_after_close=90) == NOW + timedelta(
        days=365
    )
    assert token_expiry(NOW, closed=True, days_open=365, days_after_close=90) == NOW + timedelta(
        days=90
    )


def test_api_keys_are_prefixed_long_url_safe_and_unique() -> None:
    keys = {new_api_key() for _ in range(500)}
    assert len(keys) == 500
    for key in keys:
        assert key.startswith(API_KEY_PREFIX)
        body = key.removeprefix(API_KEY_PREFIX)
        assert len(body) >= 43  # 32 random bytes
        assert set(body) <= URL_SAFE
