"""PORTAL_LOG_LEVEL as operators write it: any case; a wrong value is said, not a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import logging
from portal.logging_setup import configure_logging
configure_logging()
logging.getLogger("portal.x").info("an info line")
logging.getLogger("portal.x").warning("a warning line")
"""


def _log_lines(level: str) -> list[dict[str, str]]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, "PORTAL_LOG_LEVEL": level},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in done.stderr.splitlines()]


@pytest.mark.parametrize("level", ["warning", "WARNING", " Warning ", "warn"])
def test_the_level_is_read_in_any_case(level: str) -> None:
    assert [line["msg"] for line in _log_lines(level)] == ["a warning line"]


def test_an_unknown_level_is_named_and_logging_goes_on_at_info() -> None:
    lines = _log_lines("loud")
    assert (
        "PORTAL_LOG_LEVEL 'loud' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
        in (lines[0]["msg"])
    )
    assert [line["msg"] for line in lines[1:]] == ["an info line", "a warning line"]
