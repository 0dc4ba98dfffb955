"""`bakery history --json`: the listing's JSON text, written by SQLite.

Building 10,000 documents in Python (30,000 times through `iso`) and encoding them took
~0.3 s. Here one query writes each execution's text in C, and Python adds only the
duration. The text is exactly `json.dumps(documents(runs), indent=..., ensure_ascii=False)`:
the same keys, order and separators; strings quoted by SQLite's `json_quote` (trusted only
after it quoted every character `json.dumps` escapes the same way); times by `iso_sql`, the
same arithmetic as `engine.state.iso` on the same doubles.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from engine.state import iso
from engine.store import RunSummary, Store

_STRING, _TIME = "string", "time"

_Field = tuple[str, str, str]
"""(key, kind, column of `runs`); a `_STRING` column may hold any SQLite value."""
_Object = tuple[str, list[_Field]]
_COMMIT: list[_Field] = [
    ("id", _STRING, "commit_id"),
    ("branch", _STRING, "branch"),
    ("subject", _STRING, "subject"),
]
_HEAD: list[_Field | _Object] = [
    ("id", _STRING, "id"),
    ("number", _STRING, "number"),  # json_quote of an integer is its digits
    ("pipeline", _STRING, "pipeline"),
    ("status", _STRING, "status"),
    ("trigger", _STRING, "trigger_type"),
    ("commit", _COMMIT),
    ("created_at", _TIME, "created_at"),
    ("started_at", _TIME, "started_at"),
    ("finished_at", _TIME, "finished_at"),
]
"""Every key of a document but the last, `duration`, in the order `documents` gives them."""

_DURATION = (
    "finished_at - CASE WHEN started_at IS NULL OR started_at = 0 THEN created_at"
    " ELSE started_at END"
)
"""`RunSummary.duration`, finished - (started or created): the same subtraction of doubles
(NULL while unfinished). `round(d, 3)` rounds the double's exact value, which SQLite's
arithmetic does not give, so Python rounds and prints it."""


def documents(runs: Sequence[RunSummary]) -> list[dict[str, Any]]:
    """The history as JSON documents, one per execution, newest first."""
    return [
        {
            "id": r.id,
            "number": r.number,
            "pipeline": r.pipeline,
            "status": r.status,
            "trigger": r.trigger_type,
            "commit": {"id": r.commit_id, "branch": r.branch, "subject": r.subject},
            "created_at": iso(r.created_at),
            "started_at": iso(r.started_at),
            "finished_at": iso(r.finished_at),
            "duration": round(r.duration, 3) if r.duration is not None else None,
        }
        for r in runs
    ]


def history_json(
    store: Store,
    *,
    status: str | None = None,
    branch: str | None = None,
    limit: int | None = None,
    indent: int | None = None,
) -> str:
    """`json.dumps(documents(store.runs(...)), indent=indent, ensure_ascii=False)`."""
    return "".join(
        history_json_parts(store, status=status, branch=branch, limit=limit, indent=indent)
    )


def history_json_parts(
    store: Store,
    *,
    status: str | None = None,
    branch: str | None = None,
    limit: int | None = None,
    indent: int | None = None,
) -> list[str]:
    """`history_json` in pieces, one per execution, to be written a few hundred at a time:
    the 4 MB text of 10,000 is never copied whole (a few ms a copy)."""
    if not sqlite_quotes_like_json(store):
        runs = store.runs(status=status, branch=branch, limit=limit)
        return [json.dumps(documents(runs), indent=indent, ensure_ascii=False)]
    newline = "" if indent is None else "\n" + " " * indent
    close = "}" if indent is None else newline + "}"  # a document, after its duration
    between = close + (", " if indent is None else "," + newline)
    head = _row_sql(between, indent)
    rows = store.runs_select(f"{head}, {_DURATION}", status=status, branch=branch, limit=limit)
    if not rows:
        return ["[]"]
    # repr is json.dumps' form of a finite float; times are finite (`iso` fails on others)
    parts = [text + repr(round(d, 3)) if d is not None else text + "null" for text, d in rows]
    parts[0] = "[" + newline + parts[0][len(between) :]
    parts.append(close + ("]" if indent is None else "\n]"))
    return parts


def _row_sql(between: str, indent: int | None) -> str:
    """SQL giving `between` (what closes the document before) and a document's text up to
    `"duration": `, laid out as `json.dumps` with `indent` lays it out."""
    pieces: list[str] = []  # SQL expressions, to be joined by ||

    def literal(text: str) -> None:
        quoted = "'" + text.replace("'", "''") + "'"
        if pieces and pieces[-1].startswith("'"):
            pieces[-1] = pieces[-1][:-1] + quoted[1:]  # one literal rather than a chain
        else:
            pieces.append(quoted)

    def key(name: str, level: int, first: bool) -> None:
        separator = "" if first else ", " if indent is None else ","
        newline = "" if indent is None else "\n" + " " * (indent * level)
        literal(separator + newline + json.dumps(name, ensure_ascii=False) + ": ")

    def members(fields: Sequence[_Field | _Object], level: int) -> None:
        literal("{")
        for i, field in enumerate(fields):
            key(field[0], level, i == 0)
            if len(field) == 2:
                members(field[1], level + 1)
                literal("}" if indent is None else "\n" + " " * (indent * level) + "}")
            elif field[1] == _TIME:
                pieces.append(f"COALESCE({iso_sql(field[2], quoted=True)}, 'null')")
            else:
                pieces.append(f"json_quote({field[2]})")  # NULL gives null

    literal(between)
    members(_HEAD, 2)  # the documents sit at level 1 of the list
    key("duration", 2, False)
    return " || ".join(pieces)


def iso_sql(column: str, *, quoted: bool = False) -> str:
    """SQL giving `engine.state.iso(column)` (in double quotes if `quoted`; NULL for NULL)
    for any time from year 1 to 9999.

    `iso` rounds the microseconds half to even and then cuts to milliseconds. Rounding half
    up instead changes the microsecond only at a tie n + 0.5 with n even, and then to n + 1,
    which is odd: never a whole millisecond, so the milliseconds are the same. So this takes
    the fraction `iso` takes (modf's: exact), times 1e6 (the same double), plus 0.5 (exact
    where it matters) and floors it: the microsecond rounded half up, from which the time
    in whole milliseconds follows in integers, for SQLite's calendar to print.
    """
    whole = f"CAST({column} AS INTEGER)"  # towards zero, as modf
    half_up = f"(({column} - {whole}) * 1000000.0 + 0.5)"  # in (-999999.5, 1000000.5)
    # floor(half_up) // 1000; CAST cuts towards zero, so before 1970 takes the long way
    after_1970 = f"CAST({half_up} AS INTEGER) / 1000"
    floor = f"(CAST({half_up} AS INTEGER) - ({half_up} < CAST({half_up} AS INTEGER)))"
    before_1970 = f"({floor} + 1000000) / 1000 - 1000"
    millis = f"{whole} * 1000 + CASE WHEN {column} >= 0 THEN {after_1970} ELSE {before_1970} END"
    form = '"%Y-%m-%dT%H:%M:%fZ"' if quoted else "%Y-%m-%dT%H:%M:%fZ"
    return f"strftime('{form}', ({millis}) / 1000.0, 'unixepoch')"


_PROBE = "".join(map(chr, range(0x80))) + "\u00e9\u20ac\u2028\u2029\ufeff\U0001f600 '\"\\/"
"""Every character `json.dumps` escapes, and some it must leave alone."""


def sqlite_quotes_like_json(store: Store) -> bool:
    """Whether this SQLite has `json_quote` and it quotes as `json.dumps(ensure_ascii=False)`
    does (its escapes are SQLite's choice, and have changed between versions)."""
    return store.json_quote(_PROBE) == json.dumps(_PROBE, ensure_ascii=False)
