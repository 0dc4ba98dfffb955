"""The event types Bakery records, and their JSON form.

Everything that happens to an execution is one of these events, appended to the store before
anyone else hears of it. The board, the CLI, replay and the tests all fold the same events
through `engine.state`, so a live run and a replayed one cannot disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

SCHEMA_VERSION: Final = 1

# Execution (run) level
RUN_CREATED: Final = "run.created"  # number, pipeline, version, mode, trigger, commit, variables, stages
RUN_STATUS: Final = "run.status"  # status, error?
RUN_OWNER: Final = "run.owner"  # pid, start, host: the bakery process driving the execution
STOP_REQUESTED: Final = "run.stop_requested"  # mode (wait|abandon), comment, by
STAGE_WAITING: Final = "stage.waiting"  # stage, reason (locked|transition_disabled)
STAGE_STATUS: Final = "stage.status"  # stage, status, attempt, retry_mode?
ACTION_STATUS: Final = "action.status"  # stage, action, status, attempt, error?, output_variables?, exit_code?, signal?
APPROVAL_REQUESTED: Final = "approval.requested"  # stage, action, token, message, link, expires_at, ...
APPROVAL_DECIDED: Final = "approval.decided"  # stage, action, token, result, by, comment
ARTIFACT_STORED: Final = "artifact.stored"  # stage, action, name, files, bytes

# Pipeline level (run_id is None)
PIPELINE_VERSION: Final = "pipeline.version"  # name, version, hash, path
TRANSITION_CHANGED: Final = "transition.changed"  # pipeline, stage, enabled, reason, by
TRIGGER_SKIPPED: Final = "trigger.skipped"  # pipeline, commit, branch, ref, reason
TRIGGER_ERROR: Final = "trigger.error"  # pipeline, message (e.g. invalid pipeline edit)

# Status words, exactly as CodePipeline spells them.
IN_PROGRESS: Final = "InProgress"
STOPPING: Final = "Stopping"
STOPPED: Final = "Stopped"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
SUPERSEDED: Final = "Superseded"
CANCELLED: Final = "Cancelled"
SKIPPED: Final = "Skipped"
ABANDONED: Final = "Abandoned"
APPROVED: Final = "Approved"
REJECTED: Final = "Rejected"

RUN_TERMINAL: Final = frozenset({STOPPED, SUCCEEDED, FAILED, SUPERSEDED, CANCELLED})
STAGE_TERMINAL: Final = frozenset({STOPPED, SUCCEEDED, FAILED, CANCELLED, SKIPPED})
ACTION_TERMINAL: Final = frozenset({SUCCEEDED, FAILED, ABANDONED})

# Error types (errorDetails.code in CodePipeline, plus local ones).
JOB_FAILED: Final = "JobFailed"
CONFIGURATION_ERROR: Final = "ConfigurationError"
PERMISSION_ERROR: Final = "PermissionError"
TIMED_OUT: Final = "TimedOut"
INTERRUPTED: Final = "Interrupted"


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded fact. `seq` is the store's global order; 0 until stored."""

    type: str
    run_id: str | None
    ts: float
    data: dict[str, Any] = field(default_factory=dict)
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "run_id": self.run_id,
            "ts": self.ts,
            "data": self.data,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Event:
        return cls(
            type=str(obj["type"]),
            run_id=obj.get("run_id"),
            ts=float(obj["ts"]),
            data=dict(obj.get("data") or {}),
            seq=int(obj.get("seq") or 0),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False)


class LogLine(NamedTuple):
    """One line of an action's output, already masked (a tuple: millions are made)."""

    run_id: str
    stage: str
    action: str
    attempt: int
    line_no: int  # 1-based, per action attempt
    ts: float
    stream: str  # stdout | stderr | system
    text: str
    raw: bytes | None = None


@dataclass(frozen=True, slots=True)
class LogBatch:
    """Lines published together, so observers redraw once per batch rather than per line."""

    run_id: str
    stage: str
    action: str
    attempt: int
    lines: tuple[LogLine, ...]
