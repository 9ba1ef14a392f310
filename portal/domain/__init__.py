"""Pure rules: no I/O, no Piccolo or Litestar imports."""

from __future__ import annotations


class DomainError(ValueError):
    """A rule refused something; the message is meant for a person."""


class InvalidTransition(DomainError):
    """A state change that the state machine does not allow."""

    def __init__(self, entity: str, current: str, target: str) -> None:
        self.entity, self.current, self.target = entity, current, target
        super().__init__(f"{entity} cannot go from {current} to {target}")
