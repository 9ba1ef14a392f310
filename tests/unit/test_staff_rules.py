"""Staff rules: password hashing, usernames, roles, and which stores a person may see."""

from __future__ import annotations

import pytest

from portal.domain import DomainError
from portal.domain.staff import (
    DUMMY_HASH,
    CurrentStaff,
    Role,
    can_see_store,
    check_password,
    hash_password,
    normalise_username,
    parse_role,
    session_version,
    sign_in_delay,
    verify_password,
    visible_store_ids,
)
from portal.web.clerk_auth import login_url, safe_next

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password(PASSWORD)


def test_a_hash_is_self_describing_scrypt_with_its_parameters(stored):
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(salt) == 24 and len(digest) == 44  # 16 and 32 bytes in base64
    assert PASSWORD not in stored


def test_the_right_password_verifies(stored):
    assert verify_password(PASSWORD, stored)


def test_a_wrong_password_is_rejected(stored):
    assert not verify_password("correct horse battery!", stored)
    assert not verify_password("", stored)
    assert not verify_password(PASSWORD.upper(), stored)


def test_the_same_password_gets_a_different_salt_each_time(stored):
    again = hash_password(PASSWORD)
    assert again != stored
    assert again.split("$")[4] != stored.split("$")[4]
    assert verify_password(PASSWORD, again)


def test_a_given_salt_gives_the_same_hash():
    salt = bytes(range(16))
    assert hash_password(PASSWORD, salt=salt) == hash_password(PASSWORD, salt=salt)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "bcrypt$16384$8$1$AAAA$AAAA",
        "scrypt$16384$8$1$not base64!$AAAA",
        "scrypt$x$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
        "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # absurd cost: refused, not run
        DUMMY_HASH,
    ],
)
def test_a_malformed_or_foreign_hash_never_matches(stored):
    assert not verify_password(PASSWORD, stored)


def test_the_session_version_follows_the_password_hash_and_the_counter(stored):
    assert session_version(stored, 0) == session_version(stored, 0)
    assert session_version(stored, 0) != session_version(hash_password(PASSWORD), 0)
    assert session_version(stored, 0) != session_version(stored, 1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Anna.Rossi", "anna.rossi"), (" mi01-clerk_2 ", "mi01-clerk_2"), ("abc", "abc")],
)
def test_a_username_is_lowercased_and_trimmed(raw, expected):
    assert normalise_username(raw) == expected


@pytest.mark.parametrize("raw", ["ab", "a" * 65, "anna rossi", "anna@shop", "ànna", "", "a/b"])
def test_a_username_outside_the_rules_is_refused(raw):
    with pytest.raises(DomainError, match="3 to 64 characters"):
        normalise_username(raw)


def test_a_password_needs_ten_characters():
    assert check_password("0123456789") == "0123456789"
    with pytest.raises(DomainError, match="at least 10"):
        check_password("012345678")


def test_a_role_is_clerk_or_manager():
    assert parse_role("Manager") is Role.MANAGER
    with pytest.raises(DomainError):
        parse_role("admin")


def _staff(role: Role, store_id: int | None) -> CurrentStaff:
    return CurrentStaff(1, "x", role, store_id, None, None)


def test_a_clerk_sees_only_their_store_and_a_manager_every_store():
    clerk = _staff(Role.CLERK, 7)
    manager = _staff(Role.MANAGER, None)
    assert visible_store_ids(clerk) == {7}
    assert visible_store_ids(manager) is None
    assert can_see_store(clerk, 7) and not can_see_store(clerk, 8)
    assert not can_see_store(clerk, None)
    assert can_see_store(manager, 8) and manager.is_manager and not clerk.is_manager


@pytest.mark.parametrize("value", ["/clerk/", "/clerk/audit?before=10", "/clerk/?store=MI01"])
def test_next_keeps_a_local_path(value):
    assert safe_next(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
        None,
    ],
)
def test_next_refuses_anything_that_could_leave_the_site(value):
    assert safe_next(value) is None


def test_the_login_url_carries_next_only_when_it_is_local():
    assert login_url("/clerk/audit?before=5") == "/clerk/login?next=/clerk/audit%3Fbefore%3D5"
    assert login_url("//evil.example") == "/clerk/login"
    assert login_url("/clerk/") == "/clerk/login"


def test_sign_in_attempts_wait_longer_and_longer_past_five_failures_up_to_a_cap():
    delays = [sign_in_delay(n) for n in range(12)]
    assert delays[:5] == [0.0] * 5
    assert delays[5:10] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert delays[10:] == [8.0, 8.0]  # never a lock: every attempt is still checked
    assert sign_in_delay(10**6) == 8.0
