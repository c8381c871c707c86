"""Backups of the database into the object store (S3 through moto's server) and restores from them, through
the operator's commands (``python -m ops.admin backup | backups | restore``) and the real pg_dump/pg_restore."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import pytest

from ops.admin import migrate
from ops.backup import PREFIX, BackupError, backup, backup_key, connection, list_backups, restore
from shared.objectstore import create_object_store
from tests.conftest import create_database, drop_database, settings_from


def admin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.admin", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def source(test_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The environment of a migrated database of its own (the session's buckets), dropped afterwards."""
    server = test_env["SDP_DATABASE_URL"].rsplit("/", 1)[0]
    url = f"{server}/sdp_backup_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_database(url))
    env = {**test_env, "SDP_DATABASE_URL": url}
    migrate(settings_from(env), create_database=False)
    yield env
    asyncio.run(drop_database(url))


@pytest.fixture
def empty_database(test_env: dict[str, str]) -> Iterator[str]:
    server = test_env["SDP_DATABASE_URL"].rsplit("/", 1)[0]
    url = f"{server}/sdp_restore_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_database(url))
    yield url
    asyncio.run(drop_database(url))


async def _fetch(url: str, sql: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


SNAPSHOT = """SELECT (SELECT version_num FROM alembic_version),
                     (SELECT array_agg(name ORDER BY name) FROM ops.api_keys),
                     (SELECT count(*) FROM ops.api_keys),
                     (SELECT has_table_privilege('sdp_api', 'analytics.daily_sales', 'SELECT'))"""


def test_a_backup_restores_into_an_empty_database_as_it_was(source: dict[str, str], empty_database: str) -> None:
    name = f"backup-test-{uuid.uuid4().hex[:6]}"
    assert admin(source, "create-key", "--name", name, "--scopes", "kpis:read").returncode == 0
    before = asyncio.run(_fetch(source["SDP_DATABASE_URL"], SNAPSHOT))

    made = admin(source, "backup")
    assert made.returncode == 0, made.stderr
    key = made.stdout.split()[0]
    assert key.startswith(f"{PREFIX}dt=")
    assert f"in bucket {settings_from(source).bucket_backups}" in made.stdout
    assert key in admin(source, "backups").stdout.split()

    restored = admin(source, "restore", "--key", key, "--into", empty_database)
    assert restored.returncode == 0, restored.stderr
    after = asyncio.run(_fetch(empty_database, SNAPSHOT))
    assert after == before
    assert name in after[0][1]  # type: ignore[operator]


def test_a_failed_dump_leaves_no_object(source: dict[str, str]) -> None:
    settings = settings_from(source)
    missing = settings.model_copy(update={"database_url": f"{settings.database_url}_missing"})
    store = create_object_store(settings)
    with pytest.raises(BackupError, match="pg_dump failed"):
        backup(missing, store)
    assert not [k for k in list_backups(settings, store) if f"/{missing.database_name}-" in k]

    result = admin({**source, "SDP_DATABASE_URL": missing.database_url}, "backup")
    assert result.returncode == 1 and "pg_dump failed" in result.stderr


def test_restoring_an_unknown_backup_is_a_clear_error(source: dict[str, str], empty_database: str) -> None:
    settings = settings_from(source)
    with pytest.raises(BackupError, match="no backup"):
        restore(settings, create_object_store(settings), f"{PREFIX}dt=2020-01-01/none.dump", empty_database)


def test_the_password_goes_through_the_environment_not_the_command_line() -> None:
    target = connection("postgresql://owner:p%40ss%3Aword@db.internal:5432/salesdp?sslmode=require")
    assert target.url == "postgresql://owner@db.internal:5432/salesdp?sslmode=require"
    assert target.env["PGPASSWORD"] == "p@ss:word"
    without = connection("postgresql://postgres@127.0.0.1:5432/salesdp")
    assert without.url == "postgresql://postgres@127.0.0.1:5432/salesdp"
    assert without.env.get("PGPASSWORD") == os.environ.get("PGPASSWORD")


def test_backup_keys_sort_by_time_under_their_day() -> None:
    first = backup_key("salesdp", datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC))
    second = backup_key("salesdp", datetime(2026, 11, 30, 0, 0, 1, tzinfo=UTC))
    assert first == "postgres/dt=2026-11-29/salesdp-20261129T235959Z.dump"
    assert sorted([second, first]) == [first, second]
