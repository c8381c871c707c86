"""API keys: random secrets shown once, stored as sha256 hashes, each with a set of scopes."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SCOPES = ("ingest:write", "kpis:read", "batches:read", "admin")
KEY_PREFIX = "sdp"


@dataclass(frozen=True)
class Principal:
    key_id: uuid.UUID
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def hash_key(presented: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(presented.encode()).hexdigest()


async def create_api_key(conn: AsyncConnection, *, name: str, scopes: list[str]) -> str:
    """Create a key and return its plaintext, which is never stored."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {SCOPES}; unknown: {unknown}")
    key_id = uuid.uuid4()
    public = secrets.token_hex(4)
    plaintext = f"{KEY_PREFIX}_{public}_{secrets.token_urlsafe(32)}"
    await conn.execute(
        text(
            """INSERT INTO ops.api_keys (key_id, name, prefix, key_hash, scopes)
               VALUES (:key_id, :name, :prefix, :key_hash, :scopes)"""
        ),
        {"key_id": key_id, "name": name, "prefix": public, "key_hash": hash_key(plaintext), "scopes": scopes},
    )
    await conn.execute(
        text(
            """INSERT INTO ops.audit_log (actor, action, target, details)
               VALUES ('admin-cli', 'api_key.create', :target, CAST(:details AS jsonb))"""
        ),
        {"target": str(key_id), "details": json.dumps({"name": name, "scopes": scopes})},
    )
    return plaintext


async def authenticate(conn: AsyncConnection, presented: str) -> Principal | None:
    row = (
        await conn.execute(
            text(
                """UPDATE ops.api_keys SET last_used_at = now()
                   WHERE key_hash = :key_hash AND revoked_at IS NULL
                   RETURNING key_id, name, scopes"""
            ),
            {"key_hash": hash_key(presented)},
        )
    ).one_or_none()
    if row is None:
        return None
    return Principal(key_id=row[0], name=row[1], scopes=frozenset(row[2]))
