"""Rate limit for token routes: count misses (unknown/expired links) per client.

Counting only misses stops anyone guessing links while leaving real shoppers alone, even
many of them behind one carrier NAT address. The client is `portal.web.client.client_address`
(forwarded headers count only from PORTAL_TRUSTED_PROXIES). With the default, a store of this process
(Litestar's MemoryStore), each worker counts its own in a plain dict of this minute's
counts; a shared Store (such as Redis) makes the limit hold across workers.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Request
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore

from portal.web.client import client_address

WINDOW_SECONDS = 60


def client_key(request: Request[Any, Any, Any]) -> str:
    return f"miss:{client_address(request)}"


class MissLimiter:
    def __init__(self, store: Store, limit_per_minute: int) -> None:
        self.store = store
        self.limit = limit_per_minute
        # A store of this process alone (MemoryStore) would hold only the misses counted
        # here: they are counted in this minute's dict instead, with no await between the
        # read and the write (no miss is lost to a race) and nothing left behind from
        # earlier minutes. A shared store (Redis) is asked every time: other workers count
        # there too.
        self._local = isinstance(store, MemoryStore)
        self._counts: dict[str, int] = {}  # this minute's misses per client (local store)
        self._window = 0

    def _bucket(self, request: Request[Any, Any, Any]) -> str:
        window = int(time.time() // WINDOW_SECONDS)
        if window != self._window:
            self._window = window
            self._counts.clear()
        return f"{client_key(request)}:{window}"

    async def blocked(self, request: Request[Any, Any, Any]) -> bool:
        if self.limit <= 0:
            return False
        key = self._bucket(request)
        if self._local:
            return self._counts.get(key, 0) >= self.limit
        value = await self.store.get(key)
        return value is not None and int(value) >= self.limit

    async def record_miss(self, request: Request[Any, Any, Any]) -> None:
        if self.limit <= 0:
            return
        key = self._bucket(request)
        if self._local:
            self._counts[key] = self._counts.get(key, 0) + 1
            return
        value = await self.store.get(key)
        await self.store.set(key, str(int(value or 0) + 1), expires_in=WINDOW_SECONDS * 2)


LOGIN_WINDOW_SECONDS = 15 * 60


class LoginLimiter:
    """At most `limit` failed sign-ins per username and per client address in 15 minutes.

    Each key holds "<count> <first failure, epoch seconds>" and expires with its window, so
    a later failure does not extend the block. Only failures count; a success clears the
    username's count (not the address's, or one good account would reset a guesser's).
    """

    def __init__(self, store: Store, limit: int = 5, window: int = LOGIN_WINDOW_SECONDS) -> None:
        self.store = store
        self.limit = limit
        self.window = window

    def _keys(self, request: Request[Any, Any, Any], username: str) -> tuple[str, str]:
        client = client_address(request)
        return f"login:user:{username.strip().lower()[:64]}", f"login:addr:{client}"

    async def _count(self, key: str) -> tuple[int, float]:
        value = await self.store.get(key)
        if value is None:
            return 0, time.time()
        count, _, first = (value.decode() if isinstance(value, bytes) else str(value)).partition(
            " "
        )
        return int(count), float(first or time.time())

    async def blocked(self, request: Request[Any, Any, Any], username: str) -> bool:
        if self.limit <= 0:
            return False
        for key in self._keys(request, username):
            count, _ = await self._count(key)
            if count >= self.limit:
                return True
        return False

    async def record_failure(self, request: Request[Any, Any, Any], username: str) -> None:
        if self.limit <= 0:
            return
        now = time.time()
        for key in self._keys(request, username):
            count, first = await self._count(key)
            left = int(first + self.window - now)
            if count == 0 or left <= 0:
                count, first, left = 0, now, self.window
            await self.store.set(key, f"{count + 1} {first}", expires_in=max(left, 1))

    async def record_success(self, request: Request[Any, Any, Any], username: str) -> None:
        await self.store.delete(self._keys(request, username)[0])
