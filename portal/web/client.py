"""The client's address, by one rule for every use (the link-guessing and sign-in limiters,
anything that records who asked).

Only when the connection comes from a peer in `PORTAL_TRUSTED_PROXIES` does
`X-Forwarded-For` count, and then its rightmost entry that is not a trusted proxy (each
proxy appends the address it saw, so what lies left of that was written by the client and
proves nothing). `Forwarded` is ignored. With no trusted proxy (the default) the peer's
address is the client's, whatever the headers say.

uvicorn applies the same rule to the connection when it is told the same proxies
(`portal.serving.proxy_options`): applied again here it gives the same answer, so the
result does not depend on whether the server has done it already.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from litestar import Request
from litestar.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"
MAX_LENGTH = 64  # a key, never a story


def client_address(request: Request[Any, Any, Any]) -> str:
    """The address of whoever sent the request, by the rule above (with the app's
    settings; a bare request, as unit tests make, trusts no proxy)."""
    app = request.scope.get("app")
    rt = getattr(app.state, "rt", None) if app is not None else None
    return address_of(request.scope, rt.settings.trusted_proxies if rt else ())


def address_of(scope: Scope, trusted_proxies: tuple[str, ...]) -> str:
    client = scope.get("client")
    peer = _canonical(client[0]) if client else UNKNOWN
    networks = _networks(trusted_proxies)
    if not _trusted(peer, networks):
        return peer
    entries = [
        entry.strip()
        for name, value in scope.get("headers", ())
        if name == b"x-forwarded-for"
        for entry in value.decode("latin-1").split(",")
        if entry.strip()
    ]
    for entry in reversed(entries):
        host = _canonical(_without_port(entry))
        if not _trusted(host, networks):
            return host
    # Every hop is a trusted proxy: the furthest one seen is the client.
    return _canonical(_without_port(entries[0])) if entries else peer


@lru_cache(maxsize=8)
def _networks(trusted_proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted_proxies)


def _trusted(host: str, networks: Iterable[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _without_port(entry: str) -> str:
    """The host of an entry: [2001:db8::1]:443 gives 2001:db8::1, 192.0.2.1:5000 192.0.2.1."""
    if entry.startswith("["):
        return entry[1:].partition("]")[0]
    if entry.count(":") == 1:
        return entry.partition(":")[0]
    return entry


def _canonical(host: str) -> str:
    """One spelling per address (IPv6 has many), so that one client has one key."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host[:MAX_LENGTH] or UNKNOWN
