"""Airflow: the platform's daily top-level batch (pull the configured sources, sweep the landing area, wait
for every batch, fail the run naming any that did not load). The work is in ``salesdp_client`` beside
this file; the settings are the ``SDP_*`` variables it documents.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException
from salesdp_client import DailyBatchFailed, Outcome, PipelineClient, report


def _as_outcomes(items: list[dict[str, Any]]) -> list[Outcome]:
    return [Outcome(**item) for item in items]


def _client() -> PipelineClient:
    try:
        return PipelineClient.from_env()
    except DailyBatchFailed as exc:
        # Settings do not fix themselves: fail now rather than after every retry.
        raise AirflowFailException(str(exc)) from exc


@dag(
    dag_id="sales_daily",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["salesdp"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
)
def sales_daily() -> None:
    # A connection error or an error status (5xx, but also 401/403 while a key is being rotated) is retried:
    # the platform's answers are idempotent, the same bytes are the same batch. A refusal of the file itself
    # (400, 409, 413, 415, 422) is part of the day's report.
    @task
    def pull_sources() -> list[dict[str, Any]]:
        return [vars(o) for o in _client().pull()]

    @task
    def sweep_landing() -> list[dict[str, Any]]:
        return [vars(o) for o in _client().sweep()]

    @task
    def wait_and_report(pulled: list[dict[str, Any]], swept: list[dict[str, Any]]) -> dict[str, int]:
        outcomes = _as_outcomes(pulled) + _as_outcomes(swept)
        batches = _client().wait([o.batch_id for o in outcomes if o.batch_id is not None])
        try:
            return report(outcomes, batches)
        except DailyBatchFailed as exc:
            # A quarantined or failed batch stays so on a retry: the run fails once, saying which.
            raise AirflowFailException(str(exc)) from exc

    wait_and_report(pull_sources(), sweep_landing())


sales_daily()
