"""One Jinja environment for pages, fragments and SMS texts, with locale-aware filters."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_skeleton, format_time, get_day_names
from babel.numbers import format_currency
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup

from portal.domain.i18n import N_, LocalTime, Msg
from portal.domain.locale import DEFAULT, PAGE_LOCALES
from portal.domain.money import from_minor
from portal.domain.store import DAYS

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------ translations


@lru_cache(maxsize=8)
def catalog(locale: str) -> NullTranslations:
    """The compiled catalog of a page language (`make` builds the .mo files from the .po
    files). English is the msgids themselves; a missing catalog falls back to them, loudly."""
    if locale == DEFAULT or locale not in PAGE_LOCALES:
        return NullTranslations()
    if not (LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file():
        log.warning("no compiled catalog for %s: pages fall back to English (run make)", locale)
    return Translations.load(str(LOCALE_DIR), [locale], DOMAIN)


def _lookup(locale: str, message: str) -> str:
    """The words of `message` in `locale`, values not yet filled in."""
    found = catalog(locale)
    if isinstance(message, Msg):
        if message.plural is not None and message.n is not None:
            return found.ngettext(message.msgid, message.plural, message.n)
        return found.gettext(message.msgid)
    return found.gettext(message)


def _values(locale: str, message: str) -> dict[str, Any]:
    params = message.params if isinstance(message, Msg) else {}
    return {k: _value(locale, v) for k, v in params.items()}


def _value(locale: str, value: Any) -> Any:
    if isinstance(value, Msg):
        return translate(locale, value)
    if isinstance(value, LocalTime):
        local = value.local
        if value.today:
            return clock(local, locale)
        return f"{_date_text(local.date(), locale, 'skeleton:MMMEd')}, {clock(local, locale)}"
    return value


def translate(locale: str, message: str) -> str:
    """A page's text (a msgid, or a `Msg` from a rule or service) in `locale`."""
    text = _lookup(locale, message)
    values = _values(locale, message)
    return text % values if values else text


class Words:
    """Fixed words of a page (statuses, events, reasons) by key, translated once per language
    rather than through `_()` on every render: `WORDS(locale)["events"]["shipped"]`."""

    def __init__(self, **tables: Mapping[str, str]) -> None:
        self._tables = tables
        self._done: dict[str, dict[str, dict[str, str]]] = {}

    def __call__(self, locale: str) -> dict[str, dict[str, str]]:
        found = self._done.get(locale)
        if found is None:
            found = {
                name: {key: translate(locale, text) for key, text in table.items()}
                for name, table in self._tables.items()
            }
            self._done[locale] = found
        return found


def _page_locale(context: Context) -> str:
    return context.get("locale") or DEFAULT


@lru_cache(maxsize=4096)
def _plain(locale: str, msgid: str) -> str:
    """A msgid without values in `locale`, %-formatted as newstyle gettext does ("%%" -> "%")."""
    text: str = _lookup(locale, msgid) % {}
    return text


def _text(locale: str, message: str, variables: dict[str, Any], html: bool) -> str:
    """`_()` with the semantics of Jinja's newstyle gettext: the translation is trusted
    markup on HTML pages, always %-formatted, its values escaped. A `Msg` brings its values."""
    if not variables and type(message) is str:
        # Most calls: a fixed msgid with no values, its result the same on every page.
        plain = _plain(locale, message)
        return Markup(plain) if html else plain  # noqa: S704
    text = _lookup(locale, message)
    if isinstance(message, Msg) and message.params:
        variables = {**_values(locale, message), **variables}
    # The msgid is ours (trusted); the values are escaped by Markup's %.
    return Markup(text) % variables if html else text % variables  # noqa: S704


@pass_context
def _gettext(context: Context, message: str, **variables: Any) -> str:
    """`_()` where a template is rendered without `page_gettext` (SMS texts): the language
    is the render's `locale`."""
    return _text(_page_locale(context), message, variables, context.eval_ctx.autoescape)


@lru_cache(maxsize=16)
def page_gettext(locale: str) -> Callable[..., str]:
    """`_()` of an HTML page in `locale`, put in the page's context by `web.render`. A plain
    callable: Jinja calls it directly, whereas a context function inside a loop or after a
    `{% set %}` block costs a copy of the whole context on every call (a few dozen a page)."""

    def gettext(message: str, **variables: Any) -> str:
        return _text(locale, message, variables, True)

    return gettext


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return catalog(_page_locale(context)).ngettext(singular, plural, n)


@pass_context
def tr(context: Context, message: str) -> str:
    """`{{ exc_detail | tr }}`: a message from a rule or service, in the page's language.
    Unlike `_()` it is not markup: the page escapes it like any other value."""
    return translate(_page_locale(context), message)


def capfirst(text: str) -> str:
    """The first letter upper case, the rest as it is (messages start lower case)."""
    return text[:1].upper() + text[1:]


@lru_cache(maxsize=4096)
def money(minor: int, currency: str, locale: str = "en") -> str:
    """Prices repeat across pages, and babel's formatting is most of a render's cost."""
    return format_currency(from_minor(minor, currency), currency, locale=locale)


# Dates and times repeat across pages (the same days, the same minutes), and babel's
# formatting is a good share of a render: each (day or minute, locale) is formatted once per
# process. The moment is first put in the reader's zone; only its local parts are cached.


@lru_cache(maxsize=8192)
def _date_text(value: date, locale: str, fmt: str) -> str:
    """A calendar day: a babel format ("medium", "full") or a "skeleton:..." of babel's."""
    if fmt.startswith("skeleton:"):
        return format_skeleton(fmt[9:], value, locale=locale)
    return format_date(value, format=fmt, locale=locale)


@lru_cache(maxsize=8192)
def _time_text(hour: int, minute: int, locale: str) -> str:
    return format_time(time(hour, minute), "short", locale=locale)


def clock(value: time | datetime, locale: str = "en") -> str:
    """A time of day (of a local moment) as the locale writes it ('9:30 AM', '09:30')."""
    return _time_text(value.hour, value.minute, locale)


_unshown_logged = False


def _local(value: datetime, tz: str) -> datetime | None:
    """`value` in `tz`; None for a stored moment no zone conversion can hold (year 1, year
    9999: services.orders.readable keeps them from the shopper's page; this is for the rest,
    logged the first time)."""
    global _unshown_logged
    try:
        return value.astimezone(ZoneInfo(tz))
    except (OverflowError, ValueError):
        if not _unshown_logged:
            _unshown_logged = True
            log.warning("a stored date no time zone can hold was left out of a page")
        return None


def when(
    value: datetime | None, locale: str = "en", tz: str = "UTC", with_year: bool = True
) -> str:
    """A moment in the reader's zone, as the locale writes it ('Nov 23, 2026, 09:12')."""
    local = None if value is None else _local(value, tz)
    if local is None:
        return ""
    date_part = _date_text(local.date(), locale, "medium" if with_year else "skeleton:MMMd")
    return f"{date_part}, {_time_text(local.hour, local.minute, locale)}"


def day(value: datetime | None, locale: str = "en", tz: str = "UTC", fmt: str = "medium") -> str:
    local = None if value is None else _local(value, tz)
    return "" if local is None else _date_text(local.date(), locale, fmt)


def isoday(value: date | str | None, locale: str = "en") -> str:
    """A calendar day with its weekday, no year: "Fri, Nov 27"."""
    if not value:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return _date_text(value, locale, "skeleton:MMMEd")


def span(start: datetime | None, end: datetime | None, locale: str = "en", tz: str = "UTC") -> str:
    """A visit on one day, with an en dash: 'Sat, Nov 28, 11:00 AM - 12:00 PM'."""
    if start is None or end is None:
        return ""
    zone = ZoneInfo(tz)
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    return (
        f"{_date_text(local_start.date(), locale, 'skeleton:MMMEd')}, "
        f"{_time_text(local_start.hour, local_start.minute, locale)} – "
        f"{_time_text(local_end.hour, local_end.minute, locale)}"
    )


def _clock(hhmm: str, locale: str) -> str:
    if hhmm == "24:00":
        hhmm = "00:00"
    at = time.fromisoformat(hhmm)
    return _time_text(at.hour, at.minute, locale)


ALL_DAY, OPEN_ALL_DAY = "00:00-24:00", N_("Open 24 hours")


def _span_text(span: str, locale: str) -> str:
    """One opening span as a shopper reads it, "9:30 AM" to "1:00 PM"; a whole day as such
    (midnight to midnight would read "12:00 AM" to "12:00 AM")."""
    if span == ALL_DAY:
        return _lookup(locale, OPEN_ALL_DAY)
    start, end = span.split("-")
    return f"{_clock(start, locale)} – {_clock(end, locale)}"


def week_hours(
    hours: Mapping[str, list[str]] | None, locale: str = "en"
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A store's week, Monday first: (day name, its opening spans) in the locale's words.
    The spans are the store's own clock times, so they are shown as they are. Stores have
    few distinct weeks, so each (week, locale) is formatted once per process."""
    return _week_hours(json.dumps(hours or {}, sort_keys=True), locale)


@lru_cache(maxsize=512)
def _week_hours(hours_json: str, locale: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    hours: dict[str, list[str]] = json.loads(hours_json)
    names = get_day_names("wide", locale=locale)
    return tuple(
        (
            names[i],
            tuple(_span_text(span, locale) for span in hours.get(key) or []),
        )
        for i, key in enumerate(DAYS)
    )


class PortalEnvironment(Environment):
    """Jinja's environment, with `row.name` on a plain dict looked up as a key first.

    Pages read database rows (order lines, parcels, events, stores) as dicts; Jinja tries the
    attribute first and a dict has none, so every `line.name` raised and caught an
    AttributeError: about a tenth of a page's CPU. A key that shadows a dict method
    (`items`, `get`, ...) would now win over the method; rows have no such keys."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def make_environment(directory: Path = TEMPLATES_DIR) -> Environment:
    env = PortalEnvironment(
        loader=FileSystemLoader(str(directory)),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        extensions=["jinja2.ext.i18n"],
    )
    # One environment serves every request: `_` and `ngettext` read the page's language
    # from the render's context (`locale`), so each render speaks its shopper's language.
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["_"] = env.globals["gettext"] = _gettext  # already newstyle: see _gettext
    env.globals["N_"] = lambda message: message  # marks a msgid; `_()` translates it where shown
    env.filters.update(
        money=money,
        when=when,
        day=day,
        isoday=isoday,
        span=span,
        week_hours=week_hours,
        capfirst=capfirst,
        tr=tr,
    )
    return env


def render_block(env: Environment, name: str, block: str, context: dict[str, Any]) -> str:
    """Render one named block of a page template: the HTMX fragment with the same source."""
    template = env.get_template(name)
    return "".join(template.blocks[block](template.new_context(context)))
