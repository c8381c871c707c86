"""An example per operation of the API's OpenAPI document (shared/openapi.py): what a success answers and,
for a JSON body, what it sends. tests/services/test_http_contracts.py checks each against its schema."""

from __future__ import annotations

from typing import Any

BATCH_ID = "5b0c6c1e-8a4f-4d4e-9a51-0f3c2b7d9e10"
KEY_ID = "0d9f3a52-6f7e-4c1b-8f0a-2b4c6d8e0f12"
NEW_KEY_ID = "7e1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
EVENT_ID = "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f"
COUNTS = {"rows_in": 10000, "rows_valid": 9800, "rows_rejected": 200, "rows_duplicate": 0}
RANGE = {"from": "2025-01-01", "to": "2025-01-31"}
SUMMARY_ROW = {"orders": 1520, "revenue": 248310.55, "units": 3702, "transactions": 1604}

BATCH_SUMMARY = {
    "batch_id": BATCH_ID,
    "dataset": "sales",
    "status": "loaded",
    "file_name": "sales_2025-01.csv",
    "received_at": "2025-02-01T06:00:04.512Z",
    "finished_at": "2025-02-01T06:00:31.027Z",
    "counts": COUNTS,
    "error": None,
}
STAGE = {
    "stage": "warehouse",
    "status": "succeeded",
    "attempts": 1,
    "interruptions": 0,
    "started_at": "2025-02-01T06:00:22.100Z",
    "heartbeat_at": "2025-02-01T06:00:27.100Z",
    "worker": "host-1:4242",
    "finished_at": "2025-02-01T06:00:31.000Z",
    "duration_ms": 8900.0,
    "error": None,
}
QUALITY_RESULT = {
    "check_name": "rows.reject_rate",
    "check_type": "reject_rate",
    "severity": "error",
    "status": "pass",
    "observed": "0.02",
    "threshold": "0.05",
    "failing_sample": [],
    "duration_ms": 3.2,
    "config_version": "1+3f2a9c",
}
KEY = {
    "key_id": KEY_ID,
    "name": "dashboard",
    "prefix": "1a2b3c4d",
    "scopes": ["kpis:read", "batches:read"],
    "created_at": "2025-01-02T09:00:00Z",
    "last_used_at": "2025-02-01T08:12:00Z",
    "revoked_at": None,
    "expires_at": None,
    "replaced_by": None,
    "active": True,
}
NEW_KEY = {
    **KEY,
    "key_id": NEW_KEY_ID,
    "prefix": "9f8e7d6c",
    "created_at": "2025-02-01T09:00:00Z",
    "last_used_at": None,
}
ADMIN_ACTION = {"batch_id": BATCH_ID, "status": "validated", "event_id": EVENT_ID, "audit_id": 42}
REASON = {"reason": "supplier confirmed the rows"}

EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/v1/batches"): {"response": {"batches": [BATCH_SUMMARY], "next_cursor": None}},
    ("GET", "/v1/batches/{batch_id}"): {
        "response": {
            **BATCH_SUMMARY,
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "size_bytes": 1234567,
            "schema_drift": [],
            "stages": [STAGE],
            "quality": [QUALITY_RESULT],
            "quality_config": {"version": "1+3f2a9c", "declared_version": "1", "checks": [], "freshness": None},
            "attempt": 1,
        }
    },
    ("GET", "/v1/batches/{batch_id}/rejects"): {
        "response": {
            "batch_id": BATCH_ID,
            "dataset": "sales",
            "rows_rejected": 200,
            "rejects": [{"source_line": 17, "reasons": ["invalid_quantity"], "record": {"quantity": "-2"}}],
            "next_after_line": None,
        }
    },
    ("POST", "/v1/batches/{batch_id}/release"): {
        "request": REASON,
        "response": {**ADMIN_ACTION, "action": "release"},
    },
    ("POST", "/v1/batches/{batch_id}/rerun-quality"): {
        "request": REASON,
        "response": {**ADMIN_ACTION, "action": "rerun-quality", "status": "staged"},
    },
    ("POST", "/v1/batches/{batch_id}/replay"): {
        "request": {"reason": "the transform's fix for time zones is deployed"},
        "response": {
            "batch_id": BATCH_ID,
            "action": "replay",
            "attempt": 2,
            "status": "received",
            "event_id": EVENT_ID,
            "audit_id": 43,
            "replayed": True,
        },
    },
    ("POST", "/v1/backfill"): {
        "request": {**RANGE, "reason": "daily_sales edited by hand"},
        "response": {
            **RANGE,
            "facts": 1604,
            "tables": [{"table": "analytics.daily_sales", "changed": 1, "inserted": 0, "deleted": 0}],
            "changed": True,
            "audit_id": 44,
            "event_id": EVENT_ID,
        },
    },
    ("GET", "/v1/events"): {
        "media_type": "text/event-stream",
        "response": f"event: batch.loaded\nid: {EVENT_ID}\n"
        f'data: {{"type": "batch.loaded", "event_id": "{EVENT_ID}", "batch_id": "{BATCH_ID}", …}}\n\n',
    },
    ("GET", "/v1/keys"): {"response": {"keys": [KEY]}},
    ("POST", "/v1/keys"): {
        "request": {"name": "dashboard", "scopes": ["kpis:read", "batches:read"]},
        "response": {"key": KEY, "secret": "sdp_1a2b3c4d_…", "previous": None},
    },
    ("POST", "/v1/keys/{key_id}/revoke"): {
        "request": {"reason": "the laptop was lost"},
        "response": {**KEY, "revoked_at": "2025-02-01T10:00:00Z", "active": False},
    },
    ("POST", "/v1/keys/{key_id}/rotate"): {
        "response": {
            "key": NEW_KEY,
            "secret": "sdp_9f8e7d6c_…",
            "previous": {**KEY, "expires_at": "2025-02-02T09:00:00Z", "replaced_by": NEW_KEY_ID},
        }
    },
    ("GET", "/v1/quality/checks"): {
        "response": {
            "version": "1+3f2a9c",
            "declared_version": "1",
            "check_types": ["reject_rate", "row_count"],
            "datasets": {"sales": {"checks": [{"name": "rows.reject_rate", "type": "reject_rate"}], "freshness": None}},
        }
    },
    ("GET", "/v1/pipeline/status"): {
        "response": {
            "freshness": [],
            "queues": [{"service": "transform", "queue": "transform", "length": 0}],
            "workers": [{"name": "transform@host-1", "services": ["transform"]}],
            "batches_by_status": {"loaded": 120, "quarantined": 1},
            "quality_config_version": "1+3f2a9c",
        }
    },
    ("GET", "/v1/kpis/daily"): {
        "response": {
            **RANGE,
            "grain": "day",
            "days": [
                {
                    "date": "2025-01-01",
                    "orders": 48,
                    "revenue": 7710.4,
                    "units": 117,
                    "avg_order_value": 160.63,
                    "distinct_customers": 45,
                    "cancelled": 2,
                    "refunded": 1,
                }
            ],
        }
    },
    ("GET", "/v1/kpis/summary"): {
        "response": {
            **RANGE,
            **SUMMARY_ROW,
            "avg_order_value": 163.36,
            "distinct_customers": 801,
            "cancelled": 52,
            "refunded": 32,
            "cancellation_rate": 0.0324,
            "refund_rate": 0.02,
            "days_with_sales": 31,
        }
    },
    ("GET", "/v1/kpis/categories"): {"response": {**RANGE, "categories": [{**SUMMARY_ROW, "category": "books"}]}},
    ("GET", "/v1/kpis/payment-methods"): {
        "response": {
            **RANGE,
            "payment_methods": [{**SUMMARY_ROW, "payment_method": "pix", "cancelled": 52, "refunded": 32}],
        }
    },
    ("GET", "/v1/kpis/states"): {"response": {**RANGE, "states": [{**SUMMARY_ROW, "country": "BR", "state": "SP"}]}},
    ("GET", "/v1/kpis/top-products"): {
        "response": {
            **RANGE,
            "products": [
                {
                    "product_id": "P-0001",
                    "product_name": "Desk lamp",
                    "category": "home",
                    "orders": 88,
                    "revenue": 10472.0,
                    "units": 104,
                    "cancelled": 3,
                    "refunded": 1,
                }
            ],
        }
    },
}
