"""An example per operation of the ingest service's OpenAPI document (shared/openapi.py): what a success
answers and, for a JSON body, what it sends. tests/services/test_http_contracts.py checks each against its
schema."""

from __future__ import annotations

from typing import Any

BATCH_ID = "5b0c6c1e-8a4f-4d4e-9a51-0f3c2b7d9e10"
ACCEPTED = {
    "batch_id": BATCH_ID,
    "dataset": "sales",
    "status": "received",
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "size_bytes": 1234567,
    "status_url": f"http://127.0.0.1:8000/v1/batches/{BATCH_ID}",
}

EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/datasets/{dataset}/files"): {"response": ACCEPTED},
    ("GET", "/v1/datasets"): {
        "response": {
            "datasets": [
                {
                    "name": "products",
                    "key": "product_id",
                    "columns": [{"name": "product_id", "type": "text", "required": True}],
                    "formats": ["csv", "json", "ndjson", "parquet"],
                    "json_schema": {"type": "object", "required": ["product_id", "updated_at"]},
                }
            ]
        }
    },
    ("POST", "/v1/connectors/http"): {
        "request": {"dataset": "sales", "url": "https://files.example/sales/2025-01.csv"},
        "response": ACCEPTED,
    },
    ("POST", "/v1/connectors/sql/{source_name}"): {"response": {**ACCEPTED, "dataset": "customers"}},
    ("POST", "/v1/connectors/landing/sweep"): {
        "request": {"prefix": "landing/sales/"},
        "response": [
            {
                "key": "landing/sales/2025-01.csv",
                "dataset": "sales",
                "outcome": "ingested",
                "moved_to": "landing/_done/sales/2025-01.csv",
                "batch": ACCEPTED,
                "error": None,
            }
        ],
    },
}
