"""The client-address rule of the contract: forwarded headers count only from a trusted
proxy, and then the rightmost entry that is not one; `Forwarded` never counts."""

from __future__ import annotations

import pytest

from portal.serving import proxy_options
from portal.settings import Settings, SettingsError
from portal.web.client import address_of

PROXIES = ("10.0.0.0/8", "2001:db8:1::/48", "192.0.2.1/32")


def scope(peer: str, *headers: tuple[str, str]):  # type: ignore[no-untyped-def]
    return {
        "type": "http",
        "client": (peer, 50_000),
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }


XFF = "x-forwarded-for"


@pytest.mark.parametrize(
    ("peer", "headers", "trusted", "client"),
    [
        # No proxy is trusted (the default): the headers say nothing.
        ("127.0.0.1", [(XFF, "198.51.100.9")], (), "127.0.0.1"),
        ("203.0.113.7", [(XFF, "198.51.100.9")], PROXIES, "203.0.113.7"),
        # From a trusted proxy: the rightmost entry it did not write itself.
        ("10.0.0.2", [(XFF, "198.51.100.9")], PROXIES, "198.51.100.9"),
        ("10.0.0.2", [(XFF, "1.2.3.4, 198.51.100.9")], PROXIES, "198.51.100.9"),
        ("10.0.0.2", [(XFF, "1.2.3.4, 198.51.100.9, 10.0.0.7")], PROXIES, "198.51.100.9"),
        ("10.0.0.2", [(XFF, "1.2.3.4"), (XFF, "198.51.100.9 ,192.0.2.1")], PROXIES, "198.51.100.9"),
        ("2001:db8:1::5", [(XFF, "[2001:DB8:2:0::9]:443")], PROXIES, "2001:db8:2::9"),
        ("10.0.0.2", [(XFF, "198.51.100.9:5123")], PROXIES, "198.51.100.9"),
        # Only trusted hops: the furthest one; no header: the peer.
        ("10.0.0.2", [(XFF, "10.1.1.1, 10.2.2.2")], PROXIES, "10.1.1.1"),
        ("10.0.0.2", [], PROXIES, "10.0.0.2"),
        # `Forwarded` is ignored, trusted or not.
        ("10.0.0.2", [("forwarded", "for=198.51.100.9")], PROXIES, "10.0.0.2"),
        # An entry that is no address is not a trusted proxy: it is the (odd) client.
        ("10.0.0.2", [(XFF, "1.2.3.4, unknown")], PROXIES, "unknown"),
    ],
)
def test_the_client_address_rule(peer, headers, trusted, client):  # type: ignore[no-untyped-def]
    assert address_of(scope(peer, *headers), trusted) == client


def test_uvicorn_trusts_forwarded_headers_only_from_the_same_proxies():
    # Left to itself uvicorn believes X-Forwarded-For from 127.0.0.1: any local client.
    assert proxy_options(Settings()) == {"proxy_headers": False}
    trusted = Settings.from_env({"PORTAL_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1"})
    assert trusted.trusted_proxies == ("10.0.0.0/8", "127.0.0.1/32")
    assert proxy_options(trusted) == {
        "proxy_headers": True,
        "forwarded_allow_ips": "10.0.0.0/8,127.0.0.1/32",
    }
    with pytest.raises(SettingsError, match="PORTAL_TRUSTED_PROXIES: 'proxy\\.local'"):
        Settings.from_env({"PORTAL_TRUSTED_PROXIES": "proxy.local"})
