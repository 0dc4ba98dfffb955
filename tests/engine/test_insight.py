"""Insight: durations over time, flaky actions and the critical path, from stored events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine import events as ev
from engine.insight import action_trends, critical_path, flaky_actions
from engine.store import Store

T0 = 1_700_000_000.0
STAGES = [
    {"name": "Build", "actions": [{"name": "Compile", "category": "build"}]},
    {
        "name": "Test",
        "actions": [
            {"name": "Unit", "category": "test", "run_order": 1},
            {"name": "Lint", "category": "test", "run_order": 1},
            {"name": "Report", "category": "test", "run_order": 2},
        ],
    },
]


class Runs:
    """Writes executions event by event with chosen times (seconds after T0 + 1000*n)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, n: int, commit: str, version: int = 1) -> str:
        rid = f"run{n}"
        self.t0 = T0 + 1000 * n
        self.rid = rid
        self.store.append(
            ev.Event(
                ev.RUN_CREATED,
                rid,
                self.t0,
                {
                    "number": n,
                    "pipeline": "p",
                    "pipeline_version": version,
                    "stages": STAGES,
                    "commit": {"id": commit, "branch": "main", "message": f"commit {commit}"},
                },
            )
        )
        return rid

    def at(self, t: float, type_: str, **data: Any) -> None:
        self.store.append(ev.Event(type_, self.rid, self.t0 + t, data))

    def action(
        self, stage: str, action: str, start: float, end: float, status: str, attempt: int = 1
    ) -> None:
        self.at(
            start,
            ev.ACTION_STATUS,
            stage=stage,
            action=action,
            status=ev.IN_PROGRESS,
            attempt=attempt,
        )
        self.at(end, ev.ACTION_STATUS, stage=stage, action=action, status=status, attempt=attempt)

    def simple(self, n: int, commit: str, unit: str = ev.SUCCEEDED, unit_time: float = 2.0) -> str:
        rid = self.create(n, commit)
        self.at(0.0, ev.RUN_STATUS, status=ev.IN_PROGRESS)
        self.at(0.0, ev.STAGE_STATUS, stage="Test", status=ev.IN_PROGRESS, attempt=1)
        self.action("Test", "Unit", 0.1, 0.1 + unit_time, unit)
        self.at(0.2 + unit_time, ev.STAGE_STATUS, stage="Test", status=unit)
        self.at(0.3 + unit_time, ev.RUN_STATUS, status=unit)
        return rid


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "bakery.db")


def test_critical_path_takes_the_longest_of_each_group_and_the_waits(store: Store) -> None:
    w = Runs(store)
    rid = w.create(1, "c1")
    w.at(0.0, ev.RUN_STATUS, status=ev.IN_PROGRESS)
    w.at(0.0, ev.STAGE_STATUS, stage="Build", status=ev.IN_PROGRESS, attempt=1)
    w.action("Build", "Compile", 0.0, 1.0, ev.SUCCEEDED)
    w.at(1.0, ev.STAGE_STATUS, stage="Build", status=ev.SUCCEEDED)
    w.at(1.2, ev.STAGE_WAITING, stage="Test", reason="locked")
    w.at(2.0, ev.STAGE_STATUS, stage="Test", status=ev.IN_PROGRESS, attempt=1)
    w.action("Test", "Unit", 2.0, 5.0, ev.SUCCEEDED)
    w.action("Test", "Lint", 2.0, 3.0, ev.SUCCEEDED)
    w.action("Test", "Report", 5.0, 6.0, ev.SUCCEEDED)
    w.at(6.0, ev.STAGE_STATUS, stage="Test", status=ev.SUCCEEDED)
    w.at(6.0, ev.RUN_STATUS, status=ev.SUCCEEDED)
    state = store.load_run(rid)
    path = critical_path(state, store.events(rid))
    assert [(s.kind, s.stage, s.action, s.reason) for s in path.steps] == [
        ("action", "Build", "Compile", ""),
        ("wait", "Test", None, "locked"),
        ("action", "Test", "Unit", ""),
        ("action", "Test", "Report", ""),
    ]
    assert [round(s.duration, 6) for s in path.steps] == [1.0, 1.0, 3.0, 1.0]
    assert path.total == pytest.approx(6.0) and path.length == pytest.approx(6.0)
    assert path.to_json()["steps"][1]["kind"] == "wait"


def test_critical_path_of_a_running_execution_counts_to_the_last_event(store: Store) -> None:
    w = Runs(store)
    rid = w.create(1, "c1")
    w.at(0.0, ev.RUN_STATUS, status=ev.IN_PROGRESS)
    w.at(0.0, ev.STAGE_STATUS, stage="Build", status=ev.IN_PROGRESS, attempt=1)
    w.at(0.5, ev.ACTION_STATUS, stage="Build", action="Compile", status=ev.IN_PROGRESS, attempt=1)
    w.at(4.0, ev.STAGE_WAITING, stage="Test", reason="locked")
    path = critical_path(store.load_run(rid))
    assert [(s.action, s.duration) for s in path.steps] == [("Compile", 3.5)]
    nothing_started = store.load_run(Runs(store).create(9, "c9"))
    assert critical_path(nothing_started).steps == []


def test_flaky_actions_failed_then_passed_on_the_same_commit(store: Store) -> None:
    w = Runs(store)
    w.simple(1, "aaa", unit=ev.FAILED)
    w.simple(2, "aaa", unit=ev.SUCCEEDED)  # same commit, passes: flaky
    w.simple(3, "bbb", unit=ev.FAILED)
    w.simple(4, "ccc", unit=ev.SUCCEEDED)  # another commit: a fix, not flakiness
    w.create(5, "ddd")  # a retry inside one execution
    w.at(0.0, ev.RUN_STATUS, status=ev.IN_PROGRESS)
    w.action("Test", "Lint", 0.1, 0.2, ev.FAILED, attempt=1)
    w.action("Test", "Lint", 5.0, 5.2, ev.SUCCEEDED, attempt=2)
    w.at(6.0, ev.RUN_STATUS, status=ev.SUCCEEDED)
    w.create(6, "eee", version=1)  # failed on v1 ...
    w.action("Test", "Report", 0.1, 0.2, ev.FAILED)
    w.create(7, "eee", version=2)  # ... passed on a changed pipeline: not flaky
    w.action("Test", "Report", 0.1, 0.2, ev.SUCCEEDED)
    found = {(f.stage, f.action): f for f in flaky_actions(store)}
    assert set(found) == {("Test", "Unit"), ("Test", "Lint")}
    unit = found[("Test", "Unit")]
    assert (unit.commits, unit.failed_in, unit.passed_in) == (["aaa"], [1], [2])
    lint = found[("Test", "Lint")]
    assert (lint.commits, lint.failed_in, lint.passed_in) == (["ddd"], [5], [5])
    assert flaky_actions(store, last=2) == []  # only the newest two executions looked at
    assert flaky_actions(store, pipeline="other") == []


def test_action_trends_for_sparklines(store: Store) -> None:
    w = Runs(store)
    for n, seconds in enumerate([1.0, 1.5, 4.0, 2.0], start=1):
        w.simple(n, f"c{n}", unit_time=seconds)
    trends = {(t.stage, t.action): t for t in action_trends(store, "p", last=3)}
    unit = trends[("Test", "Unit")]
    assert [p.number for p in unit.points] == [2, 3, 4]  # oldest first
    assert [round(d, 6) for d in unit.durations] == [1.5, 4.0, 2.0]
    lint = trends[("Test", "Lint")]
    assert lint.durations == [None, None, None] and lint.points[0].status is None
    assert list(trends)[:2] == [("Build", "Compile"), ("Test", "Unit")]  # pipeline order
    assert unit.to_json()["points"][1] == {"number": 3, "status": ev.SUCCEEDED, "duration": 4.0}
