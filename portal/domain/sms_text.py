"""SMS length and cost: GSM-7 or UCS-2, characters used, segments.

GSM 03.38 basic set characters count one septet, extension characters (escape + char) two.
One GSM-7 segment holds 160 septets, a concatenated one 153; UCS-2: 70, then 67 (counted in
UTF-16 code units, so an emoji counts two).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

# Look-alikes that would force UCS-2, mapped to GSM-7 letters. Polish first: the reason
# this exists is that a Polish SMS in UCS-2 costs more than twice as much.
TRANSLITERATION: dict[str, str] = {
    "ą": "a",
    "ć": "c",
    "ę": "e",
    "ł": "l",
    "ń": "n",
    "ó": "o",
    "ś": "s",
    "ź": "z",
    "ż": "z",
    "Ą": "A",
    "Ć": "C",
    "Ę": "E",
    "Ł": "L",
    "Ń": "N",
    "Ó": "O",
    "Ś": "S",
    "Ź": "Z",
    "Ż": "Z",
    "á": "a",
    "í": "i",
    "ú": "u",
    "ê": "e",
    "ë": "e",
    "î": "i",
    "ï": "i",
    "ô": "o",
    "û": "u",
    "â": "a",
    "ã": "a",
    "õ": "o",
    "ç": "Ç",
    "Á": "A",
    "Í": "I",
    "Ú": "U",
    "È": "E",
    "Ì": "I",
    "Ò": "O",
    "Ù": "U",
    "À": "A",
    "Â": "A",
    "Ê": "E",
    "Ô": "O",
    "`": "'",
    "‘": "'",
    "’": "'",
    "‚": "'",
    "“": '"',
    "”": '"',
    "„": '"',
    "«": '"',
    "»": '"',
    "–": "-",
    "—": "-",
    "‐": "-",
    "…": "...",
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "•": "-",
    "·": ".",
}


@dataclass(frozen=True, slots=True)
class SmsLength:
    encoding: str  # "gsm7" | "ucs2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int

    @property
    def datacoding(self) -> str:
        """MessageBird's `datacoding` for this text."""
        return "plain" if self.encoding == "gsm7" else "unicode"


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def measure(text: str) -> SmsLength:
    if is_gsm7(text):
        sizes = [2 if c in GSM7_EXTENSION else 1 for c in text]
        single, multi, encoding = 160, 153, "gsm7"
    else:
        # UTF-16 code units: a character outside the BMP (an emoji) is a surrogate pair.
        sizes = [2 if ord(c) > 0xFFFF else 1 for c in text]
        single, multi, encoding = 70, 67, "ucs2"
    units = sum(sizes)
    if units <= single:
        return SmsLength(encoding, units, 1 if units else 0)
    return SmsLength(encoding, units, _segments(sizes, multi))


def _segments(sizes: list[int], capacity: int) -> int:
    """Concatenated parts never split an escape pair or a surrogate pair: a two-unit
    character that does not fit in what is left of a part starts the next one."""
    parts, used = 1, 0
    for size in sizes:
        if used + size > capacity:
            parts, used = parts + 1, 0
        used += size
    return parts


def transliterate(text: str) -> str:
    """Replace characters that would force UCS-2 by GSM-7 look-alikes where one exists.

    Characters of GSM-7 are never changed; others without a table entry fall back to their
    accent-stripped form when that is GSM-7, else stay (and the text stays UCS-2).
    """
    out = []
    for c in text:
        if c in GSM7_BASIC or c in GSM7_EXTENSION:
            out.append(c)
        elif c in TRANSLITERATION:
            out.append(TRANSLITERATION[c])
        else:
            base = unicodedata.normalize("NFKD", c).encode("ascii", "ignore").decode()
            out.append(base if base and is_gsm7(base) else c)
    return "".join(out)
