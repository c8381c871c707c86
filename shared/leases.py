"""Stage leases: how a running stage says it is alive, and how the platform tells a dead one.

A worker that starts a stage takes the stage's lease in ``ops.batch_stages`` (``lease_id``,
``heartbeat_at``) and renews it from a thread of its own every ``stage_heartbeat_seconds`` for as long as
the stage runs, however long that is. A ``running`` stage whose lease was not renewed for
``stage_lease_seconds`` is dead: its worker was killed, ran out of memory or lost its host. The reconciler
then marks it ``interrupted`` and queues it again, or ends the batch ``failed`` once the stage has died
``stage_max_attempts`` times (a poison batch). A delivery that finds the stage alive elsewhere does nothing.

Why leases rather than a short broker visibility timeout: the broker cannot tell a slow stage from a dead
one, so a timeout short enough to recover in seconds would deliver a long stage again while it still runs.
A lease is renewed by the stage's own process, so it lapses only when that process stops.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from dataclasses import dataclass

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.logs import get_logger
from shared.settings import PlatformSettings

log = get_logger(__name__)

# The batch status each stage runs from.
RUNS_FROM = {"transform": "received", "quality": "staged", "warehouse": "validated"}


@dataclass(frozen=True)
class Lease:
    lease_id: uuid.UUID
    worker: str

    @classmethod
    def new(cls) -> Lease:
        return cls(lease_id=uuid.uuid4(), worker=f"{socket.gethostname()}:{os.getpid()}")


@dataclass(frozen=True)
class StageState:
    status: str
    attempts: int
    interruptions: int
    lease_id: uuid.UUID | None
    worker: str | None
    # The lease was renewed within the lease period.
    renewed: bool


async def stage_state(
    conn: AsyncConnection, batch_id: uuid.UUID, stage: str, lease_seconds: float
) -> StageState | None:
    row = (
        await conn.execute(
            text(
                """SELECT status, attempts, interruptions, lease_id, worker,
                          coalesce(heartbeat_at, started_at) > clock_timestamp() - make_interval(secs => :lease)
                   FROM ops.batch_stages WHERE batch_id = :batch_id AND stage = :stage FOR UPDATE"""
            ),
            {"batch_id": batch_id, "stage": stage, "lease": lease_seconds},
        )
    ).one_or_none()
    return None if row is None else StageState(*row)


async def take(conn: AsyncConnection, batch_id: uuid.UUID, stage: str, lease: Lease) -> None:
    """Start an attempt of the stage under ``lease``."""
    await conn.execute(
        text(
            """INSERT INTO ops.batch_stages (batch_id, stage, status, started_at, heartbeat_at, worker, lease_id)
               VALUES (:batch_id, :stage, 'running', clock_timestamp(), clock_timestamp(), :worker, :lease_id)
               ON CONFLICT (batch_id, stage) DO UPDATE
               SET status = 'running', attempts = ops.batch_stages.attempts + 1,
                   started_at = clock_timestamp(), finished_at = NULL, error = NULL,
                   heartbeat_at = clock_timestamp(), worker = :worker, lease_id = :lease_id"""
        ),
        {"batch_id": batch_id, "stage": stage, "worker": lease.worker, "lease_id": lease.lease_id},
    )


async def holds(conn: AsyncConnection, batch_id: uuid.UUID, stage: str, lease: Lease) -> bool:
    """Whether ``lease`` is still the stage's running attempt (not declared dead and taken over)."""
    held = await conn.execute(
        text(
            """SELECT 1 FROM ops.batch_stages
               WHERE batch_id = :batch_id AND stage = :stage AND status = 'running' AND lease_id = :lease_id"""
        ),
        {"batch_id": batch_id, "stage": stage, "lease_id": lease.lease_id},
    )
    return held.first() is not None


async def interrupt(conn: AsyncConnection, batch_id: uuid.UUID, stage: str) -> int:
    """Record that the stage's running attempt died; returns how many of its attempts have died."""
    return int(
        (
            await conn.execute(
                text(
                    """UPDATE ops.batch_stages
                       SET status = 'interrupted', interruptions = interruptions + 1, finished_at = clock_timestamp(),
                           error = 'worker ' || coalesce(worker, 'unknown') || ' stopped renewing its lease at '
                                   || coalesce(heartbeat_at, started_at)::text
                       WHERE batch_id = :batch_id AND stage = :stage
                       RETURNING interruptions"""
                ),
                {"batch_id": batch_id, "stage": stage},
            )
        ).scalar_one()
    )


def poison_reason(stage: str, interruptions: int, worker: str | None) -> str:
    return (
        f"the {stage} stage died in each of its {interruptions} attempts (its worker stopped, last "
        f"{worker or 'unknown'}); the batch is not tried again"
    )


@dataclass(frozen=True)
class DeadStage:
    batch_id: uuid.UUID
    dataset: str
    stage: str
    worker: str | None


# A stage whose batch row is locked is alive whatever its heartbeat says: its transaction is open. A lease
# is judged only once the server has been up a whole lease period, so a restart of PostgreSQL gives every
# living worker the time to renew before its lease is called dead.
DEAD_STAGES = """
SELECT s.batch_id, b.dataset, s.stage, s.worker
FROM ops.batch_stages s JOIN ops.batches b USING (batch_id)
WHERE s.status = 'running'
  AND coalesce(s.heartbeat_at, s.started_at) < clock_timestamp() - make_interval(secs => :lease)
  AND pg_postmaster_start_time() < clock_timestamp() - make_interval(secs => :lease)
  AND b.status = CASE s.stage {runs_from} END
ORDER BY s.heartbeat_at
LIMIT 100
FOR UPDATE OF b, s SKIP LOCKED
""".format(runs_from=" ".join(f"WHEN '{stage}' THEN '{status}'" for stage, status in RUNS_FROM.items()))


async def dead_stages(conn: AsyncConnection, lease_seconds: float) -> list[DeadStage]:
    rows = await conn.execute(text(DEAD_STAGES), {"lease": lease_seconds})
    return [DeadStage(*row) for row in rows]


class Heartbeat:
    """Renews a lease from a thread and a connection of its own, so a stage that keeps its event loop or its
    connection busy for minutes (Spark, a long COPY) still says it is alive."""

    def __init__(self, settings: PlatformSettings, batch_id: uuid.UUID, stage: str, lease: Lease) -> None:
        self._dsn = settings.database_url
        self._interval = settings.stage_heartbeat_seconds
        self._args = (batch_id, stage, lease.lease_id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{stage}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        conn: asyncpg.Connection | None = None
        try:
            while not self._stop.wait(self._interval):
                conn = loop.run_until_complete(self._renew(conn))
        finally:
            if conn is not None:
                loop.run_until_complete(conn.close(timeout=self._interval))
            loop.close()

    async def _renew(self, conn: asyncpg.Connection | None) -> asyncpg.Connection | None:
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(self._dsn, timeout=self._interval)
            await conn.execute(
                """UPDATE ops.batch_stages SET heartbeat_at = clock_timestamp()
                   WHERE batch_id = $1 AND stage = $2 AND lease_id = $3 AND status = 'running'""",
                *self._args,
                timeout=self._interval,
            )
            return conn
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("lease.renew_failed", error=f"{type(exc).__name__}: {exc}")
            if conn is not None:
                conn.terminate()
            return None
