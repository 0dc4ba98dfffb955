"""Indexing finished executions' logs for search in the background, from the recorder.

Apart from `engine.search` so that starting an engine does not import search (its query
planning and the replay module): the indexing code is imported by the thread that runs it.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.store import Store

__all__ = ["BackgroundIndexer", "attach_indexer"]


class BackgroundIndexer:
    """Recorder subscriber: when an execution finishes, index its lines on a thread.

    The thread has its own connection, so the engine's store is never held by it; each
    batch is one short write transaction with a pause after it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False
        self._finished: dict[str | None, None] = {}  # recently finished executions

    def __call__(self, item: object) -> None:
        if (
            isinstance(item, ev.Event)
            and item.type == ev.RUN_STATUS
            and item.data.get("status") in ev.RUN_TERMINAL
        ):
            self._finished[item.run_id] = None
            while len(self._finished) > 64:
                del self._finished[next(iter(self._finished))]
            self.kick()
        elif isinstance(item, ev.LogBatch) and item.run_id in self._finished:
            self.kick()  # its last lines were flushed after it finished

    def kick(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._again = True
                return
            self._again = False
            self._thread = threading.Thread(target=self._work, name="bakery-fts", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        from engine.search import index_pending  # here, in the thread: see the module docstring

        while True:
            try:
                store = Store(self.path)
                try:
                    index_pending(store, pause=0.005)
                finally:
                    store.close()
            except (sqlite3.Error, OSError):
                pass  # the next search indexes what is left
            with self._lock:
                if not self._again:
                    return
                self._again = False

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


def attach_indexer(recorder: Any) -> BackgroundIndexer | None:
    """Index finished executions in the background (stores on disk only)."""
    path = Path(recorder.store.path)
    if str(path) == ":memory:":
        return None
    indexer = BackgroundIndexer(path)
    recorder.subscribe(indexer)
    return indexer
