"""Run an engine on its own thread and event loop, for front ends that have a loop of their own.

The board keeps drawing while an action floods its log: reading pipes, masking and storing
happen on the engine's loop, and the board only drains a queue of published items.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from engine.core import Engine
from engine.recorder import Published

T = TypeVar("T")


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
            self.engine.recorder.subscribe(self.queue.put)
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

    def drain(self, limit: int = 100_000) -> list[Published]:
        """Everything published since the last drain (the board calls this on a timer)."""
        items: list[Published] = []
        with contextlib.suppress(queue.Empty):
            while len(items) < limit:
                items.append(self.queue.get_nowait())
        return items

    def stop(self, timeout: float = 15.0) -> None:
        """Close the engine (stopping running executions) and end the thread."""
        if self._loop is None or self.engine is None:
            return
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self.call(self.engine.close).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._stopped.wait(timeout)
