"""The shopper's page in Italian, Polish, Spanish and English: the order's language decides,
the shopper may switch (remembered on the customer, so texts follow), and every word a page
shows has a translation in each catalog."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from portal.db.tables import Customer, SmsMessage
from portal.domain.locale import PAGE_LOCALES, from_accept_language, page_locale
from portal.templating import LOCALE_DIR, catalog
from tests.conftest import ROOT
from tests.web.helpers import create_order, csrf_field, path_of, post_event

CUSTOMER = {"name": "Giulia Bianchi", "phone": "347 123 4567"}
TRANSLATED = [lang for lang in PAGE_LOCALES if lang != "en"]

# What each language's page says for a new order of 52.30 EUR.
PAGE_WORDS = {
    "it": ("Ciao Giulia,", "Abbiamo ricevuto il tuo ordine", "52,30\xa0€", "Articoli"),
    "pl": ("Cześć Giulia!", "Mamy Twoje zamówienie", "52,30\xa0€", "Produkty"),
    "es": ("¡Hola, Giulia!", "Hemos recibido tu pedido", "52,30\xa0€", "Artículos"),
    "en": ("Hi Giulia,", "We have your order", "€52.30", "Items"),
}


async def order_in(client, auth, lang: str, **overrides):
    body = await create_order(client, auth, customer={**CUSTOMER, "locale": lang}, **overrides)
    return {**body, "path": path_of(body["tracking_url"])}


def lang_of(html: str) -> str:
    found = re.search(r'<html lang="([a-z]+)">', html)
    assert found, "the page has no <html lang>"
    return found.group(1)


async def switch(client, path: str, language: str, *, csrf: bool = True):
    page = await client.get(path)
    data = {"language": language}
    if csrf:
        data["_csrf_token"] = csrf_field(page.text)
    return await client.post(f"{path}/language", data=data)


# ----------------------------------------------------------------------- the order decides


@pytest.mark.parametrize("lang", ["it", "pl", "es", "en"])
async def test_the_page_speaks_the_orders_language(client, auth, lang):
    order = await order_in(client, auth, lang)
    html = (await client.get(order["path"])).text
    greeting, headline, total, items = PAGE_WORDS[lang]
    assert lang_of(html) == lang
    assert greeting in html
    assert headline in html
    assert total in html
    assert f"<h2>{items}</h2>" in html
    # Only the page's language: no English left where a translation exists.
    if lang != "en":
        assert "We have your order" not in html and "Updates by text message" not in html


async def test_an_italian_page_writes_dates_and_statuses_the_italian_way(client, auth):
    order = await order_in(client, auth, "it")
    response = await post_event(
        client,
        auth,
        order["external_id"],
        "shipped",
        shipment={"tracking_number": "BRT9", "carrier": "BRT", "eta": "2026-11-25T12:00:00Z"},
    )
    assert response.status_code == 201, response.text
    html = (await client.get(order["path"])).text
    assert "Il tuo ordine è in viaggio" in html
    assert "codice di tracciamento <code>BRT9</code>" in html
    assert "previsto per mercoledì 25 novembre 2026" in html
    assert "Effettuato il 23 nov 2026" in html


async def test_a_polish_message_from_a_rule_keeps_its_values_and_plural(client, auth):
    # An address change asks for the texted code; a wrong one says how many tries are left.
    order = await order_in(client, auth, "pl")
    page = (await client.get(order["path"])).text
    fields = {
        "_csrf_token": csrf_field(page),
        "version": re.search(r'name="version" value="(\d+)"', page).group(1),
        "line1": "Corso Buenos Aires 12",
        "postcode": "2012",
        "city": "Milano",
        "region": "",
    }
    refused = await client.post(f"{order['path']}/delivery/address", data=fields)
    assert refused.status_code == 422
    assert "Nieprawidłowy kod pocztowy dla IT (np. 20121)" in refused.text
    assert "Prowincja: pole wymagane" in refused.text

    fields.update(postcode="20124", region="MI")
    sent = await client.post(f"{order['path']}/delivery/address", data=fields)
    assert sent.status_code == 303
    code = (await client.get(order["path"])).text
    wrong = {"_csrf_token": csrf_field(code), "code": "000000"}
    answers = []
    for _ in range(2):
        answer = await client.post(f"{order['path']}/delivery/code", data=wrong)
        assert answer.status_code == 422
        answers.append(answer.text)
    # Polish has three plural forms: 1 próba, 2-4 próby, 5+ prób.
    assert "To nie jest kod, który wysłaliśmy (zostały 4 próby)" in answers[0]
    assert "To nie jest kod, który wysłaliśmy (zostały 3 próby)" in answers[1]


async def test_an_unknown_link_answers_in_the_browsers_language(client):
    response = await client.get(
        "/t/AAAAAAAAAAAAAAAAAAAAAA", headers={"Accept-Language": "es-ES,es;q=0.9,en;q=0.8"}
    )
    assert response.status_code == 404
    assert lang_of(response.text) == "es"
    assert "Este enlace no está disponible" in response.text
    plain = await client.get("/t/AAAAAAAAAAAAAAAAAAAAAB")
    assert lang_of(plain.text) == "en" and "This link is not available" in plain.text


# ------------------------------------------------------------------------ the switch


async def test_the_footer_offers_each_language_by_its_own_name(client, auth):
    order = await order_in(client, auth, "it")
    html = (await client.get(order["path"])).text
    form = re.search(r'<form id="language".*?</form>', html, re.S).group(0)
    assert f'action="{order["path"]}/language#preferences"' in form
    assert 'name="_csrf_token"' in form
    assert '<strong lang="it" aria-current="true">Italiano</strong>' in form
    for code, name in (("pl", "Polski"), ("es", "Español"), ("en", "English")):
        assert f'name="language" value="{code}" lang="{code}"' in form and name in form
    assert "Anche gli SMS arriveranno nella lingua che scegli." in form


async def test_switching_language_is_remembered_and_texts_follow(client, auth, client_from):
    order = await order_in(client, auth, "it")
    progress = await client.get(order["path"] + "/progress")
    answer = await switch(client, order["path"], "pl")
    assert answer.status_code == 303
    assert answer.headers["location"] == order["path"]
    html = (await client.get(order["path"])).text
    assert lang_of(html) == "pl"
    assert "Mamy Twoje zamówienie" in html
    assert '<strong lang="pl" aria-current="true">Polski</strong>' in html
    # Remembered: another phone opening the link reads Polish; the poll sees a new version.
    other = await client_from("10.0.0.2")
    assert lang_of((await other.get(order["path"])).text) == "pl"
    polled = await client.get(
        order["path"] + "/progress", headers={"If-None-Match": progress.headers["etag"]}
    )
    assert polled.status_code == 200 and "Mamy Twoje zamówienie" in polled.text
    # The next text message is Polish too.
    response = await post_event(
        client,
        auth,
        order["external_id"],
        "shipped",
        shipment={"tracking_number": "BRT9", "carrier": "BRT"},
    )
    assert response.status_code == 201, response.text
    sms = await SmsMessage.select(SmsMessage.body, SmsMessage.locale).where(
        (SmsMessage.order == order["id"]) & (SmsMessage.kind == "shipped")
    )
    assert [m["locale"] for m in sms] == ["pl"]
    # (Polish texts drop their diacritics to stay in one GSM-7 segment.)
    assert sms[0]["body"].startswith("Czesc Giulia, zamowienie")


async def test_back_to_english(client, auth):
    order = await order_in(client, auth, "es")
    assert (await switch(client, order["path"], "en")).status_code == 303
    html = (await client.get(order["path"])).text
    assert lang_of(html) == "en" and "We have your order" in html


@pytest.mark.parametrize("value", ["de", "", "EN-us", "<script>"])
async def test_a_language_not_offered_is_refused_and_nothing_changes(client, auth, value):
    order = await order_in(client, auth, "it")
    answer = await switch(client, order["path"], value)
    assert answer.status_code == 422
    assert "choose one of the languages listed" in answer.text
    assert "<script>" not in answer.text
    rows = await Customer.select(Customer.locale)
    assert [r["locale"] for r in rows] == ["it"]
    assert lang_of((await client.get(order["path"])).text) == "it"


async def test_a_switch_without_the_csrf_token_is_refused(client, auth):
    order = await order_in(client, auth, "it")
    answer = await switch(client, order["path"], "pl", csrf=False)
    assert answer.status_code == 403
    assert [r["locale"] for r in await Customer.select(Customer.locale)] == ["it"]


async def test_a_switch_on_an_unknown_link_looks_like_any_unknown_link(client, auth):
    order = await order_in(client, auth, "it")
    page = await client.get(order["path"])
    answer = await client.post(
        "/t/AAAAAAAAAAAAAAAAAAAAAA/language",
        data={"_csrf_token": csrf_field(page.text), "language": "pl"},
    )
    assert answer.status_code == 404
    assert [r["locale"] for r in await Customer.select(Customer.locale)] == ["it"]


# ---------------------------------------------------------------------------- catalogs


def extracted_msgids() -> set[str | tuple[str, str]]:
    """What `make messages` extracts (babel.cfg): every msgid a page can show."""
    with open(ROOT / "babel.cfg") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg, "babel.cfg")
    found: set[str | tuple[str, str]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        found.add(message if isinstance(message, str) else (message[0], message[1]))
    return found


def test_the_extraction_finds_the_pages_and_the_python_words() -> None:
    msgids = extracted_msgids()
    assert "We have your order" in msgids  # portal/web/labels.py, marked with N_
    assert "Hi %(name)s," in msgids  # shopper/order.html
    assert "the parcel has been delivered" in msgids  # services/delivery.py, N_
    assert "at most %(max)s characters" in msgids  # domain/delivery.py, Nf_
    assert (
        "that is not the code we sent (%(num)s try left)",
        "that is not the code we sent (%(num)s tries left)",
    ) in msgids  # services/delivery.py, Nn_


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_page_word_is_translated_in_the_compiled_catalog(lang: str) -> None:
    """Fails when a new `_()` (or N_) string has no translation: run `make messages`, then
    translate it in portal/locale/<lang>/LC_MESSAGES/messages.po (`make` compiles it)."""
    mo = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.mo"
    assert mo.is_file(), f"{mo} is missing: `make install` compiles the catalogs"
    compiled = catalog(lang)._catalog  # type: ignore[attr-defined]
    missing = []
    for msgid in sorted(extracted_msgids(), key=str):
        if isinstance(msgid, tuple):
            forms = [v for k, v in compiled.items() if isinstance(k, tuple) and k[0] == msgid[0]]
            if len(forms) < 2 or not all(forms):
                missing.append(msgid[0])
        elif not compiled.get(msgid):
            missing.append(msgid)
    assert missing == [], f"untranslated in {lang}: {missing}"


@pytest.mark.parametrize("lang", TRANSLATED)
def test_each_translation_keeps_the_placeholders_of_its_msgid(lang: str) -> None:
    path = Path(LOCALE_DIR) / lang / "LC_MESSAGES" / "messages.po"
    with open(path, "rb") as po:
        entries = read_po(po, locale=lang)
    problems = [(m.id, [str(e) for e in errors]) for m, errors in entries.check()]
    fuzzy = [m.id for m in entries if m.id and m.fuzzy]
    assert problems == [] and fuzzy == []


def test_pages_come_in_four_languages_and_others_fall_back_to_english() -> None:
    assert set(PAGE_LOCALES) == {"en", "it", "pl", "es"}
    assert page_locale("pl") == "pl"
    assert page_locale("de") == "en"
    assert from_accept_language("it-IT,it;q=0.9,en-US;q=0.8") == "it"
    assert from_accept_language("de-DE,de;q=0.9,pl;q=0.8") == "pl"
    assert from_accept_language("en;q=0.5, es;q=0.9") == "es"
    assert from_accept_language("fr") == "en" and from_accept_language(None) == "en"
