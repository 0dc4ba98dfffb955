"""Schema 1 -> 2: the chunk index is rebuilt with the tokenizer that splits words at digits;
every stored row stays, and the logs are searchable again (numbers too) after the upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine import events as ev
from engine.search import index_pending, indexed_up_to, pending_lines, search
from engine.store import CHUNK_TOKENIZE, FTS_CURSOR_KEY, SCHEMA_VERSION, Store

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
    assert version == (str(SCHEMA_VERSION),) and SCHEMA_VERSION == 2
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
