"""Schema 1 -> 2: the chunk index is rebuilt with the tokenizer that splits words at digits;
every stored row stays, and the logs are searchable again (numbers too) after the upgrade.
Schema 2 -> 3: the runs' indexes end with `number`, so the history's order needs no sort."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine import events as ev
from engine.search import index_pending, indexed_up_to, pending_lines, search
from engine.store import CHUNK_TOKENIZE, FTS_CURSOR_KEY, SCHEMA_2_RUN_INDEXES, SCHEMA_VERSION, Store

SCHEMA_1_FTS = (
    "CREATE VIRTUAL TABLE log_chunks_fts USING fts5("
    "text, content='log_chunks', content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
)
STAGES = [{"name": "Build", "actions": [{"name": "Talk", "category": "build"}]}]


def schema_1_store(path: Path) -> None:
    """A store as schema 1 left it: chunks indexed with digits as word characters."""
    store = Store(path)
    store.append(
        ev.Event(ev.RUN_CREATED, "r1", 100.0, {"number": 1, "pipeline": "p", "stages": STAGES})
    )
    lines = [f"hello line {i}" for i in range(1, 3001)]
    for first in range(0, len(lines), 700):
        part = lines[first : first + 700]
        store.append_chunks(
            [
                ev.LogChunk(
                    "r1", "Build", "Talk", 1, first + 1, len(part), 101.0, "stdout", "\n".join(part)
                )
            ]
        )
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE log_chunks_fts")
    conn.execute(SCHEMA_1_FTS)
    conn.execute("INSERT INTO log_chunks_fts (rowid, text) SELECT id, text FROM log_chunks")
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) SELECT ?, MAX(id) FROM log_chunks",
        (FTS_CURSOR_KEY,),
    )
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in ("events", "runs", "log_sources", "log_chunks", "pipelines", "commands")
        }
    finally:
        conn.close()


def fts_sql(store: Store) -> str:
    with store.transaction() as conn:
        return str(
            conn.execute("SELECT sql FROM sqlite_master WHERE name = 'log_chunks_fts'").fetchone()[
                0
            ]
        )


def test_schema_1_store_is_migrated_reindexed_and_searchable(tmp_path: Path) -> None:
    db = tmp_path / "bakery.db"
    schema_1_store(db)
    before = dump(db)
    assert len(before["log_chunks"]) == 5

    store = Store(db)
    with store.transaction() as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert version == (str(SCHEMA_VERSION),) and SCHEMA_VERSION == 3
    assert CHUNK_TOKENIZE in fts_sql(store)
    assert dump(db) == before  # not a row lost or changed
    assert indexed_up_to(store) == 0 and pending_lines(store) == 3000  # to be indexed again

    [hit] = search(store, "hello line 2999").hits
    assert (hit.run_id, hit.stage, hit.action, hit.line_no, hit.text) == (
        "r1",
        "Build",
        "Talk",
        2999,
        "hello line 2999",
    )
    assert [h.line_no for h in search(store, "2999").hits] == [2999]
    assert search(store, "hello line").total == 3000
    assert indexed_up_to(store) == before["log_chunks"][-1][0] and index_pending(store) == 0
    with store.transaction() as conn:  # the rebuilt index agrees with the chunks
        conn.execute(
            "INSERT INTO log_chunks_fts (log_chunks_fts, rank) VALUES ('integrity-check', 1)"
        )
    store.close()


def test_current_store_keeps_its_index_when_opened_again(tmp_path: Path) -> None:
    db = tmp_path / "bakery.db"
    store = Store(db)
    store.append(
        ev.Event(ev.RUN_CREATED, "r1", 100.0, {"number": 1, "pipeline": "p", "stages": STAGES})
    )
    store.append_logs([ev.LogLine("r1", "Build", "Talk", 1, 1, 101.0, "stdout", "kept 7")])
    index_pending(store)
    top = indexed_up_to(store)
    store.close()
    again = Store(db)
    assert top > 0 and indexed_up_to(again) == top and pending_lines(again) == 0
    assert [h.text for h in search(again, "kept 7", index=False).hits] == ["kept 7"]
    again.close()


SCHEMA_2_RUNS = """
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_pipeline ON runs (pipeline, created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_branch ON runs (branch, created_at);
CREATE INDEX runs_unfinished ON runs (created_at) WHERE finished_at IS NULL;
"""


def run_indexes(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs'"
                " AND sql IS NOT NULL"
            )
        }
    finally:
        conn.close()


def schema_2_store(path: Path) -> None:
    """A store as schema 2 left it: its runs indexed by creation time alone."""
    store = Store(path)
    for number, pipeline, created in [
        (1, "p", 100.0),
        (2, "p", 100.0),
        (1, "q", 100.0),
        (3, "p", 90.0),
    ]:
        store.append(
            ev.Event(
                ev.RUN_CREATED,
                f"{pipeline}{number}",
                created,
                {"number": number, "pipeline": pipeline, "stages": STAGES},
            )
        )
    store.append(ev.Event(ev.RUN_STATUS, "p3", 95.0, {"status": ev.SUCCEEDED}))
    store.close()
    conn = sqlite3.connect(path)
    for name in run_indexes(path) - {"runs_by_commit", "runs_by_number"}:
        conn.execute(f"DROP INDEX {name}")
    conn.executescript(SCHEMA_2_RUNS)
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def test_schema_2_store_gets_the_runs_indexes_of_the_history_order(tmp_path: Path) -> None:
    db = tmp_path / "bakery.db"
    schema_2_store(db)
    assert set(SCHEMA_2_RUN_INDEXES) <= run_indexes(db)
    before = dump(db)

    store = Store(db)
    assert dump(db) == before  # not a row lost or changed
    assert store.json_quote("schema") == '"schema"'
    assert run_indexes(db) == {
        "runs_by_commit",
        "runs_by_number",
        "runs_newest",
        "runs_newest_of_pipeline",
        "runs_newest_of_status",
        "runs_newest_of_branch",
        "runs_newest_unfinished",
    }
    with store.transaction() as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        for where in (
            "",
            "WHERE pipeline = 'p'",
            "WHERE status = 'x'",
            "WHERE branch = 'x'",
            "WHERE finished_at IS NULL",
        ):
            plan = " / ".join(
                str(r[3])
                for r in conn.execute(
                    f"EXPLAIN QUERY PLAN SELECT id FROM runs {where}"  # noqa: S608 - test SQL
                    " ORDER BY created_at DESC, number DESC LIMIT 3"
                )
            )
            assert "runs_newest" in plan and "TEMP B-TREE" not in plan, (where, plan)
    assert version == ("3",)
    assert [r.id for r in store.runs()] == ["p2", "q1", "p1", "p3"]
    assert [r.id for r in store.runs(pipeline="p", limit=2)] == ["p2", "p1"]
    assert [r.id for r in store.runs(unfinished=True)] == ["p2", "q1", "p1"]
    store.close()
    migrated = run_indexes(db)
    Store(db).close()
    assert run_indexes(db) == migrated  # opened again: nothing to migrate
