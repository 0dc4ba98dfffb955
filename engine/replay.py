"""Replay: a stored execution as a seekable timeline.

A replay is the same fold the live board uses, stopped at an earlier event, so the state at
any instant is exactly what a live observer saw then. Only events are folded (they are few);
log lines stay in SQLite (in chunks: the lines of one read share a row and a time) and are
fetched by range, so opening an execution with a million lines costs a handful of indexed
queries rather than loading the lines.

All times on a `Timeline` are seconds since the execution's `run.created` event (its origin).
"""

from __future__ import annotations

import bisect
import contextlib
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.state import RunState, apply, new_run
from engine.store import STREAMS, Store, StoredLine, StoreError, line_id

CHECKPOINT_EVERY = 64
STATUS_EVENTS = frozenset({ev.RUN_STATUS, ev.STAGE_STATUS, ev.ACTION_STATUS})


class ReplayError(Exception):
    """The execution or file cannot be replayed; the message is for the user."""


def query(store: Store, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """Rows of a read-only query: through the store's reader connection when it has one."""
    read = getattr(store, "_read", None)
    if read is not None:
        return list(read(sql, args))
    with store._lock:
        return store.conn.execute(sql, args).fetchall()


@dataclass(frozen=True, slots=True)
class Mark:
    """An event on the timeline: its index in `Timeline.events` and its time."""

    index: int
    t: float
    event: ev.Event


@dataclass(frozen=True, slots=True)
class LogSource:
    """One action attempt's log: how many lines and when the first and last were read."""

    id: int
    stage: str
    action: str
    attempt: int
    lines: int
    first_t: float | None
    last_t: float | None


class Timeline:
    """The events of one execution, its state at any instant, and its log at any instant."""

    def __init__(self, store: Store, run_id: str, *, _cleanup: Path | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self._cleanup = _cleanup
        self._finalizer = (
            weakref.finalize(self, _remove_temp, store, _cleanup) if _cleanup is not None else None
        )
        self.events: list[ev.Event] = store.events(run_id)
        if not self.events or self.events[0].type != ev.RUN_CREATED:
            raise ReplayError(f"execution {run_id} has no recorded start (run.created)")
        self.origin: float = self.events[0].ts
        self.times: list[float] = []
        self._add_times(self.events)
        self._checkpoints: list[RunState] = []
        self._attempts: dict[tuple[str, str], tuple[list[float], list[int]]] = {}
        self._fold_all()
        self._sources: list[LogSource] | None = None

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, store: Store, run_id: str) -> Timeline:
        """A timeline over an execution of `store` (the store stays the caller's)."""
        return cls(store, run_id)

    @classmethod
    def from_export(cls, path: str | Path) -> Timeline:
        """A timeline over a `bakery export` file, loaded into a private temporary store."""
        from engine.export import ExportError, load_export

        tmp = Path(tempfile.mkdtemp(prefix="bakery-replay-"))
        store = Store(tmp / "replay.db")
        try:
            run_id = load_export(path, store)
            return cls(store, run_id, _cleanup=tmp)
        except (ExportError, OSError, ReplayError) as exc:
            _remove_temp(store, tmp)
            if isinstance(exc, ReplayError):
                raise
            raise ReplayError(str(exc)) from exc
        except BaseException:
            _remove_temp(store, tmp)
            raise

    def close(self) -> None:
        """Release the temporary store of an imported file (a no-op for a stored execution)."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> Timeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fold_all(self) -> None:
        """Fold once, keeping a snapshot every CHECKPOINT_EVERY events for quick seeks."""
        self.final: RunState = new_run(self.events[0])  # the state after every event; read only
        self._checkpoints.append(self.final.snapshot())
        self._fold_from(1)

    def _fold_from(self, start: int) -> None:
        state = self.final
        for i in range(start, len(self.events)):
            event = self.events[i]
            apply(state, event)
            if i % CHECKPOINT_EVERY == 0:
                self._checkpoints.append(state.snapshot())
            if event.type == ev.ACTION_STATUS and event.data.get("status") == ev.IN_PROGRESS:
                key = (event.data["stage"], event.data["action"])
                times, attempts = self._attempts.setdefault(key, ([], []))
                times.append(self.times[i])
                attempts.append(state.action(*key).attempt)

    def _add_times(self, events: list[ev.Event]) -> None:
        """Event times, never decreasing: the store's order wins over a clock that stepped back."""
        last = self.times[-1] if self.times else 0.0
        for e in events:
            last = max(last, e.ts - self.origin)
            self.times.append(last)

    def refresh(self) -> int:
        """Take in events stored since opening (an execution still running); how many."""
        news = self.store.events(self.run_id, after_seq=self.events[-1].seq)
        if news:
            start = len(self.events)
            self.events.extend(news)
            self._add_times(news)
            self._fold_from(start)
        self._sources = None
        return len(news)

    # -- time ----------------------------------------------------------------------------
    def t_of(self, ts: float) -> float:
        """Timeline time of an absolute timestamp (e.g. StoredLine.ts)."""
        return ts - self.origin

    def ts_of(self, t: float) -> float:
        return self.origin + t

    @property
    def duration(self) -> float:
        """From creation to the last event or log line, whichever is later."""
        last_lines = [s.last_t for s in self.sources() if s.last_t is not None]
        return max([self.times[-1], *last_lines])

    @property
    def finished(self) -> bool:
        return self.final.finished

    # -- state ---------------------------------------------------------------------------
    def index_at(self, t: float) -> int:
        """Index of the last event at or before `t` (0 before the execution existed)."""
        return max(0, bisect.bisect_right(self.times, t) - 1)

    def state_at_index(self, index: int) -> RunState:
        """A fresh state (the caller may change it) after events[0..index]."""
        if not 0 <= index < len(self.events):
            raise IndexError(f"event index {index} outside 0..{len(self.events) - 1}")
        base = index // CHECKPOINT_EVERY
        state = self._checkpoints[base].snapshot()
        for event in self.events[base * CHECKPOINT_EVERY + 1 : index + 1]:
            apply(state, event)
        return state

    def state_at(self, t: float) -> RunState:
        """The execution as it stood at `t`: every event with time <= t folded."""
        return self.state_at_index(self.index_at(t))

    # -- event navigation ----------------------------------------------------------------
    def _mark(self, index: int) -> Mark:
        return Mark(index, self.times[index], self.events[index])

    def next_event(self, t: float) -> Mark | None:
        """The first event strictly after `t`."""
        i = bisect.bisect_right(self.times, t)
        return self._mark(i) if i < len(self.events) else None

    def prev_event(self, t: float) -> Mark | None:
        """The last event strictly before `t`."""
        i = bisect.bisect_left(self.times, t) - 1
        return self._mark(i) if i >= 0 else None

    def next_state_change(self, t: float) -> Mark | None:
        """The first run/stage/action status change strictly after `t`."""
        for i in range(bisect.bisect_right(self.times, t), len(self.events)):
            if self.events[i].type in STATUS_EVENTS:
                return self._mark(i)
        return None

    def prev_state_change(self, t: float) -> Mark | None:
        """The last run/stage/action status change strictly before `t`."""
        for i in range(bisect.bisect_left(self.times, t) - 1, -1, -1):
            if self.events[i].type in STATUS_EVENTS:
                return self._mark(i)
        return None

    def status_changes(self) -> list[Mark]:
        """Every status change, e.g. for ticks on a replay bar."""
        return [self._mark(i) for i, e in enumerate(self.events) if e.type in STATUS_EVENTS]

    def first_failure(self) -> Mark | None:
        """Where it went wrong: the first action that failed, else the first failed stage/run."""
        fallback: Mark | None = None
        for i, e in enumerate(self.events):
            if e.type not in STATUS_EVENTS or e.data.get("status") != ev.FAILED:
                continue
            if e.type == ev.ACTION_STATUS:
                return self._mark(i)
            if fallback is None:
                fallback = self._mark(i)
        return fallback

    # -- logs ----------------------------------------------------------------------------
    def sources(self) -> list[LogSource]:
        """Every action attempt that logged, with line counts (a few indexed queries)."""
        if self._sources is None or not self.finished:
            rows = query(
                self.store,
                "SELECT id, stage, action, attempt FROM log_sources WHERE run_id = ? ORDER BY id",
                (self.run_id,),
            )
            out = []
            for sid, stage, action, attempt in rows:
                last = query(
                    self.store,
                    "SELECT last_line, ts FROM log_chunks WHERE source = ?"
                    " ORDER BY first_line DESC LIMIT 1",
                    (sid,),
                )
                first = query(
                    self.store,
                    "SELECT ts FROM log_chunks WHERE source = ? ORDER BY first_line LIMIT 1",
                    (sid,),
                )
                out.append(
                    LogSource(
                        sid,
                        stage,
                        action,
                        attempt,
                        int(last[0][0]) if last else 0,
                        self.t_of(first[0][0]) if first else None,
                        self.t_of(last[0][1]) if last else None,
                    )
                )
            self._sources = out
        return self._sources

    def attempt_at(self, t: float, stage: str, action: str) -> int:
        """The attempt of an action current at `t` (0 before it first started)."""
        times, attempts = self._attempts.get((stage, action), ([], []))
        i = bisect.bisect_right(times, t) - 1
        return attempts[i] if i >= 0 else 0

    def _source(self, stage: str, action: str, attempt: int) -> LogSource | None:
        for s in self.sources():
            if s.stage == stage and s.action == action and s.attempt == attempt:
                return s
        return None

    def _count(self, source: LogSource, t: float, *, strict: bool = False) -> int:
        """Lines of `source` read at or before t (before t when strict): one index look-up.

        Lines are numbered 1..n in the order they were read and their times never go back,
        so the answer is the last line of the latest chunk whose time qualifies.
        """
        row = query(
            self.store,
            "SELECT last_line FROM log_chunks WHERE source = ? AND ts "
            + ("<" if strict else "<=")
            + " ? ORDER BY ts DESC, last_line DESC LIMIT 1",
            (source.id, self.ts_of(t)),
        )
        return int(row[0][0]) if row else 0

    def _line_ts(self, source: LogSource, line_no: int) -> float | None:
        """The read time of one line."""
        row = query(
            self.store,
            "SELECT ts FROM log_chunks WHERE source = ? AND first_line <= ?"
            " ORDER BY first_line DESC LIMIT 1",
            (source.id, line_no),
        )
        return float(row[0][0]) if row else None

    def log_count_at(self, t: float, stage: str, action: str, *, attempt: int | None = None) -> int:
        """How many lines of the action's log existed at `t` (a line read at t counts)."""
        attempt = self.attempt_at(t, stage, action) if attempt is None else attempt
        source = self._source(stage, action, attempt)
        return 0 if source is None else self._count(source, t)

    def logs_at(
        self,
        t: float,
        stage: str,
        action: str,
        *,
        attempt: int | None = None,
        start: int = 0,
        limit: int | None = None,
    ) -> list[StoredLine]:
        """The lines of the action's log that existed at `t`, from index `start` (0-based).

        `attempt` defaults to the attempt current at `t`. Give `limit` for a window: a pane
        asks for `log_count_at` and then only the lines it draws.
        """
        attempt = self.attempt_at(t, stage, action) if attempt is None else attempt
        source = self._source(stage, action, attempt)
        if source is None:
            return []
        count = self._count(source, t)
        end = count if limit is None else min(count, start + max(0, limit))
        if end <= start:
            return []
        rows = query(
            self.store,
            "SELECT id, first_line, last_line, ts, stream, text, raw FROM log_chunks"
            " WHERE source = ? AND first_line <= ? AND first_line >= COALESCE((SELECT first_line"
            " FROM log_chunks WHERE source = ? AND first_line <= ? ORDER BY first_line DESC"
            " LIMIT 1), 0) ORDER BY first_line, id",
            (source.id, end, source.id, start + 1),
        )
        out: list[StoredLine] = []
        for cid, first, last, ts, sc, text, raw in rows:
            stream = STREAMS[sc] if sc < len(STREAMS) else "stdout"
            texts = [text] if last == first else text.split("\n")
            base = line_id(cid, 0)
            for i in range(max(0, start + 1 - first), min(len(texts), end - first + 1)):
                out.append(
                    StoredLine(base + i, stage, action, attempt, first + i, ts, stream, texts[i], raw)
                )
        return out

    def tail_at(
        self, t: float, stage: str, action: str, n: int, *, attempt: int | None = None
    ) -> list[StoredLine]:
        """The last `n` lines that existed at `t` (what a following log pane shows)."""
        count = self.log_count_at(t, stage, action, attempt=attempt)
        return self.logs_at(t, stage, action, attempt=attempt, start=max(0, count - n), limit=n)

    def _line_sources(self, stage: str | None, action: str | None) -> list[LogSource]:
        return [
            s
            for s in self.sources()
            if (stage is None or s.stage == stage) and (action is None or s.action == action)
        ]

    def next_line(
        self, t: float, stage: str | None = None, action: str | None = None
    ) -> float | None:
        """Time of the first log line read strictly after `t` (of one action, or any)."""
        best: float | None = None
        for s in self._line_sources(stage, action):
            k = self._count(s, t)
            if k < s.lines:
                ts = self._line_ts(s, k + 1)
                if ts is not None:
                    lt = self.t_of(ts)
                    best = lt if best is None else min(best, lt)
        return best

    def prev_line(
        self, t: float, stage: str | None = None, action: str | None = None
    ) -> float | None:
        """Time of the last log line read strictly before `t`."""
        best: float | None = None
        for s in self._line_sources(stage, action):
            k = self._count(s, t, strict=True)
            if k > 0:
                ts = self._line_ts(s, k)
                if ts is not None:
                    lt = self.t_of(ts)
                    best = lt if best is None else max(best, lt)
        return best

    def activity(self, buckets: int = 60) -> list[int]:
        """Log lines per equal slice of the execution's duration (for a replay-bar sparkline)."""
        buckets = max(1, buckets)
        span = self.duration or 1.0
        edges = [span * (i + 1) / buckets for i in range(buckets)]
        out = [0] * buckets
        for s in self.sources():
            before = 0
            for i, edge in enumerate(edges):
                now = s.lines if i == buckets - 1 else self._count(s, edge)
                out[i] += now - before
                before = now
        return out

    def to_json_at(self, t: float) -> dict[str, Any]:
        """`show --json` of the execution at `t`."""
        return self.state_at(t).to_json()


def _remove_temp(store: Store, path: Path | None) -> None:
    with contextlib.suppress(Exception):  # closing twice is fine
        store.close()
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def load_timeline(
    ref: str, *, repo: str | Path = ".", state_dir: str | Path | None = None
) -> Timeline:
    """A timeline for what a user typed: an export file's path, or an execution of the repo.

    Front ends (`bakery replay`, the board's replay mode) share this so both accept the same
    things. A timeline opened from the repository's store owns that store: close() it.
    """
    path = Path(ref)
    if path.suffix in (".jsonl", ".json") or (path.is_file() and not ref.lstrip("#").isdigit()):
        if not path.is_file():
            raise ReplayError(f"no such file {ref}")
        return Timeline.from_export(path)
    if state_dir is None:
        from engine.gitinfo import GitError, repo_root
        from engine.store import default_state_dir

        try:
            state_dir = default_state_dir(repo_root(repo))
        except GitError as exc:
            raise ReplayError(str(exc)) from exc
    db = Path(state_dir) / "bakery.db"
    if not db.exists():
        raise ReplayError(f"no executions recorded yet (looked in {db})")
    try:
        store = Store(db)
    except StoreError as exc:
        raise ReplayError(str(exc)) from exc
    try:
        timeline = Timeline(store, store.resolve_run(ref))
    except (StoreError, ReplayError) as exc:
        store.close()
        raise ReplayError(str(exc)) from exc
    timeline._finalizer = weakref.finalize(timeline, _remove_temp, store, None)
    return timeline
