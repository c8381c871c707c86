"""KPI API benchmark: ``/v1/kpis/summary`` and ``/v1/kpis/daily`` over two years of data, 32 connections from a
second process, one uvicorn worker; beside the same SQL run directly with asyncpg in the same run.

Data: two years (730 days) of sales, ``--sales-per-day`` a day (default 500: 365,000 facts), 2,000 customers
and 200 products, staged as the transform leaves them and loaded by the warehouse's own load
(``services.warehouse.load``, as tests/services/api/test_exports.py fills it), into a throwaway database.

Each measurement runs ``bench.kpi_client`` as a process of its own with ``--connections`` connections in a
closed loop for ``--duration`` seconds after a warm-up; every kind draws its ranges from one seeded list (a
random start, a length of 1, 7, 30, 90, 365 or 730 days), so the API and the baseline answer the same ranges:
- sql: the endpoint's statements (services/api/repository.py) with asyncpg, one connection per client
  connection, no pool, no HTTP (the baseline);
- api, cache off (``SDP_API_KPI_CACHE_TTL_SECONDS=0``): every request reads the database;
- api, cache on, varying ranges: the first request of each range computes it, later ones hit Redis;
- api, cache on, repeated: always the two-year range, so every request after the first is a hit;
- the floor of the HTTP stack: ``/healthz`` of the same server (no key, no database).
The API authenticates every request with a ``kpis:read`` key (a read of ``ops.api_keys``), as deployed: it
connects as its own role, sdp_api, where the machine has the service roles. Targets (issue 19): p99 ≤ 50 ms
and ≥ 500 requests/s.

Run: ``make bench`` (or ``python -m bench.kpi_api``; ``--duration``, ``--sales-per-day`` scale it down).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from random import Random
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import redis
from sqlalchemy import text

from bench.common import throwaway_database
from ops.admin import create_key
from services.warehouse import load as warehouse_load
from services.warehouse.settings import WarehouseSettings
from shared.db import create_engine, raw_connection
from shared.settings import PlatformSettings

P99_TARGET_MS = 50.0
RPS_TARGET = 500.0
FIRST_DAY = date(2024, 1, 1)
DAYS = 730
LENGTHS = [1, 7, 30, 90, 365, 730]
ENDPOINTS = ("summary", "daily")
STATES = ("SP", "RJ", "MG", "PE", "BA", "RS", "PR", None)
CATEGORIES = ("books", "electronics", "toys", "garden", "sports", None)
PAYMENT_METHODS = ("credit_card", "debit_card", "pix", "boleto", "cash", "paypal")
STATUSES = ("completed",) * 7 + ("pending", "cancelled", "refunded")
COLUMNS = {
    "customers": ["customer_id", "customer_name", "email", "city", "state", "country", "is_active", "updated_at"],
    "products": ["product_id", "product_name", "category", "created_at", "updated_at"],
    "sales": [
        "transaction_id",
        "transaction_ts",
        "customer_id",
        "product_id",
        "quantity",
        "unit_price",
        "total_amount",
        "payment_method",
        "status",
    ],
}


# --- data ----------------------------------------------------------------------------------------------------


def rows(sales_per_day: int, customers: int, products: int) -> dict[str, list[tuple[Any, ...]]]:
    rng = Random(19)
    updated = datetime(2020, 1, 1, tzinfo=UTC)
    sales = []
    for day in range(DAYS):
        midnight = datetime.combine(FIRST_DAY + timedelta(days=day), datetime.min.time(), UTC)
        for n in range(sales_per_day):
            quantity = rng.randint(1, 5)
            unit_price = Decimal(rng.randint(100, 99_999)) / 100
            sales.append(
                (
                    f"T-{day}-{n}",
                    midnight + timedelta(seconds=rng.randrange(86_400)),
                    f"C{rng.randrange(customers)}",
                    f"P{rng.randrange(products)}",
                    quantity,
                    unit_price,
                    quantity * unit_price,
                    rng.choice(PAYMENT_METHODS),
                    rng.choice(STATUSES),
                )
            )
    return {
        "customers": [
            (f"C{i}", f"Customer {i}", None, "Cidade", rng.choice(STATES), "BR", True, updated)
            for i in range(customers)
        ],
        "products": [(f"P{i}", f"Product {i}", rng.choice(CATEGORIES), updated, updated) for i in range(products)],
        "sales": sales,
    }


async def stage_and_load(settings: WarehouseSettings, data: dict[str, list[tuple[Any, ...]]]) -> None:
    """Each dataset staged as the transform leaves it, then loaded by the warehouse's load, one batch each."""
    engine = create_engine(settings)
    try:
        for dataset in ("customers", "products", "sales"):  # dimensions first, as a batch's loads go
            async with engine.begin() as conn:
                batch_id = uuid.uuid4()
                await conn.execute(
                    text(
                        """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format,
                               object_bucket, object_key, sha256, size_bytes)
                           VALUES (:b, :d, 'validated', 'bench.csv', 'csv', 'raw-data', 'k', :sha, 1)"""
                    ),
                    {"b": batch_id, "d": dataset, "sha": uuid.uuid4().hex * 2},
                )
                await (await raw_connection(conn)).copy_records_to_table(
                    dataset,
                    schema_name="staging",
                    columns=["batch_id", "source_line", *COLUMNS[dataset]],
                    records=[(batch_id, line, *row) for line, row in enumerate(data[dataset], start=2)],
                )
                await warehouse_load.load(conn, dataset, batch_id, settings.bulk_policy)
                await conn.execute(
                    text("UPDATE ops.batches SET status = 'loaded' WHERE batch_id = :b"), {"b": batch_id}
                )
        # Fresh statistics, as autovacuum would have them on a warehouse that has been loaded for a while.
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


# --- the server and the clients ------------------------------------------------------------------------------


def as_role(database_url: str, role: str) -> str:
    parts = urlsplit(database_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query, parts.fragment))


async def api_role_exists(database_url: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'sdp_api'"))
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def api_server(database_url: str, redis_url: str, prefix: str, cache_ttl: int) -> Iterator[tuple[int, int]]:
    """The API as one uvicorn worker in a process of its own; yields its port and pid."""
    port = free_port()
    env = {
        **os.environ,
        # As deployed, its own role (migration 0005's grants), where the machine has it.
        "SDP_DATABASE_URL": as_role(database_url, "sdp_api")
        if asyncio.run(api_role_exists(database_url))
        else database_url,
        "SDP_REDIS_URL": redis_url,
        "SDP_QUEUE_PREFIX": prefix,
        "SDP_API_KPI_CACHE_TTL_SECONDS": str(cache_ttl),
        "SDP_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "uvicorn", "services.api.app:create_app", "--factory", "--port", str(port)]
    proc = subprocess.Popen([*command, "--workers", "1", "--no-access-log", "--log-level", "warning"], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/readyz").raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(config: dict[str, Any], server_pid: int | None = None) -> dict[str, Any]:
    """One run of the load generator in its own process; its figures, with the server's CPU use."""
    before = cpu_seconds(server_pid) if server_pid else 0.0
    out = subprocess.run(
        [sys.executable, "-m", "bench.kpi_client", json.dumps(config)], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if server_pid:
        result["server_cpu_ms"] = (cpu_seconds(server_pid) - before) * 1000 / max(1, result["requests_all"])
    return result


def line(label: str, r: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    ratio = (
        f"  {r['rps'] / baseline['rps']:5.2f}x rps, {r['p99_ms'] / baseline['p99_ms']:5.2f}x p99" if baseline else ""
    )
    cpu = f"  server CPU {r['server_cpu_ms']:.2f} ms/req" if "server_cpu_ms" in r else ""
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()) if k not in ("sql", "none"))
    errors = f"  ERRORS {r['errors']}" if r["errors"] else ""
    return (
        f"  {label:34s} p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  {r['rps']:7.0f} req/s"
        f"{ratio}{cpu}{'  (' + outcomes + ')' if outcomes else ''}{errors}"
    )


def verdict(r: dict[str, Any]) -> str:
    met = r["p99_ms"] <= P99_TARGET_MS and r["rps"] >= RPS_TARGET and not r["errors"]
    return "met" if met else "NOT met"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales-per-day", type=int, default=500)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds run before measuring")
    args = parser.parse_args(argv)
    base = PlatformSettings()
    prefix = f"bench-kpi-{uuid.uuid4().hex[:8]}-"
    with throwaway_database(base) as database_url:
        settings = WarehouseSettings(database_url=database_url)
        started = time.perf_counter()
        data = rows(args.sales_per_day, args.customers, args.products)
        asyncio.run(stage_and_load(settings, data))
        print(
            f"loaded {len(data['sales']):,} sales over {DAYS} days from {FIRST_DAY} in"
            f" {time.perf_counter() - started:.1f} s; {args.connections} connections, {args.duration:g} s a run",
            flush=True,
        )
        key = asyncio.run(create_key(settings, name="bench", scopes=["kpis:read"]))
        common = {
            "connections": args.connections,
            "duration": args.duration,
            "warmup": args.warmup,
            "first_day": FIRST_DAY.isoformat(),
            "days": DAYS,
            "seed": 19,
        }
        varying = {**common, "lengths": LENGTHS}
        repeated = {**common, "lengths": [DAYS]}
        results: dict[tuple[str, str], dict[str, Any]] = {}
        try:
            for endpoint in ENDPOINTS:
                results[endpoint, "sql"] = measure(
                    {**varying, "kind": "sql", "endpoint": endpoint, "database_url": database_url}
                )
            for ttl, runs in ((0, [("off", varying)]), (300, [("varying", varying), ("repeated", repeated)])):
                with api_server(database_url, base.redis_url, prefix, ttl) as (port, pid):
                    http = {"kind": "http", "port": port, "key": key}
                    if ttl == 0:
                        floor = {**http, "endpoint": "healthz", "path": "/healthz", "key": None}
                        results["healthz", "floor"] = measure({**varying, **floor}, pid)
                    for endpoint in ENDPOINTS:
                        for name, plan in runs:
                            config = {**plan, **http, "endpoint": endpoint, "path": f"/v1/kpis/{endpoint}"}
                            results[endpoint, name] = measure(config, pid)
        finally:
            broker = redis.Redis.from_url(base.redis_url)
            for stale in broker.scan_iter(match=f"{prefix}*"):
                broker.delete(stale)
            broker.close()
    print(f"floor: GET /healthz (no key, no database) {line('', results['healthz', 'floor'], None).strip()}")
    for endpoint in ENDPOINTS:
        sql = results[endpoint, "sql"]
        print(f"/v1/kpis/{endpoint} (ranges of {', '.join(map(str, LENGTHS))} days):")
        print(line("sql, asyncpg direct (baseline)", sql, None))
        print(line("api, cache off", results[endpoint, "off"], sql))
        print(line("api, cache on, varying ranges", results[endpoint, "varying"], sql))
        print(line("api, cache on, the two-year range", results[endpoint, "repeated"], sql))
    print(
        f"target p99 ≤ {P99_TARGET_MS:g} ms and ≥ {RPS_TARGET:g} req/s, cache off:"
        + ";".join(f" {e} {verdict(results[e, 'off'])}" for e in ENDPOINTS)
        + "; cache on, varying:"
        + ";".join(f" {e} {verdict(results[e, 'varying'])}" for e in ENDPOINTS)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
