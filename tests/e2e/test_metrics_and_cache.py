"""Through the running platform: a load is visible on the next KPI request while a repeated one is served from
the cache, and the api and every worker report what they did on /metrics."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Platform
from tests.e2e.test_sales_pipeline import post_file, wait_terminal

pytestmark = pytest.mark.e2e

HEADER = "transaction_id,transaction_ts,customer_id,product_id,quantity,unit_price,total_amount,payment_method,status"
# A month no other test loads.
MONTH = {"from": "1996-05-01", "to": "1996-05-31"}


def write_sales(path: Path, rows: list[tuple[str, str, int, str]]) -> Path:
    """Completed sales: (transaction_id, day, quantity, unit_price)."""
    lines = [HEADER]
    for transaction_id, day, quantity, price in rows:
        total = f"{quantity * float(price):.2f}"
        lines.append(f"{transaction_id},{day}T10:00:00Z,mc-C1,mc-P1,{quantity},{price},{total},pix,completed")
    path.write_text("\n".join(lines) + "\n")
    return path


def load(client: httpx.Client, platform: Platform, path: Path) -> None:
    response = post_file(client, platform, path)
    assert response.status_code == 202, response.text
    batch = wait_terminal(client, platform, response.json()["batch_id"])
    assert batch["status"] == "loaded", batch


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(url, timeout=30).raise_for_status().text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_a_load_is_visible_on_the_next_request(platform: Platform, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    client = platform.client("ingest:write", "kpis:read", "batches:read")
    summary = f"{platform.api}/v1/kpis/summary"
    hits_before = value(
        samples(f"{platform.api}/metrics"), "sdp_api_kpi_cache_requests_total", endpoint="summary", result="hit"
    )

    load(
        client,
        platform,
        write_sales(
            tmp_path / "a.csv", [(f"mc-{run}-1", "1996-05-03", 2, "5.00"), (f"mc-{run}-2", "1996-05-03", 1, "5.50")]
        ),
    )
    first = client.get(summary, params=MONTH).raise_for_status()
    assert (first.json()["orders"], first.json()["revenue"]) == (2, 15.5)
    again = client.get(summary, params=MONTH).raise_for_status()
    assert again.headers["x-cache"] == "hit" and again.content == first.content
    after = value(
        samples(f"{platform.api}/metrics"), "sdp_api_kpi_cache_requests_total", endpoint="summary", result="hit"
    )
    assert after == hits_before + 1

    load(client, platform, write_sales(tmp_path / "b.csv", [(f"mc-{run}-3", "1996-05-04", 3, "1.50")]))
    fresh = client.get(summary, params=MONTH).raise_for_status()
    assert fresh.headers["x-cache"] == "miss"
    assert (fresh.json()["orders"], fresh.json()["revenue"], fresh.json()["units"]) == (3, 20.0, 6)
    daily = client.get(f"{platform.api}/v1/kpis/daily", params=MONTH).raise_for_status().json()["days"]
    assert [(d["date"], d["orders"]) for d in daily] == [("1996-05-03", 2), ("1996-05-04", 1)]


def test_the_api_and_every_worker_report_on_metrics(platform: Platform, tmp_path: Path) -> None:
    client = platform.client("ingest:write", "batches:read")
    load(client, platform, write_sales(tmp_path / "m.csv", [(f"mc-{uuid.uuid4().hex[:8]}", "1996-05-10", 1, "2.00")]))

    api = samples(f"{platform.api}/metrics")
    assert value(api, "sdp_dependency_up", dependency="postgres") == 1
    assert value(api, "sdp_dependency_up", dependency="redis") == 1
    assert value(api, "sdp_pipeline_batches", dataset="sales", status="loaded") >= 1
    assert value(api, "sdp_pipeline_rows_in_total", dataset="sales") >= 1
    for stage in ("transform", "quality", "warehouse"):
        assert value(api, "sdp_pipeline_stage_seconds_count", stage=stage, dataset="sales") >= 1, stage

    for service, task in (
        ("transform", "transform.stage_batch"),
        ("quality", "quality.check_batch"),
        ("warehouse", "warehouse.load_batch"),
    ):
        port = platform.env[f"SDP_{service.upper()}_METRICS_PORT"]
        found = samples(f"http://127.0.0.1:{port}/metrics")
        assert value(found, "sdp_worker_tasks_total", service=service, task=task, state="succeeded") >= 1, service
        assert value(found, "sdp_worker_task_seconds_count", service=service, task=task) >= 1, service
