"""Client addresses by PORTAL_TRUSTED_PROXIES: forwarded headers count only from a trusted
proxy, so a client cannot name itself past the link-guessing limiter, and clients behind
the shop's own proxy are still told apart."""

from __future__ import annotations

from dataclasses import replace

BOGUS = "/t/AAAAAAAAAAAAAAAAAAAAAA"


async def test_forwarded_headers_count_only_from_a_trusted_proxy(rt, app, client_from):
    rt.settings = replace(rt.settings, trusted_proxies=("10.0.0.0/8",))
    app.state.miss_limiter.limit = 3
    proxy = await client_from("10.0.0.2")
    stranger = await client_from("203.0.113.50")
    for i in range(3):  # one guesser behind the proxy, and a stranger naming itself anew
        behind = await proxy.get(BOGUS, headers={"X-Forwarded-For": "198.51.100.1"})
        assert behind.status_code == 404
        forged = {"X-Forwarded-For": f"198.51.100.{100 + i}, 10.0.0.9"}
        assert (await stranger.get(BOGUS, headers=forged)).status_code == 404
    assert (
        await proxy.get(BOGUS, headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.1"})
    ).status_code == 429
    assert (await stranger.get(BOGUS, headers={"X-Forwarded-For": "1.1.1.1"})).status_code == 429
    # Another shopper behind the same proxy is not blocked with them.
    other = await proxy.get(BOGUS, headers={"X-Forwarded-For": "198.51.100.2"})
    assert other.status_code == 404
