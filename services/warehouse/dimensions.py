"""SCD Type 2 merge of one customers or products batch (DESIGN §5), set-based.

A dimension's history is a function of its source records (``processed.<x>_records``, one per key and
``updated_at``): ordered by ``updated_at``, a record whose tracked attributes differ from its predecessor's
starts a version, which lasts until the next version starts (half-open, the last one open to 9999-12-31).
A load adds the batch's records, rebuilds the history of the keys they touch and reconciles the stored
versions with it:

- a stored version whose (key, valid_from) is still wanted keeps its surrogate key and is updated in place
  when its end or attributes changed; an inferred member is completed in place by its key's first version;
- a stored version no longer wanted (merged into its predecessor) is removed; a wanted one not stored is
  inserted;
- facts under the touched keys are re-bound point in time (the version holding transaction_ts; before the
  first version, the first version), and the dates of facts whose version or its attributes changed are
  the dates whose analytics need a refresh.

Hence: an out-of-order record splits the version it falls into, a record equal to the version it falls
into changes nothing, a record equal to its predecessor after a split is merged, several records of a key
in one batch become versions in order, and replays change nothing.

The statements are sql/dimensions/, templates whose identifiers come from the constant :class:`Dimension`
specs below, never from input.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse.sql import source, statement

# sql/dimensions/ in run order: 01 to 21 are templates, 22 the dimension's own (Dimension.fact_delta).
TEMPLATES = (
    "01_add_records",
    "02_keys",
    "03_analyze_keys",
    "04_want",
    "05_have",
    "06_index_have",
    "07_analyze_have",
    "08_keep_keys",
    "09_complete_inferred",
    "10_index_want",
    "11_analyze_want",
    "12_facts",
    "13_gone",
    "14_unbind_gone",
    "15_delete_gone",
    "16_changed",
    "17_update_kept",
    "18_insert_new",
    "19_rebind",
    "20_rebind_facts",
    "21_affected_dates",
)


@dataclass(frozen=True)
class Dimension:
    dataset: str
    table: str
    records: str
    staging: str
    natural_key: str
    surrogate_key: str
    tracked: tuple[str, ...]
    # The statement that gives the analytics the facts a load moved, with what this dimension groups them by.
    fact_delta: str
    # Columns of the dimension that are not tracked but set from the version: column -> expression over it.
    derived: tuple[tuple[str, str], ...] = ()

    def cols(self, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(f"{prefix}{c}" for c in self.tracked)

    def placeholders(self) -> dict[str, str]:
        """What the templates' names in braces stand for."""
        return {
            "table": self.table,
            "records": self.records,
            "staging": self.staging,
            "key": self.natural_key,
            "sk": self.surrogate_key,
            "tracked": self.cols(),
            **{f"{alias.lower()}_tracked": self.cols(alias) for alias in ("r", "d", "h", "w", "EXCLUDED")},
            "lag_tracked": ", ".join(f"lag({c}) OVER w" for c in self.tracked),
            "set_excluded": ", ".join(f"{c} = EXCLUDED.{c}" for c in self.tracked),
            "set_w": ", ".join(f"{c} = w.{c}" for c in self.tracked),
            "derived_columns": "".join(f", {c}" for c, _ in self.derived),
            "derived_values": "".join(f", {e}" for _, e in self.derived),
            "derived_set": "".join(f", {c} = {e}" for c, e in self.derived),
        }

    def statements(self) -> list[TextClause]:
        placeholders = self.placeholders()
        merge = [text(source(f"dimensions/{name}").format(**placeholders)) for name in TEMPLATES]
        return [*merge, statement(self.fact_delta)]


CUSTOMERS = Dimension(
    dataset="customers",
    table="processed.dim_customers",
    records="processed.customer_records",
    staging="staging.customers",
    natural_key="customer_id",
    surrogate_key="customer_key",
    tracked=("customer_name", "email", "city", "state", "country", "is_active"),
    fact_delta="dimensions/22_fact_delta_customers",
)
PRODUCTS = Dimension(
    dataset="products",
    table="processed.dim_products",
    records="processed.product_records",
    staging="staging.products",
    natural_key="product_id",
    surrogate_key="product_key",
    tracked=("product_name", "category", "created_at"),
    fact_delta="dimensions/22_fact_delta_products",
    # The source updated_at that started the version.
    derived=(("updated_at", "w.valid_from"),),
)
DIMENSIONS = {d.dataset: d for d in (CUSTOMERS, PRODUCTS)}
STATEMENTS = {dataset: d.statements() for dataset, d in DIMENSIONS.items()}


@dataclass(frozen=True)
class MergeResult:
    versions_written: int
    versions_removed: int
    facts_rebound: int


async def merge(conn: AsyncConnection, dataset: str, batch_id: uuid.UUID) -> MergeResult:
    """Merge one staged customers/products batch into its dimension; adds to ``affected_dates`` and ``fact_delta``."""
    params = {"batch_id": batch_id}
    for merge_statement in STATEMENTS[dataset]:
        await conn.execute(merge_statement, params)
    row = (await conn.execute(statement("dimensions/23_counts"))).one()
    await conn.execute(statement("dimensions/24_drop"))
    return MergeResult(*(int(v) for v in row))
