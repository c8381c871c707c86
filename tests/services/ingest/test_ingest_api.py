"""The ingest HTTP API over a socket: statuses, error envelope, dedupe, auth, no partial objects, a database
that is down or crashes mid-upload."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from ops.admin import create_key, migrate
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from shared.http import RETRY_AFTER_SECONDS
from shared.objectstore import create_object_store
from shared.settings import PlatformSettings
from tests.conftest import ensure_service_roles, free_port, settings_from
from tests.http_server import serve
from tests.postgres_cluster import OwnPostgres, own_postgres

HEADER = "transaction_id,transaction_ts,customer_id,product_id,quantity,unit_price,total_amount,payment_method,status\n"
ROW = "T-{n},2024-01-01T10:00:00Z,C1,P1,1,1.00,1.00,pix,completed\n"
MAX_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def ingest_url(test_env: dict[str, str]) -> Iterator[str]:
    settings = settings_from(test_env, IngestSettings, ingest_max_upload_bytes=MAX_BYTES)
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def writer_key(settings: PlatformSettings) -> str:
    return asyncio.run(create_key(settings, name="ingest-test", scopes=["ingest:write"]))


@pytest.fixture
def client(writer_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {writer_key}"}, timeout=30) as c:
        yield c


def unique_csv(tag: str, rows: int = 2) -> bytes:
    return (HEADER + "".join(ROW.format(n=f"{tag}-{i}") for i in range(rows))).encode()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert "details" in error
    return error


def raw_keys(settings: PlatformSettings) -> list[str]:
    return create_object_store(settings).list_keys(settings.bucket_raw)


def test_multipart_upload_is_accepted_with_the_contract_shape(ingest_url: str, client: httpx.Client) -> None:
    body = unique_csv("shape")
    response = client.post(f"{ingest_url}/v1/datasets/sales/files", files={"file": ("s.csv", body, "text/csv")})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert set(accepted) == {"batch_id", "dataset", "status", "sha256", "size_bytes", "status_url"}
    assert accepted["dataset"] == "sales" and accepted["status"] == "received"
    assert accepted["size_bytes"] == len(body)
    assert accepted["sha256"] == hashlib.sha256(body).hexdigest()
    assert accepted["status_url"].endswith(f"/v1/batches/{accepted['batch_id']}")


def test_raw_body_upload_and_the_same_bytes_again_give_the_same_batch(
    ingest_url: str, client: httpx.Client, settings: PlatformSettings
) -> None:
    body = unique_csv("raw")
    url = f"{ingest_url}/v1/datasets/sales/files"
    first = client.post(url, content=body, headers={"Content-Type": "text/csv", "X-File-Name": "../../etc/passwd"})
    assert first.status_code == 202, first.text
    second = client.post(url, files={"file": ("other-name.csv", body, "text/csv")})
    assert second.status_code == 200, second.text
    assert second.json()["batch_id"] == first.json()["batch_id"]
    keys = [k for k in raw_keys(settings) if first.json()["batch_id"] in k]
    assert keys == [k for k in keys if k.endswith("/passwd")] and len(keys) == 1
    assert ".." not in keys[0]


def test_idempotency_key_with_other_bytes_is_a_conflict(ingest_url: str, client: httpx.Client) -> None:
    url = f"{ingest_url}/v1/datasets/sales/files"
    headers = {"Idempotency-Key": "idem-test-1", "Content-Type": "text/csv"}
    first = client.post(url, content=unique_csv("idem-a"), headers=headers)
    assert first.status_code == 202, first.text
    again = client.post(url, content=unique_csv("idem-a"), headers=headers)
    assert again.status_code == 200 and again.json()["batch_id"] == first.json()["batch_id"]
    assert_error(client.post(url, content=unique_csv("idem-b"), headers=headers), 409, "idempotency_key_reused")


def test_missing_required_columns_are_named(ingest_url: str, client: httpx.Client) -> None:
    body = b"transaction_id,quantity\nT1,1\n"
    error = assert_error(
        client.post(f"{ingest_url}/v1/datasets/sales/files", content=body, headers={"Content-Type": "text/csv"}),
        422,
        "contract_mismatch",
    )
    assert error["details"]["missing_columns"] == ["transaction_ts"]


@pytest.mark.parametrize(
    ("dataset", "body", "content_type", "status", "code"),
    [
        ("nope", b"a\n", "text/csv", 404, "unknown_dataset"),
        ("sales", b"", "text/csv", 400, "unreadable_file"),
        ("sales", b"\xff\xfe\x00garbage\n", "text/csv", 400, "unreadable_file"),
        ("sales", b"%PDF-1.4", "application/pdf", 415, "unsupported_media_type"),
    ],
)
def test_bad_requests_get_the_error_envelope(
    ingest_url: str, client: httpx.Client, dataset: str, body: bytes, content_type: str, status: int, code: str
) -> None:
    response = client.post(
        f"{ingest_url}/v1/datasets/{dataset}/files", content=body, headers={"Content-Type": content_type}
    )
    assert_error(response, status, code)


def test_too_large_is_413_and_leaves_no_object(
    ingest_url: str, client: httpx.Client, settings: PlatformSettings
) -> None:
    before = raw_keys(settings)
    body = unique_csv("big", rows=MAX_BYTES // 40)
    assert len(body) > MAX_BYTES
    response = client.post(f"{ingest_url}/v1/datasets/sales/files", content=body, headers={"Content-Type": "text/csv"})
    error = assert_error(response, 413, "too_large")
    assert error["details"]["limit_bytes"] == MAX_BYTES
    assert raw_keys(settings) == before


def test_auth_is_required_and_scoped(ingest_url: str, settings: PlatformSettings) -> None:
    url = f"{ingest_url}/v1/datasets/sales/files"
    body = unique_csv("auth")
    assert_error(httpx.post(url, content=body, headers={"Content-Type": "text/csv"}), 401, "unauthenticated")
    bad = {"Authorization": "Bearer sdp_nope_nope", "Content-Type": "text/csv"}
    assert_error(httpx.post(url, content=body, headers=bad), 401, "unauthenticated")
    reader = asyncio.run(create_key(settings, name="reader", scopes=["kpis:read"]))
    forbidden = {"Authorization": f"Bearer {reader}", "Content-Type": "text/csv"}
    assert_error(httpx.post(url, content=body, headers=forbidden), 403, "forbidden")
    assert httpx.get(f"{ingest_url}/healthz").json() == {"status": "ok"}


def test_datasets_list_their_contracts_as_json_schema(ingest_url: str, client: httpx.Client) -> None:
    assert httpx.get(f"{ingest_url}/v1/datasets").status_code == 401
    body = client.get(f"{ingest_url}/v1/datasets").raise_for_status().json()
    by_name = {d["name"]: d for d in body["datasets"]}
    assert set(by_name) == {"customers", "products", "sales"}
    sales = by_name["sales"]
    assert sales["key"] == "transaction_id"
    assert [c["name"] for c in sales["columns"] if c["required"]] == ["transaction_id", "transaction_ts"]
    assert sales["formats"] == ["csv", "json", "ndjson", "parquet"]
    schema = sales["json_schema"]
    assert schema["required"] == ["transaction_id", "transaction_ts"]
    assert schema["properties"]["transaction_ts"] == {"type": "string", "format": "date-time"}
    assert schema["properties"]["status"]["anyOf"][0]["enum"] == ["completed", "pending", "cancelled", "refunded"]
    assert by_name["customers"]["json_schema"]["required"] == ["customer_id", "updated_at"]


def test_ten_concurrent_identical_uploads_make_one_batch(
    ingest_url: str, writer_key: str, settings: PlatformSettings
) -> None:
    body = unique_csv("concurrent", rows=50)
    # An ingest process another test killed mid-upload leaves its staging object behind; only these uploads count.
    incoming_before = {k for k in raw_keys(settings) if k.startswith("_incoming/")}

    async def upload_all() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {writer_key}", "Content-Type": "text/csv"}
        async with httpx.AsyncClient(headers=headers, timeout=60) as aclient:
            return await asyncio.gather(
                *(aclient.post(f"{ingest_url}/v1/datasets/sales/files", content=body) for _ in range(10))
            )

    responses = asyncio.run(upload_all())
    assert sorted(r.status_code for r in responses) == [200] * 9 + [202], [r.text for r in responses]
    batch_ids = {r.json()["batch_id"] for r in responses}
    assert len(batch_ids) == 1
    (batch_id,) = batch_ids
    assert len([k for k in raw_keys(settings) if batch_id in k]) == 1
    assert not [k for k in raw_keys(settings) if k.startswith("_incoming/") and k not in incoming_before]


def test_upload_metrics_count_outcomes_and_refusals(ingest_url: str, client: httpx.Client) -> None:
    url = f"{ingest_url}/v1/datasets/sales/files"
    body = unique_csv("metrics")
    client.post(url, content=body, headers={"Content-Type": "text/csv"}).raise_for_status()
    client.post(url, content=body, headers={"Content-Type": "text/csv"}).raise_for_status()
    client.post(url, content=b"", headers={"Content-Type": "text/csv"})
    text = httpx.get(f"{ingest_url}/metrics").text

    def value(prefix: str) -> float:
        line = next((ln for ln in text.splitlines() if ln.startswith(prefix)), None)
        assert line is not None, f"{prefix} missing from\n{text}"
        return float(line.rsplit(" ", 1)[1])

    assert value('sdp_ingest_uploads_total{dataset="sales",outcome="created"}') >= 1
    assert value('sdp_ingest_uploads_total{dataset="sales",outcome="duplicate"}') >= 1
    assert value('sdp_ingest_rejections_total{code="unreadable_file"}') >= 1
    assert value('sdp_ingest_bytes_total{dataset="sales"}') >= len(body)
    assert value('sdp_ingest_upload_seconds_count{dataset="sales"}') >= 2


def multipart_body(boundary: str, parts: list[tuple[str, str | None, str, bytes]], *, close: bool = True) -> bytes:
    """A multipart/form-data body of (field name, file name, content type, data) parts."""
    out = b""
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n".encode()
        out += data + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


def test_multipart_streams_past_other_fields_and_counts_only_the_file(
    ingest_url: str, client: httpx.Client, settings: PlatformSettings
) -> None:
    data = unique_csv("multipart-stream")
    body = multipart_body("XyZ", [("note", None, "text/plain", b"hello"), ("file", "s.csv", "text/csv", data)])
    response = client.post(
        f"{ingest_url}/v1/datasets/sales/files",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["size_bytes"] == len(data)
    assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
    keys = [k for k in raw_keys(settings) if response.json()["batch_id"] in k]
    assert len(keys) == 1 and keys[0].endswith("/s.csv")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (
            multipart_body(
                "b1", [("file", "a.csv", "text/csv", unique_csv("mp-two-a")), ("file", "b.csv", "text/csv", b"x")]
            ),
            "multipart/form-data; boundary=b1",
            400,
            "too_many_files",
        ),
        (
            multipart_body("b2", [("file", None, "text/plain", b"not a file")]),
            "multipart/form-data; boundary=b2",
            400,
            "missing_file",
        ),
        (
            multipart_body("b3", [("file", "a.csv", "text/csv", unique_csv("mp-nob"))]),
            "multipart/form-data",
            400,
            "invalid_multipart",
        ),
        (
            multipart_body("b4", [("file", "a.csv", "text/csv", unique_csv("mp-cut"))], close=False)[:-4],
            "multipart/form-data; boundary=b4",
            400,
            "invalid_multipart",
        ),
        (
            multipart_body("b5", [("file", "big.csv", "text/csv", unique_csv("mp-big", rows=MAX_BYTES // 40))]),
            "multipart/form-data; boundary=b5",
            413,
            "too_large",
        ),
    ],
    ids=["two-files", "field-not-file", "no-boundary", "truncated", "too-large"],
)
def test_bad_multipart_is_refused_and_stores_nothing(
    ingest_url: str,
    client: httpx.Client,
    settings: PlatformSettings,
    body: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    before = raw_keys(settings)
    response = client.post(
        f"{ingest_url}/v1/datasets/sales/files", content=body, headers={"Content-Type": content_type}
    )
    assert_error(response, status, code)
    assert raw_keys(settings) == before


def test_an_unreachable_broker_does_not_fail_an_upload(test_env: dict[str, str], writer_key: str) -> None:
    """The batch commits with its event in the outbox; the event waits there, unpublished, for the reconciler."""
    env = {**test_env, "SDP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    settings = settings_from(env, IngestSettings)
    body = unique_csv("no-broker")
    with serve(create_app(settings)) as url:
        response = httpx.post(
            f"{url}/v1/datasets/sales/files",
            content=body,
            headers={"Authorization": f"Bearer {writer_key}", "Content-Type": "text/csv"},
            timeout=60,
        )
    assert response.status_code == 202, response.text
    batch_id = response.json()["batch_id"]

    async def outbox() -> list[tuple[str, bool]]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            rows = await conn.fetch(
                "SELECT type, published_at IS NOT NULL AS published FROM ops.batch_events WHERE batch_id = $1",
                uuid.UUID(batch_id),
            )
        finally:
            await conn.close()
        return [(r["type"], r["published"]) for r in rows]

    assert asyncio.run(outbox()) == [("batch.received", False)]


def assert_unavailable(response: httpx.Response) -> None:
    assert_error(response, 503, "database_unavailable")
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)


def test_while_the_database_is_down_requests_are_503_and_store_nothing(
    test_env: dict[str, str], writer_key: str, tmp_path: Path
) -> None:
    env = {
        **test_env,
        "SDP_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/sdp",
        "SDP_OBJECT_STORE_URL": f"file://{tmp_path}",
    }
    settings = settings_from(env, IngestSettings)
    headers = {"Authorization": f"Bearer {writer_key}"}
    with serve(create_app(settings)) as url:
        assert_unavailable(httpx.get(f"{url}/v1/datasets", headers=headers))
        upload = httpx.post(
            f"{url}/v1/datasets/sales/files",
            content=unique_csv("db-down"),
            headers={**headers, "Content-Type": "text/csv"},
            timeout=60,
        )
    assert_unavailable(upload)
    assert raw_keys(settings) == []


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OwnPostgres, IngestSettings, str]]:
    """A migrated platform database on a PostgreSQL of the test's own (which it may crash), an object store
    of its own, and an ingest key."""
    with own_postgres() as server:
        env = {
            "SDP_DATABASE_URL": f"{server.url}/sdp",
            "SDP_OBJECT_STORE_URL": f"file://{tmp_path_factory.mktemp('objects')}",
            "SDP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        }
        asyncio.run(ensure_service_roles(env["SDP_DATABASE_URL"]))
        settings = settings_from(env, IngestSettings)
        migrate(settings)
        yield server, settings, asyncio.run(create_key(settings, name="restart-test", scopes=["ingest:write"]))


def test_an_upload_cut_off_by_a_postgresql_crash_is_503_and_the_same_bytes_are_accepted_after(
    restartable: tuple[OwnPostgres, IngestSettings, str],
) -> None:
    server, settings, key = restartable
    body = unique_csv("crash", rows=50)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}

    def crash_mid_body() -> Iterator[bytes]:
        yield body[:100]
        time.sleep(1)  # the key check, the request's only database read before the body, has answered
        server.crash()
        yield body[100:]

    with serve(create_app(settings)) as url:
        assert_unavailable(httpx.post(f"{url}/v1/datasets/sales/files", content=crash_mid_body(), headers=headers))
        assert raw_keys(settings) == [], "the stored object was left behind"
        server.start()
        again = httpx.post(f"{url}/v1/datasets/sales/files", content=body, headers=headers, timeout=60)
    assert again.status_code == 202, again.text
    assert [k for k in raw_keys(settings) if again.json()["batch_id"] not in k] == []


def nested_customer(tag: str, depth: int) -> dict[str, Any]:
    """A customers record nested ``depth`` levels deep, the record itself being the first."""
    value: Any = []
    for _ in range(depth - 2):
        value = [value]
    return {"customer_id": f"C-{tag}", "updated_at": "2025-01-01T00:00:00Z", "x": value}


def deep_json(tag: str, depth: int) -> bytes:
    """A JSON array of one customers record nested ``depth`` levels deep, written without recursion."""
    head = json.dumps({"customer_id": f"C-{tag}", "updated_at": "2025-01-01T00:00:00Z"})[:-1]
    return f'[{head}, "x": {"[" * (depth - 1)}{"]" * (depth - 1)}}}]'.encode()


@pytest.mark.parametrize(
    ("form", "depth"),
    [("json", 100_000), ("ndjson", 100_000), ("multipart-json", 100_000), ("gzip-ndjson", 100_000), ("json", 65)],
)
def test_a_first_record_nested_past_the_limit_is_refused(
    ingest_url: str, client: httpx.Client, settings: PlatformSettings, form: str, depth: int
) -> None:
    data = deep_json(f"deep-{form}-{depth}", depth)
    url = f"{ingest_url}/v1/datasets/customers/files"
    before = raw_keys(settings)
    if form == "multipart-json":
        body = multipart_body("deep", [("file", "c.json", "application/json", data)])
        response = client.post(url, content=body, headers={"Content-Type": "multipart/form-data; boundary=deep"})
    elif form == "json":
        response = client.post(url, content=data, headers={"Content-Type": "application/json"})
    else:
        ndjson = data[1:-1] + b"\n"
        headers = {"Content-Type": "application/x-ndjson"}
        if form == "gzip-ndjson":
            ndjson, headers = gzip.compress(ndjson), {**headers, "Content-Encoding": "gzip"}
        response = client.post(url, content=ndjson, headers=headers)
    error = assert_error(response, 422, "too_deeply_nested")
    assert error["details"] == {"max_depth": 64}
    assert raw_keys(settings) == before


def test_a_record_nested_to_the_limit_is_accepted(ingest_url: str, client: httpx.Client) -> None:
    record = nested_customer(f"limit-{uuid.uuid4().hex[:8]}", 64)
    response = client.post(
        f"{ingest_url}/v1/datasets/customers/files",
        content=json.dumps([record]).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("multipart", [False, True])
def test_csv_lines_ending_with_a_bare_cr_are_refused_with_the_reason(
    ingest_url: str, client: httpx.Client, settings: PlatformSettings, multipart: bool
) -> None:
    data = unique_csv(f"bare-cr-{multipart}").replace(b"\n", b"\r")
    url = f"{ingest_url}/v1/datasets/sales/files"
    before = raw_keys(settings)
    if multipart:
        body = multipart_body("cr", [("file", "mac.csv", "text/csv", data)])
        response = client.post(url, content=body, headers={"Content-Type": "multipart/form-data; boundary=cr"})
    else:
        response = client.post(url, content=data, headers={"Content-Type": "text/csv"})
    error = assert_error(response, 400, "unreadable_file")
    assert "bare CR" in error["message"]
    assert raw_keys(settings) == before


def test_an_idempotency_key_first_sent_with_known_bytes_is_bound_to_their_batch(
    ingest_url: str, client: httpx.Client
) -> None:
    url = f"{ingest_url}/v1/datasets/sales/files"
    key = f"idem-known-{uuid.uuid4().hex}"
    body_a = unique_csv(f"idem-known-a-{key}")
    first = client.post(url, content=body_a, headers={"Content-Type": "text/csv"})
    assert first.status_code == 202, first.text
    keyed = client.post(url, content=body_a, headers={"Content-Type": "text/csv", "Idempotency-Key": key})
    assert keyed.status_code == 200 and keyed.json()["batch_id"] == first.json()["batch_id"]
    other = client.post(
        url, content=unique_csv(f"idem-known-b-{key}"), headers={"Content-Type": "text/csv", "Idempotency-Key": key}
    )
    error = assert_error(other, 409, "idempotency_key_reused")
    assert error["details"] == {"batch_id": first.json()["batch_id"]}


def test_a_second_idempotency_key_of_one_batch_is_bound_too(ingest_url: str, client: httpx.Client) -> None:
    url = f"{ingest_url}/v1/datasets/sales/files"
    tag = uuid.uuid4().hex
    body_a = unique_csv(f"idem-two-a-{tag}")
    first = client.post(url, content=body_a, headers={"Content-Type": "text/csv", "Idempotency-Key": f"k1-{tag}"})
    assert first.status_code == 202, first.text
    second = client.post(url, content=body_a, headers={"Content-Type": "text/csv", "Idempotency-Key": f"k2-{tag}"})
    assert second.status_code == 200 and second.json()["batch_id"] == first.json()["batch_id"]
    for key in (f"k1-{tag}", f"k2-{tag}"):
        other = client.post(
            url, content=unique_csv(f"idem-two-b-{tag}"), headers={"Content-Type": "text/csv", "Idempotency-Key": key}
        )
        assert_error(other, 409, "idempotency_key_reused")
