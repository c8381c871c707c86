"""schemathesis against both services' OpenAPI documents, over a socket, with an admin key, on a database of
its own: no answer is a 5xx, none violates its schema, its status or its content type.

Deterministic (Hypothesis derandomized) and bounded (``SCHEMATHESIS_EXAMPLES`` per operation, 50 by default):
    .venv/bin/pytest tests/services/test_schemathesis.py
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ops.admin import create_key, migrate
from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from shared.settings import PlatformSettings
from tests.conftest import create_database, drop_database, settings_from
from tests.http_server import serve

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "50"))
# Path values that exist, mixed into the generated ones so that more than the 404s is reached.
BATCH_ID = uuid.uuid4()
CHECKS = [
    schemathesis.checks.not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
# The live stream never ends by itself; its contract is a content type (and its errors, tested in the API's tests).
ENDLESS = "/v1/events"


@pytest.fixture(scope="module")
def fuzz_env(
    test_env: dict[str, str], run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The session's platform settings with a database, queues and object store of their own: what the
    generated requests create (keys, batches, backfills) touches no other test's data."""
    database_url = f"{test_env['SDP_DATABASE_URL'].rsplit('/', 1)[0]}/sdp_fuzz_{run_id}"
    env = {
        **test_env,
        "SDP_DATABASE_URL": database_url,
        "SDP_QUEUE_PREFIX": f"test-{run_id}-fuzz-",
        "SDP_EVENTS_CHANNEL": f"sdp:test:{run_id}:fuzz:events",
        "SDP_OBJECT_STORE_URL": f"file://{tmp_path_factory.mktemp('fuzz-objects')}",
    }
    asyncio.run(create_database(database_url))
    try:
        migrate(settings_from(env), create_database=False)
        yield env
    finally:
        asyncio.run(drop_database(database_url))


async def _seed(database_url: str) -> None:
    """A loaded batch with a rejected row, and a day of analytics."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """INSERT INTO ops.batches (batch_id, dataset, status, file_name, file_format, object_bucket, object_key,
                   sha256, size_bytes, header, rows_in, rows_valid, rows_rejected, rows_duplicate, finished_at)
               VALUES ($1, 'sales', 'loaded', 'fuzz.csv', 'csv', 'raw-data', 'k', $2, 10, '{}', 2, 1, 1, 0, now())""",
            BATCH_ID,
            "b" * 64,
        )
        await conn.execute(
            """INSERT INTO staging.sales_rejects (batch_id, source_line, reasons, record)
               VALUES ($1, 3, ARRAY['invalid_quantity'], '{"quantity": "x"}'::jsonb)""",
            BATCH_ID,
        )
        await conn.execute(
            """INSERT INTO analytics.daily_sales (date, date_key, orders, revenue, units, avg_order_value,
                   distinct_customers, cancelled, refunded, transactions, batch_id)
               VALUES ('2000-01-01', 20000101, 1, 9.99, 1, 9.99, 1, 0, 0, 1, $1)""",
            BATCH_ID,
        )
    finally:
        await conn.close()


async def _a_key_to_revoke(settings: PlatformSettings) -> str:
    await create_key(settings, name="fuzz-victim", scopes=["kpis:read"])
    conn = await asyncpg.connect(settings.database_url)
    try:
        return str(await conn.fetchval("SELECT key_id FROM ops.api_keys WHERE name = 'fuzz-victim'"))
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def admin_key(fuzz_env: dict[str, str]) -> str:
    asyncio.run(_seed(fuzz_env["SDP_DATABASE_URL"]))
    return asyncio.run(create_key(settings_from(fuzz_env), name="schemathesis", scopes=["admin"]))


@pytest.fixture(scope="module")
def known(fuzz_env: dict[str, str]) -> dict[str, str]:
    """Path parameters that name something: the seeded batch, a key other than the admin's (so that revoking
    or rotating it leaves the fuzzer its own), a dataset."""
    key_id = asyncio.run(_a_key_to_revoke(settings_from(fuzz_env)))
    return {"batch_id": str(BATCH_ID), "key_id": key_id, "dataset": "products"}


def _schema(url: str, key: str) -> Any:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    schema.config.update(headers={"Authorization": f"Bearer {key}"})
    return schema.exclude(path=ENDLESS)


@pytest.fixture(scope="module")
def api_schema(fuzz_env: dict[str, str], admin_key: str) -> Iterator[Any]:
    with serve(create_api(settings_from(fuzz_env, ApiSettings))) as url:
        yield _schema(url, admin_key)


@pytest.fixture(scope="module")
def ingest_schema(fuzz_env: dict[str, str], admin_key: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # No host is an allowed source: an HTTP pull is refused before it connects, so no request leaves loopback.
    ingest = settings_from(fuzz_env, IngestSettings, ingest_max_upload_bytes=1 << 20, ingest_http_allowed_hosts=[])
    with serve(create_ingest(ingest)) as url:
        yield _schema(url, admin_key)


FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _run(operation: Any, key: str, known: dict[str, str]) -> tuple[list[int], str | None]:
    """The statuses ``operation`` answered the generated requests with, and its failure if one was found."""
    names = {p.name for p in operation.path_parameters}
    # Requests that fit the document and requests that do not (each must still be answered, not a 5xx);
    # where the path names something, also requests for what exists.
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        *(
            [operation.as_strategy(path_parameters={n: known[n] for n in names if n in known})]
            if names & set(known)
            else []
        ),
    )
    statuses: list[int] = []

    @given(case=cases)
    @FUZZ
    def call(case: Any) -> None:
        response = case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS, timeout=30)
        statuses.append(response.status_code)

    try:
        call()
    except Exception as exc:
        return statuses, f"{operation.label}: {type(exc).__name__}: {str(exc)[:2000]}"
    return statuses, None if statuses else f"{operation.label}: no request was made"


def fuzz(schema: Any, key: str, known: dict[str, str]) -> list[str]:
    """Every operation of ``schema`` called with generated requests; the failures, one line each.

    The operations are driven from their strategies rather than by schemathesis' pytest plugin, whose lazy
    loader reads a pytest attribute that pytest 9 no longer has."""
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        statuses, failure = _run(operation, key, known)
        # Shown with -s or -rP: what each operation was driven to answer.
        print(f"{operation.label}: {len(statuses)} requests, statuses {sorted(set(statuses))}")
        if failure is not None:
            failures.append(failure)
    return failures


def test_api_answers_as_its_openapi_document_says(api_schema: Any, admin_key: str, known: dict[str, str]) -> None:
    failures = fuzz(api_schema, admin_key, known)
    assert not failures, "\n\n".join(failures)


def test_ingest_answers_as_its_openapi_document_says(ingest_schema: Any, admin_key: str, known: dict[str, str]) -> None:
    failures = fuzz(ingest_schema, admin_key, known)
    assert not failures, "\n\n".join(failures)


def test_the_endless_stream_is_the_only_operation_left_out(api_schema: Any) -> None:
    documented = set(api_schema.raw_schema["paths"])
    fuzzed = {result.ok().path for result in api_schema.get_all_operations()}
    assert documented - fuzzed == {ENDLESS}
