"""Rate limit for token routes: count misses (unknown/expired links) per client.

Counting only misses stops anyone guessing links while leaving real shoppers alone, even
many of them behind one carrier NAT address. The client is `portal.web.client.client_address`
(forwarded headers count only from PORTAL_TRUSTED_PROXIES). With the default, a store of this process
(Litestar's MemoryStore), each worker counts its own in a plain dict of this minute's
counts; a shared Store (such as Redis) makes the limit hold across workers.
"""

from __future__ import annotations

import asyncio
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
    """At most `limit` sign-in attempts per username and client address together, and
    `address_limit` per address over all usernames (one address trying many), in 15
    minutes. An attempt is taken before its password is checked, so that racing attempts
    cannot pass the limit together; a success gives it back.

    Keyed by username and address together, an attacker elsewhere cannot lock a clerk
    out: only their own address is stopped (the username as a whole slows down instead,
    services.staff). The username's `epoch` (raised when a manager or `set-password`
    unlocks it) is part of the key, so an unlock clears every address's count at once.
    Each key holds "<count> <first attempt, epoch seconds>" and expires with its window.
    The lock makes take-and-count one step in this process; the store is this process's.
    """

    def __init__(
        self,
        store: Store,
        limit: int = 5,
        window: int = LOGIN_WINDOW_SECONDS,
        address_limit: int = 20,
    ) -> None:
        self.store = store
        self.limit = limit
        self.address_limit = address_limit
        self.window = window
        self._lock = asyncio.Lock()

    def _keys(self, request: Request[Any, Any, Any], username: str, epoch: int) -> tuple[str, str]:
        client = client_address(request)
        return (
            f"login:user:{username.strip().lower()[:64]}:{epoch}:{client}",
            f"login:addr:{client}",
        )

    async def _count(self, key: str) -> tuple[int, float]:
        value = await self.store.get(key)
        if value is None:
            return 0, time.time()
        count, _, first = (value.decode() if isinstance(value, bytes) else str(value)).partition(
            " "
        )
        return int(count), float(first or time.time())

    async def _set(self, key: str, count: int, first: float, now: float) -> None:
        left = int(first + self.window - now)
        if left <= 0:
            count, first, left = max(count, 0), now, self.window
        await self.store.set(key, f"{count} {first}", expires_in=max(left, 1))

    async def take(self, request: Request[Any, Any, Any], username: str, epoch: int) -> int:
        """Take one attempt: 0 when it may go on, else the seconds until it may be tried."""
        if self.limit <= 0:
            return 0
        keys = self._keys(request, username, epoch)
        async with self._lock:
            now = time.time()
            counts = []
            for key, limit in zip(keys, (self.limit, self.address_limit), strict=True):
                count, first = await self._count(key)
                if first + self.window <= now:
                    count, first = 0, now
                if count >= limit:
                    return max(int(first + self.window - now), 1)
                counts.append((key, count, first))
            for key, count, first in counts:
                await self._set(key, count + 1, first, now)
        return 0

    async def record_success(
        self, request: Request[Any, Any, Any], username: str, epoch: int
    ) -> None:
        """A right password: the attempt is given back on both counts."""
        pair, address = self._keys(request, username, epoch)
        async with self._lock:
            await self.store.delete(pair)
            count, first = await self._count(address)
            if count > 0:
                await self._set(address, count - 1, first, time.time())
