"""Errors services raise for the web layer to turn into 4xx answers with a person's words."""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 400

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field

    def as_detail(self) -> str:
        return f"{self.field}: {self.detail}" if self.field else self.detail


class Malformed(ServiceError):
    """Not a value of the field's kind at all (a date that is no date): 400, as the body's
    decoder answers for a wrong type."""

    status_code = 400


class Invalid(ServiceError):
    status_code = 422


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409
