"""Rate limit for token routes: count misses (unknown/expired links) per client.

Counting only misses stops anyone guessing links while leaving real shoppers alone, even
many of them behind one carrier NAT address. Counts live in a Litestar Store (memory by
default; any shared Store, such as Redis, makes the limit hold across workers).
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Request
from litestar.stores.base import Store

WINDOW_SECONDS = 60


def client_key(request: Request[Any, Any, Any]) -> str:
    client = request.client.host if request.client else "unknown"
    return f"miss:{client}"


class MissLimiter:
    def __init__(self, store: Store, limit_per_minute: int) -> None:
        self.store = store
        self.limit = limit_per_minute

    def _bucket(self, request: Request[Any, Any, Any]) -> str:
        return f"{client_key(request)}:{int(time.time() // WINDOW_SECONDS)}"

    async def blocked(self, request: Request[Any, Any, Any]) -> bool:
        if self.limit <= 0:
            return False
        value = await self.store.get(self._bucket(request))
        return value is not None and int(value) >= self.limit

    async def record_miss(self, request: Request[Any, Any, Any]) -> None:
        if self.limit <= 0:
            return
        key = self._bucket(request)
        value = await self.store.get(key)
        await self.store.set(key, str(int(value or 0) + 1), expires_in=WINDOW_SECONDS * 2)
