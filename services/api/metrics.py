"""The pipeline's gauges on the API's ``/metrics``, read at scrape time.

Batches and rows by dataset and status, the oldest in-flight batch, freshness lags, stage durations (from
``ops.batch_stages``) and the services' queue depths (Redis list lengths). Each dependency is read on its
own with a time limit: one that is down or slow leaves its families out and sets its
``sdp_dependency_up`` to 0, and the scrape still answers with the rest.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import Request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from services.api import repository
from services.api.pipeline import queue_lengths
from services.api.settings import ApiSettings
from shared.bus import EventBus
from shared.datasets import Dataset
from shared.logs import get_logger

log = get_logger(__name__)

# A scrape gives each dependency this long (Prometheus's default scrape timeout is 10 s).
DEPENDENCY_TIMEOUT_SECONDS = 3.0
STATUSES = ("received", "staged", "validated", "quarantined", "loaded", "failed")
STAGES = ("ingest", "transform", "quality", "warehouse")
STAGE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
FRESHNESS_BREACHED = ("warn", "fail")


def _batch_families(totals: list[dict[str, Any]]) -> Iterator[Metric]:
    batches = GaugeMetricFamily("sdp_pipeline_batches", "Batches by dataset and status", labels=["dataset", "status"])
    counts = {(r["dataset"], r["status"]): int(r["batches"]) for r in totals}
    # Every pair, zeros included: an alert on a rise then has a series to compare with from the start.
    for dataset in Dataset:
        for status in STATUSES:
            batches.add_metric([dataset.value, status], counts.get((dataset.value, status), 0))
    yield batches
    for kind, help_text in (
        ("in", "Rows read from the batches' files"),
        ("valid", "Rows staged as valid"),
        ("rejected", "Rows rejected with reason codes"),
        ("duplicate", "Rows dropped as duplicates within their batch"),
    ):
        family = CounterMetricFamily(f"sdp_pipeline_rows_{kind}", help_text, labels=["dataset"])
        per_dataset: dict[str, int] = defaultdict(int)
        for row in totals:
            per_dataset[row["dataset"]] += int(row[f"rows_{kind}"])
        for dataset in Dataset:
            family.add_metric([dataset.value], per_dataset[dataset.value])
        yield family


def _in_flight_family(ages: list[dict[str, Any]]) -> Metric:
    family = GaugeMetricFamily(
        "sdp_pipeline_in_flight_oldest_seconds",
        "Seconds since the least recently moved non-terminal batch moved (0: none in flight)",
        labels=["dataset", "status"],
    )
    found = {(r["dataset"], r["status"]): float(r["age"]) for r in ages}
    for dataset in Dataset:
        for status in ("received", "staged", "validated"):
            family.add_metric([dataset.value, status], max(found.get((dataset.value, status), 0.0), 0.0))
    return family


def _freshness_families(lags: list[dict[str, Any]]) -> Iterator[Metric]:
    load = GaugeMetricFamily("sdp_freshness_load_lag_seconds", "Seconds since the last load", labels=["dataset"])
    event = GaugeMetricFamily(
        "sdp_freshness_event_lag_seconds", "Age of the newest loaded event time", labels=["dataset"]
    )
    max_load = GaugeMetricFamily("sdp_freshness_max_load_lag_seconds", "The load-lag SLA", labels=["dataset"])
    max_event = GaugeMetricFamily("sdp_freshness_max_event_lag_seconds", "The event-lag SLA", labels=["dataset"])
    breached = GaugeMetricFamily(
        "sdp_freshness_breached",
        "1 while the latest freshness evaluation breaches an SLA of the dataset",
        labels=["dataset", "severity"],
    )
    for row in lags:
        dataset = row["dataset"]
        for family, value in (
            (load, row["load_lag_seconds"]),
            (event, row["event_lag_seconds"]),
            (max_load, row["max_load_lag_seconds"]),
            (max_event, row["max_event_lag_seconds"]),
        ):
            if value is not None:
                family.add_metric([dataset], float(value))
        breached.add_metric([dataset, row["severity"]], 1.0 if row["status"] in FRESHNESS_BREACHED else 0.0)
    yield from (load, event, max_load, max_event, breached)


def _stage_family(rows: list[dict[str, Any]]) -> Metric:
    family = HistogramMetricFamily(
        "sdp_pipeline_stage_seconds", "Duration of finished stages", labels=["stage", "dataset"]
    )
    per_series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    for row in rows:
        counts, sums = per_series.setdefault((row["stage"], row["dataset"]), ([0] * (len(STAGE_BUCKETS) + 1), [0.0]))
        counts[int(row["bucket"])] += int(row["n"])
        sums[0] += float(row["seconds"] or 0.0)
    for (stage, dataset), (counts, sums) in sorted(per_series.items()):
        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, STAGE_BUCKETS), "+Inf"), counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        family.add_metric([stage, dataset], buckets, sums[0])
    return family


async def _database(request: Request) -> list[Metric]:
    async with request.app.state.engine.connect() as conn:
        totals = await repository.batch_totals(conn)
        ages = await repository.in_flight_ages(conn)
        lags = await repository.freshness_lags(conn)
        stages = await repository.stage_duration_buckets(conn, STAGE_BUCKETS)
    return [*_batch_families(totals), _in_flight_family(ages), *_freshness_families(lags), _stage_family(stages)]


async def _redis(request: Request) -> list[Metric]:
    bus: EventBus = request.app.state.bus
    settings: ApiSettings = request.app.state.settings
    queues = await asyncio.to_thread(queue_lengths, bus, settings)
    if any(queue["length"] is None for queue in queues):
        raise ConnectionError("the broker did not answer the queue lengths")
    family = GaugeMetricFamily(
        "sdp_queue_depth", "Tasks waiting in a service's Celery queue", labels=["service", "queue"]
    )
    for queue in queues:
        family.add_metric([queue["service"], queue["queue"]], queue["length"])
    return [family]


async def scrape(request: Request) -> Iterable[Metric]:
    """The pipeline's families for one scrape, each dependency read side by side, within its limit."""
    readers = {"postgres": _database(request), "redis": _redis(request)}
    results = await asyncio.gather(
        *(asyncio.wait_for(reader, DEPENDENCY_TIMEOUT_SECONDS) for reader in readers.values()),
        return_exceptions=True,
    )
    up = GaugeMetricFamily("sdp_dependency_up", "1 if the scrape could read the dependency", labels=["dependency"])
    families: list[Metric] = []
    for dependency, result in zip(readers, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("metrics.dependency_unreadable", dependency=dependency, error=f"{type(result).__name__}")
            up.add_metric([dependency], 0.0)
        else:
            up.add_metric([dependency], 1.0)
            families += result
    return [*families, up]
