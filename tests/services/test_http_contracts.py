"""Pin the OpenAPI documents of the HTTP services: a change to a public schema is a deliberate act.

Regenerate after an intended change with:
    .venv/bin/python -m tests.services.test_http_contracts
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
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
    assert set(daily) == {"from", "to", "grain", "days"}
    grain = next(p for p in api["paths"]["/v1/kpis/daily"]["get"]["parameters"] if p["name"] == "grain")
    assert grain["schema"]["enum"] == ["day", "week", "month"]
    listed = api["components"]["schemas"]["BatchListOut"]["properties"]
    assert set(listed) == {"batches", "next_cursor"}
    batch_filters = {p["name"] for p in api["paths"]["/v1/batches"]["get"]["parameters"]}
    assert batch_filters == {"dataset", "status", "since", "until", "cursor", "limit"}
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


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the document's components beside it, so that its $refs resolve on their own."""
    return {**schema, "components": document["components"]}


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_operation_declares_the_bearer_scheme_and_its_errors(service: str) -> None:
    document = json.loads((CONTRACTS / f"{service}.openapi.json").read_text())
    (scheme,) = document["components"]["securitySchemes"].values()
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error_ref = {"$ref": "#/components/schemas/ErrorOut"}
    for method, path, op in operations(document):
        where = f"{method.upper()} {path}"
        # Health and metrics are left out of the documents; everything in them takes a key.
        assert op.get("security") and set(op["security"][0]) == {"HTTPBearer"}, where
        scoped = bool(op["security"][0]["HTTPBearer"])
        expected = {"401", "503"} | ({"403"} if scoped else set())
        if op.get("parameters") or "requestBody" in op:
            expected.add("422")
        assert expected <= set(op["responses"]), where
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            content = response["content"]
            assert set(content) == {"application/json"}, (where, status)
            assert content["application/json"]["schema"] == error_ref, (where, status)
            jsonschema.validate(content["application/json"]["example"], resolved(document, error_ref))
            assert response["description"], (where, status)


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_operation_has_a_success_example_that_fits_its_schema(service: str) -> None:
    document = json.loads((CONTRACTS / f"{service}.openapi.json").read_text())
    for method, path, op in operations(document):
        where = f"{method.upper()} {path}"
        success = min(s for s in op["responses"] if int(s) < 400)
        content = op["responses"][success]["content"]
        examples = {media: body["example"] for media, body in content.items() if "example" in body}
        assert examples, where
        if "application/json" in examples:
            schema = content["application/json"]["schema"]
            jsonschema.validate(examples["application/json"], resolved(document, schema))
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None and "example" in body:
            jsonschema.validate(body["example"], resolved(document, body["schema"]))


if __name__ == "__main__":
    CONTRACTS.mkdir(exist_ok=True)
    for name in APPS:
        (CONTRACTS / f"{name}.openapi.json").write_text(render(openapi(name)))
        print(f"wrote {CONTRACTS / f'{name}.openapi.json'}")
