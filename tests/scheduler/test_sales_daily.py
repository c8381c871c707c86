"""The Airflow DAG ``sales_daily`` run by Airflow itself (``airflow dags test``, in the scheduler's own
virtualenv, on SQLite) against the running platform: files dropped in the landing area are swept, waited for
and reported; a day with a quarantined batch or a refused file fails the run and names them."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scheduler.dags.salesdp_client import PipelineClient
from shared.datasets import CONTRACTS, Dataset
from shared.objectstore import create_object_store
from tests.conftest import Platform

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = ROOT / ".venv-airflow" / "bin" / "airflow"  # make install builds it
HEADER = ",".join(CONTRACTS[Dataset.sales].column_names) + "\n"


def sales_csv(tag: str, quantity: str = "1") -> bytes:
    rows = "".join(
        f"{tag}-{i},2024-03-0{i + 1}T10:00:00Z,C-{tag},P-{tag},{quantity},2.50,2.50,pix,completed\n" for i in range(3)
    )
    return (HEADER + rows).encode()


@pytest.fixture(scope="module")
def airflow_env(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("airflow")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "scheduler" / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "SCHEDULER_INGEST_URL": platform.ingest,
        "SCHEDULER_API_URL": platform.api,
        "SCHEDULER_API_KEY": platform.key("ingest:write", "batches:read"),
        "SCHEDULER_WAIT_SECONDS": "180",
    }
    subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    yield env


def land(platform: Platform, name: str, content: bytes) -> str:
    store = create_object_store(platform.settings)
    key = f"landing/sales/{uuid.uuid4().hex[:8]}/{name}"
    store.put_stream(platform.settings.bucket_raw, key, [content], content_type="text/csv")
    return key


def run_dag(env: dict[str, str], day: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIRFLOW), "dags", "test", "sales_daily", day], env=env, capture_output=True, text=True, timeout=600
    )


def batch_of(platform: Platform, file_name: str) -> dict[str, object]:
    with platform.client("batches:read") as client:
        batches = client.get(f"{platform.api}/v1/batches", params={"limit": 200}).raise_for_status().json()
    matching = [b for b in batches["batches"] if b["file_name"] == file_name]
    assert len(matching) == 1, matching
    found: dict[str, object] = matching[0]
    return found


def test_a_clean_day_loads_what_landed(platform: Platform, airflow_env: dict[str, str]) -> None:
    tag = f"af-{uuid.uuid4().hex[:8]}"
    land(platform, f"{tag}.csv", sales_csv(tag))
    result = run_dag(airflow_env, "2026-11-01")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert batch_of(platform, f"{tag}.csv")["status"] == "loaded"
    assert "'batches': 1" in result.stdout + result.stderr or '"batches": 1' in result.stdout + result.stderr


def test_a_quarantined_batch_or_a_refused_file_fails_the_run_and_is_named(
    platform: Platform, airflow_env: dict[str, str]
) -> None:
    tag = f"af-{uuid.uuid4().hex[:8]}"
    land(platform, f"{tag}-bad.csv", sales_csv(f"{tag}-bad", quantity="many"))
    refused = land(platform, f"{tag}-refused.csv", b"transaction_id,status\nT1,completed\n")
    result = run_dag(airflow_env, "2026-11-02")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    bad = batch_of(platform, f"{tag}-bad.csv")
    assert bad["status"] == "quarantined", bad
    assert f"batch {bad['batch_id']} quarantined" in output, output[-4000:]
    assert f"landing {refused}: refused" in output, output[-4000:]


def test_the_dag_fails_at_once_without_an_api_key(airflow_env: dict[str, str]) -> None:
    env = {k: v for k, v in airflow_env.items() if k != "SCHEDULER_API_KEY"}
    result = run_dag(env, "2026-11-03")
    assert result.returncode != 0
    assert "SCHEDULER_API_KEY is not set" in result.stdout + result.stderr


def test_an_unreachable_platform_is_an_error_not_an_empty_day() -> None:
    client = PipelineClient(ingest_url="http://127.0.0.1:9", api_url="http://127.0.0.1:9", api_key="k")
    with pytest.raises(httpx.ConnectError):
        client.sweep()
