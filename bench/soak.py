"""The soak: ``python -m bench.soak`` (``make soak``) sends a stream of batches of every dataset and of sizes
from a hundred to tens of thousands of rows, from concurrent clients (each sends its next file once its last
batch has ended), to the whole platform running as local processes on its default settings, and prints:

- throughput (batches and rows a minute) and the latency of a batch from its acceptance to its terminal
  state (p50, p90, p99, max), beside the baseline: the latency of a small batch on the idle platform,
  measured in the same run before the stream;
- errors (any answer but 200, 202 or a 503 retried), lost batches (accepted and not terminal, or never
  accepted) and duplicated ones (an event twice, two batches of the same bytes, facts not equal to the
  reference's recomputation of the files);
- every process's memory (the resident set of its process group, a worker's Spark JVM included) at start,
  after the warm-up, at each quarter of the stream and at the end.

It runs on a database of its own on the configured PostgreSQL and a Redis server it starts itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.common import throwaway_database
from devtools.devstack import Stack
from devtools.sampledata import GeneratorConfig, unique_transaction_ids, write_customers, write_products, write_sales
from devtools.settings import DevstackSettings
from ops.admin import create_key
from shared.settings import PlatformSettings
from tests.conftest import free_port
from tests.faults.harness import OwnRedis
from tests.reference import CENT, load_valid_sales

TERMINAL = ("loaded", "quarantined", "failed")
# Rows per file, drawn with these weights: mostly small files, now and then a large one.
SIZES = {
    "sales": ([100, 1_000, 5_000, 20_000, 50_000], [30, 30, 20, 14, 6]),
    "customers": ([50, 500, 5_000], [50, 35, 15]),
    "products": ([20, 200, 2_000], [50, 35, 15]),
}
DATASETS = (["sales", "customers", "products"], [60, 20, 20])


@dataclass
class Planned:
    dataset: str
    path: Path
    rows: int
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Sent:
    planned: Planned
    batch_id: str | None = None
    upload_s: float = 0.0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


def plan(rng: random.Random, count: int, out: Path, prefix: str) -> list[Planned]:
    files = []
    for n in range(count):
        dataset = rng.choices(*DATASETS)[0]
        rows = rng.choices(*SIZES[dataset])[0]
        config = GeneratorConfig(seed=rng.randrange(1 << 30), customers=rows, products=rows, sales=rows)
        tag = f"{prefix}{n:03d}"
        path = out / f"{tag}-{dataset}.csv"
        if dataset == "sales":
            write_sales(config, path)
            unique_transaction_ids(path, tag)
        elif dataset == "customers":
            write_customers(config, path)
        else:
            write_products(config, path)
        files.append(Planned(dataset, path, rows))
    return files


def send(client: httpx.Client, ingest: str, key: str, sent: Sent, timeout: float = 300.0) -> None:
    """POST one file until it is accepted, retrying 503s and dropped connections with its Idempotency-Key."""
    planned = sent.planned
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "text/csv",
        "X-File-Name": planned.path.name,
        "Idempotency-Key": planned.idempotency_key,
    }
    body = planned.path.read_bytes()
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            answer = client.post(f"{ingest}/v1/datasets/{planned.dataset}/files", content=body, headers=headers)
        except httpx.TransportError as error:
            sent.retries += 1
            sent.errors.append(f"connection: {error}")
            time.sleep(0.5)
            continue
        if answer.status_code in (200, 202):
            sent.batch_id = answer.json()["batch_id"]
            sent.upload_s = time.monotonic() - started
            return
        if answer.status_code == 503:
            sent.retries += 1
            time.sleep(float(answer.headers.get("Retry-After", "1")))
            continue
        sent.errors.append(f"{answer.status_code} {answer.text[:200]}")
        return
    sent.errors.append(f"not accepted within {timeout:.0f}s")


def group_rss(pgid: int) -> int:
    """The resident set of every process in the group, in bytes."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields_ = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields_[2]) != pgid:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


class Database:
    def __init__(self, url: str) -> None:
        self.url = url

    def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.url)
            try:
                return list(await conn.fetch(query, *args))
            finally:
                await conn.close()

        return asyncio.run(run())

    def batches(self, ids: list[str]) -> dict[str, asyncpg.Record]:
        rows = self.fetch(
            "SELECT batch_id::text, status, error, extract(epoch FROM finished_at - received_at)::float8 AS latency "
            "FROM ops.batches WHERE batch_id = ANY($1::uuid[])",
            ids,
        )
        return {r["batch_id"]: r for r in rows}


def wait_terminal(
    db: Database, ids: list[str], timeout: float, on_progress: Any = None, poll: float = 0.5
) -> dict[str, asyncpg.Record]:
    deadline = time.monotonic() + timeout
    while True:
        batches = db.batches(ids)
        done = sum(1 for r in batches.values() if r["status"] in TERMINAL)
        if on_progress is not None:
            on_progress(done)
        if done == len(ids) or time.monotonic() > deadline:
            return batches
        time.sleep(poll)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def facts_mismatch(db: Database, sales: list[Path]) -> str | None:
    expected = {}
    for path in sales:
        for record in load_valid_sales(path).values():
            expected[record.transaction_id] = (
                None if record.total_amount is None else record.total_amount.quantize(CENT)
            )
    actual = {
        r["transaction_id"]: r["total_amount"]
        for r in db.fetch("SELECT transaction_id, total_amount FROM processed.fact_sales")
    }
    if actual == expected:
        return None
    different = sum(1 for k in expected.keys() & actual.keys() if expected[k] != actual[k])
    return (
        f"{len(expected.keys() - actual.keys())} missing, {len(actual.keys() - expected.keys())} extra, "
        f"{different} with another amount"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds for every batch to end")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    rng = random.Random(seed)
    base = PlatformSettings()
    with tempfile.TemporaryDirectory(prefix="sdp-soak-") as tmp_name, throwaway_database(base) as url:
        tmp = Path(tmp_name)
        own_redis = OwnRedis(tmp)
        own_redis.start()
        try:
            return soak(args, seed, rng, tmp, url, own_redis.url)
        finally:
            own_redis.stop()


def soak(args: argparse.Namespace, seed: int, rng: random.Random, tmp: Path, url: str, redis_url: str) -> int:
    print(f"soak seed={seed}: {args.batches} batches from {args.clients} clients; writing the files…", flush=True)
    warmup = [
        Planned("customers", write_customers(GeneratorConfig(seed=1, customers=50), tmp / "warm-customers.csv"), 50),
        Planned("products", write_products(GeneratorConfig(seed=1, products=20), tmp / "warm-products.csv"), 20),
        Planned("sales", write_sales(GeneratorConfig(seed=1, sales=100), tmp / "warm-sales.csv"), 100),
    ]
    unique_transaction_ids(warmup[2].path, "warm")
    (tmp / "files").mkdir()
    files = plan(rng, args.batches, tmp / "files", "s")
    ports = {"SDP_INGEST_PORT": free_port(), "SDP_API_PORT": free_port(), "SDP_FLOWER_PORT": free_port()}
    env = {
        **{k: str(v) for k, v in ports.items()},
        "SDP_DATABASE_URL": url,
        "SDP_REDIS_URL": redis_url,
        "SDP_OBJECT_STORE_URL": f"file://{tmp / 'objects'}",
        "SDP_WORK_DIR": str(tmp / "work"),
        "SDP_RUN_DIR": str(tmp / "run"),
        "SDP_API_PUBLIC_URL": f"http://127.0.0.1:{ports['SDP_API_PORT']}",
        "SDP_LOG_LEVEL": "WARNING",
    }
    settings = DevstackSettings(
        database_url=url,
        redis_url=redis_url,
        object_store_url=env["SDP_OBJECT_STORE_URL"],
        work_dir=tmp / "work",
        run_dir=tmp / "run",
        ingest_port=ports["SDP_INGEST_PORT"],
        api_port=ports["SDP_API_PORT"],
        flower_port=ports["SDP_FLOWER_PORT"],
        flower_basic_auth="soak:soak",
    )
    stack = Stack(settings, env=env)
    stack.up()
    try:
        pids: dict[str, int] = json.loads(stack.pid_file.read_text())
        memory: dict[str, dict[str, int]] = {}

        def sample(label: str) -> None:
            memory[label] = {name: group_rss(pid) for name, pid in pids.items()}

        sample("start")
        key = asyncio.run(create_key(settings, "soak", ["ingest:write", "batches:read"]))
        ingest = f"http://127.0.0.1:{ports['SDP_INGEST_PORT']}"
        db = Database(url)
        idle: list[float] = []
        with httpx.Client(timeout=120) as client:
            for planned in warmup:
                sent = Sent(planned)
                send(client, ingest, key, sent)
                if sent.batch_id is None:
                    raise SystemExit(f"the warm-up batch {planned.path.name} was not accepted: {sent.errors}")
                batch = wait_terminal(db, [sent.batch_id], 300)[sent.batch_id]
                idle.append(batch["latency"])
        sample("warm")
        print(f"warm: idle latency of a small batch {statistics.median(idle):.2f}s; sending…", flush=True)

        todo: queue.Queue[Sent] = queue.Queue()
        stream = [Sent(planned) for planned in files]
        for sent in stream:
            todo.put(sent)

        def client_loop() -> None:
            with httpx.Client(timeout=120) as client:
                while True:
                    try:
                        sent = todo.get_nowait()
                    except queue.Empty:
                        return
                    send(client, ingest, key, sent)
                    # A client sends its next file once its batch has ended: at most one batch per client in flight.
                    if sent.batch_id is not None:
                        wait_terminal(db, [sent.batch_id], args.timeout, poll=0.2)

        started = time.monotonic()
        clients = [threading.Thread(target=client_loop) for _ in range(args.clients)]
        for thread in clients:
            thread.start()
        quarters = {len(files) * q // 4: f"{q * 25}%" for q in (1, 2, 3)}
        while any(thread.is_alive() for thread in clients):
            done = sum(
                1 for r in db.batches([s.batch_id for s in stream if s.batch_id]).values() if r["status"] in TERMINAL
            )
            for at, label in quarters.items():
                if done >= at and label not in memory:
                    sample(label)
            time.sleep(1)
        sent_s = time.monotonic() - started
        ids = [s.batch_id for s in stream if s.batch_id]

        def progress(done: int) -> None:
            for at, label in quarters.items():
                if done >= at and label not in memory:
                    sample(label)

        batches = wait_terminal(db, ids, args.timeout, progress)
        elapsed = time.monotonic() - started
        sample("end")
        labels = ("start", "warm", "25%", "50%", "75%", "end")
        memory = {label: memory.get(label, memory["end"]) for label in labels}

        terminal = [r for r in batches.values() if r["status"] in TERMINAL]
        # Never accepted, or accepted and not terminal.
        lost = len(files) - len(terminal)
        events = db.fetch(
            "SELECT batch_id, type FROM ops.batch_events WHERE batch_id = ANY($1::uuid[]) "
            "GROUP BY batch_id, type HAVING count(*) > 1",
            ids,
        )
        same_bytes = db.fetch("SELECT sha256 FROM ops.batches GROUP BY sha256 HAVING count(*) > 1")
        facts = facts_mismatch(db, [warmup[2].path, *(s.planned.path for s in stream if s.planned.dataset == "sales")])
        statuses = {status: sum(1 for r in terminal if r["status"] == status) for status in TERMINAL}
        errors = [f"{s.planned.path.name}: {e}" for s in stream for e in s.errors]
        latencies = [r["latency"] for r in terminal]
        rows = sum(s.planned.rows for s in stream)
        figures = {
            "seed": seed,
            "batches": len(files),
            "clients": args.clients,
            "rows": rows,
            "sent_s": round(sent_s, 1),
            "elapsed_s": round(elapsed, 1),
            "batches_per_min": round(len(terminal) / elapsed * 60, 1),
            "rows_per_s": round(rows / elapsed),
            "idle_latency_s": round(statistics.median(idle), 2),
            "latency_s": {f"p{p}": round(percentile(latencies, p), 1) for p in (50, 90, 99)}
            | {"max": round(max(latencies), 1)},
            "upload_s": {
                f"p{p}": round(percentile([s.upload_s for s in stream if s.batch_id], p), 2) for p in (50, 99)
            },
            "statuses": statuses,
            "retries": sum(s.retries for s in stream),
            "errors": len(errors),
            "lost": lost,
            "duplicated": len(events) + len(same_bytes) + (1 if facts else 0),
            "facts": facts or "equal",
            "memory_mib": {
                name: {label: round(values[name] / 2**20) for label, values in memory.items()} for name in pids
            },
        }
    finally:
        stack.down()
    print(report(figures))
    for error in errors[:20]:
        print(f"  ! {error}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    broken = figures["lost"] or figures["duplicated"] or figures["errors"] or statuses["loaded"] != len(files)
    return 1 if broken else 0


def report(f: dict[str, Any]) -> str:
    lat = f["latency_s"]
    lines = [
        f"soak seed={f['seed']}: {f['batches']} batches ({f['rows']:,} rows) from {f['clients']} clients",
        f"  all sent in {f['sent_s']}s, all terminal in {f['elapsed_s']}s: {f['batches_per_min']} batches/min, "
        f"{f['rows_per_s']:,} rows/s",
        f"  latency accept -> terminal: p50 {lat['p50']}s p90 {lat['p90']}s p99 {lat['p99']}s max {lat['max']}s; "
        f"idle baseline {f['idle_latency_s']}s (p50 {lat['p50'] / f['idle_latency_s']:.1f}x)",
        f"  upload p50 {f['upload_s']['p50']}s p99 {f['upload_s']['p99']}s; statuses {f['statuses']}; "
        f"503 retries {f['retries']}",
        f"  errors {f['errors']}, lost {f['lost']}, duplicated {f['duplicated']}, facts {f['facts']}",
        "  memory MiB (process group RSS): "
        + " ".join(f"{label:>6}" for label in next(iter(f["memory_mib"].values()))),
    ]
    for name, values in f["memory_mib"].items():
        lines.append(f"    {name:<17}" + " ".join(f"{v:>6}" for v in values.values()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
