"""What a shopper's text says: a keyword (STOP, START, HELP in our languages), a 1-5 survey
answer, a yes to a pickup reminder, or something we cannot read. Pure: no I/O.

Keywords are matched on the whole text, with case, spaces, accents and punctuation ignored
("Stop!", " s t o p ", "Sì." all count), so a sentence that merely contains "stop" is a
reply, not an opt-out. Every language's words are accepted from every number: a shopper
may not write in the language we text them in.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


KEYWORDS: dict[str, Keyword] = {
    # en (the usual short-code words), it, pl, es
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "BASTA", "NIE", "BAJA"), Keyword.STOP),
    **dict.fromkeys(("START", "UNSTOP", "ATTIVA", "ALTA"), Keyword.START),
    **dict.fromkeys(("HELP", "INFO", "AIUTO", "POMOC", "AYUDA"), Keyword.HELP),
}

# A yes to "ready for pickup" or "see you today": recorded as a confirmed visit.
YES_WORDS = frozenset({"1", "OK", "OKAY", "SI", "TAK", "YES", "Y"})
# The SMS a yes answers.
CONFIRMABLE_KINDS = frozenset({"ready_for_pickup", "pickup_visit_today"})

SURVEY_KIND = "survey"
SURVEY_LOCAL_TIME = time(10, 0)
COMMENT_MAX = 300

_SCORE = re.compile(r"\s*([1-5])(?![0-9])(?:\s*(?:/\s*5\b)?[\s.,;:!/-]*)(.*)", re.DOTALL)


def fold(text: str) -> str:
    """Upper case, accents dropped ("Sì" -> "SI", "Ł" -> "L")."""
    decomposed = unicodedata.normalize("NFKD", text.replace("ł", "l").replace("Ł", "L"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def compact(text: str) -> str:
    """The text as a keyword: letters and digits only, folded."""
    return "".join(c for c in fold(text) if c.isalnum())


def keyword(text: str) -> Keyword | None:
    return KEYWORDS.get(compact(text))


def is_yes(text: str) -> bool:
    return compact(text) in YES_WORDS


@dataclass(frozen=True, slots=True)
class SurveyAnswer:
    score: int
    comment: str | None


def survey_answer(text: str) -> SurveyAnswer | None:
    """A score 1-5 first, then an optional comment: "4", "4/5", "5 great service",
    "3. slow courier". "10" or "I'd say 4" are not answers."""
    match = _SCORE.fullmatch(text or "")
    if match is None:
        return None
    comment = " ".join(match.group(2).split())[:COMMENT_MAX] or None
    return SurveyAnswer(int(match.group(1)), comment)


def survey_due(at: datetime, timezone: str) -> datetime:
    """The survey goes the day after `at`, at 10:00 in the shopper's zone (as UTC)."""
    zone = ZoneInfo(timezone)
    next_day = at.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(next_day, SURVEY_LOCAL_TIME, tzinfo=zone).astimezone(ZoneInfo("UTC"))


def local_day(at: datetime, timezone: str) -> str:
    """The shopper's calendar day (ISO), for "at most once a day" limits."""
    return at.astimezone(ZoneInfo(timezone)).date().isoformat()
