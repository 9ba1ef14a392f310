"""One Jinja environment for pages, fragments and SMS texts, with locale-aware filters."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_skeleton, format_time, get_day_names
from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from portal.domain.money import from_minor
from portal.domain.store import DAYS

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"


@lru_cache(maxsize=4096)
def money(minor: int, currency: str, locale: str = "en") -> str:
    """Prices repeat across pages, and babel's formatting is most of a render's cost."""
    return format_currency(from_minor(minor, currency), currency, locale=locale)


def when(
    value: datetime | None, locale: str = "en", tz: str = "UTC", with_year: bool = True
) -> str:
    """A moment in the reader's zone, as the locale writes it ('Nov 23, 2026, 09:12')."""
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(tz))
    date_part = (
        format_date(local, "medium", locale=locale)
        if with_year
        else format_skeleton("MMMd", local, locale=locale)
    )
    return f"{date_part}, {format_time(local, 'short', locale=locale)}"


def day(value: datetime | None, locale: str = "en", tz: str = "UTC", fmt: str = "medium") -> str:
    if value is None:
        return ""
    return format_date(value.astimezone(ZoneInfo(tz)).date(), format=fmt, locale=locale)


def isoday(value: date | str | None, locale: str = "en") -> str:
    """A calendar day with its weekday, no year: "Fri, Nov 27"."""
    if not value:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return format_skeleton("MMMEd", value, locale=locale)


def span(start: datetime | None, end: datetime | None, locale: str = "en", tz: str = "UTC") -> str:
    """A visit on one day, with an en dash: 'Sat, Nov 28, 11:00 AM - 12:00 PM'."""
    if start is None or end is None:
        return ""
    zone = ZoneInfo(tz)
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    return (
        f"{format_skeleton('MMMEd', local_start, locale=locale)}, "
        f"{format_time(local_start, 'short', locale=locale)} – "
        f"{format_time(local_end, 'short', locale=locale)}"
    )


@lru_cache(maxsize=1024)
def _clock(hhmm: str, locale: str) -> str:
    if hhmm == "24:00":
        hhmm = "00:00"
    return format_time(time.fromisoformat(hhmm), "short", locale=locale)


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
            tuple(
                f"{_clock(a, locale)} – {_clock(b, locale)}"
                for a, b in (span.split("-") for span in hours.get(key) or [])
            ),
        )
        for i, key in enumerate(DAYS)
    )


def make_environment(directory: Path = TEMPLATES_DIR) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(directory)),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        extensions=["jinja2.ext.i18n"],
    )
    # Page strings are marked for translation now; the catalogs come with the messaging work.
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    env.globals["N_"] = lambda message: message  # marks a msgid that is translated later
    env.filters.update(
        money=money, when=when, day=day, isoday=isoday, span=span, week_hours=week_hours
    )
    return env


def render_block(env: Environment, name: str, block: str, context: dict[str, Any]) -> str:
    """Render one named block of a page template: the HTMX fragment with the same source."""
    template = env.get_template(name)
    return "".join(template.blocks[block](template.new_context(context)))
