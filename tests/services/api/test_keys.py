"""The API key lifecycle over HTTP (admin): list without secrets, create (secret shown once), rotate with a
grace period (the old secret accepted, then refused), revoke (refused at once), last use recorded at most
once per interval; each change audited. The api runs as its own role, sdp_api."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from ops.admin import create_key
from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.settings import PlatformSettings
from tests.conftest import as_role, settings_from
from tests.http_server import serve

GRACE_SECONDS = 2.0
KPIS = "/v1/kpis/summary?from=2024-01-01&to=2024-01-31"


@pytest.fixture(scope="module")
def api(test_env: dict[str, str]) -> Iterator[str]:
    env = {
        **test_env,
        "SDP_DATABASE_URL": as_role(test_env["SDP_DATABASE_URL"], "sdp_api"),
        "SDP_API_KEY_ROTATION_GRACE_SECONDS": str(GRACE_SECONDS),
        "SDP_API_KEY_LAST_USED_INTERVAL_SECONDS": "60",
    }
    with serve(create_app(settings_from(env, ApiSettings))) as url:
        yield url


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def _fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def _listed(admin: httpx.Client, url: str, key_id: str) -> dict[str, Any]:
    keys = admin.get(f"{url}/v1/keys").raise_for_status().json()["keys"]
    return next(k for k in keys if k["key_id"] == key_id)


def test_create_list_rotate_revoke(api: str, settings: PlatformSettings) -> None:
    secret = asyncio.run(create_key(settings, name="keys-admin", scopes=["admin"]))
    name = f"reader-{uuid.uuid4().hex[:6]}"
    with httpx.Client(headers=_bearer(secret), timeout=30) as admin:
        created = admin.post(f"{api}/v1/keys", json={"name": name, "scopes": ["kpis:read"]})
        assert created.status_code == 201, created.text
        body = created.json()
        key, reader_secret = body["key"], body["secret"]
        assert reader_secret.startswith(f"sdp_{key['prefix']}_") and key["scopes"] == ["kpis:read"]
        assert key["active"] is True and key["last_used_at"] is None

        listing = admin.get(f"{api}/v1/keys").raise_for_status()
        assert reader_secret not in listing.text and "key_hash" not in listing.text and "secret" not in listing.text
        assert {"key_id", "prefix", "name", "scopes", "created_at", "last_used_at"} <= set(
            _listed(admin, api, key["key_id"])
        )

        # Used: its last use is recorded; used again within the interval, not written again.
        assert httpx.get(f"{api}{KPIS}", headers=_bearer(reader_secret)).status_code == 200
        first_use = _listed(admin, api, key["key_id"])["last_used_at"]
        assert first_use is not None
        assert httpx.get(f"{api}{KPIS}", headers=_bearer(reader_secret)).status_code == 200
        assert _listed(admin, api, key["key_id"])["last_used_at"] == first_use
        assert httpx.get(f"{api}/v1/keys", headers=_bearer(reader_secret)).status_code == 403

        rotated = admin.post(f"{api}/v1/keys/{key['key_id']}/rotate")
        assert rotated.status_code == 201, rotated.text
        new, new_secret, previous = rotated.json()["key"], rotated.json()["secret"], rotated.json()["previous"]
        assert new["key_id"] != key["key_id"] and (new["name"], new["scopes"]) == (name, ["kpis:read"])
        assert previous["replaced_by"] == new["key_id"] and previous["expires_at"] is not None
        assert new_secret != reader_secret
        # Within the grace period both secrets work; once it is over the old one is refused.
        assert httpx.get(f"{api}{KPIS}", headers=_bearer(reader_secret)).status_code == 200
        assert httpx.get(f"{api}{KPIS}", headers=_bearer(new_secret)).status_code == 200
        again = admin.post(f"{api}/v1/keys/{key['key_id']}/rotate")
        assert again.status_code == 409 and again.json()["error"]["code"] == "key_rotated"
        time.sleep(GRACE_SECONDS + 0.5)
        refused = httpx.get(f"{api}{KPIS}", headers=_bearer(reader_secret))
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
        assert httpx.get(f"{api}{KPIS}", headers=_bearer(new_secret)).status_code == 200
        assert _listed(admin, api, key["key_id"])["active"] is False

        revoked = admin.post(f"{api}/v1/keys/{new['key_id']}/revoke", json={"reason": "laptop lost"})
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked_at"] is not None and revoked.json()["active"] is False
        assert httpx.get(f"{api}{KPIS}", headers=_bearer(new_secret)).status_code == 401
        twice = admin.post(f"{api}/v1/keys/{new['key_id']}/revoke").raise_for_status().json()
        assert twice["revoked_at"] == revoked.json()["revoked_at"]
        rotate_revoked = admin.post(f"{api}/v1/keys/{new['key_id']}/rotate")
        assert rotate_revoked.status_code == 409 and rotate_revoked.json()["error"]["code"] == "key_revoked"

        unknown = admin.post(f"{api}/v1/keys/{uuid.uuid4()}/revoke")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "key_not_found"
        bad_scope = admin.post(f"{api}/v1/keys", json={"name": "x", "scopes": ["root"]})
        assert bad_scope.status_code == 422

    audits = asyncio.run(
        _fetch(
            settings.database_url,
            """SELECT action, target, actor, details FROM ops.audit_log
               WHERE action LIKE 'api_key.%' AND target = ANY($1::text[]) ORDER BY audit_id""",
            [key["key_id"], new["key_id"]],
        )
    )
    # The rotation's audit entry names the key it created; revoking twice is audited once.
    assert [(a["action"], a["target"]) for a in audits] == [
        ("api_key.create", key["key_id"]),
        ("api_key.rotate", key["key_id"]),
        ("api_key.revoke", new["key_id"]),
    ]
    assert {a["actor"] for a in audits} == {"api-key:keys-admin"}
    assert json.loads(audits[1]["details"])["replaced_by"] == new["key_id"]
    assert json.loads(audits[2]["details"])["reason"] == "laptop lost"
