"""PostgreSQL backups in the object store (DESIGN §4: ``backups/postgres/…``, kept 30 days by the bucket's lifecycle).

A backup is ``pg_dump --format=custom`` of the platform's database, streamed into the backups bucket while
it is written (nothing lands on local disk). A restore downloads one and runs ``pg_restore`` into a database
the operator names, which must exist and be empty, on a server that has the platform's roles (the dump keeps
owners and grants). A dump that fails leaves no object behind. The password of the database URL reaches the
client tools through ``PGPASSWORD``, never their command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from shared.objectstore import CHUNK_SIZE, ObjectStore, StoredObject
from shared.settings import PlatformSettings

PREFIX = "postgres/"


class BackupError(Exception):
    """pg_dump or pg_restore failed; the message holds what it printed."""


@dataclass(frozen=True)
class Connection:
    """A libpq URL without its password, and the environment that carries the password."""

    url: str
    env: dict[str, str]


def connection(database_url: str) -> Connection:
    parts = urlsplit(database_url)
    env = dict(os.environ)
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = f"{parts.username}@" if parts.username else ""
    return Connection(urlunsplit(("postgresql", f"{user}{host}", parts.path, parts.query, "")), env)


def backup_key(database: str, moment: datetime) -> str:
    return f"{PREFIX}dt={moment:%Y-%m-%d}/{database}-{moment:%Y%m%dT%H%M%SZ}.dump"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed (PostgreSQL's client tools are needed for backups)")
    return path


def _chunks(process: subprocess.Popen[bytes]) -> Iterator[bytes]:
    assert process.stdout is not None
    while chunk := process.stdout.read(CHUNK_SIZE):
        yield chunk


def backup(settings: PlatformSettings, store: ObjectStore, *, now: datetime | None = None) -> StoredObject:
    """Dump the platform's database into the backups bucket; returns the stored object."""
    target = connection(settings.database_url)
    key = backup_key(settings.database_name, (now or datetime.now(UTC)).astimezone(UTC))
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [_tool("pg_dump"), "--format=custom", "--no-password", f"--dbname={target.url}"],
            stdout=subprocess.PIPE,
            stderr=errors,
            env=target.env,
        )
        try:
            stored = store.put_stream(settings.bucket_backups, key, _chunks(process))
        except BaseException:
            # The store failed: pg_dump would block on a full pipe, and half a dump is no backup.
            process.kill()
            process.wait()
            store.remove(settings.bucket_backups, key)
            raise
        returncode = process.wait()
        if returncode != 0:
            store.remove(settings.bucket_backups, key)
            errors.seek(0)
            raise BackupError(f"pg_dump failed ({returncode}): {errors.read().decode(errors='replace').strip()}")
    return stored


def list_backups(settings: PlatformSettings, store: ObjectStore) -> list[str]:
    """Every backup's key, oldest first (keys sort by time)."""
    return sorted(store.list_keys(settings.bucket_backups, PREFIX))


def restore(settings: PlatformSettings, store: ObjectStore, key: str, database_url: str) -> None:
    """Restore the backup ``key`` into the (existing, empty) database at ``database_url``."""
    if not store.exists(settings.bucket_backups, key):
        raise BackupError(f"no backup {key!r} in bucket {settings.bucket_backups!r}")
    target = connection(database_url)
    with tempfile.TemporaryDirectory() as scratch:
        dump = Path(scratch) / "backup.dump"
        store.download(settings.bucket_backups, key, dump)
        result = subprocess.run(
            [
                _tool("pg_restore"),
                "--no-password",
                "--exit-on-error",
                "--single-transaction",
                f"--dbname={target.url}",
                str(dump),
            ],
            capture_output=True,
            env=target.env,
            check=False,
        )
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed ({result.returncode}): {result.stderr.decode(errors='replace').strip()}")
