"""What openGauss 5.0 lacks, found in SQL text by a real PostgreSQL parser (pglast).

cbmon runs its SQL on PostgreSQL and openGauss. No openGauss server exists in CI, so this
parses every statement with PostgreSQL's own grammar (libpg_query) and names each construct or
function that openGauss 5.0 does not have (docs/gaussdb.md gives the sources). PL/pgSQL bodies
(functions, DO blocks) and SQL-language function bodies are parsed too, statement by statement.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

import pglast
from pglast import parser

# Functions absent from openGauss 5.0 (or, for the txid snapshot family, present with an
# empty in-progress list, which makes them useless for what PostgreSQL code uses them for).
FUNCTIONS: dict[str, str] = {
    "make_interval": "no make_interval: use interval '1 second' * n",
    "jsonb_build_object": "no jsonb_build_object: json_build_object(...)::text::jsonb",
    "jsonb_build_array": "no jsonb_build_array: json_build_array",
    "jsonb_agg": "no jsonb_agg: json_agg",
    "jsonb_object_agg": "no jsonb_object_agg: json_object_agg",
    "to_jsonb": "no to_jsonb: to_json / row_to_json",
    "pg_current_xact_id": "no xid8 functions (PostgreSQL 13)",
    "pg_current_xact_id_if_assigned": "no xid8 functions (PostgreSQL 13)",
    "pg_current_snapshot": "no pg_snapshot functions (PostgreSQL 13)",
    "pg_snapshot_xmin": "no pg_snapshot functions (PostgreSQL 13)",
    "pg_snapshot_xmax": "no pg_snapshot functions (PostgreSQL 13)",
    "pg_snapshot_xip": "no pg_snapshot functions (PostgreSQL 13)",
    "pg_visible_in_snapshot": "no pg_snapshot functions (PostgreSQL 13)",
    "pg_xact_status": "no xid8 functions (PostgreSQL 13)",
    "txid_current_snapshot": "CSN snapshots: the in-progress list is always empty",
    "txid_snapshot_xip": "CSN snapshots: the in-progress list is always empty",
    "txid_snapshot_xmin": "CSN snapshots: xmin/xmax do not fence open transactions",
    "txid_snapshot_xmax": "CSN snapshots: xmin/xmax do not fence open transactions",
    "txid_visible_in_snapshot": "CSN snapshots: in-progress transactions look visible",
    "pg_notification_queue_usage": "no pg_notification_queue_usage (PostgreSQL 9.5)",
    "to_regclass": "to_regclass not verified on openGauss 5.0: look the catalogs up instead",
    "to_regproc": "to_regproc not verified on openGauss 5.0",
    "to_regprocedure": "to_regprocedure not verified on openGauss 5.0",
    "to_regtype": "to_regtype not verified on openGauss 5.0",
    "to_regnamespace": "to_regnamespace not verified on openGauss 5.0",
    "to_regrole": "to_regrole not verified on openGauss 5.0",
    "percentile_disc": "no percentile_disc (percentile_cont only)",
    "gen_random_uuid": "gen_random_uuid is PostgreSQL 13",
    "pg_current_wal_insert_lsn": "named xlog there: pg_current_xlog_insert_location",
    "pg_current_wal_lsn": "WAL functions are named xlog there: pg_current_xlog_location",
    "pg_last_wal_replay_lsn": "WAL functions are named xlog there: pg_last_xlog_replay_location",
    "pg_walfile_name": "WAL functions are named xlog there: pg_xlogfile_name",
    "pg_control_system": "pg_control_system not verified on openGauss 5.0",
    "pg_control_checkpoint": "pg_control_checkpoint not verified on openGauss 5.0",
}
TYPES: dict[str, str] = {
    "xid8": "no xid8 type",
    "pg_snapshot": "no pg_snapshot type",
}
RELATIONS: dict[str, str] = {
    "pg_sequence": "no pg_sequence catalog: read cache_value from the sequence",
    "pg_sequences": "no pg_sequences view",
}
# Columns of PostgreSQL's statistics views that openGauss' versions lack.
COLUMNS: dict[str, str] = {
    "backend_type": "pg_stat_activity has no backend_type",
    "wait_event": "pg_stat_activity has no wait_event",
    "wait_event_type": "pg_stat_activity has no wait_event_type",
    "backend_xid": "pg_stat_activity has no backend_xid",
    "backend_xmin": "pg_stat_activity has no backend_xmin",
    "leader_pid": "pg_stat_activity has no leader_pid",
    "waitstart": "pg_locks has no waitstart",
}


@dataclasses.dataclass(frozen=True)
class Finding:
    source: str  # where the statement came from: a file, a module, a statement object
    construct: str  # short name of what openGauss lacks: "ON CONFLICT", "make_interval", ...
    detail: str


def check(text: str, source: str) -> list[Finding]:
    """Everything in ``text`` (one or more statements) that openGauss 5.0 lacks.

    Raises ``pglast.parser.ParseError`` when ``text`` is not valid PostgreSQL.
    """
    found: list[Finding] = []
    for statement in _statements(text):
        found += _walk(statement, source)
    found += _tokens(text, source)
    return found


def _statements(text: str) -> list[dict[str, Any]]:
    tree = json.loads(parser.parse_sql_json(text))
    statements: list[dict[str, Any]] = []
    for raw in tree.get("stmts", []):
        statement = raw["stmt"]
        statements.append(statement)
        statements += _bodies(statement, text, raw)
    return statements


def _bodies(statement: dict[str, Any], text: str, raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements inside a function body or DO block, parsed as what they are."""
    if "CreateFunctionStmt" in statement:
        node = statement["CreateFunctionStmt"]
        options = _options(node.get("options", []))
        body, language = options.get("as"), str(options.get("language", "")).lower()
        if body is None:
            return []
        if language == "sql":
            return _statements(body)
        if language == "plpgsql":
            start = raw.get("stmt_location", 0)
            length = raw.get("stmt_len") or len(text) - start
            return _plpgsql(text[start : start + length])
    if "DoStmt" in statement:
        body = _options(statement["DoStmt"].get("args", [])).get("as")
        if body is not None:
            tag = "$cbmon_do$"
            head = "CREATE FUNCTION cbmon_do() RETURNS void LANGUAGE plpgsql AS "
            return _plpgsql(f"{head}{tag}{body}{tag}")
    return []


def _options(items: list[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in items:
        element = item.get("DefElem", {})
        arg = element.get("arg", {})
        if "List" in arg:
            values = [v.get("String", {}).get("sval") for v in arg["List"].get("items", [])]
            found[element.get("defname")] = values[0] if len(values) == 1 else values
        elif "String" in arg:
            found[element.get("defname")] = arg["String"].get("sval")
    return found


_ROWTYPE = re.compile(r"[\w.\"]+%ROWTYPE", re.IGNORECASE)
_ASSIGNMENT = re.compile(r"^\s*[\w.\[\]\"]+\s*:?=\s*", re.DOTALL)


def _plpgsql(function: str) -> list[dict[str, Any]]:
    """Every SQL statement and expression of a PL/pgSQL function, parsed."""
    statements: list[dict[str, Any]] = []
    # The parser cannot look a table's row type up; a record takes the same field syntax.
    function = _ROWTYPE.sub("record", function)
    for expression in _expressions(pglast.parse_plpgsql(function)):
        query, mode = expression["query"], expression.get("parseMode", 0)
        if mode >= 3:  # an assignment: "target := expression"
            query = "SELECT " + _ASSIGNMENT.sub("", query, count=1)
        elif mode == 2:
            query = "SELECT " + query
        statements += _statements(query)
    return statements


def _expressions(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "PLpgSQL_expr" in node:
            yield node["PLpgSQL_expr"]
            return
        for value in node.values():
            yield from _expressions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _expressions(value)


def _name(parts: list[dict[str, Any]]) -> str:
    names = [p.get("String", {}).get("sval", "") for p in parts]
    return str(names[-1]).lower() if names else ""


_INLINE: dict[str, str] = {"typeName": "TypeName", "relation": "RangeVar"}


def _walk(node: Any, source: str) -> list[Finding]:
    found: list[Finding] = []
    if isinstance(node, list):
        for item in node:
            found += _walk(item, source)
        return found
    if not isinstance(node, dict):
        return found
    for key, body in node.items():
        if isinstance(body, dict):
            # libpg_query writes a field of a known node type inline, under the field's name
            found += _rule(_INLINE.get(str(key), str(key)), body, source)
        found += _walk(body, source)
    return found


def _rule(kind: str, body: dict[str, Any], source: str) -> list[Finding]:
    def finding(construct: str, detail: str) -> list[Finding]:
        return [Finding(source, construct, detail)]

    if kind == "FuncCall":
        name = _name(body.get("funcname", []))
        found = finding(name, FUNCTIONS[name]) if name in FUNCTIONS else []
        if "agg_filter" in body:
            found += finding("FILTER", "aggregate FILTER (WHERE ...): use count(CASE ...)")
        args = body.get("args", [])
        if name == "percentile_cont" and args and "A_ArrayExpr" in args[0]:
            found += finding("percentile_cont[]", "percentile_cont takes one fraction per call")
        return found
    if kind == "TypeName":
        name = _name(body.get("names", []))
        return finding(name, TYPES[name]) if name in TYPES else []
    if kind == "RangeVar":
        name = str(body.get("relname", "")).lower()
        return finding(name, RELATIONS[name]) if name in RELATIONS else []
    if kind == "ColumnRef":
        name = _name([f for f in body.get("fields", []) if "String" in f])
        return finding(name, COLUMNS[name]) if name in COLUMNS else []
    if kind == "InsertStmt" and "onConflictClause" in body:
        return finding("ON CONFLICT", "no ON CONFLICT: INSERT ... SELECT ... WHERE NOT EXISTS")
    if kind in ("RangeSubselect", "RangeFunction") and body.get("lateral"):
        return finding("LATERAL", "no LATERAL")
    if kind == "SelectStmt":
        return _implicit_lateral(body, source)
    if kind == "Constraint" and body.get("contype") == "CONSTR_IDENTITY":
        return finding("IDENTITY", "no identity columns in 5.0: use serial/bigserial")
    if kind == "Constraint" and body.get("contype") == "CONSTR_GENERATED":
        return finding("GENERATED", "no generated columns")
    if kind == "CommonTableExpr" and body.get("ctematerialized", "CTEMaterializeDefault") not in (
        "CTEMaterializeDefault",
    ):
        return finding("MATERIALIZED", "no [NOT] MATERIALIZED on a CTE")
    if kind == "IndexStmt" and body.get("if_not_exists"):
        return finding("CREATE INDEX IF NOT EXISTS", "not in openGauss' CREATE INDEX")
    if kind == "IndexStmt" and body.get("indexIncludingParams"):
        return finding("INCLUDE", "index INCLUDE is ubtree-only on openGauss")
    if kind == "ListenStmt":
        return finding("LISTEN", "LISTEN raises 0A000 on openGauss and GaussDB")
    if kind == "UnlistenStmt":
        return finding("UNLISTEN", "UNLISTEN raises 0A000 on openGauss and GaussDB")
    if kind == "NotifyStmt":
        return finding("NOTIFY", "NOTIFY may raise 0A000 on openGauss and GaussDB")
    if kind == "CallStmt":
        return finding("CALL", "CALL of a PostgreSQL procedure")
    return []


def _implicit_lateral(select: dict[str, Any], source: str) -> list[Finding]:
    """A function in FROM that names a column of another FROM item is LATERAL in disguise."""
    items = select.get("fromClause", [])
    if len(items) < 2:
        return []
    found = []
    for item in items:
        function = item.get("RangeFunction")
        if function and not function.get("lateral") and '"ColumnRef"' in json.dumps(function):
            found.append(Finding(source, "LATERAL", "a function in FROM naming another FROM item"))
    return found


def _tokens(text: str, source: str) -> list[Finding]:
    """What only the token stream shows: CREATE TRIGGER ... EXECUTE FUNCTION."""
    words = [
        text[token.start : token.end + 1].upper()
        for token in parser.scan(text)
        if token.kind
        in ("RESERVED_KEYWORD", "UNRESERVED_KEYWORD", "COL_NAME_KEYWORD", "TYPE_FUNC_NAME_KEYWORD")
        or token.name == "IDENT"
    ]
    found = []
    for first, second in itertools.pairwise(words):
        if first == "EXECUTE" and second == "FUNCTION":
            found.append(
                Finding(source, "EXECUTE FUNCTION", "CREATE TRIGGER ... EXECUTE PROCEDURE only")
            )
    return found


_PARAMETER = re.compile(r"%\((\w+)\)s|%s|%%")


def bind_free(text: str) -> str:
    """psycopg's placeholders as $n parameters (and %% as %), so the text parses as SQL."""
    numbers: dict[str, int] = {}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        key = match.group(1) or f"#{len(numbers)}"
        numbers.setdefault(key, len(numbers) + 1)
        return f"${numbers[key]}"

    return _PARAMETER.sub(replace, text)
