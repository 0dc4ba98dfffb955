"""The board's view of the world, folded from events with the engine's own reducer.

`BoardModel.ingest` takes one drain's worth of items and returns what changed, so the
screen redraws once per drain: each run touched, each log buffer that grew. There is no
second source of truth: run states come only from `engine.state.new_run/apply`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine import events as ev
from engine.state import PipelineState, RunState, apply, fold, new_run
from tui.logbuffer import LogBuffer

if TYPE_CHECKING:
    from engine.store import Store

LogKey = tuple[str, str, str, int]  # run_id, stage, action, attempt

KEEP_LOG_RUNS = 12  # log buffers are kept for this many most recent executions


@dataclass
class Changes:
    runs: set[str] = field(default_factory=set)
    created: list[str] = field(default_factory=list)
    logs: dict[LogKey, int] = field(default_factory=dict)  # key -> lines added
    pipeline: bool = False
    approvals: list[ev.Event] = field(default_factory=list)
    notices: list[tuple[str, str]] = field(default_factory=list)  # (severity, message)

    def __bool__(self) -> bool:
        return bool(
            self.runs or self.created or self.logs or self.pipeline or self.approvals or self.notices
        )


class BoardModel:
    """Run states by id, the pipeline's transitions and version, and log buffers."""

    def __init__(self, pipeline_name: str | None = None, store: Store | None = None) -> None:
        self.pipeline_name = pipeline_name
        self.store = store
        self.runs: dict[str, RunState] = {}
        self.pipeline = PipelineState(pipeline_name or "")
        self.logs: dict[LogKey, LogBuffer] = {}
        self.live_runs: set[str] = set()  # runs whose whole log arrived through the source

    # -- loading ----------------------------------------------------------------------------
    def set_pipeline(self, name: str) -> None:
        if name == self.pipeline_name:
            return
        self.pipeline_name = name
        self.pipeline = PipelineState(name)
        if self.store is not None:
            for event in self.store.events(pipeline_level=True):
                self.pipeline.apply(event)

    def load_recent(self, limit: int = 20) -> None:
        """Executions recorded before the board opened (the list shows them too)."""
        if self.store is None:
            return
        if self.pipeline_name:
            self.pipeline = PipelineState(self.pipeline_name)
            for event in self.store.events(pipeline_level=True):
                self.pipeline.apply(event)
        for summary in self.store.runs(pipeline=self.pipeline_name or None, limit=limit):
            if summary.id not in self.runs:
                state = fold(self.store.events(summary.id))
                if state is not None:
                    self.runs[summary.id] = state

    # -- folding ----------------------------------------------------------------------------
    def ingest(self, items: Iterable[ev.Event | ev.LogBatch]) -> Changes:
        changes = Changes()
        batches: dict[LogKey, list[ev.LogBatch]] = {}
        for item in items:
            if isinstance(item, ev.LogBatch):
                key = (item.run_id, item.stage, item.action, item.attempt)
                batches.setdefault(key, []).append(item)
            else:
                self._event(item, changes)
        for key, group in batches.items():
            if self.pipeline_name and key[0] not in self.runs:
                continue
            buffer = self.logs.get(key)
            if buffer is None:
                buffer = self.logs[key] = LogBuffer()
            added = 0
            for batch in group:
                chunks = getattr(batch, "chunks", ())
                if chunks:  # whole reads of a pipe: no object per line (tui/logbuffer.py)
                    for c in chunks:
                        added += buffer.append_text(c.first_line, c.count, c.ts, c.stream, c.text)
                else:
                    added += buffer.append(
                        (ln.line_no, ln.ts, ln.stream, ln.text) for ln in batch.lines
                    )
            if added:
                changes.logs[key] = changes.logs.get(key, 0) + added
        if changes.created:
            self._evict_logs()
        return changes

    def _event(self, event: ev.Event, changes: Changes) -> None:
        if event.run_id is None:
            name = event.data.get("pipeline", event.data.get("name"))
            if self.pipeline_name and name != self.pipeline_name:
                return
            if not self.pipeline_name and name:
                self.pipeline_name = str(name)
                self.pipeline.name = str(name)
            self.pipeline.apply(event)
            changes.pipeline = True
            if event.type == ev.TRIGGER_ERROR:
                changes.notices.append(("error", str(event.data.get("message", ""))))
            elif event.type == ev.TRIGGER_SKIPPED:
                commit = str(event.data.get("commit", ""))[:8]
                changes.notices.append(
                    ("information", f"commit {commit} skipped: {event.data.get('reason', '')}")
                )
            return
        if event.type == ev.RUN_CREATED:
            if self.pipeline_name and event.data.get("pipeline") != self.pipeline_name:
                return
            self.runs[event.run_id] = new_run(event)
            self.live_runs.add(event.run_id)
            changes.created.append(event.run_id)
            changes.runs.add(event.run_id)
            return
        state = self.runs.get(event.run_id)
        if state is None:
            state = self._adopt(event.run_id)
            if state is None:
                return
        if event.seq and event.seq <= state.last_seq:
            return  # already folded (the run was loaded from the store after this event)
        apply(state, event)
        changes.runs.add(event.run_id)
        if event.type == ev.APPROVAL_REQUESTED:
            changes.approvals.append(event)

    def _adopt(self, run_id: str) -> RunState | None:
        """An event for a run we never saw created (a retry of an old one): load it."""
        if self.store is None:
            return None
        state = fold(self.store.events(run_id))
        if state is None or (self.pipeline_name and state.pipeline != self.pipeline_name):
            return None
        self.runs[run_id] = state
        return state

    def _evict_logs(self) -> None:
        keep = {r.id for r in self.recent(KEEP_LOG_RUNS)}
        for key in [k for k in self.logs if k[0] not in keep]:
            del self.logs[key]

    # -- queries ----------------------------------------------------------------------------
    def recent(self, limit: int | None = None) -> list[RunState]:
        """Newest first (by number, then creation time)."""
        runs = sorted(self.runs.values(), key=lambda r: (r.number, r.created_at), reverse=True)
        return runs[:limit] if limit else runs

    def newest(self) -> RunState | None:
        runs = self.recent(1)
        return runs[0] if runs else None

    def log_buffer(self, key: LogKey) -> tuple[LogBuffer, bool]:
        """The buffer for an action attempt, and whether its history must be loaded."""
        buffer = self.logs.get(key)
        if buffer is not None:
            return buffer, False
        buffer = self.logs[key] = LogBuffer()
        needs_load = key[0] not in self.live_runs and self.store is not None
        return buffer, needs_load
