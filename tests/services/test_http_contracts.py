"""Pin the OpenAPI documents of the HTTP services: a change to a public schema is a deliberate act.

Regenerate after an intended change with:
    .venv/bin/python -m tests.services.test_http_contracts
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from services.api.app import create_app as create_api
from services.ingest.app import create_app as create_ingest

CONTRACTS = Path(__file__).resolve().parent.parent / "contracts"
REGENERATE = ".venv/bin/python -m tests.services.test_http_contracts"
APPS = {"ingest": create_ingest, "api": create_api}


def openapi(service: str) -> dict[str, Any]:
    app: FastAPI = APPS[service]()
    return app.openapi()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("service", sorted(APPS))
def test_openapi_matches_the_pinned_contract(service: str) -> None:
    pinned = CONTRACTS / f"{service}.openapi.json"
    assert render(openapi(service)) == pinned.read_text(), (
        f"the {service} HTTP contract changed; if intended, regenerate it: {REGENERATE}"
    )


def test_pinned_contracts_carry_the_documented_shapes() -> None:
    ingest = json.loads((CONTRACTS / "ingest.openapi.json").read_text())
    accepted = ingest["components"]["schemas"]["BatchAccepted"]["properties"]
    assert set(accepted) == {"batch_id", "dataset", "status", "sha256", "size_bytes", "status_url"}
    api = json.loads((CONTRACTS / "api.openapi.json").read_text())
    batch = api["components"]["schemas"]["BatchOut"]["properties"]
    assert {
        "batch_id",
        "dataset",
        "status",
        "received_at",
        "finished_at",
        "counts",
        "stages",
        "quality",
        "error",
    } <= set(batch)
    daily = api["components"]["schemas"]["DailyKpisOut"]["properties"]
    assert set(daily) == {"from", "to", "days"}
    # DESIGN §7: the summary, the breakdowns and the live stream.
    assert {
        "/v1/kpis/summary",
        "/v1/kpis/categories",
        "/v1/kpis/payment-methods",
        "/v1/kpis/states",
        "/v1/kpis/top-products",
        "/v1/events",
    } <= set(api["paths"])
    assert "text/event-stream" in api["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]
    # Every KPI endpoint answers as CSV or Parquet too, chosen by ?format= or Accept (services/api/exports.py).
    for path in (p for p in api["paths"] if p.startswith("/v1/kpis/")):
        operation = api["paths"][path]["get"]
        formats = next(p for p in operation["parameters"] if p["name"] == "format")
        assert formats["in"] == "query" and formats["schema"]["enum"] == ["json", "csv", "parquet"], path
        assert {"application/json", "text/csv", "application/vnd.apache.parquet"} <= set(
            operation["responses"]["200"]["content"]
        ), path
        assert {"400", "406"} <= set(operation["responses"]), path


if __name__ == "__main__":
    CONTRACTS.mkdir(exist_ok=True)
    for name in APPS:
        (CONTRACTS / f"{name}.openapi.json").write_text(render(openapi(name)))
        print(f"wrote {CONTRACTS / f'{name}.openapi.json'}")
