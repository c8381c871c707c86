"""Metabase's role reads every analytics object and nothing else, whether it existed before the migrations,
was created after them, or did not exist at all (``python -m ops.admin migrate``, which ``make up`` runs).

Roles are cluster-wide and the machine's server has analytics_reader already (other tests use it), so the
scenarios run on a PostgreSQL cluster of their own, where the role can be missing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from ops.readers import READER
from tests.postgres_cluster import OwnPostgres, own_postgres

# Every schema the reader must be refused, with the tables the migrations create there.
CLOSED_SCHEMAS = ("processed", "staging", "raw", "ops")
RELATIONS = """SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[OwnPostgres]:
    with own_postgres() as server:
        yield server


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _fetch(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@pytest.fixture
def server(cluster: OwnPostgres) -> Iterator[str]:
    """The cluster's URL; afterwards its databases and the roles the scenario made are gone again."""
    yield cluster.url
    admin = f"{cluster.url}/postgres"
    names = [r[0] for r in asyncio.run(_fetch(admin, "SELECT datname FROM pg_database WHERE datname LIKE 'sdp%'"))]
    asyncio.run(
        _execute(
            admin,
            *(f'DROP DATABASE "{name}" WITH (FORCE)' for name in names),
            f"DROP ROLE IF EXISTS {READER}",
            "DROP ROLE IF EXISTS salesdp",
        )
    )


def ops_admin(database_url: str, objects: Path, *args: str, password: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SDP_DATABASE_URL": database_url,
        "SDP_OBJECT_STORE_URL": f"file://{objects}",
        "SDP_ANALYTICS_READER_PASSWORD": password,
    }
    result = subprocess.run(
        [sys.executable, "-m", "ops.admin", *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr
    return result


def role_exists(server: str) -> bool:
    return bool(asyncio.run(_fetch(f"{server}/postgres", "SELECT 1 FROM pg_roles WHERE rolname = $1", READER)))


async def _reads(database_url: str, reader_url: str) -> tuple[list[str], dict[str, str], list[str]]:
    """(analytics objects, {analytics object: error} for those the reader cannot read, closed tables it reads)."""
    analytics = [r[0] for r in await _fetch(database_url, RELATIONS, ["analytics"])]
    closed = [r[0] for r in await _fetch(database_url, RELATIONS, list(CLOSED_SCHEMAS))]
    conn = await asyncpg.connect(reader_url)
    try:
        refused: dict[str, str] = {}
        for name in analytics:
            try:
                await conn.fetch(f"SELECT * FROM {name} LIMIT 1")
            except asyncpg.PostgresError as exc:
                refused[name] = str(exc)
        read_closed = []
        for name in closed:
            try:
                await conn.fetch(f"SELECT * FROM {name} LIMIT 1")
                read_closed.append(name)
            except asyncpg.InsufficientPrivilegeError:
                pass
    finally:
        await conn.close()
    return analytics, refused, read_closed


def assert_reads_analytics_only(database_url: str, owner_url: str) -> None:
    """Every analytics object, one created after the grants by the schema's owner included; nothing in
    processed, staging, raw or ops."""
    asyncio.run(_execute(owner_url, "CREATE VIEW analytics.created_later AS SELECT 1 AS one"))
    reader_url = database_url.replace("postgresql://postgres@", f"postgresql://{READER}@")
    analytics, refused, read_closed = asyncio.run(_reads(database_url, reader_url))
    assert "analytics.kpi" in analytics and "analytics.created_later" in analytics
    assert len(analytics) >= 11
    assert refused == {}
    closed = asyncio.run(_fetch(database_url, RELATIONS, list(CLOSED_SCHEMAS)))
    assert {r[0].split(".")[0] for r in closed} == set(CLOSED_SCHEMAS)
    assert read_closed == []


def test_migrate_creates_a_missing_reader_with_its_password(server: str, tmp_path: Path) -> None:
    assert not role_exists(server)
    database_url = f"{server}/sdp_fresh"

    result = ops_admin(database_url, tmp_path, "migrate", password="reader-secret-1")

    assert f"created role {READER}" in result.stdout
    roles = asyncio.run(
        _fetch(
            f"{server}/postgres",
            """SELECT r.rolcanlogin, a.rolpassword IS NOT NULL, r.rolconfig
               FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid WHERE r.rolname = $1""",
            READER,
        )
    )
    assert [tuple(r) for r in roles] == [(True, True, ["default_transaction_read_only=on"])]
    assert_reads_analytics_only(database_url, database_url)


def test_migrate_without_a_password_creates_the_reader_and_says_how_it_logs_in(server: str, tmp_path: Path) -> None:
    database_url = f"{server}/sdp_nopassword"

    result = ops_admin(database_url, tmp_path, "migrate")

    assert "SDP_ANALYTICS_READER_PASSWORD is unset" in result.stderr
    assert "pg_hba.conf trusts" in result.stderr
    roles = asyncio.run(_fetch(f"{server}/postgres", "SELECT rolpassword FROM pg_authid WHERE rolname = $1", READER))
    assert [tuple(r) for r in roles] == [(None,)]
    assert_reads_analytics_only(database_url, database_url)


def test_a_reader_created_after_the_migrations_reads_analytics_after_the_next_migrate(
    server: str, tmp_path: Path
) -> None:
    """As compose deploys it: the owner salesdp migrates and may not create roles; a DBA adds the reader later."""
    admin = f"{server}/postgres"
    asyncio.run(_execute(admin, "CREATE ROLE salesdp LOGIN", "CREATE DATABASE sdp_late OWNER salesdp"))
    owner_url = f"{server.replace('postgres@', 'salesdp@')}/sdp_late"

    first = ops_admin(owner_url, tmp_path, "migrate")
    assert f"role {READER} does not exist and salesdp may not create roles" in first.stderr
    assert not role_exists(server)

    asyncio.run(_execute(admin, f"CREATE ROLE {READER} LOGIN"))
    database_url = f"{server}/sdp_late"
    _, refused, _ = asyncio.run(_reads(database_url, f"{server.replace('postgres@', f'{READER}@')}/sdp_late"))
    assert "analytics.kpi" in refused, "the reader reads analytics before anything granted it"

    again = ops_admin(owner_url, tmp_path, "migrate")
    assert f"{READER} will read what salesdp create there later" in again.stdout
    assert "created role" not in again.stdout
    assert_reads_analytics_only(database_url, owner_url)


def test_grant_readers_alone_gives_the_grants_and_changes_nothing_when_run_again(server: str, tmp_path: Path) -> None:
    admin = f"{server}/postgres"
    database_url = f"{server}/sdp_grants"
    asyncio.run(_execute(admin, "CREATE DATABASE sdp_grants"))
    ops_admin(database_url, tmp_path, "migrate")
    asyncio.run(_execute(database_url, f"REVOKE ALL ON ALL TABLES IN SCHEMA analytics FROM {READER}"))

    acl = "SELECT c.relname, c.relacl::text FROM pg_class c WHERE c.relnamespace = 'analytics'::regnamespace ORDER BY 1"
    first = ops_admin(database_url, tmp_path, "grant-readers")
    granted = asyncio.run(_fetch(database_url, acl))
    second = ops_admin(database_url, tmp_path, "grant-readers")

    assert asyncio.run(_fetch(database_url, acl)) == granted
    assert first.stdout == second.stdout
    assert f"{READER} reads 10 objects of schema analytics" in second.stdout
    assert_reads_analytics_only(database_url, database_url)
