"""Ingest benchmark: a large CSV upload's throughput and the ingest process's memory growth.

Baseline in the same run: ``cp`` of the same file onto the same filesystem as the local object store.
Targets (issue 3): RSS growth ≤ 64 MB and ≥ 50% of the ``cp`` throughput.

The file is uploaded by two clients: one sending with sendfile(2), which the target is judged with, and
``curl -T``, shown for reference (on two cores the CPU a client spends is the service's loss).

Run: ``make bench`` (or ``python -m bench.ingest_upload --size-mb 1024 --runs 3``); each side runs ``--runs``
times, alternated, and the medians are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import redis

from bench.common import PeakRss, rss_bytes, throwaway_database
from devtools.sampledata import GeneratorConfig, write_sales
from ops.admin import create_key
from shared.settings import PlatformSettings

RSS_TARGET = 64 * 1024 * 1024
THROUGHPUT_TARGET = 0.5
# The client the target is judged with: on a 2-core machine every cycle a client spends is taken from the
# service, and a sendfile(2) client spends the fewest (a real client runs on another machine).
TARGET_CLIENT = "sendfile"


def make_file(path: Path, size: int) -> None:
    """A valid sales CSV of about ``size`` bytes: one generated block, repeated."""
    block = path.with_suffix(".block")
    write_sales(GeneratorConfig(sales=200_000, dirty_rate=0.0), block)
    data = block.read_bytes()
    header, _, rows = data.partition(b"\n")
    with path.open("wb") as out:
        out.write(header + b"\n")
        while out.tell() < size:
            out.write(rows)
    block.unlink()


def timed_cp(source: Path, dest: Path) -> float:
    """``cp`` then ``sync`` of the copy: the same durability the store gives before it answers 202."""
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(dest)], check=True)
    subprocess.run(["sync", str(dest)], check=True)
    return time.perf_counter() - started


def unique_row(source: Path, tag: str) -> bytes:
    """A valid last row that makes each run's file new content (a repeat would be a 200 duplicate)."""
    with source.open("rb") as fh:
        header = fh.readline().decode().strip().split(",")
    values = {
        "transaction_id": f"bench-{tag}",
        "transaction_ts": "2024-01-01T00:00:00Z",
        "customer_id": "C1",
        "product_id": "P1",
        "quantity": "1",
        "unit_price": "1.00",
        "total_amount": "1.00",
        "payment_method": "pix",
        "status": "completed",
    }
    return (",".join(values.get(name, "") for name in header) + "\n").encode()


def post_curl(url: str, key: str, source: Path) -> bytes:
    """POST ``source`` with ``curl -T``: it reads and writes every byte, CPU the service on this machine loses."""
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--fail-with-body",
            "-X",
            "POST",
            "-T",
            str(source),
            "-H",
            f"Authorization: Bearer {key}",
            "-H",
            "Content-Type: text/csv",
            f"{url}/v1/datasets/sales/files",
        ],
        capture_output=True,
        check=True,
    )
    return result.stdout


def post_sendfile(url: str, key: str, source: Path) -> bytes:
    """POST ``source`` as a raw body sent with sendfile(2): the kernel moves the bytes and the client takes
    next to no CPU from the service, as a client on another machine would."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST /v1/datasets/sales/files HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: text/csv\r\nContent-Length: {source.stat().st_size}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, port)) as sock, source.open("rb") as body:
        sock.sendall(head.encode())
        sock.sendfile(body)
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    status, _, rest = answer.partition(b"\r\n")
    if int(status.split()[1]) >= 300:
        raise RuntimeError(f"upload answered {answer[:2000]!r}")
    return rest.partition(b"\r\n\r\n")[2]


CLIENTS: dict[str, Callable[[str, str, Path], bytes]] = {"sendfile": post_sendfile, "curl": post_curl}


def timed_upload(client: str, url: str, key: str, pid: int, source: Path, last_row: bytes) -> tuple[float, int, int]:
    """(seconds, the ingest process's peak RSS, stored size) for one upload of ``source`` + ``last_row``."""
    size = source.stat().st_size
    with source.open("ab") as fh:
        fh.write(last_row)
    try:
        with PeakRss(pid) as rss:
            started = time.perf_counter()
            answer = CLIENTS[client](url, key, source)
            seconds = time.perf_counter() - started
    finally:
        os.truncate(source, size)
    body = json.loads(answer)
    assert body["status"] == "received", body
    return seconds, rss.peak, int(body["size_bytes"])


def _fmt(runs: list[float]) -> str:
    return " ".join(f"{r:.2f}" for r in runs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3, help="runs of each side; medians are reported")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    args = parser.parse_args()
    base = PlatformSettings()
    scratch = Path(tempfile.mkdtemp(prefix="sdp-bench-", dir=args.dir))
    try:
        source = scratch / "sales.csv"
        print(f"generating a {args.size_mb} MiB sales CSV …", flush=True)
        make_file(source, args.size_mb * 1024 * 1024)
        size = source.stat().st_size
        store = scratch / "objects"
        store.mkdir()
        with throwaway_database(base) as database_url:
            settings = base.model_copy(update={"database_url": database_url})
            key = asyncio.run(create_key(settings, name="bench", scopes=["ingest:write"]))
            port = 18000 + os.getpid() % 1000
            env = {
                **os.environ,
                "SDP_DATABASE_URL": database_url,
                "SDP_OBJECT_STORE_URL": f"file://{store}",
                # No worker consumes these queues: the benchmark measures the upload alone.
                "SDP_QUEUE_PREFIX": f"bench-{os.getpid()}-",
                "SDP_LOG_LEVEL": "WARNING",
                "SDP_INGEST_MAX_UPLOAD_BYTES": str(size * 2),
            }
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "services.ingest.app:create_app",
                    "--factory",
                    "--port",
                    str(port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                env=env,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 30
                while True:
                    try:
                        httpx.get(f"{url}/healthz").raise_for_status()
                        break
                    except httpx.HTTPError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                cp_runs: list[float] = []
                upload_runs: dict[str, list[float]] = {client: [] for client in CLIENTS}
                baseline_rss = rss_bytes(proc.pid)
                peak_rss = baseline_rss
                for run in range(args.runs):
                    # Alternated, so a busy moment of the machine weighs on every side alike.
                    cp_runs.append(timed_cp(source, store / "cp-baseline.csv"))
                    (store / "cp-baseline.csv").unlink()
                    for client, runs in upload_runs.items():
                        last_row = unique_row(source, f"{client}-{run}")
                        seconds, peak, stored = timed_upload(client, url, key, proc.pid, source, last_row)
                        runs.append(seconds)
                        peak_rss = max(peak_rss, peak)
                        assert stored == size + len(last_row), stored
                        subprocess.run(["sync"], check=True)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
                broker = redis.Redis.from_url(base.redis_url)
                for key in broker.scan_iter(match=f"*{env['SDP_QUEUE_PREFIX']}*"):
                    broker.delete(key)
                broker.close()
        mib = size / 1024 / 1024
        growth = peak_rss - baseline_rss
        cp_seconds = statistics.median(cp_runs)
        cp_rate = mib / cp_seconds
        print(f"\nfile                     {mib:10.1f} MiB, {args.runs} runs of each, medians")
        print(f"cp+sync (baseline)       {cp_seconds:10.2f} s   {cp_rate:8.1f} MiB/s   runs: {_fmt(cp_runs)}")
        ratios = {}
        for client, runs in upload_runs.items():
            seconds = statistics.median(runs)
            ratios[client] = mib / seconds / cp_rate
            label = f"upload, {client} client"
            print(f"{label:24s} {seconds:10.2f} s   {mib / seconds:8.1f} MiB/s   runs: {_fmt(runs)}")
        for client, ratio in ratios.items():
            target = f"(target >= {THROUGHPUT_TARGET})" if client == TARGET_CLIENT else "(for reference)"
            print(f"ratio, {client} client{'':{11 - len(client)}} {ratio:10.2f}   {target}")
        print(f"ingest RSS growth        {growth / 1024 / 1024:10.1f} MiB (target <= {RSS_TARGET // 1024 // 1024} MiB)")
        ok = ratios[TARGET_CLIENT] >= THROUGHPUT_TARGET and growth <= RSS_TARGET
        print("targets met" if ok else "targets NOT met")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
