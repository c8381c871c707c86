"""The admin commands against the running platform, each run as its own process: ``replay --wait`` runs a loaded
batch again to loaded as its next attempt, ``backfill`` restores tampered analytics and reports nothing to change
once they agree with the facts, and ``keys`` creates, lists, rotates and revokes a key that then works or not."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Platform
from tests.ops.cli import salesdp
from tests.ops.cli.test_commands import HEADER, WAIT_TIMEOUT, env_of, statuses_reached

pytestmark = pytest.mark.e2e

# Days no other test loads.
DAYS = ("2019-05-01", "2019-05-03")


def may_file(path: Path, prefix: str) -> Path:
    lines = [
        f"{prefix}-{i},2019-05-0{1 + i % 3}T10:00:00Z,C-{prefix}-{i % 2},P-{prefix},{1 + i},10.00,{10 * (1 + i)}.00,"
        "pix,completed\n"
        for i in range(6)
    ]
    path.write_text(HEADER + "".join(lines))
    return path


def execute(platform: Platform, sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(platform.env["SDP_DATABASE_URL"])
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def test_replay_runs_a_loaded_batch_again_and_backfill_restores_tampered_analytics(
    platform: Platform, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    env = env_of(platform, "ingest:write", "batches:read", "kpis:read", "admin")
    loaded = salesdp("ingest", str(may_file(tmp_path / f"sales_{run}.csv", f"RP-{run}")), "--wait", env=env)
    assert loaded.returncode == 0, loaded.stderr
    [batch_id] = re.findall(r"^batch (\S+) loaded$", loaded.stdout, flags=re.MULTILINE)

    replayed = salesdp("replay", batch_id, "--reason", "cli test", "--wait", "--timeout", WAIT_TIMEOUT, env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert re.search(rf"^replaying batch {batch_id} as attempt 2 \(audit #\d+\)$", replayed.stderr, re.MULTILINE)
    assert statuses_reached(replayed.stderr) == ["received", "staged", "validated", "loaded"]
    detail = json.loads(salesdp("status", batch_id, "--json", env=env).stdout)
    assert (detail["status"], detail["attempt"]) == ("loaded", 2)

    agree = salesdp("backfill", "--from", DAYS[0], "--to", DAYS[1], "--json", env=env)
    assert agree.returncode == 0, agree.stderr
    assert json.loads(agree.stdout)["changed"] is False
    before = salesdp("kpis", "--from", DAYS[0], "--to", DAYS[1], "--json", env=env).stdout
    execute(platform, f"UPDATE analytics.daily_sales SET revenue = revenue + 1 WHERE date = '{DAYS[0]}'")
    restored = salesdp("backfill", "--from", DAYS[0], "--to", DAYS[1], "--reason", "tampered", env=env)
    assert restored.returncode == 0, restored.stderr
    assert re.search(r"analytics\.daily_sales\W+1\W+0\W+0\W", restored.stdout), restored.stdout
    assert "analytics rewritten" in restored.stdout
    assert salesdp("kpis", "--from", DAYS[0], "--to", DAYS[1], "--json", env=env).stdout == before

    backwards = salesdp("backfill", "--from", DAYS[1], "--to", DAYS[0], env=env)
    assert backwards.returncode == 2 and "invalid_range" in backwards.stderr


def test_keys_are_created_listed_rotated_and_revoked(platform: Platform) -> None:
    admin = env_of(platform, "admin")
    name = f"cli-key-{uuid.uuid4().hex[:8]}"
    created = salesdp("keys", "create", name, "--scope", "kpis:read", "--scope", "batches:read", env=admin)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("sdp_") and "shown this once" in created.stderr

    listed = json.loads(salesdp("keys", "list", "--json", env=admin).stdout)["keys"]
    [key] = [k for k in listed if k["name"] == name]
    assert (key["scopes"], key["active"]) == (["kpis:read", "batches:read"], True)
    assert secret not in json.dumps(listed)
    as_key = {**admin, "SALESDP_API_KEY": secret}
    assert salesdp("batches", "--limit", "1", env=as_key).returncode == 0

    rotated = salesdp("keys", "rotate", key["key_id"], "--json", env=admin)
    assert rotated.returncode == 0, rotated.stderr
    body = json.loads(rotated.stdout)
    assert body["previous"]["key_id"] == key["key_id"] and body["previous"]["expires_at"]
    # The old secret works through the grace period, the new one at once.
    assert salesdp("batches", "--limit", "1", env=as_key).returncode == 0
    new_key = {**admin, "SALESDP_API_KEY": body["secret"]}
    assert salesdp("batches", "--limit", "1", env=new_key).returncode == 0

    revoked = salesdp("keys", "revoke", body["key"]["key_id"], "--reason", "cli test", env=admin)
    assert revoked.returncode == 0, revoked.stderr
    refused = salesdp("batches", "--limit", "1", env=new_key)
    assert refused.returncode == 2 and "401" in refused.stderr, refused.stderr
    no_admin = salesdp("keys", "list", env=as_key)
    assert no_admin.returncode == 2 and "403" in no_admin.stderr
