"""CSRF on every form (portal.web.csrf): the cookie a first visit gets, the token its forms
carry, a cookie that no longer verifies, and what is not checked (the shop API)."""

from __future__ import annotations

from typing import Any

from litestar.config.csrf import CSRFConfig
from litestar.middleware.csrf import generate_csrf_token

from portal.web.csrf import PortalCSRFMiddleware, cookie_value
from tests.web.conftest import CLERK_PASSWORD
from tests.web.helpers import create_order, csrf_field

COOKIE = "csrftoken"


def csrf_set_cookies(response) -> list[str]:
    return [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")]


async def test_a_first_visit_gets_the_cookie_and_the_form_carries_its_token(client):
    page = await client.get("/clerk/login")
    assert page.status_code == 200
    [header] = csrf_set_cookies(page)
    token = client.cookies[COOKIE]
    assert header == f"{COOKIE}={token}; Path=/; SameSite=lax"
    assert csrf_field(page.text) == token
    assert len(token) == 128  # 32 random bytes and their HMAC, in hex


async def test_a_browser_that_has_the_cookie_keeps_it(client):
    await client.get("/clerk/login")
    token = client.cookies[COOKIE]
    again = await client.get("/clerk/login")
    assert csrf_set_cookies(again) == []
    assert csrf_field(again.text) == token


async def test_a_cookie_signed_with_another_key_is_replaced_and_the_form_then_works(client, clerk):
    """A browser that kept its cookie across a change of PORTAL_SECRET_KEY (or a forged one):
    the page gives it a new one, so the sign-in goes through instead of failing with 403
    until the browser is closed."""
    stale = generate_csrf_token(secret="the-key-before-it-was-rotated")
    client.cookies.set(COOKIE, stale, domain="portal.test")
    page = await client.get("/clerk/login")
    [_] = csrf_set_cookies(page)
    fresh = client.cookies[COOKIE]
    assert fresh != stale
    assert csrf_field(page.text) == fresh
    signed_in = await client.post(
        "/clerk/login",
        data={"_csrf_token": fresh, "username": "anna.rossi", "password": CLERK_PASSWORD},
    )
    assert signed_in.status_code == 303


async def test_a_post_whose_cookie_and_field_carry_another_keys_token_is_refused(client, clerk):
    stale = generate_csrf_token(secret="the-key-before-it-was-rotated")
    client.cookies.set(COOKIE, stale, domain="portal.test")
    refused = await client.post(
        "/clerk/login",
        data={"_csrf_token": stale, "username": "anna.rossi", "password": CLERK_PASSWORD},
    )
    assert refused.status_code == 403


async def test_a_post_with_a_token_from_another_browser_is_refused(client, client_from, clerk):
    mine = await client.get("/clerk/login")
    other = await client_from("198.51.100.9")
    theirs = await other.get("/clerk/login")
    assert csrf_field(theirs.text) != csrf_field(mine.text)
    refused = await client.post(
        "/clerk/login",
        data={
            "_csrf_token": csrf_field(theirs.text),
            "username": "anna.rossi",
            "password": CLERK_PASSWORD,
        },
    )
    assert refused.status_code == 403


async def test_the_shop_api_is_not_checked_and_sets_no_cookie(client, auth, stores):
    order = await create_order(client, auth)  # a POST without any CSRF token: 201
    read = await client.get(f"/api/v1/orders/{order['external_id']}", headers=auth)
    assert read.status_code == 200
    assert csrf_set_cookies(read) == []
    assert COOKIE not in client.cookies


async def test_the_cookie_is_secure_where_the_config_says_so():
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    config = CSRFConfig(secret="s" * 32, cookie_secure=True, cookie_samesite="lax")
    middleware = PortalCSRFMiddleware(app, config)
    scope = {"type": "http", "method": "GET", "path": "/t/x", "headers": []}
    await middleware(scope, None, send)  # type: ignore[arg-type]
    [(name, value)] = sent[0]["headers"]
    assert name == b"set-cookie"
    assert value.decode().endswith("; Path=/; SameSite=lax; Secure")


def test_the_cookie_is_found_among_others_and_in_any_cookie_header():
    headers = [
        (b"host", b"portal.test"),
        (b"cookie", b"portal_session=abc; csrftoken=first"),
        (b"cookie", b"theme=dark;csrftoken=second ; x=1"),
    ]
    assert cookie_value(headers, b"csrftoken") == "second"  # the last one, as Litestar reads
    assert cookie_value([(b"cookie", b"xcsrftoken=1; csrftoken2=2")], b"csrftoken") is None
    assert cookie_value([(b"cookie", "csrftoken=\u00e9".encode())], b"csrftoken") is None
    assert cookie_value([], b"csrftoken") is None
