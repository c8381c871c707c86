"""Warehouse load speed: a cheaper no-overlap constraint, and indexes rebuilt rather than maintained on bulk loads.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29

- The dimensions' no-overlap exclusion constraints lead with a 64-bit hash of the natural key. btree_gist
  on text alone builds a poor tree (about 75 µs a row on 100,000 customers); with the hash in front the
  same rows take a quarter of that. The key itself stays in the constraint, so two keys that share a hash
  never conflict: the constraint means exactly what it meant.
- ``ops.suspend_indexes(table)`` drops the indexes (primary key and unique constraints included) of a
  table a load is about to add many rows to, recording their definitions; ``ops.restore_indexes(table)``
  builds them again, which checks the unique ones. Both run as their owner (the warehouse role may not
  drop an index) and only for the tables listed here; both belong to the caller's transaction, so a load
  that fails leaves the indexes as they were.
- ``ops.analyze_table(table)`` refreshes the planner's statistics of a dimension or bulk-loaded table right
  after a load changed much of it (ANALYZE needs the owner too), so that the next load's joins are planned
  on what the table holds now rather than on what autovacuum last saw.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DIMENSIONS = {"customers": "customer_id", "products": "product_id"}
BULK_TABLES = ("processed.fact_sales", "analytics.daily_product_sales")
ANALYZED_TABLES = (*BULK_TABLES, "processed.dim_customers", "processed.dim_products")


def _no_overlap(dim: str, key: str, hashed: bool) -> list[str]:
    columns = f"hashtextextended({key}, 0) WITH =, {key} WITH =" if hashed else f"{key} WITH ="
    return [
        f"ALTER TABLE processed.dim_{dim} DROP CONSTRAINT dim_{dim}_no_overlap",
        f"""ALTER TABLE processed.dim_{dim} ADD CONSTRAINT dim_{dim}_no_overlap
            EXCLUDE USING gist ({columns}, tstzrange(valid_from, valid_to) WITH &&)""",
    ]


def _only(tables: tuple[str, ...], refusal: str) -> str:
    """A function body's first statement: any other table than ``tables`` is refused (``%`` names it)."""
    allowed = " OR ".join(f"target = '{t}'::regclass" for t in tables)
    return f"IF NOT ({allowed}) THEN RAISE EXCEPTION '{refusal}', target; END IF;"


FUNCTION_NAMES = "ops.suspend_indexes(regclass), ops.restore_indexes(regclass), ops.analyze_table(regclass)"
FUNCTIONS = [
    """
    CREATE TABLE ops.suspended_indexes (
        table_name regclass NOT NULL,
        name text NOT NULL,
        is_constraint boolean NOT NULL,
        definition text NOT NULL,
        PRIMARY KEY (table_name, name)
    )
    """,
    f"""
    CREATE FUNCTION ops.suspend_indexes(target regclass) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DECLARE
        r record;
        n integer := 0;
    BEGIN
        {_only(BULK_TABLES, "the indexes of % cannot be suspended")}
        FOR r IN SELECT c.conname, pg_get_constraintdef(c.oid) AS definition FROM pg_constraint c
                 WHERE c.conrelid = target AND c.contype IN ('p', 'u') ORDER BY c.conname LOOP
            INSERT INTO ops.suspended_indexes VALUES (target, r.conname, true, r.definition);
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', target, r.conname);
            n := n + 1;
        END LOOP;
        FOR r IN SELECT i.indexrelid::regclass AS name, pg_get_indexdef(i.indexrelid) AS definition
                 FROM pg_index i WHERE i.indrelid = target ORDER BY 1 LOOP
            INSERT INTO ops.suspended_indexes VALUES (target, r.name::text, false, r.definition);
            EXECUTE format('DROP INDEX %s', r.name);
            n := n + 1;
        END LOOP;
        RETURN n;
    END
    $$
    """,
    f"""
    CREATE FUNCTION ops.restore_indexes(target regclass) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET maintenance_work_mem = '256MB' AS $$
    DECLARE
        r record;
        n integer := 0;
    BEGIN
        {_only(BULK_TABLES, "the indexes of % cannot be restored here")}
        FOR r IN DELETE FROM ops.suspended_indexes WHERE table_name = target
                 RETURNING name, is_constraint, definition LOOP
            IF r.is_constraint THEN
                EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', target, r.name, r.definition);
            ELSE
                EXECUTE r.definition;
            END IF;
            n := n + 1;
        END LOOP;
        RETURN n;
    END
    $$
    """,
    f"""
    CREATE FUNCTION ops.analyze_table(target regclass) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    BEGIN
        {_only(ANALYZED_TABLES, "% cannot be analyzed here")}
        EXECUTE format('ANALYZE %s', target);
    END
    $$
    """,
    f"REVOKE ALL ON FUNCTION {FUNCTION_NAMES} FROM PUBLIC",
    f"""
    DO $$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sdp_warehouse') THEN
            GRANT EXECUTE ON FUNCTION {FUNCTION_NAMES} TO sdp_warehouse;
        END IF;
    END
    $$
    """,
]


def upgrade() -> None:
    for dim, key in DIMENSIONS.items():
        for statement in _no_overlap(dim, key, hashed=True):
            op.execute(statement)
    for statement in FUNCTIONS:
        op.execute(statement)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {FUNCTION_NAMES}")
    op.execute("DROP TABLE ops.suspended_indexes")
    for dim, key in DIMENSIONS.items():
        for statement in _no_overlap(dim, key, hashed=False):
            op.execute(statement)
