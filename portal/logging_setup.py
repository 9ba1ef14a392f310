"""Structured (JSON lines) logs. No personal data: log ids, never phones, names or bodies."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


# PORTAL_LOG_LEVEL: a level's name in any case ("warning", "WARN", "error", ...).
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def configure_logging(level: str | None = None) -> None:
    root = logging.getLogger()
    if getattr(root, "_portal_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    given = level or os.environ.get("PORTAL_LOG_LEVEL") or "INFO"
    known = logging.getLevelNamesMapping().get(given.strip().upper())
    root.setLevel(logging.INFO if known is None else known)
    # APScheduler logs every run at INFO; our jobs log what they did when they did something.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("piccolo").setLevel(logging.WARNING)
    root._portal_configured = True  # type: ignore[attr-defined]
    if known is None:
        logging.getLogger(__name__).warning(
            "PORTAL_LOG_LEVEL %r is not one of %s; logging at INFO", given, ", ".join(LEVELS)
        )
