"""API keys for the shop's systems: shown once, stored as SHA-256."""

from __future__ import annotations

from portal.db.tables import ApiKey
from portal.domain.tokens import hash_token, new_api_key
from portal.runtime import Runtime


async def create_api_key(rt: Runtime, name: str) -> str:
    key = new_api_key()
    async with rt.writing():
        await ApiKey.insert(
            ApiKey(name=name[:80], key_hash=hash_token(key), created_at=rt.clock.now())
        )
    return key


async def authenticate(key: str) -> str | None:
    """The key's name if it is a live key, else None."""
    if not key or len(key) > 128:
        return None
    row = (
        await ApiKey.select(ApiKey.name)
        .where((ApiKey.key_hash == hash_token(key)) & ApiKey.revoked_at.is_null())
        .first()
    )
    return row["name"] if row else None


async def revoke_api_key(rt: Runtime, name: str) -> int:
    async with rt.writing():
        rows = (
            await ApiKey.update({ApiKey.revoked_at: rt.clock.now()})
            .where((ApiKey.name == name) & ApiKey.revoked_at.is_null())
            .returning(ApiKey.id)
        )
    return len(rows)
