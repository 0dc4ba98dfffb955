"""Persist first, then publish: the one path every event and log line takes.

Events are written at once (they are few and each one matters); log lines are numbered,
buffered and written in one transaction per flush interval from a worker thread, so a noisy
action costs one SQLite commit per ~50 ms instead of one per line. Lines travel as chunks
(`ev.LogChunk`: the lines of one read of a pipe joined by "\n"), buffered, stored and
published as such, so a flood costs a few objects per 64 KiB read rather than per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.state import RunState, apply, new_run
from engine.store import Store, lines_to_chunks

if TYPE_CHECKING:
    from engine.process import OutputLine

Published = ev.Event | ev.LogBatch
Subscriber = Callable[[Published], None]

FLUSH_INTERVAL = 0.05
FLUSH_CHUNK = 5000
"""At most this many chunks ..."""
FLUSH_BYTES = 2 * 2**20
"""... or about this much text per write transaction, so an event append never waits long."""

MAX_PENDING_LINES = 50_000
MAX_PENDING_BATCHES = 256
"""Back-pressure: past this many buffered lines (or batches, each at most one 64 KiB read)
a child's reader waits for the writer (`congested`, engine.process's `throttle`), so a flood that outruns SQLite
is held in the pipe (the child blocks on write) instead of growing memory without bound."""

_new_tuple = tuple.__new__
_LogChunk = ev.LogChunk


class Recorder:
    """Writes events and log lines to the store, keeps live run states, tells subscribers."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.states: dict[str, RunState] = {}
        self._subscribers: list[Subscriber] = []
        self._pending: list[ev.LogChunk] = []
        self._pending_lines = 0
        self._pending_batches = 0
        self._flushing = False  # flush_forever runs: waiting for room is safe
        self._line_no: dict[tuple[str, str, str, int], int] = {}
        self._buffer_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._local_pipeline_seqs: set[int] = set()  # pipeline-level events published here
        # A write the store refused (disk full...): see _store_failed.
        self.store_error: str | None = None
        self.lost_lines = 0
        self._store_error_listeners: list[Callable[[str], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- subscribers ---------------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn) if fn in self._subscribers else None

    def _publish(self, item: Published) -> None:
        """Call every subscriber. They may be called from the flush thread and the loop
        thread at once, so each must be thread-safe (a queue put, or its own lock)."""
        for fn in list(self._subscribers):
            fn(item)

    # -- events --------------------------------------------------------------------------
    def emit(self, type_: str, run_id: str | None, **data: Any) -> ev.Event:
        """Store an event, fold it into the live state, publish it.

        Log lines still in the buffer are written by the next flush; they carry their own
        read times, so replay places them correctly without blocking the loop here.
        """
        event = ev.Event(type_, run_id, time.time(), data)
        if type_ == ev.RUN_CREATED:
            stored = self.store.create_run(event)
            self.states[str(run_id)] = new_run(stored)
        else:
            try:
                stored = self.store.append(event)
            except (sqlite3.Error, OSError) as exc:
                # Not stored (disk full...): the engine fails the execution; the live state
                # still moves on so it ends cleanly, and the next start settles the store.
                self._store_failed(exc)
                stored = event
            if run_id is not None and run_id in self.states:
                apply(self.states[run_id], stored)
            elif run_id is None:
                self._local_pipeline_seqs.add(stored.seq)
        self._publish(stored)
        return stored

    def adopt(self, state: RunState) -> None:
        """Track a stored execution (resumed or retried) as live."""
        self.states[state.id] = state

    def publish_external(self, events: Iterable[ev.Event]) -> None:
        """Publish events another process stored (e.g. a transition changed from the CLI)."""
        for event in events:
            if event.run_id is None and event.seq in self._local_pipeline_seqs:
                continue  # emitted (and published) by this process already
            if event.run_id is not None and event.run_id in self.states:
                apply(self.states[event.run_id], event)
            self._publish(event)

    # -- log lines -----------------------------------------------------------------------
    def _next_line(self, key: tuple[str, str, str, int]) -> int:
        """The last line number given out for an attempt (from the store the first time)."""
        n = self._line_no.get(key)
        if n is None:
            # an attempt resumed by a later bakery process continues its numbering
            n = self._line_no[key] = self.store.last_line_no(*key)
        return n

    def log(
        self,
        run_id: str,
        stage: str,
        action: str,
        attempt: int,
        lines: Iterable[tuple[float, str, str, bytes | None]],
    ) -> None:
        """Number and buffer lines of (ts, stream, text, raw); they are stored on the next flush."""
        key = (run_id, stage, action, attempt)
        self._next_line(key)
        with self._buffer_lock:
            n = self._line_no[key]
            lines = [
                ev.LogLine(run_id, stage, action, attempt, i, ts, stream, text, raw)
                for i, (ts, stream, text, raw) in enumerate(lines, n + 1)
            ]
            if not lines:
                return
            self._pending.extend(lines_to_chunks(lines))
            self._line_no[key] = n + len(lines)
            self._pending_lines += len(lines)
            self._pending_batches += 1

    def log_output(
        self, run_id: str, stage: str, action: str, attempt: int, lines: Sequence[OutputLine]
    ) -> None:
        """`log` for a child's OutputLines (one read, or its rare lines with raw bytes)."""
        if lines:
            self.log(
                run_id, stage, action, attempt, [(x.ts, x.stream, x.text, x.raw) for x in lines]
            )

    def log_chunk(
        self,
        run_id: str,
        stage: str,
        action: str,
        attempt: int,
        ts: float,
        stream: str,
        text: str,
        count: int,
    ) -> None:
        """Buffer `count` lines read together, joined by "\n" in `text` (none holds one).

        The hot path of a noisy action: one tuple per read of its pipe, whatever the lines.
        """
        if count <= 0:
            return
        key = (run_id, stage, action, attempt)
        if key not in self._line_no:
            self._next_line(key)
        with self._buffer_lock:
            n = self._line_no[key]
            self._pending.append(
                _new_tuple(
                    _LogChunk, (run_id, stage, action, attempt, n + 1, count, ts, stream, text, None)
                )
            )
            self._line_no[key] = n + count
            self._pending_lines += count
            self._pending_batches += 1

    def congested(self) -> bool:
        """Whether readers should wait for the writer before reading more output.

        Only while flush_forever runs: without a writer nobody would ever make room."""
        return self._flushing and (
            self._pending_lines > MAX_PENDING_LINES or self._pending_batches > MAX_PENDING_BATCHES
        )

    def system_line(self, run_id: str, stage: str, action: str, attempt: int, text: str) -> None:
        """A line Bakery itself adds to an action's log (command, exit status, notes)."""
        self.log(run_id, stage, action, attempt, [(time.time(), "system", text, None)])

    def flush(self) -> None:
        with self._write_lock:
            with self._buffer_lock:
                batch, self._pending = self._pending, []
                self._pending_lines = 0
                self._pending_batches = 0
            if not batch:
                return
            # pieces keep each write transaction short, so an event append never waits long
            written = 0
            try:
                while written < len(batch):
                    end, size = written, 0
                    while end < len(batch) and end - written < FLUSH_CHUNK and size < FLUSH_BYTES:
                        size += len(batch[end].text)
                        end += 1
                    self.store.append_chunks(batch[written:end])
                    written = end
            except (sqlite3.Error, OSError) as exc:
                # Dropped, not kept: memory stays bounded while the store refuses writes.
                self._store_failed(exc, lost=sum(c.count for c in batch[written:]))
                batch = batch[:written]
            groups: dict[tuple[str, str, str, int], list[ev.LogChunk]] = {}
            for chunk in batch:
                groups.setdefault(chunk[:4], []).append(chunk)  # type: ignore[arg-type]
            for (run_id, stage, action, attempt), chunks in groups.items():
                self._publish(
                    ev.LogBatch(run_id, stage, action, attempt, ev.ChunkLines(chunks), tuple(chunks))
                )

    async def flush_forever(self, interval: float = FLUSH_INTERVAL) -> None:
        """Background task: write buffered lines off the event loop."""
        self._loop = asyncio.get_running_loop()
        self._flushing = True
        try:
            while True:
                await asyncio.sleep(interval)
                if self._pending:
                    await asyncio.to_thread(self.flush)
        finally:
            self._flushing = False
            self.flush()

    # -- store failures ------------------------------------------------------------------
    def on_store_error(self, fn: Callable[[str], None]) -> None:
        """Call `fn(message)` on the event loop each time the store refuses a write."""
        self._store_error_listeners.append(fn)

    def _store_failed(self, exc: BaseException, lost: int = 0) -> None:
        """Remember a refused write and tell the listeners (on the loop's thread)."""
        self.lost_lines += lost
        self.store_error = f"the store could not be written ({exc})"
        message = self.store_error
        if lost:
            message += "; log lines were lost"
        loop = self._loop
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # a worker thread (the flush)
            here = None
        for fn in list(self._store_error_listeners):
            if loop is None or here is loop:
                fn(message)
            else:
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(fn, message)

    def forget_attempt(self, run_id: str) -> None:
        with self._buffer_lock:
            for key in [k for k in self._line_no if k[0] == run_id]:
                del self._line_no[key]
