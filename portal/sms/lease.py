"""This process's part in sending texts: who it is, whether it may still claim, and the
dispatch runs under way (a stop waits for them to finish and write their outcomes)."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


def new_owner() -> str:
    """What a claim names as its owner: host, process, and a nonce (a pid is reused)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(slots=True)
class Dispatching:
    owner: str = field(default_factory=new_owner)
    stopping: bool = False
    running: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        self.running += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.running -= 1
            if self.running == 0:
                self._idle.set()

    async def stop(self) -> None:
        """Claim nothing more; return once the runs under way have written their outcomes."""
        self.stopping = True
        if self.running:
            await self._idle.wait()
