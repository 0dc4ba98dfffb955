"""The reducer: fold events into the state of an execution.

One function decides what an execution looks like after any prefix of its events. The
engine, the board, the CLI and replay all call it, which is why a replay at an instant shows
exactly what the live board showed then.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from datetime import date
from functools import lru_cache
from typing import Any

from engine import events as ev
from engine.record import factory, record


def iso(ts: float | None) -> str | None:
    """ISO-8601 in UTC with milliseconds, the form every JSON output uses.

    The same text as `datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")`
    (microseconds rounded half to even, then cut to milliseconds), built without a datetime:
    a history of 10,000 executions formats 30,000 of them.
    """
    if ts is None:
        return None
    frac, whole = math.modf(ts)
    micro = round(frac * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    elif micro < 0:
        whole, micro = whole - 1, micro + 1_000_000
    days, seconds = divmod(int(whole), 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_day(days)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{micro // 1000:03d}Z"


@lru_cache(maxsize=4096)
def _day(days: int) -> str:
    return date.fromordinal(_EPOCH_ORDINAL + days).isoformat()


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@record
class ApprovalState:
    token: str
    message: str = ""
    link: str = ""
    requested_at: float = 0.0
    expires_at: float | None = None
    approvers: list[str] = factory(list)
    result: str | None = None
    by: str | None = None
    comment: str = ""
    decided_at: float | None = None


@record
class ActionState:
    name: str
    category: str
    run_order: int
    stage: str = ""
    status: str | None = None
    attempt: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: dict[str, str] | None = None
    output_variables: dict[str, str] = factory(dict)
    exit_code: int | None = None
    signal: str | None = None
    approval: ApprovalState | None = None
    artifacts: list[dict[str, Any]] = factory(list)

    def duration(self, now: float) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or now) - self.started_at

    def to_json(self) -> dict[str, Any]:
        approval = None
        if self.approval is not None:
            a = self.approval
            approval = {
                "result": a.result,
                "by": a.by,
                "comment": a.comment,
                "message": a.message,
                "link": a.link,
                "requested_at": iso(a.requested_at),
                "decided_at": iso(a.decided_at),
                "expires_at": iso(a.expires_at),
            }
        return {
            "name": self.name,
            "category": self.category,
            "run_order": self.run_order,
            "status": self.status,
            "attempt": self.attempt,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration": _round(self.duration(self.finished_at or 0.0))
            if self.finished_at
            else None,
            "error": self.error,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "output_variables": dict(self.output_variables),
            "approval": approval,
            "artifacts": list(self.artifacts),
        }


@record
class StageState:
    name: str
    actions: list[ActionState]
    status: str | None = None
    attempt: int = 0
    started_at: float | None = None
    finished_at: float | None = None

    def action(self, name: str) -> ActionState:
        for a in self.actions:
            if a.name == name:
                return a
        raise KeyError(name)

    def groups(self) -> list[tuple[int, list[ActionState]]]:
        orders = sorted({a.run_order for a in self.actions})
        return [(o, [a for a in self.actions if a.run_order == o]) for o in orders]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "attempt": self.attempt,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "actions": [a.to_json() for a in self.actions],
        }


@record
class RunState:
    id: str
    number: int
    pipeline: str
    pipeline_version: int
    execution_mode: str
    trigger: dict[str, Any]
    commit: dict[str, Any]
    variables: dict[str, str]
    stages: list[StageState]
    created_at: float
    status: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: dict[str, str] | None = None
    stop: dict[str, Any] | None = None
    waiting: dict[str, Any] | None = None
    owner: dict[str, Any] | None = None
    last_seq: int = 0
    last_ts: float = 0.0

    def stage(self, name: str) -> StageState:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def action(self, stage: str, action: str) -> ActionState:
        return self.stage(stage).action(action)

    def actions(self) -> Iterable[ActionState]:
        for s in self.stages:
            yield from s.actions

    def pending_approvals(self) -> list[ActionState]:
        return [
            a
            for a in self.actions()
            if a.approval is not None and a.approval.result is None and a.status == ev.IN_PROGRESS
        ]

    @property
    def finished(self) -> bool:
        return self.status in ev.RUN_TERMINAL

    @property
    def waits_only_for_approvals(self) -> bool:
        """Its only running actions are approvals waiting for a person: nothing to kill,
        and a later bakery process can resume it where it stands."""
        running = [a for a in self.actions() if a.status == ev.IN_PROGRESS]
        return bool(running) and all(
            a.category == "approval" and a.approval is not None for a in running
        )

    def duration(self, now: float) -> float | None:
        start = self.started_at or self.created_at
        return (self.finished_at or now) - start

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "status": self.status,
            "pipeline": self.pipeline,
            "pipeline_version": self.pipeline_version,
            "execution_mode": self.execution_mode,
            "trigger": dict(self.trigger),
            "commit": dict(self.commit),
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration": _round(self.finished_at - (self.started_at or self.created_at))
            if self.finished_at
            else None,
            "variables": dict(self.variables),
            "error": self.error,
            "stop": self.stop,
            "waiting": self.waiting,
            "stages": [s.to_json() for s in self.stages],
        }

    def snapshot(self) -> RunState:
        return copy.deepcopy(self)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def new_run(event: ev.Event) -> RunState:
    """The state right after `run.created`: every stage and action known, none started."""
    d = event.data
    stages = [
        StageState(
            name=s["name"],
            actions=[
                ActionState(
                    name=a["name"],
                    category=a["category"],
                    run_order=int(a.get("run_order", 1)),
                    stage=s["name"],
                )
                for a in s["actions"]
            ],
        )
        for s in d["stages"]
    ]
    return RunState(
        id=str(event.run_id),
        number=int(d["number"]),
        pipeline=d["pipeline"],
        pipeline_version=int(d.get("pipeline_version", 1)),
        execution_mode=d.get("execution_mode", "superseded"),
        trigger=dict(d.get("trigger") or {}),
        commit=dict(d.get("commit") or {}),
        variables=dict(d.get("variables") or {}),
        stages=stages,
        created_at=event.ts,
        owner=d.get("owner"),
        last_seq=event.seq,
        last_ts=event.ts,
    )


def apply(state: RunState, event: ev.Event) -> RunState:
    """Apply one event to `state` in place and return it. Unknown types are ignored."""
    d = event.data
    t = event.type
    state.last_seq = event.seq
    state.last_ts = event.ts
    if t == ev.RUN_STATUS:
        status = d["status"]
        state.status = status
        if status == ev.IN_PROGRESS and state.started_at is None:
            state.started_at = event.ts
        if status in ev.RUN_TERMINAL:
            state.finished_at = event.ts
            state.waiting = None
        elif status == ev.IN_PROGRESS:
            state.finished_at = None
        if d.get("error"):
            state.error = dict(d["error"])
        elif status == ev.IN_PROGRESS:
            state.error = None
    elif t == ev.RUN_OWNER:
        state.owner = dict(d)
    elif t == ev.STOP_REQUESTED:
        state.stop = {
            "mode": d.get("mode", "wait"),
            "comment": d.get("comment", ""),
            "by": d.get("by"),
            "at": iso(event.ts),
        }
    elif t == ev.STAGE_WAITING:
        state.waiting = {"stage": d["stage"], "reason": d.get("reason", ""), "since": event.ts}
    elif t == ev.STAGE_STATUS:
        stage = state.stage(d["stage"])
        status = d["status"]
        stage.status = status
        if status == ev.IN_PROGRESS:
            stage.started_at = event.ts
            stage.finished_at = None
            stage.attempt = int(d.get("attempt", stage.attempt + 1))
            state.waiting = None
            for name in d.get("reset", ()):
                a = stage.action(name)
                a.status = None
                a.error = None
                a.started_at = a.finished_at = None
                a.exit_code = None
                a.signal = None
                a.approval = None
                a.output_variables = {}
        elif status in ev.STAGE_TERMINAL:
            stage.finished_at = event.ts
    elif t == ev.ACTION_STATUS:
        action = state.action(d["stage"], d["action"])
        status = d["status"]
        action.status = status
        if status == ev.IN_PROGRESS:
            action.started_at = event.ts
            action.finished_at = None
            action.error = None
            action.attempt = int(d.get("attempt", action.attempt + 1))
        else:
            action.finished_at = event.ts
            if action.started_at is None:
                action.started_at = event.ts
        if d.get("error"):
            action.error = dict(d["error"])
        if "output_variables" in d:
            action.output_variables = dict(d["output_variables"])
        if "exit_code" in d:
            action.exit_code = d["exit_code"]
        if "signal" in d:
            action.signal = d["signal"]
    elif t == ev.APPROVAL_REQUESTED:
        action = state.action(d["stage"], d["action"])
        action.approval = ApprovalState(
            token=d["token"],
            message=d.get("message", ""),
            link=d.get("link", ""),
            requested_at=event.ts,
            expires_at=d.get("expires_at"),
            approvers=list(d.get("approvers", [])),
        )
    elif t == ev.APPROVAL_DECIDED:
        action = state.action(d["stage"], d["action"])
        if action.approval is not None and action.approval.token == d.get("token"):
            action.approval.result = d["result"]
            action.approval.by = d.get("by")
            action.approval.comment = d.get("comment", "")
            action.approval.decided_at = event.ts
    elif t == ev.ARTIFACT_STORED:
        action = state.action(d["stage"], d["action"])
        action.artifacts.append(
            {"name": d["name"], "files": d.get("files", 0), "bytes": d.get("bytes", 0)}
        )
    return state


def fold(events: Iterable[ev.Event]) -> RunState | None:
    """The state after all `events` of one execution (None before its `run.created`)."""
    state: RunState | None = None
    for event in events:
        if event.type == ev.RUN_CREATED:
            state = new_run(event)
        elif state is not None:
            apply(state, event)
    return state


@record
class PipelineState:
    """Pipeline-wide facts that outlive one execution: versions and disabled transitions."""

    name: str
    version: int = 0
    hash: str = ""
    disabled: dict[str, dict[str, Any]] = factory(dict)  # stage -> reason, by, at

    def apply(self, event: ev.Event) -> None:
        d = event.data
        if d.get("pipeline", d.get("name")) != self.name:
            return
        if event.type == ev.PIPELINE_VERSION:
            self.version = int(d["version"])
            self.hash = d.get("hash", "")
        elif event.type == ev.TRANSITION_CHANGED:
            if d.get("enabled"):
                self.disabled.pop(d["stage"], None)
            else:
                self.disabled[d["stage"]] = {
                    "reason": d.get("reason", ""),
                    "by": d.get("by"),
                    "at": event.ts,
                }
