"""Run an engine on its own thread and event loop, for front ends that have a loop of their own.

The board keeps drawing while an action floods its log: reading pipes, masking and storing
happen on the engine's loop, and the board only drains a queue of published items.

A drain takes every event but only a bounded number of log lines (`max_lines`): the rest
waits here for the next drain, so a flood never makes one drain long and statuses are never
behind the logs. While more than MAX_QUEUED_LINES wait, the recorder's flush thread waits
too (bounded, and never on the engine loop), so the engine slows to the board's pace rather
than the board falling behind the engine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from engine import events as ev
from engine.record import replace

if TYPE_CHECKING:
    from engine.core import Engine
    from engine.recorder import Published

T = TypeVar("T")

MAX_QUEUED_LINES = 200_000
"""Log lines published but not drained past which the flush thread waits for a drain."""

MAX_WAIT = 0.5
"""The longest one publish waits for a drain (a board that stopped draining never blocks)."""

DRAINING = 1.0
"""A drain within this many seconds means someone is draining: only then is it waited for."""


def _lines(item: Any) -> int:
    return len(item.lines) if isinstance(item, ev.LogBatch) else 0


def _split(batch: ev.LogBatch, lines: int) -> tuple[ev.LogBatch, ev.LogBatch | None]:
    """The first chunks of a batch holding about `lines` lines (at least one), and the rest."""
    chunks = getattr(batch, "chunks", ())
    if len(chunks) < 2:
        return batch, None
    n, k = 0, 0
    while k < len(chunks) and (k == 0 or n + chunks[k].count <= lines):
        n += chunks[k].count
        k += 1
    if k == len(chunks):
        return batch, None
    head, tail = chunks[:k], chunks[k:]
    return (
        replace(batch, lines=ev.ChunkLines(head), chunks=head),
        replace(batch, lines=ev.ChunkLines(tail), chunks=tail),
    )


class EngineHost:
    """Owns the engine thread; every call into the engine goes through `call`."""

    def __init__(self, engine_factory: Callable[[], Engine]) -> None:
        self._factory = engine_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self.engine: Engine | None = None
        self.queue: queue.SimpleQueue[Published] = queue.SimpleQueue()
        self._held: deque[ev.LogBatch] = deque()  # drained from the queue, not handed out yet
        self._queued_lines = 0  # log lines in the queue and in _held
        self._room = threading.Condition()
        self._last_drain = 0.0
        self._closing = False
        self._hold_until = 0.0  # until then log batches wait: the board is answering a key

    def start(self, timeout: float = 10.0) -> Engine:
        self._thread = threading.Thread(target=self._main, name="bakery-engine", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        if self._error is not None:
            raise self._error
        if self.engine is None:
            raise RuntimeError("the engine did not start in time")
        return self.engine

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self.engine = self._factory()
            self.engine.recorder.subscribe(self._publish)
            loop.run_until_complete(self.engine.start())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()
            self._stopped.set()

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Run `await fn(*args, **kwargs)` on the engine loop; returns a thread-safe future."""
        if self._loop is None:
            raise RuntimeError("the engine is not running")
        return asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), self._loop)

    def call_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Run a plain function on the engine loop (engine state is only touched there)."""
        if self._loop is None:
            raise RuntimeError("the engine is not running")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future

    def _publish(self, item: Published) -> None:
        """Recorder subscriber: queue the item; a log batch from the flush thread waits
        (at most MAX_WAIT) while the board is more than MAX_QUEUED_LINES behind."""
        n = _lines(item)
        if n:
            with self._room:
                if (
                    threading.current_thread() is not self._thread  # never the engine loop
                    and not self._closing
                    and time.monotonic() - self._last_drain < DRAINING
                ):
                    self._room.wait_for(self._has_room, MAX_WAIT)
                self._queued_lines += n
        self.queue.put(item)

    def _has_room(self) -> bool:
        if self._closing:
            return True
        return self._queued_lines <= MAX_QUEUED_LINES and time.monotonic() >= self._hold_until

    def hold(self, seconds: float) -> None:
        """Let log output wait for `seconds` (at most MAX_WAIT): the front end has a key to
        answer. The recorder's writer waits, so the readers soon pause and the engine thread
        leaves the GIL and the CPU to the board; events still flow."""
        with self._room:
            self._hold_until = max(self._hold_until, time.monotonic() + min(seconds, MAX_WAIT))

    def drain(self, limit: int = 100_000, max_lines: int | None = None) -> list[Published]:
        """What was published since the last drain (the board calls this on a timer).

        Every event comes out (up to `limit` items), in order; log batches only up to
        `max_lines` lines (at least one batch), the others are kept for the next drain.
        Events may so overtake lines published before them, never the other way round.
        """
        self._last_drain = time.monotonic()
        items: list[Published] = []
        held = self._held
        with contextlib.suppress(queue.Empty):
            while len(items) < limit:
                item = self.queue.get_nowait()
                if isinstance(item, ev.LogBatch):
                    held.append(item)
                else:
                    items.append(item)
        budget = max_lines if max_lines is not None else 1 << 62
        taken = 0
        while held and taken < budget:
            batch = held.popleft()
            if taken + len(batch.lines) > budget:
                batch, rest = _split(batch, max(1, budget - taken))
                if rest is not None:
                    held.appendleft(rest)
            taken += len(batch.lines)
            items.append(batch)
        if taken:
            with self._room:
                self._queued_lines -= taken
                self._room.notify_all()
        return items

    @property
    def queued_lines(self) -> int:
        """Log lines published and not drained yet."""
        return self._queued_lines

    def stop(self, timeout: float = 15.0) -> None:
        """Close the engine and end the thread.

        Running actions are stopped; executions that only wait for an approval are left
        waiting, so the next bakery start on the repository resumes them (their timeout
        still counting) rather than losing a decision nobody has made yet.
        """
        with self._room:
            self._closing = True  # nobody waits for a drain any more
            self._room.notify_all()
        if self._loop is None or self.engine is None:
            return
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self.call(self.engine.close, keep_approvals=True).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._stopped.wait(timeout)
