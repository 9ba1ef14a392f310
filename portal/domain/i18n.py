"""Marking words for translation where they are written, without translating them there.

Rules and services speak English: logs, the shop's API and tests read it. A page says the
same words in the shopper's language, looked up in the catalogs (portal/locale) where they
are shown. `pybabel extract` finds the msgids through these markers (babel.cfg):

- `N_("...")`: a fixed text; the English text is its own msgid.
- `Nf_("at most %(max)s characters", max=80)`: a text with values; the msgid keeps the
  placeholders, so a translation may put them anywhere.
- `Nn_("%(num)s try left", "%(num)s tries left", n)`: the same with a plural (n is `num`).

The last two return a `Msg`: the English text, which also carries its msgid and values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo


def N_(message: str) -> str:
    """Marks a msgid for extraction; the text is translated where a page shows it."""
    return message


class Msg(str):
    """English text that remembers its msgid and values, so a page can say it in the
    reader's language. It compares and prints as the plain English text; `str()` of it is
    that plain text (so an error's `str(exc)` is plain English: use `words_of`)."""

    msgid: str
    plural: str | None
    n: int | None
    params: dict[str, Any]

    def __new__(
        cls,
        msgid: str,
        params: dict[str, Any] | None = None,
        plural: str | None = None,
        n: int | None = None,
    ) -> Msg:
        values = dict(params or {})
        if plural is not None and n is not None:
            values.setdefault("num", n)
        template = plural if plural is not None and n != 1 else msgid
        self = super().__new__(cls, template % values if values else template)
        self.msgid, self.plural, self.n, self.params = msgid, plural, n, values
        return self


@dataclass(frozen=True, slots=True)
class LocalTime:
    """A value of a `Msg`: a moment on the reader's clock. A page writes it in its language
    (the time, and the day too when it is not today there); plain text says "14:35"."""

    at: datetime
    zone: str
    now: datetime

    @property
    def local(self) -> datetime:
        return self.at.astimezone(ZoneInfo(self.zone))

    @property
    def today(self) -> bool:
        return self.local.date() == self.now.astimezone(ZoneInfo(self.zone)).date()

    def __str__(self) -> str:
        local = self.local
        return f"{local:%H:%M}" if self.today else f"{local:%Y-%m-%d %H:%M}"


def Nf_(msgid: str, /, **params: Any) -> Msg:
    return Msg(msgid, params)


def Nn_(singular: str, plural: str, n: int, /, **params: Any) -> Msg:
    return Msg(singular, params, plural, n)


def words_of(exc: BaseException) -> str:
    """An error's message, still a `Msg` when it was raised with one (str(exc) is not)."""
    first = exc.args[0] if exc.args else None
    return first if isinstance(first, str) else str(exc)
