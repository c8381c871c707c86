"""The BI role: ``analytics_reader`` reads every table and view of the analytics schema and nothing else,
whichever came first, the role or the migrations.

Migrations grant only to roles that exist when they run, so a role created later (a developer machine, a
DBA adding Metabase afterwards) would find the schema closed. ``grant_readers`` runs after every
``migrate`` (so ``make up`` and compose's one-shot run it) and on its own as
``python -m ops.admin grant-readers``: it creates the role when it is missing and the login may create
roles, then grants what it reads now and makes the same grant the default for what the schema's owners
create later. Every statement is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from shared.settings import PlatformSettings

READER = "analytics_reader"
SCHEMA = "analytics"

# The owners of the schema and of what is in it, and the login running this: whoever creates the next
# analytics object is one of them, and default privileges apply per creating role.
OWNERS = """
SELECT DISTINCT pg_get_userbyid(owner) AS owner FROM (
    SELECT nspowner AS owner FROM pg_namespace WHERE nspname = $1
    UNION SELECT relowner FROM pg_class WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
    UNION SELECT oid FROM pg_roles WHERE rolname = current_user
) o ORDER BY 1
"""


def _ident(name: str) -> str:
    """A role or database name as a quoted SQL identifier (they come from the catalog, not from users)."""
    return '"' + name.replace('"', '""') + '"'


class ReaderError(Exception):
    """The reader cannot be given its grants; the message says what an operator does about it."""


@dataclass
class ReaderGrants:
    created: bool = False
    # created without a password: it logs in only where pg_hba.conf trusts the connection
    without_password: bool = False
    readable: list[str] = field(default_factory=list)
    default_owners: list[str] = field(default_factory=list)
    # owners whose future objects this login cannot set defaults for (not a member of that role)
    skipped_owners: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        said = []
        if self.created:
            said.append(f"created role {READER}")
        if self.without_password:
            said.append(
                f"warning: {READER} has no password because SDP_ANALYTICS_READER_PASSWORD is unset: PostgreSQL "
                "refuses its password logins and it connects only where pg_hba.conf trusts the connection "
                f"(as on a development machine); set one with ALTER ROLE {READER} PASSWORD '…'"
            )
        said.append(f"{READER} reads {len(self.readable)} objects of schema {SCHEMA}")
        said.append(f"{READER} will read what {', '.join(self.default_owners)} create there later")
        for owner in self.skipped_owners:
            said.append(
                f"warning: objects {owner} creates in {SCHEMA} later are not granted to {READER} by default "
                f"(this login is not a member of {owner}); run grant-readers after them or as {owner}"
            )
        return said


async def _create_role(conn: asyncpg.Connection, password: str) -> bool:
    """Create the reader; False when another process created it first."""
    can_create = await conn.fetchval("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    if not can_create:
        user = await conn.fetchval("SELECT current_user")
        raise ReaderError(
            f"role {READER} does not exist and {user} may not create roles: create it "
            f"(CREATE ROLE {READER} LOGIN PASSWORD '…') and run `python -m ops.admin grant-readers`"
        )
    # The password cannot be a bind parameter of CREATE ROLE; format's %L quotes it as a literal.
    create = await conn.fetchval(
        "SELECT format('CREATE ROLE %I LOGIN' || CASE WHEN $2 = '' THEN '' ELSE ' PASSWORD %L' END, $1::text, $2)",
        READER,
        password,
    )
    try:
        async with conn.transaction():
            await conn.execute(create)
    except asyncpg.DuplicateObjectError:
        return False
    # Read-only even if a later grant is too broad.
    await conn.execute(f"ALTER ROLE {READER} SET default_transaction_read_only = on")
    return True


async def grant_readers(settings: PlatformSettings) -> ReaderGrants:
    """Create the reader if missing and grant it the analytics schema, now and for objects created later.

    Raises ReaderError when the schema is missing (migrate first) or the role is missing and cannot be
    created by this login.
    """
    report = ReaderGrants()
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", SCHEMA):
                raise ReaderError(f"schema {SCHEMA} does not exist yet: run `python -m ops.admin migrate`")
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", READER):
                password = settings.analytics_reader_password.get_secret_value()
                report.created = await _create_role(conn, password)
                report.without_password = report.created and not password
            database = await conn.fetchval("SELECT current_database()")
            await conn.execute(f"GRANT CONNECT ON DATABASE {_ident(database)} TO {READER}")
            await conn.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {READER}")
            # ALL TABLES covers views, materialized views and foreign tables too.
            await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {READER}")
            for row in await conn.fetch(OWNERS, SCHEMA):
                owner = row["owner"]
                if not await conn.fetchval("SELECT pg_has_role(current_user, $1::text, 'MEMBER')", owner):
                    report.skipped_owners.append(owner)
                    continue
                await conn.execute(
                    f"ALTER DEFAULT PRIVILEGES FOR ROLE {_ident(owner)} IN SCHEMA {SCHEMA} "
                    f"GRANT SELECT ON TABLES TO {READER}"
                )
                report.default_owners.append(owner)
            rows = await conn.fetch(
                """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                     AND has_table_privilege($2, c.oid, 'SELECT') ORDER BY 1""",
                SCHEMA,
                READER,
            )
            report.readable = [f"{SCHEMA}.{r['relname']}" for r in rows]
    finally:
        await conn.close()
    return report
