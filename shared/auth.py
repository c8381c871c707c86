"""API keys: random secrets shown once, stored as sha256 hashes, each with a set of scopes.

A key is created, listed, revoked and rotated (services/api/keys.py, ``ops.admin create-key``). Rotating
creates a key with the same name and scopes and gives the old one an ``expires_at`` a grace period away,
so a client can switch secrets without an outage; from then on the old one is refused as a revoked one is.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True)
class ApiKey:
    """A key as an operator sees it: never its secret."""

    key_id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None
    replaced_by: uuid.UUID | None


class UnknownKey(Exception):
    pass


def hash_key(presented: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(presented.encode()).hexdigest()


def check_scopes(scopes: list[str]) -> None:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {SCOPES}; unknown: {unknown}")


async def insert_key(conn: AsyncConnection, *, name: str, scopes: list[str]) -> tuple[uuid.UUID, str]:
    """A new key's id and its plaintext, which is never stored."""
    check_scopes(scopes)
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
    return key_id, plaintext


async def create_api_key(conn: AsyncConnection, *, name: str, scopes: list[str]) -> str:
    """Create a key from the operator's command line (audited as ``admin-cli``) and return its plaintext."""
    key_id, plaintext = await insert_key(conn, name=name, scopes=scopes)
    await conn.execute(
        text(
            """INSERT INTO ops.audit_log (actor, action, target, details)
               VALUES ('admin-cli', 'api_key.create', :target, CAST(:details AS jsonb))"""
        ),
        {"target": str(key_id), "details": json.dumps({"name": name, "scopes": scopes})},
    )
    return plaintext


KEY_COLUMNS = "key_id, name, prefix, scopes, created_at, last_used_at, revoked_at, expires_at, replaced_by"


async def list_keys(conn: AsyncConnection) -> list[ApiKey]:
    rows = await conn.execute(text(f"SELECT {KEY_COLUMNS} FROM ops.api_keys ORDER BY created_at, key_id"))
    return [ApiKey(*row) for row in rows]


async def get_key(conn: AsyncConnection, key_id: uuid.UUID, *, lock: bool = False) -> ApiKey:
    sql = f"SELECT {KEY_COLUMNS} FROM ops.api_keys WHERE key_id = :key_id" + (" FOR UPDATE" if lock else "")
    row = (await conn.execute(text(sql), {"key_id": key_id})).one_or_none()
    if row is None:
        raise UnknownKey(str(key_id))
    return ApiKey(*row)


async def revoke_key(conn: AsyncConnection, key_id: uuid.UUID) -> ApiKey:
    """Refuse the key from now on; a key revoked already keeps its revocation time."""
    await conn.execute(
        text("UPDATE ops.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = :key_id"),
        {"key_id": key_id},
    )
    return await get_key(conn, key_id)


async def rotate_key(conn: AsyncConnection, old: ApiKey, *, grace_seconds: float) -> tuple[ApiKey, str]:
    """A new key with ``old``'s name and scopes; ``old`` stays valid ``grace_seconds`` more."""
    key_id, plaintext = await insert_key(conn, name=old.name, scopes=old.scopes)
    await conn.execute(
        text(
            """UPDATE ops.api_keys SET replaced_by = :new, expires_at = now() + make_interval(secs => :grace)
               WHERE key_id = :old"""
        ),
        {"new": key_id, "old": old.key_id, "grace": grace_seconds},
    )
    return await get_key(conn, key_id), plaintext


async def authenticate(conn: AsyncConnection, presented: str, *, last_used_interval_seconds: float) -> Principal | None:
    """The key's principal, or None for an unknown, revoked or expired key.

    Its last use is written only when the recorded one is older than ``last_used_interval_seconds``: a busy
    client costs one write a minute, not one per request.
    """
    row = (
        await conn.execute(
            text(
                """SELECT key_id, name, scopes,
                          last_used_at IS NULL
                          OR last_used_at < clock_timestamp() - make_interval(secs => :interval)
                   FROM ops.api_keys
                   WHERE key_hash = :key_hash AND revoked_at IS NULL
                     AND (expires_at IS NULL OR expires_at > clock_timestamp())"""
            ),
            {"key_hash": hash_key(presented), "interval": last_used_interval_seconds},
        )
    ).one_or_none()
    if row is None:
        return None
    if row[3]:
        await conn.execute(
            text("UPDATE ops.api_keys SET last_used_at = clock_timestamp() WHERE key_id = :key_id"),
            {"key_id": row[0]},
        )
    return Principal(key_id=row[0], name=row[1], scopes=frozenset(row[2]))
