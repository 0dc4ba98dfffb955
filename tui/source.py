"""Where the board's events come from.

The board never asks "what is the state?": it drains a source of published items (events and
log batches) and folds them. A live source drains the engine host; a list source is fed by
hand (tests) or by a replay that releases stored events at their recorded pace.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from engine import events as ev

if TYPE_CHECKING:
    from engine.host import EngineHost
    from engine.store import Store

Published = ev.Event | ev.LogBatch


class EventSource(Protocol):
    """What the board needs from a source of events."""

    store: Store | None  # for execution history and logs written before the board started

    def drain(self) -> list[Published]:
        """Everything published since the last call (called every ~40 ms)."""
        ...


DRAIN_SECONDS = 0.008
"""About how long applying one drain's log lines may take on the board's loop."""

MIN_LINES, MAX_LINES = 2_000, 200_000


class HostSource:
    """The live source: items the engine thread published since the last drain.

    Every event comes out at once; log lines only about DRAIN_SECONDS' worth of them (the
    board reports how long it took to apply them: `applied`), the others wait in the host for
    the next drain, so a flood never holds a key press up for long.
    """

    def __init__(self, host: EngineHost, store: Store | None = None) -> None:
        self.host = host
        self.store = store if store is not None else (host.engine.store if host.engine else None)
        self.max_lines = 20_000

    def drain(self) -> list[Published]:
        return self.host.drain(max_lines=self.max_lines)

    def hold(self, seconds: float) -> None:
        """A key is being answered: the engine's log output waits that long (bounded)."""
        self.host.hold(seconds)

    def applied(self, lines: int, seconds: float) -> None:
        """Applying `lines` log lines took `seconds`: size the next drains to DRAIN_SECONDS."""
        if lines < 1_000 or seconds <= 0:
            return
        fits = int(DRAIN_SECONDS * lines / seconds)
        self.max_lines = max(MIN_LINES, min(MAX_LINES, (self.max_lines + fits) // 2))


class ListSource:
    """A source fed by hand: tests push events, a replay pushes them at its own pace."""

    def __init__(self, items: Iterable[Published] = (), store: Store | None = None) -> None:
        self.store = store
        self._items: list[Published] = list(items)

    def feed(self, *items: Published | Iterable[Published]) -> None:
        for item in items:
            if isinstance(item, ev.Event | ev.LogBatch):
                self._items.append(item)
            else:
                self._items.extend(item)

    def drain(self) -> list[Published]:
        items, self._items = self._items, []
        return items


def log_batch(
    run_id: str,
    stage: str,
    action: str,
    texts: Iterable[str],
    *,
    attempt: int = 1,
    first_line: int = 1,
    ts: float = 0.0,
    stream: str = "stdout",
) -> ev.LogBatch:
    """A LogBatch built from plain strings (handy for tests and demos)."""
    lines = tuple(
        ev.LogLine(run_id, stage, action, attempt, first_line + i, ts, stream, text)
        for i, text in enumerate(texts)
    )
    return ev.LogBatch(run_id, stage, action, attempt, lines)


def is_event(item: Any) -> bool:
    return isinstance(item, ev.Event)
