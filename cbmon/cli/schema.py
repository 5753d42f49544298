"""``cbmon schema``: print or install the reference schema and the read-only role."""

from __future__ import annotations

import sys

import click
import psycopg

from cbmon.cli.options import dsn_option
from cbmon.config import load_config
from cbmon.db import roles
from cbmon.db.connect import connect, first_line, server_of
from cbmon.errors import DatabaseError
from cbmon.reference import schema as reference


@click.group()
def schema() -> None:
    """The reference callback schema and cbmon's read-only role."""


def _name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value or len(value.encode("utf-8")) > 63 or "\x00" in value:
        raise click.BadParameter("must be 1 to 63 bytes, the length PostgreSQL keeps")
    return value


_schema_name = click.option(
    "--schema",
    "schema_name",
    default="public",
    show_default=True,
    callback=_name,
    help="Database schema the tables go into.",
)
_role = click.option(
    "--role",
    default=reference.DEFAULT_ROLE,
    show_default=True,
    callback=_name,
    help="Name of the read-only login role cbmon connects as.",
)
_no_role = click.option("--no-role", is_flag=True, help="Do not create or grant the role.")
_wake = click.option(
    "--wake",
    is_flag=True,
    help="Also install the triggers that wake `cbmon serve` when rows are committed "
    "(pg_notify once per INSERT statement), for alerts within a fraction of a second.",
)


@schema.command("print")
@_schema_name
@_role
@_no_role
@_wake
def print_(schema_name: str, role: str, no_role: bool, wake: bool) -> None:
    """Print the SQL that `schema apply` runs."""
    click.echo(reference.render(None if no_role else role, schema_name, wake), nl=False)


@schema.command("audit")
@dsn_option
@click.option(
    "--role",
    default=reference.DEFAULT_ROLE,
    show_default=True,
    callback=_name,
    help="The role to audit (cbmon's login role, or any other).",
)
def audit(dsn: str | None, role: str) -> None:
    """List what ROLE can still write in the database, and the SQL that closes each.

    Read-only: any role may run it. Exit 1 while something writable remains, 0 when only
    what PostgreSQL cannot close is left (NOTIFY).
    """
    config = load_config(dsn=dsn)
    try:
        conn = connect(
            config.require_dsn(),
            application_name="cbmon schema audit",
            using=config.file.database.driver,
        )
    except DatabaseError as exc:
        raise DatabaseError(f"schema audit: {exc}") from None
    with conn:
        try:
            findings = roles.audit(conn, role, server_of(conn))
            reads = roles.mechanism_reads(conn, role, server_of(conn))
        except psycopg.Error as exc:
            raise DatabaseError(f"schema audit failed: {first_line(exc)}") from None
    click.echo("\n".join(roles.render(role, findings)))
    if reads:  # reading only: the exit code stays the writes'
        click.echo("\n-- The mechanism's probes (docs/metrics.md#the-mechanism) also read:")
        click.echo("\n".join(reads))
    sys.exit(1 if any(finding.writable for finding in findings) else 0)


@schema.command("apply")
@dsn_option
@_schema_name
@_role
@_no_role
@_wake
def apply(dsn: str | None, schema_name: str, role: str, no_role: bool, wake: bool) -> None:
    """Install the tables, indexes and role. Safe to run twice."""
    config = load_config(dsn=dsn)
    reference.apply(
        config.require_dsn(),
        schema=schema_name,
        role=None if no_role else role,
        using=config.file.database.driver,
        wake=wake,
    )
    done = f"schema applied in {schema_name!r}" + ("" if no_role else f", role {role!r}")
    click.echo(done + (", wake triggers" if wake else ""))
