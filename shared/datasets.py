"""The file contract (DESIGN §3): datasets, their columns and which are required."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Dataset(StrEnum):
    customers = "customers"
    products = "products"
    sales = "sales"


# One advisory lock per dataset (services/warehouse/load.py). A load takes the locks of every dataset whose
# tables it reads or writes, always in this order (no deadlock): a sales load binds to both dimensions; a
# dimension load re-binds facts. So two loads never interleave where they share data, and the api's
# backfill, which rewrites what every load refreshes, takes all three.
WAREHOUSE_LOCK_KEYS = {"customers": 0x5D_0011, "products": 0x5D_0012, "sales": 0x5D_0013}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False


@dataclass(frozen=True)
class Contract:
    dataset: Dataset
    key: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def missing_columns(self, header: list[str]) -> list[str]:
        present = set(header)
        return [c for c in self.column_names if c not in present]

    def extra_columns(self, header: list[str]) -> list[str]:
        known = set(self.column_names)
        return [c for c in header if c not in known]


PAYMENT_METHODS = ("credit_card", "debit_card", "pix", "boleto", "cash", "paypal")
SALE_STATUSES = ("completed", "pending", "cancelled", "refunded")

CONTRACTS: dict[Dataset, Contract] = {
    Dataset.customers: Contract(
        Dataset.customers,
        key="customer_id",
        columns=(
            Column("customer_id", "text", required=True),
            Column("customer_name", "text"),
            Column("email", "text"),
            Column("city", "text"),
            Column("state", "text"),
            Column("country", "text"),
            Column("is_active", "boolean"),
            Column("updated_at", "timestamptz", required=True),
        ),
    ),
    Dataset.products: Contract(
        Dataset.products,
        key="product_id",
        columns=(
            Column("product_id", "text", required=True),
            Column("product_name", "text"),
            Column("category", "text"),
            Column("created_at", "timestamptz"),
            Column("updated_at", "timestamptz", required=True),
        ),
    ),
    Dataset.sales: Contract(
        Dataset.sales,
        key="transaction_id",
        columns=(
            Column("transaction_id", "text", required=True),
            Column("transaction_ts", "timestamptz", required=True),
            Column("customer_id", "text"),
            Column("product_id", "text"),
            Column("quantity", "integer"),
            Column("unit_price", "numeric(12,2)"),
            Column("total_amount", "numeric(12,2)"),
            Column("payment_method", "text"),
            Column("status", "text"),
        ),
    ),
}


JSON_TYPES: dict[str, dict[str, str]] = {
    "text": {"type": "string"},
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer"},
    "numeric(12,2)": {"type": "number"},
    "timestamptz": {"type": "string", "format": "date-time"},
}
# What each column may hold beyond its type (DESIGN §3).
COLUMN_RULES: dict[str, dict[str, object]] = {
    "quantity": {"exclusiveMinimum": 0},
    "unit_price": {"minimum": 0, "multipleOf": 0.01},
    "total_amount": {"multipleOf": 0.01},
    "payment_method": {"enum": list(PAYMENT_METHODS)},
    "status": {"enum": list(SALE_STATUSES)},
    "email": {"format": "email"},
}


def json_schema(contract: Contract) -> dict[str, object]:
    """One record of the dataset as JSON Schema: what a row (a CSV line, a JSON object) must hold.

    Values arrive as text in CSV; the types say what the text must parse as. Columns other than the
    required ones may be absent or empty; columns outside the contract are kept raw and reported as drift.
    """
    properties: dict[str, object] = {}
    for column in contract.columns:
        spec: dict[str, object] = {**JSON_TYPES[column.type], **COLUMN_RULES.get(column.name, {})}
        properties[column.name] = spec if column.required else {"anyOf": [spec, {"type": "null"}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": contract.dataset.value,
        "type": "object",
        "properties": properties,
        "required": list(contract.required),
        "additionalProperties": True,
        "x-key": contract.key,
    }
