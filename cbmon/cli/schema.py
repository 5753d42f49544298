"""``cbmon schema``: print or install the reference schema and the read-only role."""

from __future__ import annotations

import click

from cbmon.cli.options import dsn_option
from cbmon.config import load_config
from cbmon.reference import schema as reference


@click.group()
def schema() -> None:
    """The reference callback schema and cbmon's read-only role."""


_schema_name = click.option(
    "--schema",
    "schema_name",
    default="public",
    show_default=True,
    help="Database schema the tables go into.",
)
_role = click.option(
    "--role",
    default=reference.DEFAULT_ROLE,
    show_default=True,
    help="Name of the read-only login role cbmon connects as.",
)
_no_role = click.option("--no-role", is_flag=True, help="Do not create or grant the role.")


@schema.command("print")
@_schema_name
@_role
@_no_role
def print_(schema_name: str, role: str, no_role: bool) -> None:
    """Print the SQL that `schema apply` runs."""
    click.echo(reference.render(None if no_role else role, schema_name), nl=False)


@schema.command("apply")
@dsn_option
@_schema_name
@_role
@_no_role
def apply(dsn: str | None, schema_name: str, role: str, no_role: bool) -> None:
    """Install the tables, indexes and role. Safe to run twice."""
    target = load_config(dsn=dsn).require_dsn()
    reference.apply(target, schema=schema_name, role=None if no_role else role)
    click.echo(f"schema applied in {schema_name!r}" + ("" if no_role else f", role {role!r}"))
