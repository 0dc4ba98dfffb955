"""Prune old executions (never unfinished ones), and history over 10,000 stored executions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import cli
from engine import events as ev
from engine.prune import PruneError, prune, select
from engine.replay import query
from engine.search import index_pending, indexed_up_to, search
from engine.store import Store

DAY = 86400.0
NOW = 1_800_000_000.0
STAGES = [{"name": "B", "actions": [{"name": "A", "category": "build"}]}]


def add_run(
    store: Store,
    n: int,
    *,
    age_days: float,
    status: str | None = ev.SUCCEEDED,
    pipeline: str = "p",
    lines: int = 3,
    state_dir: Path | None = None,
) -> str:
    rid = f"{pipeline}-run{n}"
    t = NOW - age_days * DAY
    store.append(
        ev.Event(
            ev.RUN_CREATED,
            rid,
            t,
            {
                "number": n,
                "pipeline": pipeline,
                "stages": STAGES,
                "commit": {"id": f"c{n}", "branch": "main"},
            },
        )
    )
    store.append(ev.Event(ev.RUN_STATUS, rid, t + 1, {"status": ev.IN_PROGRESS}))
    store.append_logs(
        [
            ev.LogLine(rid, "B", "A", 1, i, t + 1 + i, "stdout", f"output {i} of run{n} {pipeline}")
            for i in range(1, lines + 1)
        ]
    )
    if status is not None:
        store.append(ev.Event(ev.RUN_STATUS, rid, t + 10, {"status": status}))
    if state_dir is not None:
        (state_dir / "runs" / rid / "work").mkdir(parents=True)
        (state_dir / "runs" / rid / "work" / "file.txt").write_text("x")
    return rid


def counts(store: Store, rid: str) -> tuple[int, int, int, int]:
    one = lambda sql: query(store, sql, (rid,))[0][0]  # noqa: E731
    return (
        one("SELECT COUNT(*) FROM runs WHERE id = ?"),
        one("SELECT COUNT(*) FROM events WHERE run_id = ?"),
        one("SELECT COUNT(*) FROM log_sources WHERE run_id = ?"),
        one("SELECT COUNT(*) FROM logs l JOIN log_sources s ON s.id = l.source WHERE s.run_id = ?"),
    )


def fts_consistent(store: Store) -> None:
    with store.transaction() as conn:  # raises if the index and `log_chunks` disagree
        conn.execute(
            "INSERT INTO log_chunks_fts (log_chunks_fts, rank) VALUES ('integrity-check', 1)"
        )


@pytest.fixture
def populated(tmp_path: Path) -> tuple[Store, Path, dict[int, str]]:
    state = tmp_path / "state"
    store = Store(state / "bakery.db")
    ids = {
        1: add_run(store, 1, age_days=40, state_dir=state),
        2: add_run(store, 2, age_days=30, status=None, state_dir=state),  # still running
        3: add_run(store, 3, age_days=20, status=ev.FAILED, state_dir=state),
        4: add_run(store, 4, age_days=10, state_dir=state),
        5: add_run(store, 5, age_days=1, state_dir=state),
    }
    index_pending(store)
    return store, state, ids


def test_keep_removes_everything_of_old_finished_executions(populated: Any) -> None:
    store, state, ids = populated
    report = prune(store, keep=2, state_dir=state)
    assert [r.number for r in report.runs] == [1, 3]  # #2 is unfinished: never removed
    assert (report.events, report.lines, report.dirs) == (6, 6, 2)
    for n in (1, 3):
        assert counts(store, ids[n]) == (0, 0, 0, 0)
        assert not (state / "runs" / ids[n]).exists()
    for n in (2, 4, 5):
        assert counts(store, ids[n])[0] == 1 and (state / "runs" / ids[n]).exists()
    assert search(store, "run1").total == 0 and search(store, "run4").total == 3
    fts_consistent(store)


def test_older_than_and_both_conditions(populated: Any) -> None:
    store, _state, _ids = populated
    assert [r.number for r in select(store, older_than_days=15, now=NOW)] == [1, 3]
    assert [r.number for r in select(store, older_than_days=15, keep=4, now=NOW)] == [1]
    assert [r.number for r in select(store, keep=0)] == [1, 3, 4, 5]
    report = prune(store, older_than_days=25, now=NOW, dry_run=True)
    assert report.dry_run and [r.number for r in report.runs] == [1]
    assert counts(store, report.runs[0].id)[0] == 1  # a dry run removes nothing
    with pytest.raises(PruneError):
        select(store)
    with pytest.raises(PruneError):
        select(store, keep=-1)


def test_keep_counts_per_pipeline(tmp_path: Path) -> None:
    store = Store(tmp_path / "bakery.db")
    for n in (1, 2, 3):
        add_run(store, n, age_days=10 - n, pipeline="web")
    add_run(store, 1, age_days=50, pipeline="api")
    assert [(r.pipeline, r.number) for r in select(store, keep=1)] == [("web", 1), ("web", 2)]


def test_newest_lines_removed_then_new_ones_still_indexed(tmp_path: Path) -> None:
    """Row ids of removed lines are reused: the index cursor must come back down."""
    store = Store(tmp_path / "bakery.db")
    add_run(store, 1, age_days=5, status=None)
    add_run(store, 2, age_days=4)
    index_pending(store)
    top = indexed_up_to(store)
    prune(store, keep=0)
    assert indexed_up_to(store) < top
    add_run(store, 3, age_days=1, lines=4)
    assert search(store, "run3").total == 4
    fts_consistent(store)


def test_prune_vacuum_and_cli(
    populated: Any, make_repo: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    store, state, ids = populated
    repo = make_repo()
    base = ["-C", str(repo.path), "--state-dir", str(state)]
    assert cli.main(["prune", *base]) == cli.EXIT_USAGE
    assert cli.main(["prune", "--keep", "3", "--dry-run", *base]) == 0
    out = capsys.readouterr().out
    assert "would remove #1 p" in out and "1 execution(s) would be removed" in out
    assert cli.main(["prune", "--keep", "1", "--vacuum", *base]) == 0
    out = capsys.readouterr().out
    assert "removed #3 p (Failed" in out and "removed #4 p" in out
    assert (
        "removed 3 execution(s): 9 events, 9 log lines, 3 run directories (database vacuumed)"
        in out
    )
    assert {r.number for r in Store(state / "bakery.db").runs()} == {2, 5}


# -- history at scale ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ten_thousand(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("big") / "state"
    store = Store(state / "bakery.db")
    with store.transaction() as conn:  # one transaction: 30,000 separate commits would dominate
        for n in range(1, 10_001):
            rid = f"run-{n:05d}"
            t = NOW + n * 60
            commit = {
                "id": f"{n:040x}",
                "branch": "main" if n % 3 else "dev",
                "message": f"change {n}\n\nbody",
            }
            for type_, ts, data in (
                (
                    ev.RUN_CREATED,
                    t,
                    {
                        "number": n,
                        "pipeline": "p",
                        "stages": STAGES,
                        "commit": commit,
                        "trigger": {"type": "CommitPushed"},
                    },
                ),
                (ev.RUN_STATUS, t + 1, {"status": ev.IN_PROGRESS}),
                (
                    ev.RUN_STATUS,
                    t + 30 + n % 5,
                    {"status": ev.FAILED if n % 7 == 0 else ev.SUCCEEDED},
                ),
            ):
                if not (
                    n == 10_000 and type_ == ev.RUN_STATUS and data["status"] != ev.IN_PROGRESS
                ):
                    store._append(conn, ev.Event(type_, rid, ts, data))
    store.close()
    return state


def test_history_of_ten_thousand_executions_uses_indexes(ten_thousand: Path) -> None:
    store = Store(ten_thousand / "bakery.db")
    runs = store.runs(status=ev.FAILED, branch="dev", limit=5)
    assert [r.number for r in runs] == [9996, 9975, 9954, 9933, 9912]
    assert [r.number for r in store.runs(unfinished=True)] == [10_000]
    plans = {
        "status": "SELECT id FROM runs WHERE status = 'Failed' ORDER BY created_at DESC LIMIT 50",
        "branch": "SELECT id FROM runs WHERE branch = 'dev' ORDER BY created_at DESC LIMIT 50",
        "pipeline": "SELECT id FROM runs WHERE pipeline = 'p' ORDER BY created_at DESC LIMIT 50",
        "newest": "SELECT id FROM runs ORDER BY created_at DESC LIMIT 50",
        "unfinished": "SELECT id FROM runs WHERE finished_at IS NULL ORDER BY created_at DESC",
        "number": "SELECT id FROM runs WHERE number = 42",
    }
    for name, sql in plans.items():
        plan = " ".join(str(row[-1]) for row in query(store, "EXPLAIN QUERY PLAN " + sql))
        assert "USING" in plan and "INDEX" in plan, (name, plan)
        assert "SCAN runs" not in plan or "USING INDEX" in plan, (name, plan)


def test_cli_history_over_ten_thousand(
    ten_thousand: Path, make_repo: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo()
    base = ["-C", str(repo.path), "--state-dir", str(ten_thousand)]
    started = time.perf_counter()
    assert (
        cli.main(["history", "--status", "Failed", "--branch", "dev", "--limit", "3", *base]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["9996", "9975", "9954"]
    assert "change 9996" in lines[1] and "body" not in lines[1]
    assert cli.main(["history", "--json", "--limit", "2", *base]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["number"] for d in data] == [10_000, 9999] and data[0]["status"] == ev.IN_PROGRESS
    print(
        f"history over 10,000 executions: {time.perf_counter() - started:.3f}s"
    )  # a figure, not an assert
