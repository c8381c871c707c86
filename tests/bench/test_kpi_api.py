"""The KPI API benchmark (bench/kpi_api.py) end to end on a tiny scale: it loads its warehouse, serves the API
in a process of its own, drives it from another, and prints every figure beside the asyncpg baseline."""

from __future__ import annotations

import os
import re
import subprocess
import sys

FIGURES = r"p50 +(\d+\.\d) ms +p99 +(\d+\.\d) ms +(\d+) req/s"


def test_the_benchmark_prints_p50_p99_and_requests_per_second_beside_its_baseline(test_env: dict[str, str]) -> None:
    env = {**os.environ, "SDP_DATABASE_URL": test_env["SDP_DATABASE_URL"], "SDP_REDIS_URL": test_env["SDP_REDIS_URL"]}
    command = [sys.executable, "-m", "bench.kpi_api", "--sales-per-day", "5", "--customers", "50", "--products", "10"]
    options = ["--duration", "1", "--warmup", "0.2", "--connections", "4"]
    out = subprocess.run([*command, *options], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "loaded 3,650 sales over 730 days" in text
    assert "ERRORS" not in text, text
    assert re.search(rf"GET /healthz .*{FIGURES}", text), text
    for endpoint in ("summary", "daily"):
        section = text.split(f"/v1/kpis/{endpoint} ")[1]
        for label, outcome in (
            ("sql, asyncpg direct \\(baseline\\)", ""),
            ("api, cache off", r".*x rps,.*x p99.*\(bypass \d+\)"),
            ("api, cache on, varying ranges", r".*\(hit \d+, miss \d+\)"),
            ("api, cache on, the two-year range", r".*\(hit \d+(, miss 1)?\)"),
        ):
            match = re.search(rf"{label} +{FIGURES}{outcome}", section)
            assert match, (label, section)
            p50, p99, rps = float(match[1]), float(match[2]), int(match[3])
            assert 0 < p50 <= p99 and rps > 0, match[0]
    assert re.search(r"target p99 ≤ 50 ms and ≥ 500 req/s, cache off: summary (NOT )?met; daily (NOT )?met", text)
