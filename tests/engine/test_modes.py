"""Execution modes and transitions, with overlapping executions on one engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from engine import events as ev
from engine.core import Engine

pytestmark = pytest.mark.timeout(60)

BODY = """name: modes
execution_mode: {mode}
stages:
  - name: Source
    actions:
      - {{name: Checkout, category: source, outputs: [source]}}
  - name: Build
    actions:
      - {{name: Slow, category: build, run: "sleep 0.8"}}
  - name: Deploy
    actions:
      - {{name: Ship, category: deploy, run: "sleep 0.2"}}
"""


async def start_many(kit: Any, count: int, gap: float = 0.1) -> tuple[Engine, list[Any]]:
    engine = kit.engine
    runs = []
    for _ in range(count):
        runs.append(await kit.execution())
        await asyncio.sleep(gap)
    states = [await engine.wait(ex.run_id) for ex in runs]
    await engine.close()
    return engine, states


async def test_superseded_newest_wins_older_waiters_superseded(make_repo: Callable[..., Any], engine_kit: Any, until: Any) -> None:
    repo = make_repo(BODY.format(mode="superseded"))
    engine, states = await start_many(await engine_kit(repo), 4)
    statuses = [s.status for s in states]
    assert statuses[0] == ev.SUCCEEDED  # first one was never overtaken
    assert statuses[-1] == ev.SUCCEEDED  # the newest always goes through
    assert ev.SUPERSEDED in statuses
    for s in states:
        if s.status == ev.SUPERSEDED:
            # overtaken only between stages: nothing of it was left running
            assert all(a.status != ev.IN_PROGRESS for a in s.actions())
            assert "superseded by execution" in s.error["message"]
    # a stage never held two executions at once
    spans = sorted(
        (s.stage("Build").started_at, s.stage("Build").finished_at)
        for s in states
        if s.stage("Build").started_at
    )
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end


async def test_queued_runs_one_by_one_in_order(make_repo: Callable[..., Any], engine_kit: Any, until: Any) -> None:
    repo = make_repo(BODY.format(mode="queued"))
    engine, states = await start_many(await engine_kit(repo), 3)
    assert [s.status for s in states] == [ev.SUCCEEDED] * 3
    builds = [s.stage("Build") for s in states]
    for earlier, later in zip(builds, builds[1:], strict=False):
        assert later.started_at >= earlier.finished_at


async def test_parallel_runs_overlap(make_repo: Callable[..., Any], engine_kit: Any, until: Any) -> None:
    repo = make_repo(BODY.format(mode="parallel"))
    engine, states = await start_many(await engine_kit(repo), 3, gap=0.05)
    assert [s.status for s in states] == [ev.SUCCEEDED] * 3
    a, b = states[0].stage("Build"), states[1].stage("Build")
    assert b.started_at < a.finished_at


async def test_disabled_transition_holds_then_releases(make_repo: Callable[..., Any], engine_kit: Any, until: Any) -> None:
    repo = make_repo(BODY.format(mode="superseded"))
    kit = await engine_kit(repo)
    engine = kit.engine
    await engine.set_transition("modes", "Deploy", enabled=False, reason="freeze")
    ex = await kit.execution()
    await until(lambda: ex.state.waiting and ex.state.waiting["stage"] == "Deploy")
    assert ex.state.waiting["reason"] == "transition disabled: freeze"
    assert ex.state.stage("Deploy").status is None
    await engine.set_transition("modes", "Deploy", enabled=True)
    state = await engine.wait(ex.run_id)
    await engine.close()
    assert state.status == ev.SUCCEEDED
    changes = [e for e in engine.store.events(pipeline_level=True) if e.type == ev.TRANSITION_CHANGED]
    assert [c.data["enabled"] for c in changes] == [False, True]


async def test_stop_while_waiting_in_front_of_a_stage(make_repo: Callable[..., Any], engine_kit: Any, until: Any) -> None:
    repo = make_repo(BODY.format(mode="superseded"))
    kit = await engine_kit(repo)
    engine = kit.engine
    await engine.set_transition("modes", "Build", enabled=False, reason="hold")
    ex = await kit.execution()
    await until(lambda: ex.state.waiting)
    await engine.stop(ex.run_id, mode="wait", comment="not today")
    state = await engine.wait(ex.run_id)
    await engine.close()
    assert state.status == ev.STOPPED
    assert state.stage("Build").status is None
