"""What the benchmarks share: a throwaway database, processes sampled for memory, the machine's CPU time."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from ops.admin import migrate
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


def machine_cpu_seconds() -> float:
    """CPU time every process of the machine has used since boot (user, system, interrupts; not idle, not
    I/O wait, not time the hypervisor took)."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class MachineCpu:
    """The CPU time the whole machine used while the block ran: work spread over every process (the
    service, Spark's JVM, PostgreSQL's backends), and a floor for the block's wall time on N cores."""

    def __enter__(self) -> MachineCpu:
        self.seconds = 0.0
        self._started = machine_cpu_seconds()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = machine_cpu_seconds() - self._started
