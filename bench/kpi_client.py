"""The load generator of ``bench.kpi_api``, run as a process of its own: N connections in a closed loop for a
duration, each sending its next request as soon as its last answer has been read; prints one JSON line of
figures (p50, p99, requests/s, errors, the answers' X-Cache outcomes).

Two kinds of client over the same ranges: ``http`` speaks HTTP/1.1 keep-alive to the API on raw asyncio
streams (no client library, so that the client's own CPU stays small beside the server's on 2 cores), and
``sql`` runs the endpoints' SQL (services/api/repository.py) directly with asyncpg, one connection each.
Both run on uvloop, as the API does.

Run by ``bench.kpi_api``: ``python -m bench.kpi_client '<json config>'``.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from random import Random
from typing import Any

import asyncpg
import uvloop

from services.api import repository

# endpoint -> the SQL statements it runs, in order (the summary runs two)
ENDPOINT_SQL = {
    "daily": (repository.DAILY,),
    "summary": (repository.SUMMARY, repository.DISTINCT_CUSTOMERS),
}


def positional(sql: str) -> tuple[str, list[str]]:
    """``sql`` with its ``:name`` parameters as asyncpg's ``$n``, and the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return re.sub(r"(?<!:):([a-z_]+)", number, sql), names


def ranges(first: str, days: int, lengths: list[int], seed: int, count: int) -> list[tuple[date, date]]:
    """``count`` date ranges inside ``days`` days from ``first``, each of a length drawn from ``lengths``."""
    rng = Random(seed)
    start = date.fromisoformat(first)
    out = []
    for _ in range(count):
        length = min(rng.choice(lengths), days)
        offset = rng.randrange(days - length + 1)
        out.append((start + timedelta(days=offset), start + timedelta(days=offset + length - 1)))
    return out


def date_key(day: date) -> int:
    return day.year * 10_000 + day.month * 100 + day.day


async def drive(
    connections: int,
    duration: float,
    warmup: float,
    open_worker: Callable[[int], Awaitable[tuple[Callable[[int], Awaitable[str]], Callable[[], Awaitable[None]]]]],
) -> dict[str, Any]:
    """Runs ``connections`` workers; each calls its request function with a running index until the time is
    up. Latencies of requests started in the warm-up are left out."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + duration
    counter = 0

    async def worker(n: int) -> None:
        nonlocal counter
        request, close = await open_worker(n)
        try:
            while True:
                now = time.perf_counter()
                if now >= stop_at:
                    return
                index = counter
                counter += 1
                try:
                    outcome = await request(index)
                except Exception as exc:
                    errors[type(exc).__name__] += 1
                    continue
                if now >= measure_from:
                    latencies.append(time.perf_counter() - now)
                    outcomes[outcome] += 1
        finally:
            await close()

    await asyncio.gather(*(worker(n) for n in range(connections)))
    elapsed = time.perf_counter() - measure_from
    latencies.sort()

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "requests": len(latencies),
        # with the warm-up's: what the server's CPU time is divided by
        "requests_all": counter - sum(errors.values()),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": quantile(0.50),
        "p99_ms": quantile(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
        "outcomes": dict(outcomes),
        "errors": dict(errors),
    }


def http_worker(config: dict[str, Any], plan: list[tuple[date, date]]) -> Callable[..., Any]:
    host, port = "127.0.0.1", config["port"]
    path = config["path"]

    async def open_worker(_: int) -> tuple[Callable[[int], Awaitable[str]], Callable[[], Awaitable[None]]]:
        reader, writer = await asyncio.open_connection(host, port)
        auth = f"Authorization: Bearer {config['key']}\r\n" if config.get("key") else ""

        async def request(index: int) -> str:
            start, end = plan[index % len(plan)]
            target = path if config["endpoint"] == "healthz" else f"{path}?from={start}&to={end}"
            writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = lines[0].split(" ", 2)[1]
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            headers = {k.lower(): v for k, v in headers.items()}
            if "content-length" not in headers:
                raise RuntimeError(f"no content-length in {headers}")
            await reader.readexactly(int(headers["content-length"]))
            if status != "200":
                raise RuntimeError(f"HTTP {status}")
            return headers.get("x-cache", "none")

        async def close() -> None:
            writer.close()

        return request, close

    return open_worker


def sql_worker(config: dict[str, Any], plan: list[tuple[date, date]]) -> Callable[..., Any]:
    statements = [positional(sql) for sql in ENDPOINT_SQL[config["endpoint"]]]

    async def open_worker(_: int) -> tuple[Callable[[int], Awaitable[str]], Callable[[], Awaitable[None]]]:
        conn = await asyncpg.connect(config["database_url"])

        async def request(index: int) -> str:
            start, end = plan[index % len(plan)]
            values = {"start": start, "end": end, "start_key": date_key(start), "end_key": date_key(end)}
            for sql, names in statements:
                await conn.fetch(sql, *(values[n] for n in names))
            return "sql"

        async def close() -> None:
            await conn.close()

        return request, close

    return open_worker


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    plan = ranges(config["first_day"], config["days"], config["lengths"], config["seed"], 100_000)
    make = http_worker if config["kind"] == "http" else sql_worker
    result = uvloop.run(drive(config["connections"], config["duration"], config["warmup"], make(config, plan)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
