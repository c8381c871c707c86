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

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import failpoints
from shared.batches import BatchRow, lock_batch, publish_committed, record_event, start_stage
from shared.bus import EventBus, create_celery
from shared.db import create_engine
from shared.events import BatchFailed, Event
from shared.logs import batch_context, configure_logging, get_logger
from shared.objectstore import ObjectStore, create_object_store
from shared.settings import PlatformSettings

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

    The stage is skipped unless the batch is in ``expected_status`` (a redelivered or duplicated
    event finds it moved on). The work runs in one transaction holding the batch row's lock and
    returns the events it recorded; they are published after the commit. Any error ends the batch
    ``failed`` with the reason, and the worker goes on to the next batch.
    """
    with batch_context(batch_id, stage=stage):
        async with resources.engine.begin() as conn:
            batch = await lock_batch(conn, batch_id)
            if batch.status != expected_status:
                log.info("stage.skipped", status=batch.status, expected=expected_status)
                return
            await start_stage(conn, batch_id, stage)
        started = time.perf_counter()
        try:
            async with resources.engine.begin() as conn:
                batch = await lock_batch(conn, batch_id)
                if batch.status != expected_status:
                    log.info("stage.skipped", status=batch.status, expected=expected_status)
                    return
                events = await work(conn, batch)
                failpoints.hit(resources.settings, f"{stage}.before_commit")
        except Exception as exc:
            log.exception("stage.failed")
            failed = BatchFailed(batch_id=batch_id, dataset=dataset, stage=stage, reason=describe_error(exc))
            async with resources.engine.begin() as conn:
                await lock_batch(conn, batch_id)
                await record_event(conn, failed, stage=stage, fields={"failed_stage": stage, "error": failed.reason})
            await publish_committed(resources.engine, resources.bus, [failed])
            return
        log.info("stage.done", seconds=round(time.perf_counter() - started, 3), events=[e.type for e in events])
        await publish_committed(resources.engine, resources.bus, events)
