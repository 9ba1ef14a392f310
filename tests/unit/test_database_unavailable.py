"""Which errors mean "the database is out for a moment" (a 503 and a retry), and which are
bugs or refusals that stay 500s with a traceback."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from portal.db import is_unavailable


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.InterfaceError("connection is closed"),
        sqlite3.OperationalError("unable to open database file"),
        sqlite3.OperationalError("database is locked"),
        sqlite3.OperationalError("disk I/O error"),
    ],
)
def test_an_outage_is_recognised(error):
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a bug"),
        ConnectionRefusedError("refused by some other server"),  # not raised by the driver
        TimeoutError(),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.InterfaceError("another operation is in progress"),
        sqlite3.OperationalError("no such table: orders"),
    ],
)
def test_a_bug_or_a_refused_statement_is_not_an_outage(error):
    assert not is_unavailable(error)


def test_an_outage_is_recognised_behind_the_error_raised_from_it():
    try:
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as exc:
            raise RuntimeError("while saving") from exc
    except RuntimeError as wrapped:
        assert is_unavailable(wrapped)
