"""The advisory lock that lets one pull of a source (or one sweep) run at a time."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# The int4 namespace of the connectors' two-key advisory locks (a key space apart from one-key locks).
LOCK_NAMESPACE = 0x5D02


async def try_lock(conn: AsyncConnection, name: str) -> bool:
    """A transaction-level advisory lock on the platform database, released by commit or rollback."""
    locked = await conn.scalar(
        text("SELECT pg_try_advisory_xact_lock(:namespace, hashtext(:name))"),
        {"namespace": LOCK_NAMESPACE, "name": name},
    )
    return bool(locked)
