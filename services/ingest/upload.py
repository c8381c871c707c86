"""Streaming an upload into the object store: the event loop receives, a bounded pool checks and writes.

The first chunks are read ahead (so a file that does not match the contract is refused before anything
is stored). Then each piece of about a MiB that has arrived is checked (size, sha256, content) in one pool
task and written in another; the write of a piece, the check of the next and the receipt of the one after
overlap. A thread is taken only for bytes that are there: a client that sends slowly holds none while it
idles, and memory stays flat (three pieces at most).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from shared.http import ApiError
from shared.objectstore import ObjectStore, ObjectWriter, StoredObject, StreamObserver

COALESCE_BYTES = 1024 * 1024

T = TypeVar("T")


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


async def _discard(writer: ObjectWriter, in_flight: list[asyncio.Future[Any]], pool: Executor) -> None:
    """Abort the write once the pool is done with its pieces (their errors were raised or are moot)."""
    await asyncio.gather(*in_flight, return_exceptions=True)
    await asyncio.get_running_loop().run_in_executor(pool, writer.abort)


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

    def start(call: Callable[[], T]) -> asyncio.Future[T]:
        return loop.run_in_executor(pool, call)

    writer = await start(
        functools.partial(
            store.open_writer, bucket, key, content_type=content_type, max_bytes=max_bytes, observer=observer
        )
    )
    checking: asyncio.Future[None] | None = None
    writing: asyncio.Future[None] | None = None
    committing: asyncio.Future[StoredObject] | None = None
    last: list[bytes] = []
    try:
        # Shielded waits: a cancelled request must not abandon a pool task still using the writer.
        async for piece in _pieces(head, chunks):
            if checking is not None:
                await asyncio.shield(checking)
                if writing is not None:
                    await asyncio.shield(writing)
                writing = start(functools.partial(writer.write, last))
            checking = start(functools.partial(writer.check, piece))
            last = piece
        if checking is not None:
            await asyncio.shield(checking)
            if writing is not None:
                await asyncio.shield(writing)
            writing = start(functools.partial(writer.write, last))
            await asyncio.shield(writing)
        committing = start(writer.commit)
        return await asyncio.shield(committing)
    except BaseException:
        in_flight: list[asyncio.Future[Any]] = [f for f in (checking, writing, committing) if f is not None]
        await asyncio.shield(_discard(writer, in_flight, pool))
        raise
