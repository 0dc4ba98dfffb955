"""The event types Bakery records, and their JSON form.

Everything that happens to an execution is one of these events, appended to the store before
anyone else hears of it. The board, the CLI, replay and the tests all fold the same events
through `engine.state`, so a live run and a replayed one cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Final, NamedTuple

from engine.record import factory, record

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


@record(frozen=True)
class Event:
    """One recorded fact. `seq` is the store's global order; 0 until stored."""

    type: str
    run_id: str | None
    ts: float
    data: dict[str, Any] = factory(dict)
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


class LogChunk(NamedTuple):
    """Consecutive lines of one action attempt read together: one stream, one read time.

    `text` is the lines joined by "\n" (a chunk of one line holds its text verbatim, even
    with a "\n" in it); `raw` is only ever set on a chunk of one line. This is how lines are
    buffered, published and stored: one object per read of a pipe, not one per line.
    """

    run_id: str
    stage: str
    action: str
    attempt: int
    first_line: int  # 1-based, per action attempt
    count: int
    ts: float
    stream: str  # stdout | stderr | system
    text: str
    raw: bytes | None = None


def chunk_texts(chunk: LogChunk) -> list[str]:
    """The texts of a chunk's lines."""
    return [chunk.text] if chunk.count == 1 else chunk.text.split("\n")


def chunk_lines(chunk: LogChunk) -> list[LogLine]:
    """A chunk as LogLines (for observers that want one object per line)."""
    run_id, stage, action, attempt, first, _count, ts, stream, _text, raw = chunk
    new = tuple.__new__
    return [
        new(LogLine, (run_id, stage, action, attempt, n, ts, stream, text, raw))
        for n, text in enumerate(chunk_texts(chunk), first)
    ]


class ChunkLines(Sequence[LogLine]):
    """The lines of some chunks as a read-only sequence, expanded on first use only."""

    __slots__ = ("chunks", "_len", "_lines")

    def __init__(self, chunks: Sequence[LogChunk]) -> None:
        self.chunks = tuple(chunks)
        self._len = sum(c.count for c in self.chunks)
        self._lines: tuple[LogLine, ...] | None = None

    def _all(self) -> tuple[LogLine, ...]:
        lines = self._lines
        if lines is None:
            lines = self._lines = tuple(ln for c in self.chunks for ln in chunk_lines(c))
        return lines

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[LogLine]:
        return iter(self._all())

    def __getitem__(self, index: Any) -> Any:
        return self._all()[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChunkLines | tuple | list):
            return self._all() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return f"ChunkLines({len(self.chunks)} chunks, {self._len} lines)"


@record(frozen=True)
class LogBatch:
    """Lines published together, so observers redraw once per batch rather than per line.

    The recorder publishes `chunks` (one per read of a pipe) with `lines` expanding them on
    first use: an observer that can work on whole chunks (the headless printer) never makes
    an object per line. Batches built from lines leave `chunks` empty.
    """

    run_id: str
    stage: str
    action: str
    attempt: int
    lines: Sequence[LogLine]
    chunks: tuple[LogChunk, ...] = ()
