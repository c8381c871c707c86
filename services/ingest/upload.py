"""Streaming an upload into the object store: the event loop receives, a bounded pool checks and writes.

The first chunks are read ahead (so a file that does not match the contract is refused before anything
is stored). Then each piece of about a MiB that has arrived is checked (size, sha256, content), then
written, by tasks of a bounded pool that run only while pieces are queued: receiving, checking and writing
overlap as they did with a thread each, but a thread is taken only for bytes that are there, so a client
that sends slowly holds none while it idles.
Memory stays flat: at most ``MAX_PIECES`` pieces wait to be written.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor

from shared.http import ApiError
from shared.objectstore import ObjectStore, ObjectWriter, StoredObject, StreamObserver

COALESCE_BYTES = 1024 * 1024
# Pieces an upload has received but not yet written: memory stays flat whatever its size.
MAX_PIECES = 8
# Pieces a lane handles in a row before its thread serves others: handing over after each would cost a
# thread wake-up per piece.
LANE_TURN = 8


async def coalesce(chunks: AsyncIterator[bytes], size: int) -> AsyncIterator[list[bytes]]:
    """Group the server's small reads into lists of about ``size`` bytes: one thread hand-off per list,
    and no copy (joining them would copy every byte on the event loop)."""
    parts: list[bytes] = []
    have = 0
    async for chunk in chunks:
        parts.append(chunk)
        have += len(chunk)
        if have >= size:
            yield parts
            parts, have = [], 0
    if parts:
        yield parts


async def read_head(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The first ``limit`` bytes or so of a stream (what the format and header checks look at)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)


async def idle_bounded(chunks: AsyncIterator[bytes], idle_seconds: float) -> AsyncIterator[bytes]:
    """``chunks``, cut with 408 ``body_timeout`` once none has arrived for ``idle_seconds``."""
    while True:
        try:
            async with asyncio.timeout(idle_seconds):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ApiError(
                408,
                "body_timeout",
                f"no byte of the request body arrived for {idle_seconds:g} s",
                {"idle_timeout_seconds": idle_seconds},
                # The rest of the body may still come: the connection cannot carry another request.
                headers={"Connection": "close"},
            ) from None
        yield chunk


async def _pieces(head: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    yield [head]
    async for piece in coalesce(chunks, COALESCE_BYTES):
        yield piece


class _Lane:
    """Runs its calls one at a time, in order, on a shared pool: it holds a thread only while it has calls
    queued, and gives it back every ``LANE_TURN`` calls so that other uploads' pieces take their turns."""

    def __init__(self, pool: Executor) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        self._calls: deque[Callable[[], None]] = deque()
        self._running = False

    def submit(self, call: Callable[[], None]) -> None:
        """Queue ``call``, which must not raise."""
        with self._lock:
            self._calls.append(call)
            if self._running:
                return
            self._running = True
        self._pool.submit(self._run)

    def _run(self) -> None:
        for _ in range(LANE_TURN):
            with self._lock:
                if not self._calls:
                    self._running = False
                    return
                call = self._calls.popleft()
            call()
        self._pool.submit(self._run)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Pipeline:
    """Each piece is checked on one lane, then written on another. The event loop only queues pieces (and
    is woken only when it waits): while ``MAX_PIECES`` are not yet written, or for the last of them."""

    def __init__(self, writer: ObjectWriter, pool: Executor) -> None:
        self._writer = writer
        self._checks = _Lane(pool)
        self._writes = _Lane(pool)
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._pending = 0
        self._failure: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    async def put(self, piece: list[bytes]) -> None:
        """Queue ``piece``; raises what checking or writing an earlier piece raised."""
        await self._wait(lambda: self._pending < MAX_PIECES)
        with self._lock:
            self._pending += 1
        self._checks.submit(functools.partial(self._check, piece))

    async def finish(self) -> None:
        """Wait until every piece is written; raises what checking or writing one raised."""
        await self._wait(lambda: self._pending == 0)

    async def settle(self) -> None:
        """Wait until no piece is being checked or written, whatever the outcome (before an abort)."""
        await self._wait(lambda: self._pending == 0, raise_failure=False)

    async def _wait(self, ready: Callable[[], bool], *, raise_failure: bool = True) -> None:
        while True:
            with self._lock:
                if raise_failure and self._failure is not None:
                    raise self._failure
                if ready():
                    return
                waiter = self._waiter = self._loop.create_future()
            await waiter

    def _check(self, piece: list[bytes]) -> None:
        if self._failure is not None:
            self._done(None)
            return
        try:
            self._writer.check(piece)
        except BaseException as exc:
            self._done(exc)
            return
        self._writes.submit(functools.partial(self._write, piece))

    def _write(self, piece: list[bytes]) -> None:
        failure = None
        if self._failure is None:
            try:
                self._writer.write(piece)
            except BaseException as exc:
                failure = exc
        self._done(failure)

    def _done(self, failure: BaseException | None) -> None:
        with self._lock:
            self._pending -= 1
            if self._failure is None:
                self._failure = failure
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_wake, waiter)


async def store_stream(
    store: ObjectStore,
    bucket: str,
    key: str,
    chunks: AsyncIterator[bytes],
    *,
    head: bytes,
    content_type: str,
    max_bytes: int,
    pool: Executor,
    observer: StreamObserver | None = None,
) -> StoredObject:
    """Write ``head`` then the rest of ``chunks`` to the store, each piece in ``pool`` once it has arrived.

    If reading the request fails (or the store refuses a piece), the write is aborted: no partial object.
    """
    loop = asyncio.get_running_loop()
    writer = await loop.run_in_executor(
        pool,
        functools.partial(
            store.open_writer, bucket, key, content_type=content_type, max_bytes=max_bytes, observer=observer
        ),
    )
    pipeline = _Pipeline(writer, pool)
    committing: asyncio.Future[StoredObject] | None = None
    try:
        async for piece in _pieces(head, chunks):
            await pipeline.put(piece)
        await pipeline.finish()
        committing = loop.run_in_executor(pool, writer.commit)
        # Shielded: a cancelled request must not abort the writer while the commit still uses it.
        return await asyncio.shield(committing)
    except BaseException:
        await asyncio.shield(_discard(writer, pipeline, committing, pool))
        raise


async def _discard(
    writer: ObjectWriter, pipeline: _Pipeline, committing: asyncio.Future[StoredObject] | None, pool: Executor
) -> None:
    """Abort the write once nothing uses the writer any more."""
    await pipeline.settle()
    if committing is not None:
        await asyncio.gather(committing, return_exceptions=True)
    await asyncio.get_running_loop().run_in_executor(pool, writer.abort)
