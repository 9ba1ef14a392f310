"""One Jinja environment for pages, fragments and SMS texts, with locale-aware filters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_skeleton, format_time
from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from portal.domain.money import from_minor

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"


def money(minor: int, currency: str, locale: str = "en") -> str:
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
    env.filters.update(money=money, when=when, day=day)
    return env


def render_block(env: Environment, name: str, block: str, context: dict[str, Any]) -> str:
    """Render one named block of a page template: the HTMX fragment with the same source."""
    template = env.get_template(name)
    return "".join(template.blocks[block](template.new_context(context)))
