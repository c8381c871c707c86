"""Independent pure-Python reference of the sales contract, used by tests to check the platform's KPIs.

Deliberately imports nothing from ``shared`` or ``services``: a bug shared by the platform and its
reference would otherwise go unnoticed.

Rules: a row is rejected when transaction_id or transaction_ts is null, the timestamp is not ISO 8601, not
in years 1 to 9999 both as written and in UTC (Python's datetime) or more than 5 minutes in the future,
quantity is not a positive integer, unit_price is not a non-negative decimal, total_amount is not a decimal
or differs from quantity*unit_price by more than 0.01, or status / payment_method (lower-cased) are outside
their sets. Among valid rows the last occurrence of a transaction_id wins. KPIs are per UTC date of
transaction_ts.

Customers and products: the key and updated_at are required, timestamps as for sales (created_at
optional), a key over 256 characters or another field over 4,096 rejects the row; customers' email is
lower-cased and needs one @, a local part and a dot inside the domain, no whitespace; state and country
are upper-cased; is_active is true/t/yes/y/1 or false/f/no/n/0 in any case. Among valid rows the last
occurrence of a (key, updated_at instant) wins; other updated_at values of a key are versions, all kept.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

STATUSES = frozenset({"completed", "pending", "cancelled", "refunded"})
PAYMENT_METHODS = frozenset({"credit_card", "debit_card", "pix", "boleto", "cash", "paypal"})
FUTURE_TOLERANCE = timedelta(minutes=5)
TOTAL_TOLERANCE = Decimal("0.01")
CENT = Decimal("0.01")

# An ISO 8601 date-time; the offset is Z, ±HH:MM, ±HHMM or ±HH.
_TS = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"  # date and time
    r"(?:(Z)|([+-])(\d{2})(?::?(\d{2}))?)?"  # offset
)
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
BOOLEANS = {"true": True, "t": True, "yes": True, "y": True, "1": True}
BOOLEANS |= {"false": False, "f": False, "no": False, "n": False, "0": False}
MAX_KEY_CHARS = 256
MAX_TEXT_CHARS = 4096
CUSTOMER_FIELDS = ("customer_id", "customer_name", "email", "city", "state", "country", "is_active", "updated_at")
PRODUCT_FIELDS = ("product_id", "product_name", "category", "created_at", "updated_at")


@dataclass
class SaleRecord:
    """One valid sales row after normalisation; line is the file line the row ends on (header is 1)."""

    transaction_id: str
    transaction_ts: datetime
    customer_id: str | None
    product_id: str | None
    quantity: int | None
    unit_price: Decimal | None
    total_amount: Decimal | None
    payment_method: str | None
    status: str | None
    line: int


@dataclass
class DayKpis:
    """KPIs of one UTC date."""

    orders: int
    revenue: Decimal
    units: int
    avg_order_value: Decimal
    distinct_customers: int
    cancelled: int
    refunded: int


def parse_timestamp(text: str) -> datetime | None:
    """ISO 8601 date-time to an aware UTC datetime; no offset means UTC; None when unparseable or outside
    years 1 to 9999, as written (ValueError) or in UTC (OverflowError)."""
    match = _TS.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = UTC
    if sign is not None:
        if int(off_h) > 23 or int(off_m or 0) > 59:
            return None
        offset = timedelta(hours=int(off_h), minutes=int(off_m or 0))
        tz = timezone(-offset if sign == "-" else offset)
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, tzinfo=tz)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _money(text: str) -> Decimal | None:
    if _DECIMAL.fullmatch(text) is None:
        return None
    try:
        return Decimal(text).quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return None


def _null(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def parse_row(fields: dict[str, str | None], line: int, now: datetime) -> SaleRecord | None:
    """The normalised record, or None when the row breaks a rule."""
    transaction_id = _null(fields.get("transaction_id"))
    ts_text = _null(fields.get("transaction_ts"))
    if transaction_id is None or ts_text is None:
        return None
    ts = parse_timestamp(ts_text)
    if ts is None or ts > now + FUTURE_TOLERANCE:
        return None

    quantity: int | None = None
    quantity_text = _null(fields.get("quantity"))
    if quantity_text is not None:
        if _INTEGER.fullmatch(quantity_text) is None:
            return None
        quantity = int(quantity_text)
        if quantity <= 0:
            return None

    unit_price: Decimal | None = None
    price_text = _null(fields.get("unit_price"))
    if price_text is not None:
        unit_price = _money(price_text)
        if unit_price is None or unit_price < 0:
            return None

    total_amount: Decimal | None = None
    total_text = _null(fields.get("total_amount"))
    if total_text is not None:
        total_amount = _money(total_text)
        if total_amount is None:
            return None
        if (
            quantity is not None
            and unit_price is not None
            and abs(total_amount - quantity * unit_price) > TOTAL_TOLERANCE
        ):
            return None
    elif quantity is not None and unit_price is not None:
        total_amount = (quantity * unit_price).quantize(CENT, rounding=ROUND_HALF_UP)

    status = _null(fields.get("status"))
    if status is not None:
        status = status.lower()
        if status not in STATUSES:
            return None
    payment_method = _null(fields.get("payment_method"))
    if payment_method is not None:
        payment_method = payment_method.lower()
        if payment_method not in PAYMENT_METHODS:
            return None

    return SaleRecord(
        transaction_id=transaction_id,
        transaction_ts=ts,
        customer_id=_null(fields.get("customer_id")),
        product_id=_null(fields.get("product_id")),
        quantity=quantity,
        unit_price=unit_price,
        total_amount=total_amount,
        payment_method=payment_method,
        status=status,
        line=line,
    )


@dataclass
class DimensionRecord:
    """One valid customers or products row: its key, updated_at and every field typed, in contract order."""

    key: str
    updated_at: datetime
    values: tuple[Any, ...]
    line: int


def _too_long(fields: dict[str, str | None], key: str) -> bool:
    return any(
        value is not None and len(value) > (MAX_KEY_CHARS if name == key else MAX_TEXT_CHARS)
        for name, value in fields.items()
    )


def _plausible_email(text: str) -> bool:
    local, at, domain = text.partition("@")
    inner_dot = "." in domain[1:-1] and not domain.startswith(".") and not domain.endswith(".")
    return bool(at and local) and "@" not in domain and inner_dot and not any(ch.isspace() for ch in text)


def _optional_timestamp(text: str | None, now: datetime) -> tuple[bool, datetime | None]:
    """(acceptable, instant) of an optional timestamp field."""
    if text is None:
        return True, None
    moment = parse_timestamp(text)
    return moment is not None and moment <= now + FUTURE_TOLERANCE, moment


def parse_customer(fields: dict[str, str | None], line: int, now: datetime) -> DimensionRecord | None:
    """The normalised customers record, or None when the row breaks a rule."""
    if _too_long(fields, "customer_id"):
        return None
    customer_id = _null(fields.get("customer_id"))
    ok, updated_at = _optional_timestamp(_null(fields.get("updated_at")), now)
    if customer_id is None or updated_at is None or not ok:
        return None
    email = _null(fields.get("email"))
    if email is not None:
        email = email.lower()
        if not _plausible_email(email):
            return None
    active_text = _null(fields.get("is_active"))
    if active_text is not None and active_text.lower() not in BOOLEANS:
        return None
    state, country = _null(fields.get("state")), _null(fields.get("country"))
    values = (
        customer_id,
        _null(fields.get("customer_name")),
        email,
        _null(fields.get("city")),
        None if state is None else state.upper(),
        None if country is None else country.upper(),
        None if active_text is None else BOOLEANS[active_text.lower()],
        updated_at,
    )
    return DimensionRecord(customer_id, updated_at, values, line)


def parse_product(fields: dict[str, str | None], line: int, now: datetime) -> DimensionRecord | None:
    """The normalised products record, or None when the row breaks a rule."""
    if _too_long(fields, "product_id"):
        return None
    product_id = _null(fields.get("product_id"))
    updated_ok, updated_at = _optional_timestamp(_null(fields.get("updated_at")), now)
    created_ok, created_at = _optional_timestamp(_null(fields.get("created_at")), now)
    if product_id is None or updated_at is None or not (updated_ok and created_ok):
        return None
    values = (
        product_id,
        _null(fields.get("product_name")),
        _null(fields.get("category")),
        created_at,
        updated_at,
    )
    return DimensionRecord(product_id, updated_at, values, line)


DIMENSION_PARSERS: dict[str, Callable[[dict[str, str | None], int, datetime], DimensionRecord | None]] = {
    "customers": parse_customer,
    "products": parse_product,
}

_Record = TypeVar("_Record")


def _scan(
    path: Path,
    now: datetime | None,
    parse: Callable[[dict[str, str | None], int, datetime], _Record | None],
) -> Iterator[_Record | None]:
    """Every data row in file order: its record, or None when rejected. Blank lines are not rows."""
    moment = now if now is not None else datetime.now(UTC)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        for values in reader:
            if not values:
                continue
            fields: dict[str, str | None] = dict.fromkeys(header)
            fields.update(zip(header, values, strict=False))
            yield parse(fields, reader.line_num, moment)


def load_valid_sales(path: Path, now: datetime | None = None) -> dict[str, SaleRecord]:
    """transaction_id -> final record: the last valid occurrence in the file."""
    final: dict[str, SaleRecord] = {}
    for record in _scan(path, now, parse_row):
        if record is not None:
            final[record.transaction_id] = record
    return final


def load_valid_dimension(
    path: Path, dataset: str, now: datetime | None = None
) -> dict[tuple[str, datetime], DimensionRecord]:
    """(key, updated_at) -> final record of a customers or products file: the last valid occurrence."""
    final: dict[tuple[str, datetime], DimensionRecord] = {}
    for record in _scan(path, now, DIMENSION_PARSERS[dataset]):
        if record is not None:
            final[(record.key, record.updated_at)] = record
    return final


def count_dimension_rows(path: Path, dataset: str, now: datetime | None = None) -> tuple[int, int, int, int]:
    """(rows_in, rows_valid, rows_rejected, rows_duplicate) of a customers or products file."""
    records = list(_scan(path, now, DIMENSION_PARSERS[dataset]))
    rejected = sum(record is None for record in records)
    valid = len(load_valid_dimension(path, dataset, now))
    return len(records), valid, rejected, len(records) - rejected - valid


def count_rows(path: Path, now: datetime | None = None) -> tuple[int, int, int, int]:
    """(rows_in, rows_valid, rows_rejected, rows_duplicate); rows_in = valid + rejected + duplicate."""
    rows_in = rejected = valid_rows = 0
    ids: set[str] = set()
    for record in _scan(path, now, parse_row):
        rows_in += 1
        if record is None:
            rejected += 1
        else:
            valid_rows += 1
            ids.add(record.transaction_id)
    return rows_in, len(ids), rejected, valid_rows - len(ids)


def daily_kpis(path: Path, now: datetime | None = None) -> dict[date, DayKpis]:
    """KPIs per UTC date over the final records; dates without any final record are absent."""
    days: dict[date, DayKpis] = {}
    customers: dict[date, set[str]] = {}
    for record in load_valid_sales(path, now).values():
        day = record.transaction_ts.date()
        kpis = days.get(day)
        if kpis is None:
            kpis = days[day] = DayKpis(0, Decimal("0.00"), 0, Decimal("0.00"), 0, 0, 0)
            customers[day] = set()
        if record.status == "completed":
            kpis.orders += 1
            kpis.revenue += record.total_amount or Decimal("0")
            kpis.units += record.quantity or 0
            if record.customer_id is not None:
                customers[day].add(record.customer_id)
        elif record.status == "cancelled":
            kpis.cancelled += 1
        elif record.status == "refunded":
            kpis.refunded += 1
    for day, kpis in days.items():
        kpis.distinct_customers = len(customers[day])
        if kpis.orders:
            kpis.avg_order_value = (kpis.revenue / kpis.orders).quantize(CENT, rounding=ROUND_HALF_UP)
    return days
