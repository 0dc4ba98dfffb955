"""What the history says: action durations over time, flaky actions, a run's critical path.

Everything here is derived from the event log (folded per execution), so it needs no table
of its own and agrees with what `show` and the board display.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from engine import events as ev
from engine.replay import query
from engine.state import RunState
from engine.store import Store


# -- durations over time ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Point:
    number: int
    run_id: str
    status: str | None  # None: the action did not run in that execution
    duration: float | None


@dataclass(slots=True)
class ActionTrend:
    """One action's last executions, oldest first: the data of a sparkline."""

    stage: str
    action: str
    points: list[Point] = field(default_factory=list)

    @property
    def durations(self) -> list[float | None]:
        return [p.duration for p in self.points]

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "action": self.action,
            "points": [
                {
                    "number": p.number,
                    "status": p.status,
                    "duration": None if p.duration is None else round(p.duration, 3),
                }
                for p in self.points
            ],
        }


def _recent_runs(store: Store, pipeline: str | None, last: int) -> list[RunState]:
    summaries = store.runs(pipeline=pipeline, limit=last)
    states = [store.load_run(s.id) for s in reversed(summaries)]
    return [s for s in states if s is not None]


def action_trends(
    store: Store, pipeline: str | None = None, *, last: int = 20
) -> list[ActionTrend]:
    """Durations of each action in the last `last` executions (finished actions only)."""
    runs = _recent_runs(store, pipeline, last)
    trends: dict[tuple[str, str], ActionTrend] = {}
    for state in runs:  # the newest run's order wins below
        for a in state.actions():
            trends.setdefault((a.stage, a.name), ActionTrend(a.stage, a.name))
    order = [(a.stage, a.name) for a in runs[-1].actions()] if runs else []
    keys = order + [k for k in trends if k not in order]
    for state in runs:
        for key in keys:
            try:
                a = state.action(*key)
            except KeyError:
                trends[key].points.append(Point(state.number, state.id, None, None))
                continue
            done = a.finished_at is not None and a.started_at is not None
            trends[key].points.append(
                Point(
                    state.number,
                    state.id,
                    a.status,
                    a.finished_at - a.started_at if done else None,  # type: ignore[operator]
                )
            )
    return [trends[k] for k in keys]


# -- flaky actions ---------------------------------------------------------------------------
@dataclass(slots=True)
class Flaky:
    """An action that failed and then passed on the same commit (and pipeline version)."""

    stage: str
    action: str
    commits: list[str] = field(default_factory=list)
    failed_in: list[int] = field(default_factory=list)  # execution numbers
    passed_in: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "action": self.action,
            "commits": list(self.commits),
            "failed_in": list(self.failed_in),
            "passed_in": list(self.passed_in),
        }


def flaky_actions(store: Store, pipeline: str | None = None, *, last: int = 200) -> list[Flaky]:
    """Actions whose outcome flipped from Failed to Succeeded with nothing changed.

    Both a retry inside one execution and a new execution of the same commit count. Only
    `action.status` events are read (one indexed query), not whole executions.
    """
    summaries = store.runs(pipeline=pipeline, limit=last)
    if not summaries:
        return []
    by_id = {s.id: s for s in summaries}
    marks = ",".join("?" * len(by_id))
    rows = query(
        store,
        f"SELECT run_id, type, data FROM events WHERE run_id IN ({marks})"
        " AND type IN (?, ?) ORDER BY seq",
        [*by_id, ev.RUN_CREATED, ev.ACTION_STATUS],
    )
    version: dict[str, Any] = {}
    # (pipeline, version, commit, stage, action) -> outcomes in time order
    seen: dict[tuple[Any, ...], list[tuple[str, int]]] = defaultdict(list)
    for run_id, type_, data in rows:
        d = json.loads(data)
        if type_ == ev.RUN_CREATED:
            version[run_id] = d.get("pipeline_version")
            continue
        status = d.get("status")
        summary = by_id[run_id]
        if status not in (ev.FAILED, ev.SUCCEEDED) or not summary.commit_id:
            continue
        key = (summary.pipeline, version.get(run_id), summary.commit_id, d["stage"], d["action"])
        seen[key].append((status, summary.number))
    found: dict[tuple[str, str], Flaky] = {}
    for (_p, _v, commit, stage, action), outcomes in seen.items():
        first = next((i for i, (s, _) in enumerate(outcomes) if s == ev.FAILED), None)
        if first is None:
            continue
        passed = [n for s, n in outcomes[first + 1 :] if s == ev.SUCCEEDED]
        if not passed:
            continue
        failed = [n for s, n in outcomes[first:] if s == ev.FAILED]
        flaky = found.setdefault((stage, action), Flaky(stage, action))
        flaky.commits.append(commit)
        flaky.failed_in.extend(n for n in dict.fromkeys(failed) if n not in flaky.failed_in)
        flaky.passed_in.extend(n for n in dict.fromkeys(passed) if n not in flaky.passed_in)
    return sorted(found.values(), key=lambda f: (-len(f.commits), f.stage, f.action))


# -- critical path ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Step:
    """A piece of the critical path: an action, or a wait between stages."""

    kind: str  # "action" | "wait"
    stage: str
    action: str | None
    start: float
    end: float
    reason: str = ""  # for waits: locked, transition_disabled, ... when recorded

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "stage": self.stage,
            "action": self.action,
            "duration": round(self.duration, 3),
            "reason": self.reason,
        }


@dataclass(slots=True)
class CriticalPath:
    steps: list[Step] = field(default_factory=list)
    total: float = 0.0  # the execution's duration

    @property
    def length(self) -> float:
        return sum(s.duration for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "total": round(self.total, 3),
            "length": round(self.length, 3),
            "steps": [s.to_json() for s in self.steps],
        }


def critical_path(
    state: RunState, events: list[ev.Event] | None = None, *, min_wait: float = 0.05
) -> CriticalPath:
    """The chain that decided the execution's length.

    Per stage, per run_order group, the action that finished last (it held the group up);
    between stages, the wait before the next stage began (reason from `stage.waiting`
    events when given). Unfinished actions count up to the state's last event.
    """
    reasons: dict[str, str] = {}
    for e in events or ():
        if e.type == ev.STAGE_WAITING:
            reasons[e.data.get("stage", "")] = str(e.data.get("reason", ""))
    now = state.last_ts
    start = state.started_at or state.created_at
    path = CriticalPath(total=(state.finished_at or now) - start)
    cursor = start
    for stage in state.stages:
        if stage.started_at is None:
            continue
        if stage.started_at - cursor >= min_wait:
            path.steps.append(
                Step(
                    "wait", stage.name, None, cursor, stage.started_at, reasons.get(stage.name, "")
                )
            )
        cursor = stage.started_at
        for _order, group in stage.groups():
            ran = [a for a in group if a.started_at is not None]
            if not ran:
                continue
            longest = max(ran, key=lambda a: ((a.finished_at or now), a.duration(now) or 0.0))
            assert longest.started_at is not None
            path.steps.append(
                Step(
                    "action",
                    stage.name,
                    longest.name,
                    longest.started_at,
                    longest.finished_at or now,
                )
            )
            cursor = longest.finished_at or now
        if stage.finished_at is not None:
            cursor = max(cursor, stage.finished_at)
    return path
