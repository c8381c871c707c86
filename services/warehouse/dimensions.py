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

Identifiers in the SQL come from the constant :class:`Dimension` specs below, never from input.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

OPEN_END = "'9999-12-31 00:00:00+00'::timestamptz"
# Where a version starts holding facts: its valid_from, or -infinity for a key's first version (a sale before
# the first version binds to it).
BIND_FROM = """CASE WHEN lag(valid_from) OVER (PARTITION BY {key} ORDER BY valid_from) IS NULL
                THEN '-infinity'::timestamptz ELSE valid_from END"""


@dataclass(frozen=True)
class Dimension:
    dataset: str
    table: str
    records: str
    staging: str
    natural_key: str
    surrogate_key: str
    tracked: tuple[str, ...]
    # Columns of the dimension that are not tracked but set from the version: column -> expression over it.
    derived: tuple[tuple[str, str], ...] = ()

    def cols(self, alias: str = "") -> str:
        prefix = f"{alias}." if alias else ""
        return ", ".join(f"{prefix}{c}" for c in self.tracked)


CUSTOMERS = Dimension(
    dataset="customers",
    table="processed.dim_customers",
    records="processed.customer_records",
    staging="staging.customers",
    natural_key="customer_id",
    surrogate_key="customer_key",
    tracked=("customer_name", "email", "city", "state", "country", "is_active"),
)
PRODUCTS = Dimension(
    dataset="products",
    table="processed.dim_products",
    records="processed.product_records",
    staging="staging.products",
    natural_key="product_id",
    surrogate_key="product_key",
    tracked=("product_name", "category", "created_at"),
    # The source updated_at that started the version.
    derived=(("updated_at", "w.valid_from"),),
)
DIMENSIONS = {d.dataset: d for d in (CUSTOMERS, PRODUCTS)}


def _statements(d: Dimension) -> list[str]:
    key, sk, cols = d.natural_key, d.surrogate_key, d.cols()
    received = "(SELECT b.received_at FROM ops.batches b WHERE b.batch_id = {})"
    lag_row = ", ".join(f"lag({c}) OVER w" for c in d.tracked)
    derived_cols = "".join(f", {c}" for c, _ in d.derived)
    derived_values = "".join(f", {e}" for _, e in d.derived)
    derived_set = "".join(f", {c} = {e}" for c, e in d.derived)
    return [
        # 1. The batch's records join the source records. The same (key, updated_at) from another batch with
        #    other attributes: the batch received later wins, whatever order the loads run in.
        f"""
        INSERT INTO {d.records} AS r ({key}, updated_at, {cols}, batch_id)
        SELECT {key}, updated_at, {cols}, batch_id FROM {d.staging} WHERE batch_id = :batch_id
        ON CONFLICT ({key}, updated_at) DO UPDATE
        SET {", ".join(f"{c} = EXCLUDED.{c}" for c in d.tracked)}, batch_id = EXCLUDED.batch_id
        WHERE ({d.cols("r")}) IS DISTINCT FROM ({d.cols("EXCLUDED")})
          AND coalesce({received.format("EXCLUDED.batch_id")} >= {received.format("r.batch_id")}, true)
        """,
        f"""CREATE TEMP TABLE scd_keys ON COMMIT DROP AS
            SELECT DISTINCT {key} AS id FROM {d.staging} WHERE batch_id = :batch_id""",
        "ANALYZE scd_keys",
        # 2. The wanted history of those keys: a record differing from its predecessor starts a version.
        f"""
        CREATE TEMP TABLE scd_want ON COMMIT DROP AS
        SELECT p.id, p.updated_at AS valid_from,
               coalesce(lead(p.updated_at) OVER (PARTITION BY p.id ORDER BY p.updated_at), {OPEN_END}) AS valid_to,
               row_number() OVER (PARTITION BY p.id ORDER BY p.updated_at) = 1 AS is_first,
               {cols}, NULL::bigint AS sk
        FROM (SELECT r.{key} AS id, r.updated_at, {d.cols("r")},
                     row_number() OVER w = 1 OR ({lag_row}) IS DISTINCT FROM ({d.cols("r")}) AS starts
              FROM {d.records} r JOIN scd_keys k ON k.id = r.{key}
              WINDOW w AS (PARTITION BY r.{key} ORDER BY r.updated_at)) p
        WHERE p.starts
        """,
        # 3. What is stored for them.
        f"""
        CREATE TEMP TABLE scd_have ON COMMIT DROP AS
        SELECT d.{sk} AS sk, d.{key} AS id, d.valid_from, d.valid_to, d.is_inferred, {d.cols("d")}
        FROM {d.table} d JOIN scd_keys k ON k.id = d.{key}
        """,
        "CREATE INDEX ON scd_have (sk)",
        "ANALYZE scd_have",
        # 4. A stored version still wanted keeps its surrogate key; an inferred member (the key's only row)
        #    becomes the key's first version.
        """UPDATE scd_want w SET sk = h.sk FROM scd_have h
           WHERE h.id = w.id AND h.valid_from = w.valid_from AND NOT h.is_inferred""",
        """UPDATE scd_want w SET sk = h.sk FROM scd_have h
           WHERE h.id = w.id AND h.is_inferred AND w.is_first""",
        "CREATE INDEX ON scd_want (sk)",
        "ANALYZE scd_want",
        # 5. The facts under those keys, to re-bind once the history is reconciled.
        f"""
        CREATE TEMP TABLE scd_facts ON COMMIT DROP AS
        SELECT f.sale_key, f.transaction_ts, f.date_key, h.id, f.{sk} AS old_sk, NULL::bigint AS new_sk
        FROM processed.fact_sales f JOIN scd_have h ON h.sk = f.{sk}
        """,
        """CREATE TEMP TABLE scd_gone ON COMMIT DROP AS
           SELECT h.sk FROM scd_have h WHERE NOT EXISTS (SELECT 1 FROM scd_want w WHERE w.sk = h.sk)""",
        # 6. Versions no longer wanted go; their facts are unbound until step 9 binds them again.
        f"UPDATE processed.fact_sales SET {sk} = NULL WHERE {sk} IN (SELECT sk FROM scd_gone)",
        f"DELETE FROM {d.table} WHERE {sk} IN (SELECT sk FROM scd_gone)",
        "CREATE TEMP TABLE scd_changed (sk bigint PRIMARY KEY) ON COMMIT DROP",
        # 7. Versions kept are updated where their period or attributes changed. With the unwanted ones gone,
        #    no intermediate state of this statement overlaps: every kept version starts where it did.
        f"""
        WITH updated AS (
            UPDATE {d.table} d
            SET valid_from = w.valid_from, valid_to = w.valid_to, is_current = w.valid_to = {OPEN_END},
                {", ".join(f"{c} = w.{c}" for c in d.tracked)}, is_inferred = false,
                batch_id = :batch_id{derived_set}
            FROM scd_want w JOIN scd_have h ON h.sk = w.sk
            WHERE d.{sk} = w.sk
              AND (h.valid_from, h.valid_to, h.is_inferred, {d.cols("h")})
                  IS DISTINCT FROM (w.valid_from, w.valid_to, false, {d.cols("w")})
            RETURNING d.{sk} AS sk, h.is_inferred OR ({d.cols("h")}) IS DISTINCT FROM ({d.cols("w")}) AS changed)
        INSERT INTO scd_changed SELECT sk FROM updated WHERE changed
        """,
        # 8. New versions.
        f"""
        WITH inserted AS (
            INSERT INTO {d.table} ({key}, {cols}, valid_from, valid_to, is_current, is_inferred, batch_id
                {derived_cols})
            SELECT w.id, {d.cols("w")}, w.valid_from, w.valid_to, w.valid_to = {OPEN_END}, false, :batch_id
                {derived_values}
            FROM scd_want w WHERE w.sk IS NULL
            RETURNING {sk})
        INSERT INTO scd_changed SELECT {sk} FROM inserted
        """,
        # 9. Facts re-bound point in time: the version holding transaction_ts, before the first the first. A fact
        #    keeps the batch_id of the sales batch whose record it holds (its lineage, and what a replayed
        #    older sales batch is compared with).
        #    The history has no gaps, so that version is the one whose [bind_from, valid_to) holds it.
        f"""
        UPDATE scd_facts m SET new_sk = b.sk
        FROM (SELECT d.{sk} AS sk, d.{key} AS id, d.valid_to, {BIND_FROM.format(key=f"d.{key}")} AS bind_from
              FROM {d.table} d JOIN scd_keys k ON k.id = d.{key}) b
        WHERE b.id = m.id AND m.transaction_ts >= b.bind_from AND m.transaction_ts < b.valid_to
        """,
        f"""
        UPDATE processed.fact_sales f SET {sk} = m.new_sk
        FROM scd_facts m
        WHERE m.new_sk IS DISTINCT FROM m.old_sk AND f.sale_key = m.sale_key AND f.{sk} IS DISTINCT FROM m.new_sk
        """,
        # 10. The dates whose analytics moved: a fact bound elsewhere, or its version's attributes changed.
        """
        INSERT INTO affected_dates (full_date)
        SELECT DISTINCT dd.full_date
        FROM scd_facts m JOIN processed.dim_date dd ON dd.date_key = m.date_key
        WHERE m.new_sk IS DISTINCT FROM m.old_sk OR m.new_sk IN (SELECT sk FROM scd_changed)
        ON CONFLICT DO NOTHING
        """,
    ]


# A load that moves facts to another version, or changes their version's attributes, gives the analytics a
# fact delta: each such fact with the old version's attributes out and the new one's in (a products load moves
# product_id and category, a customers load the region as of the sale).
MOVED = "m.new_sk IS DISTINCT FROM m.old_sk OR m.new_sk IN (SELECT sk FROM scd_changed)"
DELTA_COLUMNS = """sale_key, sign, date, status, quantity, total_amount, payment_method, product_id, category,
    customer_id, country, state"""
FACT = "(f.transaction_ts AT TIME ZONE 'UTC')::date, f.status, f.quantity, f.total_amount, f.payment_method"
PRODUCT_FACT_DELTA = f"""
INSERT INTO fact_delta ({DELTA_COLUMNS})
SELECT f.sale_key, x.sign, {FACT}, x.product_id, x.category, c.customer_id, c.country, c.state
FROM (SELECT m.sale_key, -1 AS sign, h.id AS product_id, h.category
      FROM scd_facts m JOIN scd_have h ON h.sk = m.old_sk WHERE {MOVED}
      UNION ALL
      SELECT m.sale_key, 1, p.product_id, p.category
      FROM scd_facts m LEFT JOIN processed.dim_products p ON p.product_key = m.new_sk WHERE {MOVED}) x
JOIN processed.fact_sales f ON f.sale_key = x.sale_key
LEFT JOIN processed.dim_customers c ON c.customer_key = f.customer_key
"""
CUSTOMER_FACT_DELTA = f"""
INSERT INTO fact_delta ({DELTA_COLUMNS})
SELECT f.sale_key, x.sign, {FACT}, p.product_id, p.category, x.customer_id, x.country, x.state
FROM (SELECT m.sale_key, -1 AS sign, h.id AS customer_id, h.country, h.state
      FROM scd_facts m JOIN scd_have h ON h.sk = m.old_sk WHERE {MOVED}
      UNION ALL
      SELECT m.sale_key, 1, c.customer_id, c.country, c.state
      FROM scd_facts m LEFT JOIN processed.dim_customers c ON c.customer_key = m.new_sk WHERE {MOVED}) x
JOIN processed.fact_sales f ON f.sale_key = x.sale_key
LEFT JOIN processed.dim_products p ON p.product_key = f.product_key
"""


STATEMENTS = {dataset: _statements(d) for dataset, d in DIMENSIONS.items()}
STATEMENTS["products"].append(PRODUCT_FACT_DELTA)
STATEMENTS["customers"].append(CUSTOMER_FACT_DELTA)
COUNTS = """SELECT (SELECT count(*) FROM scd_keys), (SELECT count(*) FROM scd_changed),
                   (SELECT count(*) FROM scd_gone),
                   (SELECT count(*) FROM scd_facts WHERE new_sk IS DISTINCT FROM old_sk)"""
DROP = "DROP TABLE IF EXISTS scd_keys, scd_want, scd_have, scd_facts, scd_gone, scd_changed"


@dataclass(frozen=True)
class MergeResult:
    keys: int
    versions_written: int
    versions_removed: int
    facts_rebound: int


async def merge(conn: AsyncConnection, dataset: str, batch_id: uuid.UUID) -> MergeResult:
    """Merge one staged customers/products batch into its dimension; adds to the ``affected_dates`` table."""
    params = {"batch_id": batch_id}
    for statement in STATEMENTS[dataset]:
        await conn.execute(text(statement), params)
    row = (await conn.execute(text(COUNTS))).one()
    await conn.execute(text(DROP))
    return MergeResult(*(int(v) for v in row))
