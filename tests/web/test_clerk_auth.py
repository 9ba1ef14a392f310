"""Store console accounts: create-clerk, set-password, disable-clerk, sign in and out,
sessions, CSRF, sign-in limits and unlocking, audit."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from portal.db.tables import AuditLog, StaffUser
from portal.domain.staff import sign_in_delay
from portal.services.staff import record_audit, set_active
from portal.web.clerk_auth import SESSION_COOKIE
from tests.web.conftest import CLERK_PASSWORD, MANAGER_PASSWORD
from tests.web.helpers import csrf_field, sign_in, sign_out
from tests.web.test_operations import run_cli


def session_cookie(client) -> str | None:
    return client.cookies.get(SESSION_COOKIE, domain="portal.test", path="/clerk")


# create-clerk


async def test_create_clerk_reads_the_password_from_stdin_and_the_clerk_can_sign_in(
    db_url, client, stores
):
    done = run_cli(db_url, "create-clerk", "Giulia.B", "--store", "MI01", stdin="a-long-secret-1\n")
    assert done.returncode == 0, done.stderr
    assert "created clerk giulia.b (store MI01)" in done.stdout
    assert "a-long-secret-1" not in done.stdout + done.stderr

    response = await sign_in(client, "giulia.b", "a-long-secret-1")
    assert response.status_code == 303
    assert response.headers["location"] == "/clerk/"
    assert session_cookie(client)
    home = await client.get("/clerk/")
    assert home.status_code == 200
    assert "Signed in as <strong>giulia.b</strong> · Milano Centro" in home.text


async def test_create_clerk_with_an_unknown_store_fails_with_exit_code_2_and_writes_nothing(
    db_url, stores
):
    done = run_cli(db_url, "create-clerk", "giulia", "--store", "XX99", stdin="a-long-secret-1\n")
    assert done.returncode == 2
    assert "no store with the code 'XX99'" in done.stderr
    assert "Traceback" not in done.stderr
    assert await StaffUser.count() == 0


async def test_create_clerk_refuses_a_taken_username(db_url, clerk):
    done = run_cli(
        db_url, "create-clerk", "Anna.Rossi", "--store", "RM01", stdin="another-secret\n"
    )
    assert done.returncode == 2
    assert "'anna.rossi' is taken" in done.stderr
    assert await StaffUser.count() == 1


async def test_create_clerk_refuses_a_short_password_or_a_bad_username(db_url, stores):
    short = run_cli(db_url, "create-clerk", "giulia", "--store", "MI01", stdin="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    bad = run_cli(
        db_url, "create-clerk", "giulia rossi", "--store", "MI01", stdin="long-enough-1\n"
    )
    assert bad.returncode == 2 and "3 to 64 characters" in bad.stderr
    assert await StaffUser.count() == 0


async def test_a_manager_needs_no_store_and_sees_all_stores(db_url, client, stores):
    done = run_cli(db_url, "create-clerk", "boss", "--role", "manager", stdin="manager-secret-1\n")
    assert done.returncode == 0, done.stderr
    assert "created manager boss (all stores)" in done.stdout
    await sign_in(client, "boss", "manager-secret-1")
    home = await client.get("/clerk/")
    assert "Signed in as <strong>boss</strong> · all stores" in home.text
    assert 'href="/clerk/audit"' in home.text


# Signing in and out


async def test_the_login_form_has_labelled_fields_a_csrf_field_and_a_sign_in_button(client):
    page = await client.get("/clerk/login")
    assert page.status_code == 200
    assert re.search(r'<label for="username">Username</label>', page.text)
    assert re.search(r'<label for="password">Password</label>', page.text)
    assert '<button type="submit" class="button">Sign in</button>' in page.text
    assert csrf_field(page.text)
    assert page.headers["cache-control"] == "no-store"


async def test_a_wrong_password_shows_the_form_again_with_the_username_and_no_session(
    client, clerk
):
    response = await sign_in(client, "anna.rossi", "not-the-password")
    assert response.status_code == 400
    assert 'value="anna.rossi"' in response.text
    assert "do not match an active account" in response.text
    assert "password is wrong" not in response.text.lower()
    assert session_cookie(client) is None
    assert (await client.get("/clerk/")).status_code == 303


async def test_an_unknown_username_gets_the_same_answer_as_a_wrong_password(client, clerk):
    wrong_password = await sign_in(client, "anna.rossi", "not-the-password")
    unknown_user = await sign_in(client, "nobody", "not-the-password")
    assert unknown_user.status_code == wrong_password.status_code == 400
    message = re.compile(r'<p class="form-error" role="alert">(.*?)</p>')
    assert message.findall(unknown_user.text) == message.findall(wrong_password.text)


async def test_a_login_post_without_the_csrf_token_is_refused(client, clerk):
    await client.get("/clerk/login")  # the CSRF cookie is there; the field is not
    response = await client.post(
        "/clerk/login", data={"username": "anna.rossi", "password": CLERK_PASSWORD}
    )
    assert response.status_code == 403
    assert session_cookie(client) is None
    assert await AuditLog.count() == 0


async def test_forty_racing_wrong_passwords_from_one_client_get_only_five_checked(client, clerk):
    form = await client.get("/clerk/login")
    token = csrf_field(form.text)

    async def attempt(n: int):
        data = {"_csrf_token": token, "username": "anna.rossi", "password": f"guess-{n:04}"}
        return await client.post("/clerk/login", data=data)

    answers = await asyncio.gather(*(attempt(n) for n in range(40)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [400] * 5 + [429] * 35
    # Only the five allowed attempts reached the password check (each check is audited).
    assert await AuditLog.count().where(AuditLog.action == "login_failed") == 5
    refused = next(a for a in answers if a.status_code == 429)
    assert 0 < int(refused.headers["retry-after"]) <= 900


async def test_five_wrong_passwords_stop_that_device_while_the_clerk_still_signs_in_slowed(
    client, client_from, clerk
):
    attacker = await client_from("198.51.100.66")
    for attempt in range(5):
        assert (await sign_in(attacker, "anna.rossi", f"guess-number-{attempt}")).status_code == 400
    blocked = await sign_in(attacker, "anna.rossi", CLERK_PASSWORD)  # even the right one
    assert blocked.status_code == 429
    assert "Too many failed sign-ins" in blocked.text
    assert 'value="anna.rossi"' in blocked.text  # the form, shown again
    assert 0 < int(blocked.headers["retry-after"]) <= 900
    assert session_cookie(attacker) is None

    # The clerk's own device is not locked out; the username under attack is slowed down.
    started = time.monotonic()
    response = await sign_in(client, "anna.rossi", CLERK_PASSWORD)
    assert response.status_code == 303
    assert time.monotonic() - started >= sign_in_delay(5) > 0
    assert (await client.get("/clerk/")).status_code == 200


async def test_many_usernames_from_one_address_hit_the_address_limit(
    app, client, client_from, clerk
):
    app.state.login_limiter.address_limit = 5  # 20 by default
    for attempt in range(5):
        await sign_in(client, f"guess{attempt}", "not-a-password")
    assert (await sign_in(client, "anna.rossi", CLERK_PASSWORD)).status_code == 429
    elsewhere = await client_from("198.51.100.77")
    assert (await sign_in(elsewhere, "anna.rossi", CLERK_PASSWORD)).status_code == 303


async def test_signing_out_ends_a_copied_session_cookie_too(client, client_from, clerk):
    await sign_in(client, "anna.rossi", CLERK_PASSWORD)
    copy = await client_from("198.51.100.5")
    copy.cookies.set(SESSION_COOKIE, session_cookie(client), domain="portal.test", path="/clerk")
    assert (await copy.get("/clerk/")).status_code == 200
    await sign_out(client)
    after = await copy.get("/clerk/")
    assert after.status_code == 303
    assert after.headers["location"] == "/clerk/login"


async def test_set_password_ends_every_session_and_unlocks_a_locked_out_device(
    db_url, client, client_from, clerk
):
    await sign_in(client, "anna.rossi", CLERK_PASSWORD)
    counter = await client_from("198.51.100.8")
    for attempt in range(5):
        await sign_in(counter, "anna.rossi", f"forgot-it-{attempt}")
    assert (await sign_in(counter, "anna.rossi", "a-brand-new-one-1")).status_code == 429

    done = run_cli(db_url, "set-password", "Anna.Rossi", stdin="a-brand-new-one-1\n")
    assert done.returncode == 0, done.stderr
    assert "a-brand-new-one-1" not in done.stdout + done.stderr
    assert (await client.get("/clerk/")).status_code == 303  # the old session has ended
    assert (await sign_in(counter, "anna.rossi", "a-brand-new-one-1")).status_code == 303
    audited = await AuditLog.select(AuditLog.details).where(AuditLog.action == "password_set")
    assert len(audited) == 1 and "a-brand-new-one" not in str(audited)

    unknown = run_cli(db_url, "set-password", "nobody", stdin="a-brand-new-one-1\n")
    assert unknown.returncode == 2 and "no account 'nobody'" in unknown.stderr


async def test_disable_clerk_ends_every_session_and_refuses_sign_in(db_url, client, clerk, manager):
    await sign_in(client, "anna.rossi", CLERK_PASSWORD)
    done = run_cli(db_url, "disable-clerk", "anna.rossi")
    assert done.returncode == 0, done.stderr
    assert (await client.get("/clerk/")).status_code == 303
    assert (await sign_in(client, "anna.rossi", CLERK_PASSWORD)).status_code == 400
    assert await AuditLog.count().where(AuditLog.action == "disabled") == 1
    # The audit log says it was done from the command line, not by the clerk.
    await sign_in(client, "marco", MANAGER_PASSWORD)
    audit = (await client.get("/clerk/audit")).text
    row = re.search(r'<tr class="audit-disabled">(.*?)</tr>', audit, re.S).group(1)
    assert "anna.rossi" in row and "(command line)" in row


async def test_a_manager_unlocks_a_locked_out_clerk_on_the_staff_page(
    client, client_from, clerk, manager
):
    counter = await client_from("198.51.100.8")
    for attempt in range(5):
        await sign_in(counter, "anna.rossi", f"forgot-it-{attempt}")
    assert (await sign_in(counter, "anna.rossi", CLERK_PASSWORD)).status_code == 429

    await sign_in(client, "marco", MANAGER_PASSWORD)
    home = await client.get("/clerk/")
    assert 'href="/clerk/staff"' in home.text
    page = await client.get("/clerk/staff")
    assert page.status_code == 200
    row = re.search(r'<tr class="staff-anna.rossi">(.*?)</tr>', page.text, re.S)
    assert row and '<td class="num">5</td>' in row.group(1)
    without_csrf = await client.post("/clerk/staff/anna.rossi/unlock")
    assert without_csrf.status_code == 403
    unlocked = await client.post(
        "/clerk/staff/anna.rossi/unlock", data={"_csrf_token": csrf_field(page.text)}
    )
    assert unlocked.status_code == 303
    shown = await client.get(unlocked.headers["location"])
    assert "Sign-in unlocked for anna.rossi." in shown.text

    assert (await sign_in(counter, "anna.rossi", CLERK_PASSWORD)).status_code == 303
    entry = await AuditLog.select(AuditLog.staff, AuditLog.details).where(
        AuditLog.action == "sign_in_unlocked"
    )
    assert len(entry) == 1 and entry[0]["staff"] == manager.id
    assert "anna.rossi" in str(entry[0]["details"])
    # The audit log says whose sign-in the manager unlocked.
    audit = (await client.get("/clerk/audit")).text
    row = re.search(r'<tr class="audit-sign_in_unlocked">(.*?)</tr>', audit, re.S).group(1)
    assert "marco" in row and "sign_in_unlocked: anna.rossi" in row

    # A clerk has no such page and cannot unlock.
    clerk_home = await counter.get("/clerk/")
    assert "/clerk/staff" not in clerk_home.text
    assert (await counter.get("/clerk/staff")).status_code == 404
    refused = await counter.post(
        "/clerk/staff/anna.rossi/unlock", data={"_csrf_token": csrf_field(clerk_home.text)}
    )
    assert refused.status_code == 404


async def test_logout_ends_the_session(client, clerk):
    await sign_in(client, "anna.rossi", CLERK_PASSWORD)
    assert (await client.get("/clerk/")).status_code == 200
    response = await sign_out(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/clerk/login"
    assert session_cookie(client) is None
    assert (await client.get("/clerk/")).status_code == 303


async def test_a_deactivated_clerk_is_refused_and_their_session_stops_working(rt, client, clerk):
    await sign_in(client, "anna.rossi", CLERK_PASSWORD)
    assert (await client.get("/clerk/")).status_code == 200
    await set_active(rt, "anna.rossi", False)
    after = await client.get("/clerk/")
    assert after.status_code == 303
    assert after.headers["location"] == "/clerk/login"
    assert session_cookie(client) is None
    again = await sign_in(client, "anna.rossi", CLERK_PASSWORD)
    assert again.status_code == 400
    assert session_cookie(client) is None


async def test_a_password_change_ends_existing_sessions(rt, client, clerk):
    from portal.domain.staff import hash_password

    await sign_in(client, "anna.rossi", CLERK_PASSWORD)
    await StaffUser.update({StaffUser.password_hash: hash_password("a-brand-new-one")}).where(
        StaffUser.username == "anna.rossi"
    )
    assert (await client.get("/clerk/")).status_code == 303


async def test_a_tampered_session_cookie_is_ignored(client, clerk):
    client.cookies.set(SESSION_COOKIE, "bm90LWEtc2Vzc2lvbg==", domain="portal.test", path="/clerk")
    assert (await client.get("/clerk/")).status_code == 303


# Sessions on clerk routes


async def test_a_clerk_page_without_a_session_redirects_to_login_with_next(client):
    response = await client.get("/clerk/audit?before=9")
    assert response.status_code == 303
    assert response.headers["location"] == "/clerk/login?next=/clerk/audit%3Fbefore%3D9"
    form = await client.get(response.headers["location"])
    assert '<input type="hidden" name="next" value="/clerk/audit?before=9">' in form.text


async def test_an_htmx_request_without_a_session_gets_hx_redirect(client):
    response = await client.get(
        "/clerk/audit",
        headers={"HX-Request": "true", "HX-Current-URL": "http://portal.test/clerk/?store=MI01"},
    )
    assert response.status_code == 200
    assert response.headers["hx-redirect"] == "/clerk/login?next=/clerk/%3Fstore%3DMI01"
    assert "location" not in response.headers


async def test_after_login_the_clerk_lands_on_next(client, manager):
    response = await sign_in(client, "marco", MANAGER_PASSWORD, next_path="/clerk/audit")
    assert response.status_code == 303
    assert response.headers["location"] == "/clerk/audit"


@pytest.mark.parametrize(
    "next_path", ["//evil.example", "https://evil.example", "/\\evil.example", "//evil.example/"]
)
async def test_next_refuses_off_site_urls(client, clerk, next_path):
    form = await client.get("/clerk/login", params={"next": next_path})
    assert "evil.example" not in form.text
    response = await sign_in(client, "anna.rossi", CLERK_PASSWORD, next_path=next_path)
    assert response.status_code == 303
    assert response.headers["location"] == "/clerk/"


async def test_a_signed_in_clerk_opening_the_login_page_goes_to_the_console(client, clerk):
    await sign_in(client, "anna.rossi", CLERK_PASSWORD)
    response = await client.get("/clerk/login")
    assert response.status_code == 303
    assert response.headers["location"] == "/clerk/"


async def test_a_clerk_sees_their_own_store_and_gets_404_for_another(client, clerk):
    await sign_in(client, "anna.rossi", CLERK_PASSWORD)
    assert (await client.get("/clerk/", params={"store": "MI01"})).status_code == 200
    other = await client.get("/clerk/", params={"store": "RM01"})
    unknown = await client.get("/clerk/", params={"store": "XX99"})
    assert other.status_code == unknown.status_code == 404


async def test_a_manager_may_open_any_store(client, manager):
    await sign_in(client, "marco", MANAGER_PASSWORD)
    page = await client.get("/clerk/", params={"store": "RM01"})
    assert page.status_code == 200
    assert "Showing Roma Termini (RM01)" in page.text


# The audit log


async def test_a_clerk_gets_404_on_the_audit_log(client, clerk):
    await sign_in(client, "anna.rossi", CLERK_PASSWORD)
    home = await client.get("/clerk/")
    assert "/clerk/audit" not in home.text
    assert (await client.get("/clerk/audit")).status_code == 404


async def test_a_manager_sees_sign_ins_sign_outs_and_failures_newest_first(
    client, client_from, clerk, manager
):
    counter = await client_from("198.51.100.9")
    await sign_in(counter, "anna.rossi", "typed-it-wrong")
    await sign_in(counter, "anna.rossi", CLERK_PASSWORD)
    await sign_out(counter)
    await sign_in(client, "marco", MANAGER_PASSWORD)
    page = await client.get("/clerk/audit")
    assert page.status_code == 200
    rows = re.findall(r"<tr class=\"audit-(\w+)\">\s*<td.*?</td>\s*<td>(.*?)</td>", page.text, re.S)
    assert rows == [
        ("login", "marco"),
        ("logout", "anna.rossi"),
        ("login", "anna.rossi"),
        ("login_failed", "anna.rossi"),
    ]
    assert "<td>MI01</td>" in page.text
    assert "typed-it-wrong" not in page.text
    assert "Nov 23, 2026, 10:30" in page.text  # 09:30 UTC, in the store's zone (Rome)
    details = await AuditLog.select(AuditLog.details).where(AuditLog.action == "login_failed")
    assert "typed-it-wrong" not in str(details)


async def test_a_failed_sign_in_with_an_unknown_username_is_audited_with_that_name(client, manager):
    await sign_in(client, "Mallory", "whatever-it-is")
    await sign_in(client, "marco", MANAGER_PASSWORD)
    page = await client.get("/clerk/audit")
    assert "<td>(Mallory)</td>" in page.text


async def test_the_audit_log_pages_by_fifty_with_an_older_link(rt, client, manager):
    async with rt.writing():
        for n in range(55):
            await record_audit(rt, staff_id=manager.id, action=f"test_{n}")
    await sign_in(client, "marco", MANAGER_PASSWORD)
    first = await client.get("/clerk/audit")
    assert first.text.count('<tr class="audit-') == 50
    older = re.search(r'href="/clerk/audit\?before=(\d+)"', first.text)
    assert older
    second = await client.get(f"/clerk/audit?before={older.group(1)}")
    assert second.text.count('<tr class="audit-') == 6  # test_0 .. test_4 and nothing newer
    assert "test_0" in second.text and "test_54" not in second.text
    assert "before=" not in second.text
