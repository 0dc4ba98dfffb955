"""`bakery history --json` written by SQLite is, to the byte, what `json.dumps` of the
documents built in Python gives: times, durations, quoting, layout, order and filters."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine import cli
from engine.history_json import documents, history_json, history_json_parts, iso_sql
from engine.state import iso
from engine.store import Store
from tests.engine.test_cli_json import Stdout

YEAR_1, YEAR_9999 = -62_135_596_800.0, 253_402_300_799.0


@pytest.fixture(scope="module")
def memory() -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(":memory:")) as conn:
        yield conn


@given(st.floats(min_value=YEAR_1, max_value=YEAR_9999, allow_nan=False))
@example(0.0)
@example(5e-324)
@example(-5e-324)
@example(0.0009995)  # microseconds exactly n + 0.5, n odd: up, into the next millisecond
@example(0.9999995)  # ... and into the next second
@example(-0.9999995)
@example(0.0009985)  # n + 0.5, n even: half to even stays, half up does not (same millisecond)
@example(-0.0009985)
@example(1_700_000_000.0078125)  # exactly half a microsecond, n even
@example(1_700_000_000.0234375)  # n odd
@example(1_700_000_000.9999996)
@example(86_399.9999996)  # into the next day
@example(-86_400.0000004)
@example(-1.0000004)
@example(YEAR_1)
@example(YEAR_9999 + 0.9994)
@settings(max_examples=3000)
def test_iso_sql_is_iso(memory: sqlite3.Connection, ts: float) -> None:
    (text,) = memory.execute(f"SELECT {iso_sql('?1')}", (ts,)).fetchone()  # noqa: S608 - test SQL
    assert text == iso(ts)


def test_iso_sql_of_null_is_null(memory: sqlite3.Connection) -> None:
    assert memory.execute(f"SELECT {iso_sql('NULL')}").fetchone() == (None,)


# -- whole listings ----------------------------------------------------------------------------
Row = dict[str, Any]
COLUMNS = (
    "id",
    "pipeline",
    "number",
    "status",
    "created_at",
    "started_at",
    "finished_at",
    "trigger_type",
    "commit_id",
    "branch",
    "subject",
)


def store_of(path: Path, rows: list[Row]) -> Store:
    store = Store(path / "bakery.db")
    with store.transaction() as conn:
        conn.execute("DELETE FROM runs")
        conn.executemany(
            f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",  # noqa: S608
            [tuple(row.get(c) for c in COLUMNS) for row in rows],
        )
    return store


def reference(store: Store, indent: int | None, **filters: Any) -> str:
    return json.dumps(documents(store.runs(**filters)), indent=indent, ensure_ascii=False)


def run(number: int, created: float, **fields: Any) -> Row:
    return {
        "id": f"run-{number}",
        "pipeline": "shop",
        "number": number,
        "created_at": created,
    } | fields


AWKWARD = [
    run(
        1,
        1_700_000_000.0,
        status="Succeeded",
        started_at=1_700_000_001.0,
        finished_at=1_700_000_030.0625,  # 29.0625: a tie, round() keeps 29.062
        trigger_type="StartPipelineExecution",
        commit_id="a" * 40,
        branch="main",
        subject="Naïve café ☕ — \U0001f600 \u2028 \u00a0",
    ),
    run(
        2,
        1_700_000_000.0,
        status="Failed",
        started_at=0.0,
        finished_at=1_700_000_000.0005,
        subject='quote " backslash \\ slash / tab \t newline \n nul \x00 bell \x07 del \x7f',
    ),
    run(3, 1_700_000_100.5, status="InProgress", started_at=1_700_000_100.9999996),  # unfinished
    run(
        4,
        1_700_000_200.0,
        started_at=1_700_000_300.0,
        finished_at=1_700_000_299.9999,
        branch="feature/x",
    ),  # finished a tick before it started: -0.0
    run(
        5,
        1_699_999_999.9999995,
        status="Succeeded",
        finished_at=1_700_003_600.123456,
        branch="feature/x",
        subject="",
    ),
    {**run(2, 1_700_000_000.0, pipeline="other", status="Failed"), "id": "other-2"},
    {
        **run(7, 1_700_000_000.0, pipeline="other", status="Failed"),
        "id": "other-7",
        "finished_at": 2e9,
    },
]


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize(
    "filters",
    [{}, {"limit": 3}, {"status": "Failed"}, {"branch": "feature/x"}, {"branch": "nowhere"}],
)
def test_listing_is_json_dumps_of_the_documents(
    tmp_path: Path, indent: int | None, filters: dict[str, Any]
) -> None:
    store = store_of(tmp_path, AWKWARD)
    text = history_json(store, indent=indent, **filters)
    assert text == reference(store, indent, **filters)
    assert json.loads(text) == documents(store.runs(**filters))


def test_equal_times_are_ordered_by_number_and_ties_round_half_to_even(tmp_path: Path) -> None:
    store = store_of(tmp_path, AWKWARD)
    listed = json.loads(history_json(store))
    same_time = [
        (d["pipeline"], d["number"]) for d in listed if d["created_at"] == iso(1_700_000_000.0)
    ]
    # #5 was created half a microsecond earlier: printed the same, listed after
    assert same_time == [("other", 7), ("other", 2), ("shop", 2), ("shop", 1), ("shop", 5)]
    first = next(d for d in listed if d["number"] == 1)
    assert first["duration"] == 29.062 and "Naïve café ☕" in first["commit"]["subject"]
    assert next(d for d in listed if d["number"] == 4)["duration"] == -0.0
    assert next(d for d in listed if d["number"] == 3)["finished_at"] is None


def test_an_empty_history_is_an_empty_list(tmp_path: Path) -> None:
    store = store_of(tmp_path, [])
    assert history_json(store) == "[]" == history_json(store, indent=2)
    assert history_json_parts(store) == ["[]"]


def test_without_a_faithful_json_quote_python_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_of(tmp_path, AWKWARD)
    calls: list[str] = []
    monkeypatch.setattr(store, "json_quote", lambda text: calls.append(text) or None)
    assert history_json(store, indent=2) == reference(store, 2)
    assert history_json_parts(store) == [reference(store, None)]  # one piece: json.dumps'
    assert calls
    assert store_of(tmp_path, []).json_quote('a"\n') == '"a\\"\\n"'  # the real one


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
times = st.one_of(
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
    st.sampled_from([1_700_000_000.0, 1_700_000_000.0078125, 0.9999995, 0.0009985]),
)
rows = st.lists(
    st.fixed_dictionaries(
        {
            "pipeline": st.sampled_from(["shop", "café"]),
            "number": st.integers(1, 10**6),
            "status": st.one_of(st.none(), st.sampled_from(["Succeeded", "Failed"]), text),
            "created_at": times,
            "started_at": st.one_of(st.none(), st.just(0.0), times),
            "finished_at": st.one_of(st.none(), times),
            "trigger_type": st.one_of(st.none(), text),
            "commit_id": st.one_of(st.none(), text),
            "branch": st.one_of(st.none(), text),
            "subject": st.one_of(st.none(), text),
        }
    ),
    max_size=12,
    unique_by=lambda r: (r["pipeline"], r["number"]),
)


@given(rows, st.sampled_from([None, 2]))
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_stored_rows_list_as_json_dumps_does(
    tmp_path: Path, runs: list[Row], indent: int | None
) -> None:
    for i, row in enumerate(runs):
        row["id"] = f"r{i}"
    store = store_of(tmp_path, runs)
    try:
        assert history_json(store, indent=indent) == reference(store, indent)
    finally:
        store.close()


@pytest.mark.parametrize("tty", [True, False])
def test_cli_prints_it_indented_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tty: bool
) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    runs = [run(n, 1_700_000_000.0 + n, subject=f"change {n} ☕") for n in range(1, 501)]
    store = store_of(tmp_path, runs)
    out = Stdout(tty)
    monkeypatch.setattr("sys.stdout", out)
    argv = ["history", "--json", "-C", str(tmp_path), "--state-dir", str(tmp_path)]
    assert cli.main([*argv, "--limit", "0"]) == 0
    indent = 2 if tty else None
    assert out.getvalue() == reference(store, indent) + "\n"
    assert len(json.loads(out.getvalue())) == 500
    assert (len(out.getvalue().splitlines()) > 500) == tty
    out.seek(0)
    out.truncate()
    assert cli.main([*argv, "--status", "Failed"]) == 0
    assert out.getvalue() == "[]\n"
