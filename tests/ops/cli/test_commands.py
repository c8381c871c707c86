"""Every command against the running platform, each run as its own process: ``ingest --wait`` follows a batch
over the live events to exit 0 (loaded) or 1 (quarantined, its failed check and rejected rows printed), the read
commands show what the API answers, ``release`` loads a quarantined batch, and API errors exit 2."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Platform
from tests.e2e.test_sales_pipeline import wait_terminal
from tests.ops.cli import salesdp

pytestmark = pytest.mark.e2e

HEADER = "transaction_id,transaction_ts,customer_id,product_id,quantity,unit_price,total_amount,payment_method,status\n"
# Ranges no other test loads, one per test: a released batch loads its days too.
CLEAN_DAYS = ("2019-03-01", "2019-03-03")
WAIT_TIMEOUT = "240"


def env_of(platform: Platform, *scopes: str) -> dict[str, str]:
    return {
        "SALESDP_URL": platform.api,
        "SALESDP_INGEST_URL": platform.ingest,
        "SALESDP_API_KEY": platform.key(*scopes),
    }


def clean_file(path: Path, prefix: str) -> Path:
    lines = [
        f"{prefix}-{i},2019-03-0{1 + i % 3}T10:00:00Z,C-{prefix}-{i % 2},P-{prefix},{1 + i},10.00,{10 * (1 + i)}.00,"
        "pix,completed\n"
        for i in range(6)
    ]
    path.write_text(HEADER + "".join(lines))
    return path


def bad_file(path: Path, prefix: str) -> Path:
    """Eight rows in twenty with an unreadable quantity: over the 10% reject rate, so the batch is quarantined."""
    lines = [
        f"{prefix}-{i},2019-04-0{1 + i % 5}T10:00:00Z,C{i},P1,{'x' if i % 5 < 2 else 2},10.00,20.00,pix,completed\n"
        for i in range(20)
    ]
    path.write_text(HEADER + "".join(lines))
    return path


def api_json(platform: Platform, key: str, path: str, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{platform.api}{path}", params=params, headers=headers, timeout=60).raise_for_status().json()


def statuses_reached(stderr: str) -> list[str]:
    return re.findall(r"^  [✓✗] (\w+)", stderr, flags=re.MULTILINE)


def test_ingest_wait_loads_a_clean_file_and_the_read_commands_show_it(platform: Platform, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    env = env_of(platform, "ingest:write", "batches:read", "kpis:read")
    key = env["SALESDP_API_KEY"]
    path = clean_file(tmp_path / f"sales_{run}.csv", f"CLI-{run}")

    result = salesdp("ingest", str(path), "--wait", "--timeout", WAIT_TIMEOUT, env=env)
    assert result.returncode == 0, result.stderr
    [batch_id] = re.findall(r"^batch (\S+) loaded$", result.stdout, flags=re.MULTILINE)
    assert f"accepted: batch {batch_id} (sales, {path.stat().st_size:,} bytes)" in result.stderr
    assert statuses_reached(result.stderr) == ["received", "staged", "validated", "loaded"]
    assert f"sales_{run}.csv → sales" in result.stderr  # the progress bar's line

    detail = salesdp("status", batch_id, "--json", env=env)
    assert detail.returncode == 0, detail.stderr
    assert json.loads(detail.stdout) == api_json(platform, key, f"/v1/batches/{batch_id}")
    table = salesdp("status", batch_id, env=env).stdout
    assert batch_id in table and "loaded" in table and "warehouse" in table and "rows.reject_rate" in table

    listed = salesdp("batches", "--dataset", "sales", "--status", "loaded", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert batch_id in {b["batch_id"] for b in json.loads(listed.stdout)["batches"]}
    assert batch_id in salesdp("batches", "--since", "1h", "--limit", "500", env=env).stdout
    future = json.loads(salesdp("batches", "--since", "2999-01-01", "--json", env=env).stdout)
    assert future == {"batches": [], "next_cursor": None}
    # --since is the API's filter: the answer is the API's for that bound, which includes its own moment.
    received = json.loads(detail.stdout)["received_at"]
    since = json.loads(salesdp("batches", "--since", received, "--json", env=env).stdout)
    assert since == api_json(platform, key, "/v1/batches", since=received)
    assert batch_id in {b["batch_id"] for b in since["batches"]}

    # The same file again: the same batch (the content is known), already loaded, so --wait returns at once
    # from the status read made once the stream is open, with no event left to come.
    started = time.monotonic()
    again = salesdp("ingest", str(path), "--wait", "--timeout", WAIT_TIMEOUT, env=env)
    assert again.returncode == 0, again.stderr
    assert f"already accepted as batch {batch_id}" in again.stderr
    assert time.monotonic() - started < 30

    start, end = CLEAN_DAYS
    summary = salesdp("kpis", "--from", start, "--to", end, "--json", env=env)
    assert summary.returncode == 0, summary.stderr
    expected = api_json(platform, key, "/v1/kpis/summary", **{"from": start, "to": end})
    assert json.loads(summary.stdout) == expected and expected["orders"] >= 6
    table = salesdp("kpis", "--from", start, "--to", end, env=env).stdout
    assert re.search(rf"orders\s+│?\s*{expected['orders']:,}\b", table), table
    for by, endpoint in (
        ("day", "daily"),
        ("category", "categories"),
        ("payment-method", "payment-methods"),
        ("state", "states"),
        ("top-products", "top-products"),
    ):
        shown = salesdp("kpis", "--from", start, "--to", end, "--by", by, "--json", env=env)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout) == api_json(platform, key, f"/v1/kpis/{endpoint}", **{"from": start, "to": end})
    weeks = salesdp("kpis", "--from", start, "--to", end, "--grain", "week", "--json", env=env)
    assert weeks.returncode == 0, weeks.stderr
    by_week = api_json(platform, key, "/v1/kpis/daily", **{"from": start, "to": end, "grain": "week"})
    assert json.loads(weeks.stdout) == by_week and by_week["grain"] == "week"
    assert "KPIs by week" in salesdp("kpis", "--from", start, "--to", end, "--grain", "week", env=env).stdout
    assert salesdp("kpis", "--grain", "week", "--by", "state", env=env).returncode == 2
    days = salesdp("kpis", "--from", start, "--to", end, "--by", "day", env=env).stdout
    assert all(day in days for day in ("2019-03-01", "2019-03-02", "2019-03-03"))
    assert f"P-CLI-{run}" in salesdp("kpis", "--from", start, "--to", end, "--by", "top-products", env=env).stdout


def test_ingest_wait_exits_1_on_a_quarantined_batch_which_release_loads(platform: Platform, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    env = env_of(platform, "ingest:write", "batches:read")
    path = bad_file(tmp_path / f"{run}-sales.csv", f"CLIQ-{run}")

    result = salesdp("ingest", str(path), "--wait", "--timeout", WAIT_TIMEOUT, env=env)
    assert result.returncode == 1, result.stderr
    [batch_id] = re.findall(r"^batch (\S+) quarantined: ", result.stdout, flags=re.MULTILINE)
    assert statuses_reached(result.stderr) == ["received", "staged", "quarantined"]
    assert "failed checks" in result.stdout and "rows.reject_rate" in result.stdout
    assert "first 8 of 8 rejected rows" in result.stdout
    assert result.stdout.count("invalid_quantity") == 8

    rejects = salesdp("rejects", batch_id, env=env)
    assert rejects.returncode == 0, rejects.stderr
    assert rejects.stdout.count("invalid_quantity") == 8 and f"CLIQ-{run}-0" in rejects.stdout
    page = salesdp("rejects", batch_id, "--limit", "3", "--json", env=env)
    body = json.loads(page.stdout)
    assert [r["source_line"] for r in body["rejects"]] == [2, 3, 7]
    assert body == api_json(platform, env["SALESDP_API_KEY"], f"/v1/batches/{batch_id}/rejects", limit=3)
    more = salesdp("rejects", batch_id, "--limit", "3", env=env)
    assert f"more: salesdp rejects {batch_id} --after-line 7" in more.stderr

    denied = salesdp("release", batch_id, "--reason", "cli test", env=env)
    assert denied.returncode == 2
    assert denied.stderr.strip() == "salesdp: error: 403 forbidden: the API key lacks the scope admin"

    admin = env_of(platform, "admin", "batches:read")
    released = salesdp("release", batch_id, "--reason", "cli test", env=admin)
    assert released.returncode == 0, released.stderr
    assert re.fullmatch(rf"released batch {batch_id}: now validated \(audit #\d+\)\n", released.stdout)
    with platform.client("batches:read") as client:
        assert wait_terminal(client, platform, batch_id)["status"] == "loaded"
    again = salesdp("release", batch_id, "--reason", "twice", env=admin)
    assert again.returncode == 2
    assert again.stderr.startswith(f"salesdp: error: 409 not_quarantined: batch {batch_id} is ")


def test_api_errors_exit_2_with_the_apis_error(platform: Platform, tmp_path: Path) -> None:
    env = env_of(platform, "ingest:write", "batches:read", "kpis:read")
    unknown = str(uuid.uuid4())
    result = salesdp("status", unknown, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == f"salesdp: error: 404 batch_not_found: no batch {unknown}"

    result = salesdp("batches", env={**env, "SALESDP_API_KEY": "sdp_not-a-key"})
    assert result.returncode == 2
    assert result.stderr.strip() == "salesdp: error: 401 unauthenticated: the API key is not valid"

    result = salesdp("kpis", "--from", "2019-03-05", "--to", "2019-03-01", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "salesdp: error: 400 invalid_range: 'to' is before 'from'"

    path = tmp_path / "sales.csv"
    path.write_text("not,the,contract\n1,2,3\n")
    result = salesdp("ingest", str(path), env=env)
    assert result.returncode == 2
    assert re.search(r"^salesdp: error: 4\d\d \w+: ", result.stderr, flags=re.MULTILINE), result.stderr
