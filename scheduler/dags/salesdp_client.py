"""The daily top-level batch as the scheduler runs it, through the platform's public HTTP interfaces only.

1. Pull every configured source (``SCHEDULER_HTTP_PULLS``: a JSON list of ``{"dataset", "url"}``;
   ``SCHEDULER_SQL_SOURCES``: a JSON list of the ingest service's SQL source names, which need a key
   with the ``admin`` scope) and sweep the landing area of the raw bucket.
2. Wait until every batch those started is terminal (``SCHEDULER_WAIT_SECONDS``, default 3,600).
3. Report: the run fails, naming them, when a batch was quarantined or failed, when a landed file was
   refused, or when a batch did not finish in time. A pull that found nothing new is not a failure.

Standard library and httpx only: the scheduler's own virtualenv (Airflow pins its own FastAPI) imports
this module from its DAGs folder without the platform's packages. Every call is idempotent on the
platform's side (the same bytes are the same batch), so a retried task repeats nothing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

TERMINAL = ("loaded", "quarantined", "failed")


class DailyBatchFailed(Exception):
    """The day's batch did not load cleanly; the message names every batch or file that did not."""


@dataclass(frozen=True)
class Outcome:
    """What one source gave: the batch it started (if any) or why it gave none."""

    source: str
    batch_id: str | None = None
    refused: str | None = None


@dataclass
class PipelineClient:
    ingest_url: str
    api_url: str
    api_key: str
    http_pulls: list[dict[str, str]] = field(default_factory=list)
    sql_sources: list[str] = field(default_factory=list)
    wait_seconds: float = 3600.0
    poll_seconds: float = 2.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> PipelineClient:
        env = dict(os.environ if env is None else env)
        key = env.get("SCHEDULER_API_KEY")
        if not key:
            raise DailyBatchFailed("SCHEDULER_API_KEY is not set: the scheduler needs an API key")
        return cls(
            ingest_url=env.get("SCHEDULER_INGEST_URL", "http://127.0.0.1:8001").rstrip("/"),
            api_url=env.get("SCHEDULER_API_URL", "http://127.0.0.1:8000").rstrip("/"),
            api_key=key,
            http_pulls=json.loads(env.get("SCHEDULER_HTTP_PULLS", "[]")),
            sql_sources=json.loads(env.get("SCHEDULER_SQL_SOURCES", "[]")),
            wait_seconds=float(env.get("SCHEDULER_WAIT_SECONDS", "3600")),
        )

    def _client(self) -> httpx.Client:
        return httpx.Client(headers={"Authorization": f"Bearer {self.api_key}"}, timeout=300.0)

    def pull(self) -> list[Outcome]:
        """Every configured HTTP and SQL source, once."""
        outcomes = []
        with self._client() as client:
            for pull in self.http_pulls:
                response = client.post(f"{self.ingest_url}/v1/connectors/http", json=pull)
                outcomes.append(_accepted(f"http {pull.get('dataset')} {pull.get('url')}", response))
            for source in self.sql_sources:
                response = client.post(f"{self.ingest_url}/v1/connectors/sql/{source}")
                outcomes.append(_accepted(f"sql {source}", response))
        return outcomes

    def sweep(self) -> list[Outcome]:
        """Every object under the raw bucket's landing area: ingested, or moved aside with its reason."""
        with self._client() as client:
            response = client.post(f"{self.ingest_url}/v1/connectors/landing/sweep")
        _raise_for(response, "landing sweep")
        outcomes = []
        for swept in response.json():
            source = f"landing {swept['key']}"
            if swept["batch"] is not None:
                outcomes.append(Outcome(source, batch_id=swept["batch"]["batch_id"]))
            elif swept["outcome"] == "rejected":
                outcomes.append(Outcome(source, refused=json.dumps(swept["error"])))
        return outcomes

    def wait(self, batch_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each batch as the API shows it once terminal, or as last seen when the wait ran out."""
        pending, seen = set(batch_ids), {}
        deadline = time.monotonic() + self.wait_seconds
        with self._client() as client:
            while pending:
                for batch_id in sorted(pending):
                    response = client.get(f"{self.api_url}/v1/batches/{batch_id}")
                    _raise_for(response, f"batch {batch_id}")
                    seen[batch_id] = response.json()
                    if seen[batch_id]["status"] in TERMINAL:
                        pending.discard(batch_id)
                if pending and time.monotonic() >= deadline:
                    break
                if pending:
                    time.sleep(self.poll_seconds)
        return seen


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.is_error:
        raise DailyBatchFailed(f"{what}: HTTP {response.status_code} {response.text[:500]}")


def _accepted(source: str, response: httpx.Response) -> Outcome:
    """A pull's answer: 202/200 with a batch, 200 with none (nothing new), or an error that refused it."""
    if response.status_code in (400, 409, 413, 415, 422):
        return Outcome(source, refused=response.text[:500])
    _raise_for(response, source)
    batch = response.json()
    batch_id = batch.get("batch_id") if isinstance(batch, dict) else None
    return Outcome(source, batch_id=batch_id)


def report(outcomes: list[Outcome], batches: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Counts of the day; raises :class:`DailyBatchFailed` naming whatever did not load."""
    problems = [f"{o.source}: refused: {o.refused}" for o in outcomes if o.refused is not None]
    for outcome in outcomes:
        if outcome.batch_id is None:
            continue
        batch = batches.get(outcome.batch_id, {})
        status = batch.get("status", "unknown")
        if status != "loaded":
            detail = batch.get("error") or ("did not finish in time" if status not in TERMINAL else "")
            problems.append(f"{outcome.source}: batch {outcome.batch_id} {status} {detail}".rstrip())
    if problems:
        raise DailyBatchFailed("the daily batch did not load cleanly:\n" + "\n".join(problems))
    loaded = [b for b in batches.values() if b.get("status") == "loaded"]
    return {"batches": len(loaded), "rows_valid": sum((b.get("counts") or {}).get("rows_valid") or 0 for b in loaded)}
