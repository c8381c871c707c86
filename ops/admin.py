"""Operator commands: ``python -m ops.admin migrate | grant-readers | create-key --name N --scopes a,b | backup |
backups | restore --key K --into URL``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import asyncpg
from alembic import command
from alembic.config import Config

from ops.backup import BackupError, backup, list_backups, restore
from ops.readers import ReaderError, grant_readers
from shared.auth import SCOPES, create_api_key
from shared.db import create_engine
from shared.objectstore import all_buckets, create_object_store
from shared.settings import PROJECT_ROOT, PlatformSettings


async def ensure_database(settings: PlatformSettings) -> bool:
    """Create the platform's database when the server lacks it; True when it was created."""
    name = settings.database_name
    admin_dsn = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    conn = await asyncpg.connect(admin_dsn)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await conn.execute(f'CREATE DATABASE "{name}"')
        return True
    finally:
        await conn.close()


def alembic_config(settings: PlatformSettings) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = settings.async_database_url
    config.attributes["configure_logger"] = False
    return config


def migrate(settings: PlatformSettings, *, create_database: bool = True) -> list[str]:
    """Migrate to head, give the BI role its grants, create the buckets; returns what it has to say about the
    BI role. A BI role that cannot be set up is reported, not fatal: the platform runs without Metabase."""
    if create_database:
        asyncio.run(ensure_database(settings))
    command.upgrade(alembic_config(settings), "head")
    try:
        said = asyncio.run(grant_readers(settings)).lines()
    except ReaderError as exc:
        said = [f"warning: {exc}"]
    create_object_store(settings).ensure_buckets(all_buckets(settings))
    return said


async def create_key(settings: PlatformSettings, name: str, scopes: list[str]) -> str:
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            return await create_api_key(conn, name=name, scopes=scopes)
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.admin")
    sub = parser.add_subparsers(dest="command", required=True)
    mig = sub.add_parser("migrate", help="create the database if missing, migrate to head, create buckets")
    mig.add_argument("--no-create-database", action="store_true")
    sub.add_parser(
        "grant-readers",
        help="create analytics_reader if missing; grant it every object of schema analytics, now and later",
    )
    key = sub.add_parser("create-key", help="create an API key and print it (it is shown only once)")
    key.add_argument("--name", required=True)
    key.add_argument("--scopes", required=True, help=f"comma-separated subset of {','.join(SCOPES)}")
    sub.add_parser("backup", help="dump the database into the backups bucket (pg_dump, custom format)")
    sub.add_parser("backups", help="list the backups, oldest first")
    res = sub.add_parser("restore", help="restore a backup into an existing, empty database")
    res.add_argument("--key", required=True, help="a key as `backups` lists it")
    res.add_argument("--into", required=True, help="the target database's URL")
    args = parser.parse_args(argv)

    settings = PlatformSettings()
    if args.command == "migrate":
        for line in migrate(settings, create_database=not args.no_create_database):
            print(line, file=sys.stderr if line.startswith("warning") else sys.stdout)
        print(f"database {settings.database_name} is at head; buckets ready")
    elif args.command == "grant-readers":
        try:
            report = asyncio.run(grant_readers(settings))
        except ReaderError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for line in report.lines():
            print(line, file=sys.stderr if line.startswith("warning") else sys.stdout)
    elif args.command == "create-key":
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
        try:
            print(asyncio.run(create_key(settings, args.name, scopes)))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    elif args.command in ("backup", "backups", "restore"):
        store = create_object_store(settings)
        try:
            if args.command == "backup":
                stored = backup(settings, store)
                # The key first, as `backups` lists it and `restore --key` takes it.
                print(f"{stored.key} ({stored.size_bytes} bytes in bucket {stored.bucket}, sha256 {stored.sha256})")
            elif args.command == "backups":
                print("\n".join(list_backups(settings, store)))
            else:
                restore(settings, store, args.key, args.into)
                print(f"restored {args.key}")
        except BackupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
