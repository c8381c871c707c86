"""The ``salesdp`` commands. Exit codes: 0 done; 1 the batch ``ingest --wait`` followed was quarantined or failed;
2 a usage, settings, transport or API error, printed as one line."""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ops.cli import render
from ops.cli.client import Client, CliError
from ops.cli.follow import follow
from ops.cli.settings import CliSettings, SettingsError, load_settings
from shared.datasets import Dataset

EXIT_BATCH_HALTED = 1
UPLOAD_CHUNK_BYTES = 1 << 20
# Rejected rows printed when ``ingest --wait`` ends on a quarantined or failed batch.
FIRST_REJECTS = 10

app = typer.Typer(
    name="salesdp",
    help="The sales data platform from the command line: upload files, follow batches, read rejects and KPIs, "
    "replay batches, backfill analytics, manage API keys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@dataclass
class State:
    flags: dict[str, Any]
    out: Console = field(default_factory=lambda: Console(highlight=False))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))

    def settings(self) -> CliSettings:
        return load_settings(**self.flags)

    def note(self, message: str) -> None:
        self.err.print(message, markup=False, soft_wrap=True)

    def client(self, *, ingest: bool = False) -> Client:
        return Client(self.settings(), ingest=ingest, notify=lambda m: self.note(f"salesdp: {m}"))

    def emit_json(self, body: Any) -> None:
        # print(), not rich: scripts get the API's JSON exactly, never wrapped or colored.
        print(json.dumps(body, indent=2, ensure_ascii=False))


def state(ctx: typer.Context) -> State:
    assert isinstance(ctx.obj, State)
    return ctx.obj


JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]


def batch_id_of(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a batch id (a UUID)") from None


BatchArg = Annotated[str, typer.Argument(help="The batch id.", callback=batch_id_of, metavar="BATCH")]


@app.callback()
def configure(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="The api service (env SALESDP_URL).", show_default=False)] = None,
    ingest_url: Annotated[
        str | None, typer.Option(help="The ingest service (env SALESDP_INGEST_URL).", show_default=False)
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="The API key (env SALESDP_API_KEY).", show_default=False)] = None,
) -> None:
    """Settings come from these options, else SALESDP_* variables, else ~/.config/salesdp/config.toml.

    SALESDP_CONFIG moves the file; its keys are url, ingest_url, api_key and retries."""
    ctx.obj = State(flags={"url": url, "ingest_url": ingest_url, "api_key": api_key})


def infer_dataset(file_name: str) -> str:
    """The one dataset named in the file's name (``sales_2025-01.csv``, ``products.json.gz``)."""
    words = set(re.split(r"[^a-z]+", file_name.lower()))
    found = [d.value for d in Dataset if d.value in words or d.value.removesuffix("s") in words]
    if len(found) != 1:
        names = ", ".join(d.value for d in Dataset)
        raise CliError(f"cannot tell the dataset from the file name {file_name!r}; pass --dataset ({names})")
    return found[0]


def upload_body(path: Path, progress: Progress, task: TaskID) -> Callable[[], Iterator[bytes]]:
    """A fresh stream of the file for each attempt, advancing the progress bar as bytes leave."""

    def body() -> Iterator[bytes]:
        progress.reset(task)
        with path.open("rb") as fh:
            while chunk := fh.read(UPLOAD_CHUNK_BYTES):
                yield chunk
                progress.advance(task, len(chunk))

    return body


@app.command()
def ingest(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The file to upload.")],
    dataset: Annotated[
        Dataset | None, typer.Option(help="By default the one the file's name says.", show_default=False)
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the batch until it is loaded, quarantined or failed.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 900.0,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Idempotency-Key of the upload; by default a fresh one, reused by this run's retries."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Upload FILE as a new batch, with a progress bar.

    With --wait, follow it over the live events: exit 0 once it is loaded, 1 if it is quarantined or failed
    (printing its failed checks and first rejected rows)."""
    st = state(ctx)
    name = dataset.value if dataset else infer_dataset(file.name)
    size = file.stat().st_size
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(size),
        "X-File-Name": file.name,
        # The same key on every attempt: a retry after a lost answer finds the batch the first one made.
        "Idempotency-Key": idempotency_key or f"salesdp-{uuid.uuid4()}",
    }
    with st.client(ingest=True) as client:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=st.err,
            transient=False,
        )
        with progress:
            task = progress.add_task(f"{file.name} → {name}", total=size)
            response = client.request(
                "POST", f"/v1/datasets/{name}/files", headers=headers, content_factory=upload_body(file, progress, task)
            )
    accepted = response.json()
    again = "already accepted as" if response.status_code == 200 else "accepted:"
    st.note(f"{again} batch {accepted['batch_id']} ({accepted['dataset']}, {accepted['size_bytes']:,} bytes)")
    if not wait:
        if as_json:
            st.emit_json(accepted)
        else:
            st.out.print(accepted["batch_id"], markup=False)
        return
    follow_to_the_end(st, accepted["batch_id"], timeout, as_json, {"accepted": accepted})


def follow_to_the_end(st: State, batch_id: str, timeout: float, as_json: bool, answer: dict[str, Any]) -> None:
    """Follow the batch over the live events to a terminal status and show it; exit 1 unless it loaded."""
    with st.client() as api:
        batch = follow(
            api,
            batch_id,
            timeout=timeout,
            on_status=StageReporter(st),
            notify=lambda m: st.note(f"salesdp: {m}"),
        )
        first_rejects = (
            api.get_json(f"/v1/batches/{batch['batch_id']}/rejects", limit=FIRST_REJECTS)
            if batch["status"] != "loaded" and batch["counts"]["rows_rejected"]
            else None
        )
    if as_json:
        st.emit_json({**answer, "batch": batch, "rejects": first_rejects})
    else:
        show_outcome(st, batch, first_rejects)
    if batch["status"] != "loaded":
        raise typer.Exit(EXIT_BATCH_HALTED)


class StageReporter:
    """Prints each status a followed batch reaches, once and in order, with what its event says."""

    # The statuses a batch in this one went through; a status read may jump ahead of the events seen. A failed
    # batch may have failed at any stage, so it implies none.
    PASSED: dict[str, tuple[str, ...]] = {
        "received": (),
        "staged": ("received",),
        "validated": ("received", "staged"),
        "loaded": ("received", "staged", "validated"),
        "quarantined": ("received", "staged"),
        "failed": (),
    }

    def __init__(self, st: State) -> None:
        self.st = st
        self.reached: list[str] = []

    def __call__(self, status: str, event: dict[str, Any] | None) -> None:
        if status in self.reached:
            return
        for earlier in self.PASSED.get(status, ()):
            if earlier not in self.reached:
                self.reached.append(earlier)
                self.st.note(f"  ✓ {earlier}")
        self.reached.append(status)
        mark = "✗" if status in ("quarantined", "failed") else "✓"
        self.st.note(f"  {mark} {status}{self.detail(event)}")

    @staticmethod
    def detail(event: dict[str, Any] | None) -> str:
        if event is None:
            return ""
        if "counts" in event:
            c = event["counts"]
            return (
                f": {c['rows_in']:,} rows in, {c['rows_valid']:,} valid, {c['rows_rejected']:,} rejected,"
                f" {c['rows_duplicate']:,} duplicate"
            )
        if "outcome" in event:
            warnings = event.get("warnings") or []
            return f": {event['outcome']}" + (f" ({', '.join(warnings)})" if warnings else "")
        if "facts_upserted" in event:
            return f": {event['facts_upserted']:,} facts, {event['dates_refreshed']:,} dates refreshed"
        if "failed_checks" in event:
            return f": failed {', '.join(event['failed_checks'])}"
        if "reason" in event:
            return f": {event['reason']}"
        return ""


def show_outcome(st: State, batch: dict[str, Any], first_rejects: dict[str, Any] | None) -> None:
    if batch["status"] == "loaded":
        st.out.print(f"batch {batch['batch_id']} loaded", markup=False)
        return
    st.out.print(f"batch {batch['batch_id']} {batch['status']}: {batch['error'] or ''}", markup=False)
    failed = render.failed_checks(batch)
    if failed:
        st.out.print(render.quality_table("failed checks", failed))
    if first_rejects and first_rejects["rejects"]:
        total = first_rejects["rows_rejected"] or 0
        title = f"first {len(first_rejects['rejects'])} of {total:,} rejected rows"
        st.out.print(render.rejects(first_rejects, title=title))


class Status(StrEnum):
    received = "received"
    staged = "staged"
    validated = "validated"
    quarantined = "quarantined"
    loaded = "loaded"
    failed = "failed"


def parse_since(value: str | None) -> datetime | None:
    """``30m``, ``2h``, ``7d`` ago, or an ISO date or time (UTC unless it says otherwise)."""
    if value is None:
        return None
    relative = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if relative:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[relative[2]]
        return datetime.now(UTC) - timedelta(**{unit: int(relative[1])})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither a duration (30m, 2h, 7d) nor an ISO date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def batches(
    ctx: typer.Context,
    status: Annotated[Status | None, typer.Option(help="Only batches in this status.", show_default=False)] = None,
    dataset: Annotated[Dataset | None, typer.Option(help="Only this dataset's batches.", show_default=False)] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only batches received since: 30m, 2h, 7d, or an ISO date or time.", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="The latest this many batches.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="The page after the one that printed this cursor.", show_default=False)
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The latest batches, newest first, a page (--limit) at a time."""
    st = state(ctx)
    start = parse_since(since)
    with st.client() as api:
        body = api.get_json(
            "/v1/batches",
            status=status and status.value,
            dataset=dataset and dataset.value,
            since=start and start.isoformat(),
            cursor=cursor,
            limit=limit,
        )
    if as_json:
        st.emit_json(body)
        return
    st.out.print(render.batch_list(body["batches"]))
    if body.get("next_cursor") is not None:
        st.note(f"more: the same command with --cursor {body['next_cursor']}")


@app.command("status")
def batch_status(ctx: typer.Context, batch: BatchArg, as_json: JsonFlag = False) -> None:
    """One batch: its status, row counts, stages and quality checks."""
    st = state(ctx)
    with st.client() as api:
        body = api.get_json(f"/v1/batches/{batch}")
    if as_json:
        st.emit_json(body)
    else:
        st.out.print(render.batch_detail(body))


@app.command()
def rejects(
    ctx: typer.Context,
    batch: BatchArg,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows per page.")] = 100,
    after_line: Annotated[int, typer.Option(min=0, help="Start after this file line (a page's next_after_line).")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """A batch's rejected rows in file order, each with its reason codes and original text."""
    st = state(ctx)
    with st.client() as api:
        body = api.get_json(f"/v1/batches/{batch}/rejects", limit=limit, after_line=after_line)
    if as_json:
        st.emit_json(body)
        return
    st.out.print(render.rejects(body))
    if body["next_after_line"] is not None:
        st.note(f"more: salesdp rejects {batch} --after-line {body['next_after_line']}")


class Grain(StrEnum):
    day = "day"
    week = "week"
    month = "month"


class By(StrEnum):
    day = "day"
    category = "category"
    payment_method = "payment-method"
    state = "state"
    top_products = "top-products"


# --by -> (endpoint, the answer's list, its columns)
BREAKDOWNS: dict[By, tuple[str, str, Sequence[str]]] = {
    By.day: (
        "daily",
        "days",
        ("date", "orders", "revenue", "units", "avg_order_value", "distinct_customers", "cancelled", "refunded"),
    ),
    By.category: ("categories", "categories", ("category", "orders", "revenue", "units", "transactions")),
    By.payment_method: (
        "payment-methods",
        "payment_methods",
        ("payment_method", "orders", "revenue", "units", "transactions", "cancelled", "refunded"),
    ),
    By.state: ("states", "states", ("country", "state", "orders", "revenue", "units", "transactions")),
    By.top_products: (
        "top-products",
        "products",
        ("product_id", "product_name", "category", "orders", "revenue", "units", "cancelled", "refunded"),
    ),
}


def iso_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@app.command()
def kpis(
    ctx: typer.Context,
    start: Annotated[
        str | None,
        typer.Option("--from", help="First day (YYYY-MM-DD); by default 29 days before --to.", show_default=False),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last day (YYYY-MM-DD); by default today (UTC).", show_default=False)
    ] = None,
    by: Annotated[By | None, typer.Option(help="A breakdown instead of the summary.", show_default=False)] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Products in --by top-products.")] = 10,
    grain: Annotated[
        Grain | None,
        typer.Option(help="The range's days summed into ISO weeks or months (implies --by day).", show_default=False),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The KPIs of a date range: the summary, or a breakdown (--by), or the days by --grain."""
    st = state(ctx)
    last = iso_date(end) or datetime.now(UTC).date()
    first = iso_date(start) or last - timedelta(days=29)
    params: dict[str, Any] = {"from": first.isoformat(), "to": last.isoformat()}
    columns: Sequence[str] = ()
    if grain is not None:
        if by not in (None, By.day):
            raise typer.BadParameter("--grain applies to the days (--by day), not to a breakdown")
        by = By.day
        params["grain"] = grain.value
    if by is None:
        path, key = "summary", ""
    else:
        path, key, columns = BREAKDOWNS[by]
        if by is By.top_products:
            params["limit"] = limit
    with st.client() as api:
        body = api.get_json(f"/v1/kpis/{path}", **params)
    if as_json:
        st.emit_json(body)
    elif by is None:
        st.out.print(render.summary(body))
    else:
        title = f"KPIs by {body.get('grain', by.value) if by is By.day else by.value} {body['from']} - {body['to']}"
        st.out.print(render.rows_table(title, body[key], columns))


@app.command()
def release(
    ctx: typer.Context,
    batch: BatchArg,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")],
    as_json: JsonFlag = False,
) -> None:
    """Load a quarantined batch anyway (admin, audited).

    It goes on as validated, its failed checks kept as warnings."""
    st = state(ctx)
    with st.client() as api:
        body = api.post_json(f"/v1/batches/{batch}/release", {"reason": reason})
    if as_json:
        st.emit_json(body)
    else:
        st.out.print(
            f"released batch {body['batch_id']}: now {body['status']} (audit #{body['audit_id']})", markup=False
        )


@app.command()
def replay(
    ctx: typer.Context,
    batch: BatchArg,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "",
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the new attempt until it is loaded, quarantined or failed.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 900.0,
    as_json: JsonFlag = False,
) -> None:
    """Run a loaded, quarantined or failed batch again from its raw object through every stage (admin,
    audited). A batch being replayed already answers with that attempt. With --wait, exit as ingest --wait."""
    st = state(ctx)
    with st.client() as api:
        # One key per run, reused by its retries: a retry after a lost answer finds the attempt it started.
        headers = {"Idempotency-Key": f"salesdp-{uuid.uuid4()}"}
        body = api.request("POST", f"/v1/batches/{batch}/replay", json={"reason": reason}, headers=headers).json()
    started = "replaying" if body["replayed"] else "already replaying"
    st.note(f"{started} batch {body['batch_id']} as attempt {body['attempt']} (audit #{body['audit_id']})")
    if wait:
        follow_to_the_end(st, body["batch_id"], timeout, as_json, {"replay": body})
    elif as_json:
        st.emit_json(body)
    else:
        st.out.print(body["batch_id"], markup=False)


@app.command()
def backfill(
    ctx: typer.Context,
    from_: Annotated[str, typer.Option("--from", help="First UTC date rebuilt (YYYY-MM-DD).")],
    to: Annotated[str, typer.Option(help="Last UTC date rebuilt, inclusive (YYYY-MM-DD).")],
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Rebuild the analytics of a date range from the facts (admin, audited); shows the rows each table had
    changed, inserted and deleted. Analytics that agree with the facts are left as they are."""
    st = state(ctx)
    start, end = iso_date(from_), iso_date(to)
    with st.client() as api:
        body = api.post_json("/v1/backfill", {"from": str(start), "to": str(end), "reason": reason})
    if as_json:
        st.emit_json(body)
        return
    title = f"backfill {body['from']} - {body['to']}: {body['facts']:,} facts, audit #{body['audit_id']}"
    st.out.print(render.rows_table(title, body["tables"], ["table", "changed", "inserted", "deleted"]))
    st.out.print("analytics rewritten" if body["changed"] else "nothing to change: the analytics agree with the facts")


class Scope(StrEnum):
    ingest_write = "ingest:write"
    kpis_read = "kpis:read"
    batches_read = "batches:read"
    admin = "admin"


keys_app = typer.Typer(help="API keys (admin): list, create, revoke, rotate.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
KeyArg = Annotated[str, typer.Argument(help="The key's id (a UUID, as `salesdp keys list` shows).")]
KEY_COLUMNS = ("key_id", "name", "prefix", "scopes", "created_at", "last_used_at", "expires_at", "active")


def key_rows(keys: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**k, "scopes": " ".join(k["scopes"]), "active": "yes" if k["active"] else "no"} for k in keys]


def show_secret(st: State, body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        st.emit_json(body)
        return
    st.out.print(render.rows_table("key", key_rows([body["key"]]), KEY_COLUMNS))
    if body.get("previous"):
        st.note(f"the key it replaces is accepted until {body['previous']['expires_at']}")
    st.note("the secret, shown this once:")
    st.out.print(body["secret"], markup=False)


@keys_app.command("list")
def keys_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every key: prefix, name, scopes, created, last used, expiry; never a secret."""
    st = state(ctx)
    with st.client() as api:
        body = api.get_json("/v1/keys")
    if as_json:
        st.emit_json(body)
    else:
        st.out.print(render.rows_table("API keys", key_rows(body["keys"]), KEY_COLUMNS))


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="What the key is for (shown in the audit log).")],
    scope: Annotated[list[Scope], typer.Option("--scope", help="A scope of the key; repeat for more.")],
    as_json: JsonFlag = False,
) -> None:
    """A new key with the given scopes; its secret is printed once."""
    st = state(ctx)
    with st.client() as api:
        body = api.post_json("/v1/keys", {"name": name, "scopes": [s.value for s in scope]})
    show_secret(st, body, as_json)


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key: KeyArg,
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Refuse the key from now on."""
    st = state(ctx)
    with st.client() as api:
        body = api.post_json(f"/v1/keys/{key}/revoke", {"reason": reason})
    if as_json:
        st.emit_json(body)
    else:
        st.out.print(f"revoked key {body['key_id']} ({body['name']})", markup=False)


@keys_app.command("rotate")
def keys_rotate(ctx: typer.Context, key: KeyArg, as_json: JsonFlag = False) -> None:
    """A new secret with the same name and scopes; the old one is accepted for the grace period, then refused."""
    st = state(ctx)
    with st.client() as api:
        body = api.request("POST", f"/v1/keys/{key}/rotate").json()
    show_secret(st, body, as_json)


def main(argv: Sequence[str] | None = None) -> None:
    command = typer.main.get_command(app)
    try:
        command.main(args=list(argv) if argv is not None else None, prog_name="salesdp")
    except (CliError, SettingsError) as exc:
        Console(stderr=True, highlight=False).print(f"salesdp: error: {exc}", markup=False, soft_wrap=True)
        sys.exit(exc.exit_code if isinstance(exc, CliError) else 2)
