"""The demo that `make run` plays: sample data through the ingest API, then a KPI summary."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from devtools.sampledata import GeneratorConfig, generate
from devtools.settings import DevstackSettings
from ops.admin import create_key
from shared.events import TERMINAL_STATUSES

# Dimensions first, so the sales bind to real customers and products rather than inferred ones.
DEMO_DATASETS = ("customers", "products", "sales")


def print_urls(settings: DevstackSettings) -> None:
    key_file = settings.run_dir / "api-key"
    if not key_file.exists():
        key = asyncio.run(create_key(settings, "demo", ["admin"]))
        key_file.write_text(key)
        key_file.chmod(0o600)
    auth = (settings.run_dir / "flower-auth").read_text()
    print(
        f"""
Sales data platform is up.
  ingest    http://127.0.0.1:{settings.ingest_port}/docs
  dashboard http://127.0.0.1:{settings.api_port}/  (sign in with the API key below)
  api       http://127.0.0.1:{settings.api_port}/docs
  flower    http://127.0.0.1:{settings.flower_port}  (basic auth {auth})
  metrics   http://127.0.0.1:{settings.api_port}/metrics, http://127.0.0.1:{settings.ingest_port}/metrics and the
            workers' {", ".join(f"{s}: {settings.metrics_port(s)}" for s in ("transform", "quality", "warehouse"))}
  API key   {key_file.read_text()}  (admin scope; also in {key_file})
  logs      {settings.run_dir / "logs"}
"""
    )


def wait_for_batch(client: httpx.Client, api: str, batch_id: str, timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch: dict[str, Any] = client.get(f"{api}/v1/batches/{batch_id}").raise_for_status().json()
        if batch["status"] in TERMINAL_STATUSES or time.monotonic() > deadline:
            return batch
        time.sleep(0.5)


def run_demo(settings: DevstackSettings, *, sales: int = 20_000) -> None:
    data_dir = settings.run_dir / "sample-data"
    files = generate(GeneratorConfig(sales=sales), data_dir)
    key = (settings.run_dir / "api-key").read_text().strip()
    ingest = f"http://127.0.0.1:{settings.ingest_port}"
    api = f"http://127.0.0.1:{settings.api_port}"
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60.0) as client:
        for dataset in DEMO_DATASETS:
            path: Path = getattr(files, dataset)
            with path.open("rb") as fh:
                accepted = (
                    client.post(f"{ingest}/v1/datasets/{dataset}/files", files={"file": (path.name, fh, "text/csv")})
                    .raise_for_status()
                    .json()
                )
            print(f"{dataset}: batch {accepted['batch_id']} {accepted['status']} ({accepted['size_bytes']} bytes)")
            batch = wait_for_batch(client, api, accepted["batch_id"])
            print(f"{dataset}: {batch['status']} counts={batch['counts']} error={batch['error']}")
        config = GeneratorConfig()
        start = config.start
        end = start.fromordinal(start.toordinal() + config.days - 1)
        period = {"from": str(start), "to": str(end)}
        days = client.get(f"{api}/v1/kpis/daily", params=period).raise_for_status().json()["days"]
        summary = client.get(f"{api}/v1/kpis/summary", params=period).raise_for_status().json()
        top = client.get(f"{api}/v1/kpis/top-products", params={**period, "limit": 3}).raise_for_status().json()
    print(
        f"\nKPIs {start} to {end}: {summary['orders']} orders, revenue {Decimal(str(summary['revenue'])):.2f}, "
        f"{summary['units']} units, {summary['distinct_customers']} customers, "
        f"cancellation rate {summary['cancellation_rate']:.2%}, refund rate {summary['refund_rate']:.2%}"
    )
    for product in top["products"]:
        print(f"  top product {product['product_id']} ({product['category']}): revenue {product['revenue']:.2f}")
    for day in days[:5]:
        print(
            f"  {day['date']}  orders {day['orders']:5}  revenue {Decimal(str(day['revenue'])):>12.2f}  "
            f"aov {Decimal(str(day['avg_order_value'])):>8.2f}  customers {day['distinct_customers']}"
        )
    if len(days) > 5:
        print(f"  … {len(days) - 5} more days: GET {api}/v1/kpis/daily?from={start}&to={end}")
