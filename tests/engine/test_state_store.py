"""The reducer and the store, without running anything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine import events as ev
from engine.state import PipelineState, fold
from engine.store import Store, StoreError, open_store

CREATED = {
    "number": 0,
    "pipeline": "p",
    "pipeline_version": 2,
    "execution_mode": "superseded",
    "trigger": {"type": "Webhook"},
    "commit": {"id": "abc123", "branch": "main", "message": "Add cake\n\nbody", "author": "Ada"},
    "variables": {"X": "1"},
    "stages": [
        {"name": "Source", "actions": [{"name": "Checkout", "category": "source", "run_order": 1}]},
        {
            "name": "Build",
            "actions": [
                {"name": "A", "category": "build", "run_order": 1},
                {"name": "B", "category": "test", "run_order": 2},
            ],
        },
    ],
}


def record(store: Store, run_id: str = "r1") -> list[ev.Event]:
    events = [store.create_run(ev.Event(ev.RUN_CREATED, run_id, 100.0, CREATED))]
    for ts, type_, data in [
        (101.0, ev.RUN_STATUS, {"status": ev.IN_PROGRESS}),
        (101.5, ev.STAGE_STATUS, {"stage": "Build", "status": ev.IN_PROGRESS, "attempt": 1}),
        (102.0, ev.ACTION_STATUS, {"stage": "Build", "action": "A", "status": ev.IN_PROGRESS, "attempt": 1}),
        (
            104.0,
            ev.ACTION_STATUS,
            {
                "stage": "Build",
                "action": "A",
                "status": ev.FAILED,
                "error": {"type": ev.JOB_FAILED, "message": "exit code 2"},
                "exit_code": 2,
            },
        ),
        (104.1, ev.STAGE_STATUS, {"stage": "Build", "status": ev.FAILED}),
        (104.2, ev.RUN_STATUS, {"status": ev.FAILED, "error": {"type": ev.JOB_FAILED, "message": "x"}}),
    ]:
        events.append(store.append(ev.Event(type_, run_id, ts, data)))
    return events


def test_fold_builds_the_whole_run(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    events = record(store)
    state = fold(events)
    assert state is not None
    assert state.number == 1 and state.status == ev.FAILED
    assert state.started_at == 101.0 and state.finished_at == 104.2
    a = state.action("Build", "A")
    assert a.status == ev.FAILED and a.exit_code == 2 and a.duration(0) == 2.0
    assert state.action("Build", "B").status is None
    doc = state.to_json()
    assert doc["stages"][1]["actions"][0]["error"] == {"type": "JobFailed", "message": "exit code 2"}
    assert doc["started_at"] == "1970-01-01T00:01:41.000Z"
    # a prefix of the events gives the state at that moment
    partial = fold(events[:4])
    assert partial is not None and partial.action("Build", "A").status == ev.IN_PROGRESS
    assert partial.status == ev.IN_PROGRESS


def test_projection_numbers_and_resolution(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    record(store, "20260101-aaaa")
    record(store, "20260101-bbbb")
    runs = store.runs()
    assert [r.number for r in runs] == [2, 1]
    assert runs[0].status == ev.FAILED and runs[0].subject == "Add cake"
    assert store.resolve_run("2") == "20260101-bbbb"
    assert store.resolve_run("#1") == "20260101-aaaa"
    assert store.resolve_run("20260101-b") == "20260101-bbbb"
    with pytest.raises(StoreError, match="ambiguous"):
        store.resolve_run("20260101")
    with pytest.raises(StoreError, match="no execution"):
        store.resolve_run("99")
    assert store.runs(status=ev.SUCCEEDED) == []


def test_logs_keep_raw_bytes_and_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    lines = [
        ev.LogLine("r", "S", "A", 1, 1, 1.0, "stdout", "hello", None),
        ev.LogLine("r", "S", "A", 1, 2, 2.0, "stderr", "bad \ufffd", b"bad \xff\x00"),
        ev.LogLine("r", "S", "B", 1, 1, 1.5, "system", "$ true", None),
    ]
    store.append_logs(lines)
    got = store.logs("r", "S", "A")
    assert [(line.line_no, line.stream, line.text, line.raw) for line in got] == [
        (1, "stdout", "hello", None),
        (2, "stderr", "bad \ufffd", b"bad \xff\x00"),
    ]
    assert [line.action for line in store.logs("r", until_ts=1.5)] == ["A", "B"]


def test_commands_are_taken_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    first = store.post_command("r1", "approve", {"stage": "S"})
    store.post_command("r2", "stop", {})
    taken = store.take_commands(["r1"])
    assert [c.id for c in taken] == [first] and taken[0].payload == {"stage": "S"}
    assert store.take_commands(["r1"]) == []
    store.finish_command(first, "ok: done")
    assert store.command_result(first) == (True, "ok: done")
    assert [c.kind for c in store.take_commands(["r1", "r2"])] == ["stop"]


def test_pipeline_versions_bump_only_on_change(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    assert store.register_pipeline("p", "h1", {"a": 1}, "bakery.yaml") == 1
    assert store.register_pipeline("p", "h1", {"a": 1}, "bakery.yaml") == 1
    assert store.register_pipeline("p", "h2", {"a": 2}, "bakery.yaml") == 2
    assert store.pipeline_definition("p", 1) == {"a": 1}
    state = PipelineState("p")
    for event in store.events(pipeline_level=True):
        state.apply(event)
    assert state.version == 2


def test_newer_schema_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "bakery.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer Bakery"):
        open_store(tmp_path)
    assert path.read_bytes() == before


def test_damaged_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "bakery.db"
    path.write_bytes(b"this is not a database" * 100)
    store, notice = open_store(tmp_path)
    assert notice is not None and "moved to" in notice
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("bakery.db.damaged-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert store.runs() == []
