"""The API key lifecycle over HTTP (admin): list, create, revoke, rotate, each change audited in its
transaction. The key model and its SQL are shared/auth.py's, which ``ops.admin create-key`` uses too."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.api import repository
from shared import auth
from shared.auth import ApiKey, Principal
from shared.http import ApiError
from shared.logs import get_logger

log = get_logger(__name__)


class UnknownKey(ApiError):
    def __init__(self, key_id: uuid.UUID) -> None:
        super().__init__(404, "key_not_found", f"no API key {key_id}")


def shown(key: ApiKey) -> dict[str, Any]:
    now = datetime.now(UTC)
    active = key.revoked_at is None and (key.expires_at is None or key.expires_at > now)
    return {**asdict(key), "active": active}


async def _audit(conn: AsyncConnection, principal: Principal, action: str, key_id: uuid.UUID, **details: Any) -> int:
    return await repository.insert_audit(
        conn,
        actor=f"api-key:{principal.name}",
        action=action,
        target=str(key_id),
        details={**details, "key_id": str(principal.key_id)},
    )


async def _locked(conn: AsyncConnection, key_id: uuid.UUID) -> ApiKey:
    try:
        return await auth.get_key(conn, key_id, lock=True)
    except auth.UnknownKey as exc:
        raise UnknownKey(key_id) from exc


async def list_keys(conn: AsyncConnection) -> dict[str, Any]:
    return {"keys": [shown(key) for key in await auth.list_keys(conn)]}


async def create(engine: AsyncEngine, *, principal: Principal, name: str, scopes: list[str]) -> dict[str, Any]:
    async with engine.begin() as conn:
        key_id, secret = await auth.insert_key(conn, name=name, scopes=scopes)
        await _audit(conn, principal, "api_key.create", key_id, name=name, scopes=scopes)
        key = await auth.get_key(conn, key_id)
    log.info("api_key.created", key=str(key_id), name=name, actor=principal.name)
    return {"key": shown(key), "secret": secret}


async def revoke(engine: AsyncEngine, *, principal: Principal, key_id: uuid.UUID, reason: str) -> dict[str, Any]:
    """Refuse the key from now on. Revoking a revoked key changes nothing and audits nothing."""
    async with engine.begin() as conn:
        before = await _locked(conn, key_id)
        key = await auth.revoke_key(conn, key_id)
        if before.revoked_at is None:
            await _audit(conn, principal, "api_key.revoke", key_id, reason=reason, name=key.name)
            log.info("api_key.revoked", key=str(key_id), actor=principal.name)
    return shown(key)


async def rotate(
    engine: AsyncEngine, *, principal: Principal, key_id: uuid.UUID, grace_seconds: float
) -> dict[str, Any]:
    """A new secret for the key's name and scopes; the old one is accepted ``grace_seconds`` more."""
    async with engine.begin() as conn:
        old = await _locked(conn, key_id)
        if old.revoked_at is not None:
            raise ApiError(409, "key_revoked", f"API key {key_id} is revoked; create a new one instead")
        if old.replaced_by is not None:
            raise ApiError(
                409, "key_rotated", f"API key {key_id} was rotated already", {"replaced_by": str(old.replaced_by)}
            )
        new, secret = await auth.rotate_key(conn, old, grace_seconds=grace_seconds)
        previous = await auth.get_key(conn, key_id)
        await _audit(
            conn,
            principal,
            "api_key.rotate",
            key_id,
            replaced_by=str(new.key_id),
            expires_at=previous.expires_at.isoformat() if previous.expires_at else None,
        )
    log.info("api_key.rotated", key=str(key_id), new_key=str(new.key_id), actor=principal.name)
    return {"key": shown(new), "secret": secret, "previous": shown(previous)}
