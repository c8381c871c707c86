"""Initial schema: the layers of DESIGN §4 and the star schema of §5.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

OPEN_END = "'9999-12-31 00:00:00+00'"

SALES_TEXT_COLUMNS = """
    transaction_id text, transaction_ts text, customer_id text, product_id text, quantity text,
    unit_price text, total_amount text, payment_method text, status text"""
CUSTOMERS_TEXT_COLUMNS = """
    customer_id text, customer_name text, email text, city text, state text, country text,
    is_active text, updated_at text"""
PRODUCTS_TEXT_COLUMNS = """
    product_id text, product_name text, category text, created_at text, updated_at text"""

UPGRADE = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    "CREATE SCHEMA raw",
    "CREATE SCHEMA staging",
    "CREATE SCHEMA processed",
    "CREATE SCHEMA analytics",
    "CREATE SCHEMA ops",
    # --- ops ---------------------------------------------------------------------------------------
    """
    CREATE TABLE ops.batches (
        batch_id uuid PRIMARY KEY,
        dataset text NOT NULL CHECK (dataset IN ('customers', 'products', 'sales')),
        status text NOT NULL
            CHECK (status IN ('received', 'staged', 'validated', 'quarantined', 'loaded', 'failed')),
        file_name text NOT NULL,
        file_format text NOT NULL,
        content_type text,
        object_bucket text NOT NULL,
        object_key text NOT NULL,
        sha256 char(64) NOT NULL,
        size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
        idempotency_key text,
        header text[] NOT NULL DEFAULT '{}',
        schema_drift text[] NOT NULL DEFAULT '{}',
        rows_in bigint,
        rows_valid bigint,
        rows_rejected bigint,
        rows_duplicate bigint,
        failed_stage text,
        error text,
        received_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        CONSTRAINT batches_dataset_sha256_key UNIQUE (dataset, sha256),
        CONSTRAINT batches_conservation
            CHECK (rows_in IS NULL OR rows_in = rows_valid + rows_rejected + rows_duplicate)
    )
    """,
    """CREATE UNIQUE INDEX batches_idempotency_key ON ops.batches (dataset, idempotency_key)
       WHERE idempotency_key IS NOT NULL""",
    "CREATE INDEX batches_received_at ON ops.batches (received_at DESC)",
    """CREATE INDEX batches_in_flight ON ops.batches (status, updated_at)
       WHERE status NOT IN ('loaded', 'quarantined', 'failed')""",
    """
    CREATE TABLE ops.batch_stages (
        batch_id uuid NOT NULL REFERENCES ops.batches ON DELETE CASCADE,
        stage text NOT NULL CHECK (stage IN ('ingest', 'transform', 'quality', 'warehouse')),
        status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
        attempts int NOT NULL DEFAULT 1,
        started_at timestamptz NOT NULL,
        finished_at timestamptz,
        error text,
        PRIMARY KEY (batch_id, stage)
    )
    """,
    """
    CREATE TABLE ops.batch_events (
        event_id uuid PRIMARY KEY,
        batch_id uuid NOT NULL REFERENCES ops.batches ON DELETE CASCADE,
        type text NOT NULL,
        payload jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
    )
    """,
    "CREATE INDEX batch_events_batch ON ops.batch_events (batch_id, created_at)",
    "CREATE INDEX batch_events_unpublished ON ops.batch_events (created_at) WHERE published_at IS NULL",
    """
    CREATE TABLE ops.quality_results (
        result_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        batch_id uuid NOT NULL REFERENCES ops.batches ON DELETE CASCADE,
        check_name text NOT NULL,
        check_type text NOT NULL,
        severity text NOT NULL CHECK (severity IN ('warn', 'error')),
        status text NOT NULL CHECK (status IN ('pass', 'warn', 'fail')),
        observed text,
        threshold text,
        failing_sample jsonb NOT NULL DEFAULT '[]',
        duration_ms double precision NOT NULL,
        config_version text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT quality_results_batch_check UNIQUE (batch_id, check_name)
    )
    """,
    """
    CREATE TABLE ops.api_keys (
        key_id uuid PRIMARY KEY,
        name text NOT NULL,
        prefix text NOT NULL,
        key_hash char(64) NOT NULL UNIQUE,
        scopes text[] NOT NULL
            CHECK (scopes <@ ARRAY['ingest:write', 'kpis:read', 'batches:read', 'admin']::text[]),
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz,
        last_used_at timestamptz
    )
    """,
    """
    CREATE TABLE ops.audit_log (
        audit_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        actor text NOT NULL,
        action text NOT NULL,
        target text,
        details jsonb NOT NULL DEFAULT '{}'
    )
    """,
    # --- raw (bronze): every input row as text, traceable to its line --------------------------------
    f"""CREATE TABLE raw.sales (batch_id uuid NOT NULL, source_line bigint NOT NULL, {SALES_TEXT_COLUMNS},
        PRIMARY KEY (batch_id, source_line))""",
    f"""CREATE TABLE raw.customers (batch_id uuid NOT NULL, source_line bigint NOT NULL, {CUSTOMERS_TEXT_COLUMNS},
        PRIMARY KEY (batch_id, source_line))""",
    f"""CREATE TABLE raw.products (batch_id uuid NOT NULL, source_line bigint NOT NULL, {PRODUCTS_TEXT_COLUMNS},
        PRIMARY KEY (batch_id, source_line))""",
    # --- staging (silver): typed, deduplicated, valid rows; rejects with reason codes ----------------
    """
    CREATE TABLE staging.sales (
        batch_id uuid NOT NULL,
        source_line bigint NOT NULL,
        transaction_id text NOT NULL,
        transaction_ts timestamptz NOT NULL,
        customer_id text,
        product_id text,
        quantity integer CHECK (quantity > 0),
        unit_price numeric(12, 2) CHECK (unit_price >= 0),
        total_amount numeric(12, 2),
        payment_method text,
        status text,
        PRIMARY KEY (batch_id, transaction_id)
    )
    """,
    """
    CREATE TABLE staging.customers (
        batch_id uuid NOT NULL,
        source_line bigint NOT NULL,
        customer_id text NOT NULL,
        customer_name text,
        email text,
        city text,
        state text,
        country text,
        is_active boolean,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (batch_id, customer_id, updated_at)
    )
    """,
    """
    CREATE TABLE staging.products (
        batch_id uuid NOT NULL,
        source_line bigint NOT NULL,
        product_id text NOT NULL,
        product_name text,
        category text,
        created_at timestamptz,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (batch_id, product_id, updated_at)
    )
    """,
    *[
        f"""CREATE TABLE staging.{dataset}_rejects (
            batch_id uuid NOT NULL,
            source_line bigint NOT NULL,
            reasons text[] NOT NULL CHECK (cardinality(reasons) > 0),
            record jsonb NOT NULL,
            PRIMARY KEY (batch_id, source_line))"""
        for dataset in ("sales", "customers", "products")
    ],
    # --- processed (gold): star schema --------------------------------------------------------------
    """
    CREATE TABLE processed.dim_date (
        date_key integer PRIMARY KEY,
        full_date date NOT NULL UNIQUE,
        year smallint NOT NULL,
        quarter smallint NOT NULL,
        month smallint NOT NULL,
        week smallint NOT NULL,
        day_of_week smallint NOT NULL,
        is_weekend boolean NOT NULL,
        CONSTRAINT dim_date_key_matches CHECK (date_key = to_char(full_date, 'YYYYMMDD')::integer)
    )
    """,
    f"""
    CREATE TABLE processed.dim_customers (
        customer_key bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        customer_id text NOT NULL,
        customer_name text,
        email text,
        city text,
        state text,
        country text,
        is_active boolean,
        valid_from timestamptz NOT NULL,
        valid_to timestamptz NOT NULL DEFAULT {OPEN_END},
        is_current boolean NOT NULL DEFAULT true,
        is_inferred boolean NOT NULL DEFAULT false,
        batch_id uuid NOT NULL,
        CONSTRAINT dim_customers_interval CHECK (valid_from < valid_to),
        CONSTRAINT dim_customers_current CHECK (is_current = (valid_to = {OPEN_END})),
        CONSTRAINT dim_customers_no_overlap
            EXCLUDE USING gist (customer_id WITH =, tstzrange(valid_from, valid_to) WITH &&)
    )
    """,
    "CREATE UNIQUE INDEX dim_customers_one_current ON processed.dim_customers (customer_id) WHERE is_current",
    f"""
    CREATE TABLE processed.dim_products (
        product_key bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        product_id text NOT NULL,
        product_name text,
        category text,
        created_at timestamptz,
        updated_at timestamptz,
        valid_from timestamptz NOT NULL,
        valid_to timestamptz NOT NULL DEFAULT {OPEN_END},
        is_current boolean NOT NULL DEFAULT true,
        is_inferred boolean NOT NULL DEFAULT false,
        batch_id uuid NOT NULL,
        CONSTRAINT dim_products_interval CHECK (valid_from < valid_to),
        CONSTRAINT dim_products_current CHECK (is_current = (valid_to = {OPEN_END})),
        CONSTRAINT dim_products_no_overlap
            EXCLUDE USING gist (product_id WITH =, tstzrange(valid_from, valid_to) WITH &&)
    )
    """,
    "CREATE UNIQUE INDEX dim_products_one_current ON processed.dim_products (product_id) WHERE is_current",
    """
    CREATE TABLE processed.fact_sales (
        sale_key bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        transaction_id text NOT NULL UNIQUE,
        transaction_ts timestamptz NOT NULL,
        date_key integer NOT NULL REFERENCES processed.dim_date,
        customer_key bigint REFERENCES processed.dim_customers,
        product_key bigint REFERENCES processed.dim_products,
        quantity integer,
        unit_price numeric(12, 2),
        total_amount numeric(12, 2),
        payment_method text,
        status text,
        batch_id uuid NOT NULL,
        loaded_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX fact_sales_date ON processed.fact_sales (date_key)",
    "CREATE INDEX fact_sales_customer ON processed.fact_sales (customer_key)",
    "CREATE INDEX fact_sales_product ON processed.fact_sales (product_key)",
    # --- analytics -----------------------------------------------------------------------------------
    """
    CREATE TABLE analytics.daily_sales (
        date date PRIMARY KEY,
        date_key integer NOT NULL,
        orders bigint NOT NULL,
        revenue numeric(16, 2) NOT NULL,
        units bigint NOT NULL,
        avg_order_value numeric(16, 2) NOT NULL,
        distinct_customers bigint NOT NULL,
        cancelled bigint NOT NULL,
        refunded bigint NOT NULL,
        transactions bigint NOT NULL,
        batch_id uuid NOT NULL,
        refreshed_at timestamptz NOT NULL DEFAULT now()
    )
    """,
]

DOWNGRADE = [
    "DROP SCHEMA analytics CASCADE",
    "DROP SCHEMA processed CASCADE",
    "DROP SCHEMA staging CASCADE",
    "DROP SCHEMA raw CASCADE",
    "DROP SCHEMA ops CASCADE",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
