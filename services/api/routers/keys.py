"""API keys (admin): list them without their secrets, create one (its secret shown once), revoke, rotate."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body

from services.api import keys
from services.api.deps import DbEngine, Settings
from services.api.schemas import KeyIn, KeyOut, KeyRevokeIn, KeySecretOut, KeysOut
from shared.http import Admin, DbConnection
from shared.openapi import errors

router = APIRouter(prefix="/v1/keys")
UNKNOWN = errors(e404="no key has that id (`key_not_found`)")


@router.get("", response_model=KeysOut)
async def list_keys(_: Admin, conn: DbConnection) -> Any:
    """Every key: prefix, name, scopes, when created, last used, revoked or expiring; never a secret."""
    return await keys.list_keys(conn)


@router.post("", response_model=KeySecretOut, status_code=201)
async def create_key(body: KeyIn, principal: Admin, engine: DbEngine) -> Any:
    """A new key; the response holds its secret, which cannot be read again (audited)."""
    return await keys.create(engine, principal=principal, name=body.name, scopes=list(body.scopes))


@router.post("/{key_id}/revoke", response_model=KeyOut, responses=UNKNOWN)
async def revoke_key(
    key_id: uuid.UUID, principal: Admin, engine: DbEngine, body: Annotated[KeyRevokeIn | None, Body()] = None
) -> Any:
    """Refuse the key from now on (audited); revoking it again changes nothing."""
    return await keys.revoke(engine, principal=principal, key_id=key_id, reason=body.reason if body else "")


@router.post(
    "/{key_id}/rotate",
    response_model=KeySecretOut,
    status_code=201,
    responses={**UNKNOWN, **errors(e409="the key is revoked (`key_revoked`) or rotated already (`key_rotated`)")},
)
async def rotate_key(key_id: uuid.UUID, principal: Admin, engine: DbEngine, settings: Settings) -> Any:
    """A new secret with the same name and scopes; the old one is accepted for
    ``SDP_API_KEY_ROTATION_GRACE_SECONDS`` more, then refused (audited)."""
    return await keys.rotate(
        engine, principal=principal, key_id=key_id, grace_seconds=settings.api_key_rotation_grace_seconds
    )
