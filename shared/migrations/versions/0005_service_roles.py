"""Least privilege: what each service's database role may do, where the deployment created the roles.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

The roles (and their passwords) are created by the deployment (compose/postgres/initdb), never by a
migration; where one does not exist (a developer machine running everything as one user) its grants
are skipped. Each grant is also made the default for tables that later migrations create in that schema.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Every pipeline stage moves its batch and records the event and timing (shared/batches.py).
STAGE_OPS = [
    ("SELECT, UPDATE", "ops.batches"),
    ("SELECT, INSERT, UPDATE", "ops.batch_events"),
    ("SELECT, INSERT, UPDATE", "ops.batch_stages"),
]
API_KEY_CHECK = [("SELECT, UPDATE", "ops.api_keys")]

# role -> [(privileges, table or "schema.*")]
GRANTS: dict[str, list[tuple[str, str]]] = {
    "sdp_ingest": [
        *STAGE_OPS,
        ("INSERT", "ops.batches"),
        *API_KEY_CHECK,
        ("SELECT, INSERT, UPDATE", "ops.connector_state"),
    ],
    "sdp_transform": [*STAGE_OPS, ("SELECT, INSERT, DELETE", "raw.*"), ("SELECT, INSERT, DELETE", "staging.*")],
    "sdp_quality": [
        *STAGE_OPS,
        ("SELECT", "raw.*"),
        ("SELECT", "staging.*"),
        ("SELECT, INSERT, DELETE", "ops.quality_results"),
    ],
    "sdp_warehouse": [
        *STAGE_OPS,
        ("SELECT", "staging.*"),
        ("SELECT, INSERT, UPDATE, DELETE", "processed.*"),
        ("SELECT, INSERT, UPDATE, DELETE", "analytics.*"),
    ],
    "sdp_api": [
        ("SELECT", "ops.batches"),
        ("SELECT", "ops.batch_stages"),
        ("SELECT", "ops.batch_events"),
        ("SELECT", "ops.quality_results"),
        *API_KEY_CHECK,
        ("SELECT", "processed.*"),
        ("SELECT", "analytics.*"),
    ],
    "sdp_reconciler": [
        ("SELECT, UPDATE", "ops.batches"),
        ("SELECT, UPDATE", "ops.batch_events"),
        ("SELECT", "ops.batch_stages"),
    ],
}
SCHEMAS = ("raw", "staging", "processed", "analytics", "ops")
# The warehouse stages its work in temporary tables and fills identity columns.
EXTRA = {
    "sdp_warehouse": [
        "GRANT TEMPORARY ON DATABASE {database} TO sdp_warehouse",
        "GRANT USAGE ON ALL SEQUENCES IN SCHEMA processed TO sdp_warehouse",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA processed GRANT USAGE ON SEQUENCES TO sdp_warehouse",
    ],
}


def _statements(role: str) -> list[str]:
    statements = [f"GRANT USAGE ON SCHEMA {schema} TO {role}" for schema in SCHEMAS]
    for privileges, target in GRANTS[role]:
        if target.endswith(".*"):
            schema = target[:-2]
            statements.append(f"GRANT {privileges} ON ALL TABLES IN SCHEMA {schema} TO {role}")
            statements.append(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT {privileges} ON TABLES TO {role}")
        else:
            statements.append(f"GRANT {privileges} ON {target} TO {role}")
    return statements + EXTRA.get(role, [])


def _if_role_exists(role: str, statements: list[str]) -> str:
    body = "\n".join(
        f"        EXECUTE format({s.replace('{database}', '%I')!r}, current_database());"
        if "{database}" in s
        else f"        EXECUTE {s!r};"
        for s in statements
    )
    return f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
{body}
    END IF;
END
$$"""


def upgrade() -> None:
    for role in GRANTS:
        op.execute(_if_role_exists(role, _statements(role)))


def downgrade() -> None:
    for role in GRANTS:
        revoke = [
            *(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} REVOKE ALL ON TABLES FROM {role}" for s in SCHEMAS),
            "ALTER DEFAULT PRIVILEGES IN SCHEMA processed REVOKE ALL ON SEQUENCES FROM " + role,
            *(f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {role}" for s in SCHEMAS),
            "REVOKE ALL ON ALL SEQUENCES IN SCHEMA processed FROM " + role,
            *(f"REVOKE USAGE ON SCHEMA {s} FROM {role}" for s in SCHEMAS),
            "REVOKE TEMPORARY ON DATABASE {database} FROM " + role,
        ]
        op.execute(_if_role_exists(role, revoke))
