"""cbmon's read-only role: created with nothing but what reading needs, and audited.

PostgreSQL lets any role do a few things no grant controls: create temporary objects and
large objects and call ``pg_notify`` (all through PUBLIC's default privileges, which only a
DBA can take from everyone), and send ``NOTIFY`` (no privilege exists for it). So the promise
is made exact rather than wider than it is: :func:`reader_statements` grants the role what
reading needs and revokes what can be revoked from the role itself; :func:`audit` lists,
for any role, everything it can still write, and the SQL that closes each.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from cbmon.db.dialect import POSTGRESQL_15, Server

TABLES = ("callback_logs", "callback_errors", "callback_queue")
# The sequences of the tables cbmon reads by id: openGauss keeps a sequence's cache size in
# the sequence itself, so the exact-counting check needs SELECT on them (it reveals no more
# than the tables do).
SEQUENCES = ("callback_logs_id_seq", "callback_errors_id_seq")
_ATTRIBUTES_PG = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
# openGauss' grammar (gram.y, AlterOptRoleElem) has no SUPERUSER/NOSUPERUSER (SYSADMIN is off
# by default) nor BYPASSRLS, and refuses a role without a password ("The password could not be
# NULL"): PASSWORD DISABLE is its way to say "certificate or trust only".
_ATTRIBUTES_GAUSS = "NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION PASSWORD DISABLE"


def role_attributes(server: Server, *, login: bool) -> str:
    """The attributes of a role with no power beyond its grants, in ``server``'s grammar."""
    base = _ATTRIBUTES_PG if server.postgresql else _ATTRIBUTES_GAUSS
    return ("LOGIN " if login else "NOLOGIN ") + base


def create_role(role: str, server: Server) -> sql.Composed:
    return sql.SQL("CREATE ROLE {} " + role_attributes(server, login=True)).format(
        sql.Identifier(role)
    )


def reader_statements(role: str, schema: str, database: str) -> list[sql.Composed]:
    """Grant reading the three tables, revoke writing them; the role's sessions read only."""
    who = sql.Identifier(role)
    tables = sql.SQL(", ").join(sql.Identifier(schema, table) for table in TABLES)
    return [
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), who),
        sql.SQL("GRANT SELECT ON {} TO {}").format(tables, who),
        sql.SQL("GRANT SELECT ON SEQUENCE {} TO {}").format(
            sql.SQL(", ").join(sql.Identifier(schema, name) for name in SEQUENCES), who
        ),
        sql.SQL(
            "REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {} FROM {}"
        ).format(tables, who),
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(sql.Identifier(schema), who),
        sql.SQL("REVOKE CREATE, TEMPORARY ON DATABASE {} FROM {}").format(
            sql.Identifier(database), who
        ),
        # A default every session of the role starts with (cbmon also sets it itself).
        sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(who),
    ]


def print_script(role: str, schema: str, server: Server | None = None) -> str:
    """The role part of ``cbmon schema print``: idempotent, for psql."""
    server = server or POSTGRESQL_15
    literal = sql.Literal(role).as_string(None)
    create = create_role(role, server).as_string(None)
    tag = _dollar_tag(role)
    lines = [
        f"DO {tag}",
        "BEGIN",
        f"    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {literal}) THEN",
        f"        EXECUTE {sql.Literal(create).as_string(None)};",
        "    END IF;",
        "END",
        f"{tag};",
    ]
    grants = reader_statements(role, schema, "__DATABASE__")
    for statement in grants:
        text = statement.as_string(None)
        if "__DATABASE__" in text:
            # The database is the one psql is connected to: named at run time.
            lines += [
                f"DO {tag}",
                "BEGIN",
                "    EXECUTE format('REVOKE CREATE, TEMPORARY ON DATABASE %I FROM %I', "
                f"current_database(), {literal});",
                "END",
                f"{tag};",
            ]
        else:
            lines.append(text + ";")
    return "\n".join(lines) + "\n"


def _dollar_tag(text: str) -> str:
    """A dollar-quote tag that does not occur in ``text`` (a role may be named ``a$$b``)."""
    tag = "$cbmon$"
    while tag in text:
        tag = f"$cbmon_{secrets.token_hex(3)}$"
    return tag


# -- the audit ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Finding:
    what: str  # what the role can do, in words
    fix: str  # the SQL a DBA can run to close it ("" when nothing can)
    writable: bool = True  # False: shown, but no fix exists and it writes no data


_WRITE_FUNCTIONS = (
    "lo_creat(integer)",
    "lo_create(oid)",
    "lo_from_bytea(oid, bytea)",
    "lo_import(text)",
    "lo_put(oid, bigint, bytea)",
    "lowrite(integer, bytea)",
    "lo_unlink(oid)",
    "pg_notify(text, text)",
)


def audit(conn: psycopg.Connection[Any], role: str, server: Server) -> list[Finding]:
    """Everything ``role`` can still write in the connected database; read-only queries,
    answered by the catalogs, so any role may run it."""
    found: list[Finding] = []
    row = conn.execute(
        "SELECT oid, rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
        "rolbypassrls FROM pg_roles WHERE rolname = %s"
        if server.postgresql
        else "SELECT oid, rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
        "false FROM pg_roles WHERE rolname = %s",
        [role],
    ).fetchone()
    if row is None:
        return [Finding(f"role {role!r} does not exist", "", writable=False)]
    oid, superuser, createdb, createrole, replication, bypassrls = row
    who = sql.Identifier(role).as_string(conn)
    for flag, name, undo in (
        (superuser, "is a superuser: it can do anything", "NOSUPERUSER"),
        (createdb, "may create databases", "NOCREATEDB"),
        (createrole, "may create and alter roles", "NOCREATEROLE"),
        (replication, "may stream replication", "NOREPLICATION"),
        (bypassrls, "bypasses row security", "NOBYPASSRLS"),
    ):
        if flag:
            found.append(Finding(f"{role} {name}", f"ALTER ROLE {who} {undo};"))
    found += _memberships(conn, oid, who)
    found += _read_only_default(conn, oid, who, role)
    found += _database(conn, role, who)
    found += _schemas(conn, role, who)
    found += _tables(conn, role, who)
    found += _functions(conn, role)
    found += _owned(conn, oid, role)
    found.append(
        Finding(
            f"{role} can send NOTIFY on any channel: PostgreSQL has no privilege for it. "
            "Listeners must treat payloads as untrusted",
            "",
            writable=False,
        )
    )
    return found


def _memberships(conn: psycopg.Connection[Any], oid: int, who: str) -> list[Finding]:
    rows = conn.execute(
        "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "WHERE m.member = %s ORDER BY 1",
        [oid],
    ).fetchall()
    return [
        Finding(
            f"member of role {name!r}: it can act with that role's privileges",
            f"REVOKE {sql.Identifier(name).as_string(conn)} FROM {who};",
        )
        for (name,) in rows
    ]


def _read_only_default(
    conn: psycopg.Connection[Any], oid: int, who: str, role: str
) -> list[Finding]:
    row = conn.execute(
        # unnest in the select list: a function in FROM naming another FROM item is an
        # implicit LATERAL, which openGauss (PostgreSQL 9.2's grammar) does not have.
        "SELECT count(*) FROM (SELECT unnest(s.setconfig) AS c FROM pg_db_role_setting s "
        "WHERE s.setrole = %s AND s.setdatabase IN (0, (SELECT oid FROM pg_database "
        "WHERE datname = current_database()))) AS settings "
        "WHERE lower(c) IN ('default_transaction_read_only=on', "
        "'default_transaction_read_only=true')",
        [oid],
    ).fetchone()
    if row and row[0]:
        return []
    return [
        Finding(
            f"{role}'s sessions do not start read-only",
            f"ALTER ROLE {who} SET default_transaction_read_only = on;",
        )
    ]


def _grantees(public: bool, who: str) -> str:
    return "PUBLIC" if public else who


def _database(conn: psycopg.Connection[Any], role: str, who: str) -> list[Finding]:
    row = conn.execute(
        "SELECT current_database(), has_database_privilege(%(r)s, current_database(), 'CREATE'),"
        " has_database_privilege(%(r)s, current_database(), 'TEMPORARY'),"
        " has_database_privilege('public', current_database(), 'TEMPORARY')",
        {"r": role},
    ).fetchone()
    assert row is not None
    database, create, temporary, public_temp = row
    name = sql.Identifier(database).as_string(conn)
    found = []
    if create:
        found.append(
            Finding(
                f"may create schemas in database {database}",
                f"REVOKE CREATE ON DATABASE {name} FROM {who};",
            )
        )
    if temporary:
        grantees = _grantees(bool(public_temp), who)
        note = (
            " (from PUBLIC: grant TEMPORARY back to the roles that need it)" if public_temp else ""
        )
        found.append(
            Finding(
                f"may create temporary tables and functions in database {database}{note}",
                f"REVOKE TEMPORARY ON DATABASE {name} FROM {grantees};",
            )
        )
    return found


def _schemas(conn: psycopg.Connection[Any], role: str, who: str) -> list[Finding]:
    rows = conn.execute(
        "SELECT n.nspname, has_schema_privilege('public', n.oid, 'CREATE') FROM pg_namespace n "
        "WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' "
        "AND has_schema_privilege(%s, n.oid, 'CREATE') ORDER BY 1",
        [role],
    ).fetchall()
    return [
        Finding(
            f"may create objects in schema {name}",
            f"REVOKE CREATE ON SCHEMA {sql.Identifier(name).as_string(conn)} "
            f"FROM {_grantees(bool(public), who)};",
        )
        for name, public in rows
    ]


def _tables(conn: psycopg.Connection[Any], role: str, who: str) -> list[Finding]:
    rows = conn.execute(
        "SELECT n.nspname, c.relname, c.relkind, "
        " has_table_privilege('public', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') "
        "AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' "
        "AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(%(r)s, c.oid, 'UPDATE') "
        " ELSE has_table_privilege(%(r)s, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') "
        "  OR has_any_column_privilege(%(r)s, c.oid, 'INSERT, UPDATE') END "
        "ORDER BY 1, 2",
        {"r": role},
    ).fetchall()
    found = []
    for schema, name, kind, public in rows:
        target = sql.Identifier(schema, name).as_string(conn)
        grantees = _grantees(bool(public), who)
        if kind == "S":
            fix = f"REVOKE UPDATE ON SEQUENCE {target} FROM {grantees};"
            found.append(Finding(f"may advance sequence {schema}.{name}", fix))
        else:
            found.append(
                Finding(
                    f"may write to {schema}.{name}",
                    f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {target} FROM {grantees};",
                )
            )
    return found


def _functions(conn: psycopg.Connection[Any], role: str) -> list[Finding]:
    found = []
    for signature in _WRITE_FUNCTIONS:
        # By catalog rather than to_regprocedure(), which openGauss may lack: a function that
        # does not exist there (lo_from_bytea) is simply not found.
        name, _, arguments = signature.partition("(")
        row = conn.execute(
            "SELECT coalesce(bool_or(has_function_privilege(%(r)s, p.oid, 'EXECUTE')), false) "
            "FROM pg_proc p WHERE p.proname = %(n)s AND p.pronamespace = "
            "(SELECT oid FROM pg_namespace WHERE nspname = 'pg_catalog') "
            "AND oidvectortypes(p.proargtypes) = %(a)s",
            {"n": name, "a": arguments.rstrip(")"), "r": role},
        ).fetchone()
        if row and row[0]:
            kind = (
                "send notifications"
                if signature.startswith("pg_notify")
                else ("create or change large objects")
            )
            found.append(
                Finding(
                    f"may {kind} through {signature} (executable by PUBLIC: revoking it "
                    "affects every role without its own grant)",
                    f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC;",
                )
            )
    return found


def _owned(conn: psycopg.Connection[Any], oid: int, role: str) -> list[Finding]:
    rows = conn.execute(
        "SELECT 'table ' || c.oid::regclass::text FROM pg_class c WHERE c.relowner = %(o)s "
        "UNION ALL SELECT 'schema ' || quote_ident(nspname) FROM pg_namespace "
        "WHERE nspowner = %(o)s "
        "UNION ALL SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p "
        "WHERE p.proowner = %(o)s ORDER BY 1",
        {"o": oid},
    ).fetchall()
    found = []
    for (name,) in rows:
        kind, _, target = name.partition(" ")
        fix = f"ALTER {kind.upper()} {target} OWNER TO <another role>;"
        found.append(Finding(f"{role} owns {name}: an owner may do anything with it", fix))
    return found


def render(role: str, findings: Sequence[Finding]) -> list[str]:
    """One line per finding, and the fixes as a script to review and run."""
    writable = [f for f in findings if f.writable]
    if writable:
        lines = [f"role {role}: {len(writable)} way(s) to write remain"]
    else:
        lines = [f"role {role}: reads only (what PostgreSQL allows to close is closed)"]
    lines += [f"  - {f.what}" for f in findings]
    fixes = list(_unique(f.fix for f in findings if f.fix))
    if fixes:
        lines += ["", "-- To close them, review and run:", *fixes]
    return lines


def _unique(items: Iterable[str]) -> Iterable[str]:
    seen: set[str] = set()
    for item in items:
        if item not in seen:
            seen.add(item)
            yield item


# -- what the mechanism's probes read (cbmon/ingest/mechanism.py) ------------------------------
MECHANISM_TABLES = ("callback_router", "callback_limits")


def mechanism_objects(
    conn: psycopg.Connection[Any], server: Server, schema: str | None = None
) -> list[tuple[str, tuple[str, ...]]]:
    """What the mechanism's probes read and a grant controls, as found in the database (in
    ``schema``, or in every schema when None): ``("schema", (name,))`` for USAGE and
    ``("table", (schema, table))`` for SELECT. The router and the token buckets, pg_cron's
    jobs on PostgreSQL, PG_JOB on openGauss; the NOTIFY queue, the listeners and the function
    statistics need no grant."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = ANY(%s) AND c.relkind IN ('r', 'p')"
        " AND (%s::text IS NULL OR n.nspname = %s) ORDER BY 1, 2",
        [list(MECHANISM_TABLES), schema, schema],
    ).fetchall()
    tables = [(str(space), str(table)) for space, table in rows]
    if server.scheduler == "cron":
        cron = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
        if cron is not None:
            tables += [("cron", "job"), ("cron", "job_run_details")]
    else:
        job = conn.execute(
            "SELECT 1 FROM pg_class WHERE relname = 'pg_job' AND relnamespace = "
            "(SELECT oid FROM pg_namespace WHERE nspname = 'pg_catalog')"
        ).fetchone()
        if job is not None:
            tables.append(("pg_catalog", "pg_job"))
    spaces = dict.fromkeys(space for space, _ in tables if space != "pg_catalog")
    return [("schema", (space,)) for space in spaces] + [("table", t) for t in tables]


def _grant(kind: str, names: tuple[str, ...], role: str) -> sql.Composed:
    who = sql.Identifier(role)
    if kind == "schema":
        return sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(*names), who)
    return sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(*names), who)


def mechanism_grants(
    conn: psycopg.Connection[Any], role: str, server: Server, schema: str | None = None
) -> list[sql.Composed]:
    """The grants that let ``role`` read the mechanism's sources (:func:`mechanism_objects`)."""
    return [_grant(kind, names, role) for kind, names in mechanism_objects(conn, server, schema)]


def mechanism_reads(conn: psycopg.Connection[Any], role: str, server: Server) -> list[str]:
    """The grants ``role`` still lacks to read the mechanism (for ``cbmon schema audit``);
    empty when it reads everything there is."""
    missing = []
    for kind, names in mechanism_objects(conn, server):
        if kind == "schema":
            query = "SELECT has_schema_privilege(%s, %s, 'USAGE')"
            target = names[0]
        else:
            query = "SELECT has_table_privilege(%s, %s, 'SELECT')"
            target = sql.Identifier(*names).as_string(conn)
        row = conn.execute(query, [role, target]).fetchone()
        if row is not None and not row[0]:
            missing.append(_grant(kind, names, role).as_string(conn) + ";")
    return missing
