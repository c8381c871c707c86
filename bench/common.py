"""What the benchmarks share: a throwaway database and processes sampled for memory."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from shared.admin import migrate
from shared.settings import PlatformSettings


@contextmanager
def throwaway_database(base: PlatformSettings) -> Iterator[str]:
    """A migrated database of its own, dropped afterwards; yields its URL."""
    url = f"{base.database_url.rsplit('/', 1)[0]}/sdp_bench_{uuid.uuid4().hex[:8]}"
    admin = base.database_url.rsplit("/", 1)[0] + "/postgres"
    name = url.rsplit("/", 1)[1]

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        migrate(base.model_copy(update={"database_url": url}), create_database=False)
        yield url
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class PeakRss:
    """Samples a process's resident set every few milliseconds while the block runs."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid = pid
        self.interval = interval
        self.baseline = rss_bytes(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline
