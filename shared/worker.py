"""What every Celery worker of the platform shares: per-process resources and the stage protocol.

Resources (event loop, engine, bus, object store) are created on first use in the process that uses
them, never at import time, so a forked worker child never inherits its parent's connections.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
import redis
import urllib3
from minio.error import S3Error
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import failpoints, leases
from shared.batches import BatchRow, lock_batch, publish_committed, record_event, try_lock_batch
from shared.bus import EventBus, create_celery
from shared.db import create_engine, database_unavailable
from shared.events import BatchFailed, Event
from shared.logs import batch_context, configure_logging, get_logger
from shared.objectstore import ObjectStore, create_object_store
from shared.settings import PlatformSettings
from shared.worker_metrics import WorkerMetrics

S = TypeVar("S", bound=PlatformSettings)
T = TypeVar("T")

log = get_logger(__name__)


@dataclass
class Resources(Generic[S]):
    settings: S
    engine: AsyncEngine
    bus: EventBus
    store: ObjectStore


class WorkerRuntime(Generic[S]):
    def __init__(self, service: str, settings: S) -> None:
        self.service = service
        self.settings = settings
        self.celery = create_celery(settings, service)
        self.metrics = WorkerMetrics(self.celery, service, settings)
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resources: Resources[S] | None = None

    def _ensure(self) -> tuple[asyncio.AbstractEventLoop, Resources[S]]:
        if self._pid != os.getpid() or self._loop is None or self._resources is None:
            configure_logging(self.service, level=self.settings.log_level, json=self.settings.log_json)
            self._loop = asyncio.new_event_loop()
            self._resources = Resources(
                settings=self.settings,
                engine=create_engine(self.settings),
                bus=EventBus(self.settings, self.celery),
                store=create_object_store(self.settings),
            )
            self._pid = os.getpid()
        return self._loop, self._resources

    @property
    def resources(self) -> Resources[S]:
        return self._ensure()[1]

    def run(self, work: Callable[[Resources[S]], Coroutine[Any, Any, T]]) -> T:
        loop, resources = self._ensure()
        return loop.run_until_complete(work(resources))


MAX_REASON_CHARS = 2000

# Errors that say a dependency cannot be reached now, beyond the database's (shared.db).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.MaxRetryError,
    urllib3.exceptions.NewConnectionError,
    redis.ConnectionError,
    redis.TimeoutError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)
# S3 answers that mean "later", not "never".
TRANSIENT_S3_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"})


def describe_error(exc: BaseException) -> str:
    """A reason a person can read: the error's first line and its root cause, without a JVM stack trace."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    causes = [line for line in lines if line.startswith("Caused by:")]
    reason = f"{type(exc).__name__}: {first}"
    if causes and causes[-1] not in reason:
        reason += f" (root cause: {causes[-1].removeprefix('Caused by:').strip()})"
    return reason[:MAX_REASON_CHARS]


StageWork = Callable[[AsyncConnection, BatchRow], Awaitable[list[Event]]]

# How long a delivery waits for a batch row another transaction holds before it leaves the batch to it.
LOCK_WAIT_SECONDS = 2.0
# Backoff between tries of a stage cut by the weather: a dependency that cannot be reached now.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 10.0


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the weather (PostgreSQL, the object store or Redis unreachable, a connection cut, a
    deadlock) rather than the batch's fault: such a stage is tried again, never ended ``failed``."""
    if database_unavailable(exc):
        return True
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, TRANSIENT_ERRORS):
            return True
        if isinstance(error, S3Error) and error.code in TRANSIENT_S3_CODES:
            return True
        todo += [error.__cause__, error.__context__]
    return False


async def _until_done(what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    delay = RETRY_FIRST_SECONDS
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not transient(exc):
                raise
            log.warning("stage.transient_error", step=what, error=describe_error(exc), retry_in=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_SECONDS)


async def _fail(resources: Resources[Any], event: BatchFailed, stage: str) -> None:
    async def record() -> None:
        async with resources.engine.begin() as conn:
            await lock_batch(conn, event.batch_id)
            await record_event(conn, event, stage=stage, fields={"failed_stage": stage, "error": event.reason})

    await _until_done("record_failure", record)
    await publish_committed(resources.engine, resources.bus, [event])


async def _claim(
    resources: Resources[Any],
    *,
    batch_id: uuid.UUID,
    dataset: str,
    stage: str,
    expected_status: str,
    lease: leases.Lease,
) -> bool:
    """Take the stage's lease unless the batch moved on or the stage runs elsewhere; a stage whose earlier
    attempts all died ends the batch instead."""
    settings = resources.settings
    async with resources.engine.begin() as conn:
        batch = await try_lock_batch(conn, batch_id, wait_seconds=LOCK_WAIT_SECONDS)
        if batch is None:
            log.info("stage.skipped", reason="batch held by a running stage")
            return False
        if batch.status != expected_status:
            log.info("stage.skipped", status=batch.status, expected=expected_status)
            return False
        state = await leases.stage_state(conn, batch_id, stage, settings.stage_lease_seconds)
        if state is not None and state.status == "running" and state.renewed:
            log.info("stage.skipped", reason="running elsewhere", worker=state.worker)
            return False
        interruptions = 0 if state is None else state.interruptions
        if state is not None and state.status == "running":
            interruptions = await leases.interrupt(conn, batch_id, stage)
            log.warning("stage.interrupted", worker=state.worker, interruptions=interruptions)
        died_before = state is not None and state.status in ("running", "interrupted")
        poisoned = None
        if died_before and interruptions >= settings.stage_max_attempts:
            reason = leases.poison_reason(stage, interruptions, state.worker if state else None)
            poisoned = BatchFailed(batch_id=batch_id, dataset=dataset, stage=stage, reason=reason)
            await record_event(conn, poisoned, stage=stage, fields={"failed_stage": stage, "error": reason})
        else:
            await leases.take(conn, batch_id, stage, lease)
    if poisoned is not None:
        log.error("stage.poisoned", reason=poisoned.reason)
        await publish_committed(resources.engine, resources.bus, [poisoned])
        return False
    return True


async def run_stage(
    resources: Resources[Any],
    *,
    batch_id: uuid.UUID,
    dataset: str,
    stage: str,
    expected_status: str,
    work: StageWork,
) -> None:
    """Run one stage of one batch at most once to completion, whatever the number of deliveries.

    The stage is skipped unless the batch is in ``expected_status`` (a redelivered or duplicated event
    finds it moved on) and no living attempt holds its lease (shared/leases.py). The work runs in one
    transaction holding the batch row's lock, with the lease renewed beside it, and returns the events it
    recorded; they are published after the commit. The weather (a dependency unreachable) is waited out
    and the work tried again; any other error ends the batch ``failed`` with the reason, and the worker
    goes on to the next batch.
    """
    lease = leases.Lease.new()
    with batch_context(batch_id, stage=stage):
        claimed = await _until_done(
            "claim",
            lambda: _claim(
                resources,
                batch_id=batch_id,
                dataset=dataset,
                stage=stage,
                expected_status=expected_status,
                lease=lease,
            ),
        )
        if not claimed:
            return

        async def attempt() -> list[Event] | None:
            async with resources.engine.begin() as conn:
                batch = await lock_batch(conn, batch_id)
                if batch.status != expected_status or not await leases.holds(conn, batch_id, stage, lease):
                    log.warning("stage.lease_lost", status=batch.status)
                    return None
                events = await work(conn, batch)
                failpoints.hit(resources.settings, f"{stage}.before_commit", subject=batch.file_name)
                return events

        started = time.perf_counter()
        with leases.Heartbeat(resources.settings, batch_id, stage, lease):
            try:
                events = await _until_done("work", attempt)
            except Exception as exc:
                log.exception("stage.failed")
                failed = BatchFailed(batch_id=batch_id, dataset=dataset, stage=stage, reason=describe_error(exc))
                await _fail(resources, failed, stage)
                return
        if events is None:
            return
        log.info("stage.done", seconds=round(time.perf_counter() - started, 3), events=[e.type for e in events])
        await publish_committed(resources.engine, resources.bus, events)
