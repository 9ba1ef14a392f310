"""The text-field rule (shared/contract.md, "Decisions"), for every text the portal takes
from outside: the shop API's bodies and the shopper's and clerks' forms.

CR and CRLF become LF first (a textarea sends CRLF: never refused); then C0 control
characters other than LF and TAB, and DEL, are refused; a single-line field refuses LF too.
NUL is among them: PostgreSQL cannot store it, and none of them means anything on a page,
in a text message or on a label.
"""

from __future__ import annotations

import re

from portal.domain import DomainError
from portal.domain.i18n import N_, Nf_

_REFUSED = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_REFUSED_ONE_LINE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class TextRefused(DomainError):
    """A text holds a character the rule refuses; the message names it."""


def clean_text(value: str, *, multiline: bool) -> str:
    """`value` with its line ends made LF, or TextRefused."""
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    found = (_REFUSED if multiline else _REFUSED_ONE_LINE).search(value)
    if found is None:
        return value
    char = found.group()
    if char == "\n":
        raise TextRefused(N_("must be a single line (no line breaks)"))
    raise TextRefused(
        Nf_(
            "contains a control character (U+%(code)s) that is not allowed", code=f"{ord(char):04X}"
        )
    )
