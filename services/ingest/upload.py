"""Streaming an upload into the object store: async chunks in, a sync store writer in a thread.

The first chunks are read ahead (so a file that does not match the contract is refused before anything
is stored) and the rest flows through a small bounded queue: memory stays flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import AsyncIterator, Iterator

from shared.objectstore import ObjectStore, StoredObject, StreamObserver

QUEUE_DEPTH = 8
PUT_TIMEOUT_SECONDS = 0.5
COALESCE_BYTES = 1024 * 1024


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


class UploadAborted(Exception):
    """The request ended before its body did; the writer discards what it had."""


async def store_stream(
    store: ObjectStore,
    bucket: str,
    key: str,
    chunks: AsyncIterator[bytes],
    *,
    head: bytes,
    content_type: str,
    max_bytes: int,
    observer: StreamObserver | None = None,
) -> StoredObject:
    """Write ``head`` then the rest of ``chunks`` to the store; the writer runs in a worker thread.

    If reading the request fails, the writer is told to abort, so no partial object is left.
    """
    pipe: queue.Queue[list[bytes] | UploadAborted | None] = queue.Queue(maxsize=QUEUE_DEPTH)

    def drain() -> Iterator[bytes]:
        while (item := pipe.get()) is not None:
            if isinstance(item, UploadAborted):
                raise item
            yield from item

    loop = asyncio.get_running_loop()
    writer = loop.run_in_executor(
        None,
        lambda: store.put_stream(
            bucket, key, drain(), content_type=content_type, max_bytes=max_bytes, observer=observer
        ),
    )

    async def send(item: list[bytes] | UploadAborted | None) -> bool:
        """Hand an item to the writer; False once the writer has stopped (it failed or refused)."""
        while not writer.done():
            try:
                # Room in the queue: no thread hand-off. Full: wait for room in a thread, not on the loop.
                pipe.put_nowait(item)
                return True
            except queue.Full:
                pass
            try:
                await asyncio.to_thread(pipe.put, item, True, PUT_TIMEOUT_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    try:
        if await send([head]):
            async for piece in coalesce(chunks, COALESCE_BYTES):
                if not await send(piece):
                    break
            await send(None)
    except BaseException:
        await send(UploadAborted("the request body ended early"))
        with contextlib.suppress(Exception):
            await writer
        raise
    return await writer
