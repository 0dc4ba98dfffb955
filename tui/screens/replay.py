"""Replay: a stored execution on the same board used live, moved along a timeline.

The replay screen *is* the board (a subclass of `BoardScreen`) with its own `BoardModel`:
moving forward feeds the stored events through `BoardModel.ingest` (the live path, the same
reducer), moving back or far takes `Timeline.state_at_index` (checkpoints of that reducer).
It reads the app through a small view whose controller is None, so approve/stop/retry/
transition/run-HEAD are absent, and while it is on screen the app's clock is the replay
instant, so elapsed times read as they did then. Log panes read `TimelineLogBuffer`s: the
lines that existed at the instant, fetched from SQLite one page at a time as they are drawn.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.screen import Screen
from textual.widgets import Footer, Input

from engine import events as ev
from engine.replay import STATUS_EVENTS, Timeline
from engine.sanitize import strip_ansi
from engine.state import PipelineState
from engine.store import StoredLine
from tui.app import BakeryApp
from tui.logbuffer import ERROR_PATTERN
from tui.model import BoardModel, LogKey
from tui.screens.board import BoardScreen
from tui.source import ListSource
from tui.widgets.header import HeaderInfo
from tui.widgets.timeline_bar import BarState, TimelineBar, clock_text

if TYPE_CHECKING:
    from engine.store import Store

PAGE = 512
SPEEDS = (1, 2, 10, 100)
PLAY_INTERVAL = 0.05
INGEST_LIMIT = 256  # forward jumps over more events than this take a checkpointed state
_ids = itertools.count(1)


def parse_time(text: str) -> float:
    """Seconds from "75", "75.5", "1:15", "01:02:03"; ValueError for anything else."""
    text = text.strip().rstrip("s")
    if not text:
        raise ValueError("empty")
    parts = text.split(":")
    if len(parts) > 3:
        raise ValueError(text)
    seconds = 0.0
    for part in parts:
        value = float(part)
        if value < 0:
            raise ValueError(text)
        seconds = seconds * 60 + value
    return seconds


class TimelineLogBuffer:
    """The reading side of `LogBuffer` over one stored log, cut at the replay instant.

    `len()` is the number of lines that existed at the instant (set by the screen on each
    seek); line texts are fetched a page at a time when drawn or searched, and pages are
    cached, so a million-line log costs what is on screen.
    """

    def __init__(self, timeline: Timeline, stage: str, action: str, attempt: int) -> None:
        self.timeline = timeline
        self.stage, self.action, self.attempt = stage, action, attempt
        self.count = 0
        self.dropped = 0
        self.loading = False
        self.width = 0  # widest line fetched so far (the pane's horizontal extent)
        self._pages: LRUCache[int, list[StoredLine]] = LRUCache(64)
        self._end = timeline.duration + 1.0

    def __len__(self) -> int:
        return self.count

    def set_count(self, count: int) -> bool:
        changed = count != self.count
        self.count = count
        if changed and count:
            self._page((count - 1) // PAGE)  # the page a following pane shows: its width too
        return changed

    def _page(self, p: int) -> list[StoredLine]:
        page = self._pages.get(p)
        if page is None or (len(page) < PAGE and p * PAGE + len(page) < self.count):
            page = self.timeline.logs_at(
                self._end, self.stage, self.action, attempt=self.attempt, start=p * PAGE, limit=PAGE
            )
            self._pages[p] = page
            if page:
                self.width = max(self.width, max(len(x.text) for x in page))
        return page

    def _row(self, i: int) -> StoredLine | None:
        page = self._page(i // PAGE)
        j = i % PAGE
        return page[j] if j < len(page) else None

    def line(self, i: int) -> str:
        row = self._row(i)
        return row.text.replace("\n", " ") if row is not None else ""

    def ts(self, i: int) -> float:
        row = self._row(i)
        return row.ts if row is not None else 0.0

    def stream(self, i: int) -> str:
        row = self._row(i)
        return row.stream if row is not None else "stdout"

    def line_no(self, i: int) -> int:
        row = self._row(i)
        return row.line_no if row is not None else i + 1

    def plain(self, i: int) -> str:
        text = self.line(i)
        return strip_ansi(text) if "\x1b" in text else text

    def lines(self, start: int = 0, end: int | None = None) -> Iterator[str]:
        end = self.count if end is None else min(end, self.count)
        for i in range(max(0, start), end):
            yield self.line(i)

    def find(self, pattern: re.Pattern[str], start: int, *, backwards: bool = False) -> int | None:
        if not self.count:
            return None
        indexes = range(min(start, self.count - 1), -1, -1) if backwards else range(max(0, start), self.count)
        for i in indexes:
            if pattern.search(self.plain(i)):
                return i
        return None

    def first_error(self) -> int | None:
        return self.find(ERROR_PATTERN, 0)


class _ReplayView:
    """What the board reads from the app: the replay's model and header, and no controller."""

    controller = None

    def __init__(self, app: BakeryApp, model: BoardModel, header: HeaderInfo, run_id: str,
                 store: Store) -> None:
        self._app = app
        self.model = model
        self.header_info = header
        self.initial_run = run_id
        self.source = ListSource(store=store)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def load_history(self, key: LogKey) -> None:
        """Never needed: replay panes read the store page by page."""


class ReplayScreen(BoardScreen):
    """The board over a stored execution, with a timeline bar and no live controls."""

    DEFAULT_CSS = """
    ReplayScreen #seek {
        dock: bottom;
        margin: 0 0 1 0;
        border: tall $accent;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "play", "Play"),
        Binding("left", "step(-1)", "Event", key_display="←"),
        Binding("right", "step(1)", "Event", key_display="→"),
        Binding("shift+left,comma", "change(-1)", "Change", key_display=","),
        Binding("shift+right,full_stop", "change(1)", "Change", key_display="."),
        Binding("F", "first_failure", "Failure"),
        Binding("g", "goto", "Go to"),
        Binding("plus,equals_sign", "speed(1)", "Speed", key_display="+"),
        Binding("minus", "speed(-1)", "Slower", show=False),
        Binding("0", "seek_start", "Start", show=False),
        Binding("dollar_sign", "seek_end", "End", show=False),
        Binding("d", "compare_green", "Compare", show=False),
    ]

    LIVE_ACTIONS = frozenset({"approve", "reject", "stop", "retry", "toggle_transition", "run_now"})

    def __init__(self, timeline: Timeline, *, at: float | None = None, standalone: bool = False,
                 select: tuple[str, str] | None = None, line: int | None = None,
                 find: str | None = None, own_timeline: bool = False) -> None:
        super().__init__(screen_id=f"replay-{next(_ids)}")
        self.timeline = timeline
        self.standalone = standalone
        self.own_timeline = own_timeline
        self.index = 0
        self.t = 0.0
        self._set_playing(False)
        self.speed = SPEEDS[0]
        self._start_at = at
        self._start_select = select
        self._start_line = line
        self._start_find = find
        self._buffers: dict[LogKey, TimelineLogBuffer] = {}
        self._last_tick = 0.0
        self._busy = False
        self._saved_clock: Any = None
        self._clock_set = False
        self._pipeline_events: list[ev.Event] = []
        first = timeline.events[0]
        self.rmodel = BoardModel(str(first.data.get("pipeline") or ""), timeline.store)
        self.rmodel.ingest([first])
        final = timeline.final
        header = HeaderInfo(
            repo="",
            branch=str(final.commit.get("branch") or ""),
            pipeline=final.pipeline,
            version=final.pipeline_version,
            mode=final.execution_mode,
            note=f"replay of #{final.number}",
        )
        self._view: _ReplayView | None = None
        self._header = header
        self._marks = [(m.t, m.event.data.get("status")) for m in timeline.status_changes()
                       if m.event.type != ev.RUN_STATUS or m.event.data.get("status") != ev.IN_PROGRESS]
        self._activity: list[int] = []
        self._critical = ""

    # -- the app as the board sees it -----------------------------------------------------
    @property
    def bapp(self) -> BakeryApp:
        if self._view is None:
            app: BakeryApp = self.app  # type: ignore[assignment]
            self._header.repo = app.header_info.repo
            self._view = _ReplayView(app, self.rmodel, self._header, self.timeline.run_id, self.timeline.store)
        return self._view  # type: ignore[return-value]

    def now_abs(self) -> float:
        """The replay instant as a wall-clock time (what the app's clock reads meanwhile)."""
        return self.timeline.ts_of(self.t)

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if isinstance(widget, Footer):
                yield TimelineBar(id="timeline")
                yield Input(placeholder="go to time: seconds or m:ss (Enter: go, Esc: cancel)", id="seek")
            yield widget

    async def on_mount(self) -> None:
        self.query_one("#seek", Input).display = False
        self._load_pipeline_events()
        self._use_clock()
        await super().on_mount()
        self._activity = self.timeline.activity(200)
        self._critical = self._critical_line()
        self._timer = self.set_interval(PLAY_INTERVAL, self._play_tick, pause=True)  # runs only while playing
        if self._start_at is not None:
            await self.seek(self._start_at)
        else:
            await self.seek_index(0)
        if self._start_select is not None:
            await self.select(*self._start_select, line=self._start_line, find=self._start_find)

    def _load_pipeline_events(self) -> None:
        """Transitions disabled/enabled at the pipeline level, replayed by time too."""
        name = self.rmodel.pipeline_name
        with contextlib.suppress(Exception):  # an old store without them: nothing to show
            self._pipeline_events = [
                e for e in self.timeline.store.events(pipeline_level=True)
                if e.type == ev.TRANSITION_CHANGED and e.data.get("pipeline", name) == name
            ]

    def _use_clock(self) -> None:
        app: BakeryApp = self.app  # type: ignore[assignment]
        if not self._clock_set:
            self._saved_clock = app.clock
            app.clock = self.now_abs
            self._clock_set = True

    def _restore_clock(self) -> None:
        if self._clock_set:
            app: BakeryApp = self.app  # type: ignore[assignment]
            app.clock = self._saved_clock
            self._clock_set = False

    def on_screen_resume(self) -> None:
        self._use_clock()

    def on_screen_suspend(self) -> None:
        self._restore_clock()
        self._set_playing(False)

    def on_unmount(self) -> None:
        self._restore_clock()
        if self.own_timeline:
            self.timeline.close()

    # -- moving along the timeline ------------------------------------------------------------
    async def seek(self, t: float) -> None:
        t = max(0.0, min(t, self.timeline.duration))
        await self.seek_index(self.timeline.index_at(t), t)

    async def seek_index(self, index: int, t: float | None = None) -> None:
        """Show the execution after events[0..index], at time t (default: that event's)."""
        tl = self.timeline
        index = max(0, min(index, len(tl.events) - 1))
        t = tl.times[index] if t is None else t
        old = self.index
        self.t = t
        run_id = tl.run_id
        if index > old and index - old <= INGEST_LIMIT and run_id in self.rmodel.runs:
            changes = self.rmodel.ingest(tl.events[old + 1 : index + 1])
            self.index = index
            self._replay_pipeline()
            await self.apply(changes)
            if not changes:
                self.tick()
        else:
            if index != old or run_id not in self.rmodel.runs:
                self.rmodel.runs[run_id] = tl.state_at_index(index)
            self.index = index
            self._replay_pipeline()
            if self.ready:
                await self.redraw()
        self._update_logs()
        self._update_bar()

    def _replay_pipeline(self) -> None:
        if not self._pipeline_events:
            return
        until = self.now_abs()
        state = PipelineState(self.rmodel.pipeline_name or "")
        for e in self._pipeline_events:
            if e.ts <= until:
                state.apply(e)
        self.rmodel.pipeline = state

    def _set_playing(self, playing: bool) -> None:
        self.playing = playing
        self._last_tick = time.monotonic()
        timer = getattr(self, "_timer", None)
        if timer is not None:
            (timer.resume if playing else timer.pause)()

    async def _play_tick(self) -> None:
        if not self.playing or self._busy:
            return
        self._busy = True
        try:
            now = time.monotonic()
            dt = min(0.5, now - (self._last_tick or now))
            self._last_tick = now
            target = self.t + dt * self.speed
            if target >= self.timeline.duration:
                target = self.timeline.duration
                self._set_playing(False)
            await self.seek(target)
        finally:
            self._busy = False

    def action_play(self) -> None:
        if not self.playing and self.t >= self.timeline.duration:
            self.t = 0.0
            self.index = 0
            self.rmodel.runs.pop(self.timeline.run_id, None)
        self._set_playing(not self.playing)
        self._update_bar()

    def action_speed(self, delta: int) -> None:
        i = SPEEDS.index(self.speed) if self.speed in SPEEDS else 0
        self.speed = SPEEDS[max(0, min(len(SPEEDS) - 1, i + delta))]
        self._update_bar()

    async def action_step(self, delta: int) -> None:
        """The previous/next event (one at a time, even when several share a time)."""
        self._set_playing(False)
        times = self.timeline.times
        if delta < 0 and self.t > times[self.index] + 1e-9:
            await self.seek_index(self.index)
        else:
            await self.seek_index(self.index + delta)

    async def action_change(self, delta: int) -> None:
        """The previous/next run, stage or action status change."""
        self._set_playing(False)
        events = self.timeline.events
        times = self.timeline.times
        if delta > 0:
            indexes: range = range(self.index + 1, len(events))
        else:
            start = self.index if self.t > times[self.index] + 1e-9 else self.index - 1
            indexes = range(start, -1, -1)
        for i in indexes:
            if events[i].type in STATUS_EVENTS:
                await self.seek_index(i)
                return
        self.notify("no further status change" if delta > 0 else "no earlier status change", timeout=2)

    async def action_first_failure(self) -> None:
        self._set_playing(False)
        mark = self.timeline.first_failure()
        if mark is None:
            self.notify("nothing failed in this execution", timeout=3)
            return
        await self.seek_index(mark.index)
        data = mark.event.data
        if data.get("stage") and data.get("action"):
            await self.select(str(data["stage"]), str(data["action"]))

    async def action_seek_start(self) -> None:
        self._set_playing(False)
        await self.seek_index(0)

    async def action_seek_end(self) -> None:
        self._set_playing(False)
        await self.seek(self.timeline.duration)

    def action_goto(self) -> None:
        self._set_playing(False)
        box = self.query_one("#seek", Input)
        box.value = ""
        box.display = True
        box.focus()

    async def on_input_submitted(self, message: Input.Submitted) -> None:
        if message.input.id != "seek":
            super().on_input_submitted(message)
            return
        message.stop()
        message.input.display = False
        self.set_focus(None)
        try:
            t = parse_time(message.value)
        except ValueError:
            self.notify(f"not a time: {message.value!r} (seconds, or m:ss)", severity="warning", timeout=4)
            return
        await self.seek(t)

    async def on_timeline_bar_seek(self, message: TimelineBar.Seek) -> None:
        message.stop()
        await self.seek(message.t)

    async def select(self, stage: str, action: str, *, line: int | None = None, find: str | None = None) -> None:
        """Select an action; optionally show one of its lines (1-based) highlighted."""
        run = self.run
        if run is None:
            return
        try:
            run.action(stage, action)
        except KeyError:
            return
        self.selected = (stage, action)
        self.follow_action = False
        self._mark_selection()
        self._show_approval()
        await self._arrange_logs()
        self._update_logs()
        pane = self.active_pane()
        if pane is None:
            return
        if find:
            pane.view.set_search(find)
        if line is not None and len(pane.view.buffer):
            index = max(0, min(len(pane.view.buffer) - 1, line - 1))
            pane.view.current = index
            pane.view._cache.clear()
            self.call_after_refresh(pane.view.go_to, index)
        pane.update_status()
        self._refresh_bindings_if_changed(force=True)

    async def action_compare_green(self) -> None:
        from tui.screens.compare import compare_with_last_green

        compare_with_last_green(self.app, self.timeline.store, self.timeline.run_id)  # type: ignore[arg-type]

    # -- what the board draws differently ------------------------------------------------------
    def _buffer(self, key: LogKey | None) -> Any:
        if key is None:
            return self._empty_buffer
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = TimelineLogBuffer(self.timeline, key[1], key[2], key[3])
        buffer.set_count(self.timeline.log_count_at(self.t, key[1], key[2], attempt=key[3]))
        return buffer

    def _update_logs(self) -> None:
        for pane in self._panes:
            key = pane.key
            buffer = pane.view.buffer
            if key is None or not isinstance(buffer, TimelineLogBuffer):
                continue
            count = self.timeline.log_count_at(self.t, key[1], key[2], attempt=key[3])
            if buffer.set_count(count):
                pane.lines_added()
            else:
                pane.update_status()

    def _describe(self) -> str:
        e = self.timeline.events[self.index]
        d = e.data
        where = "/".join(str(d[k]) for k in ("stage", "action") if d.get(k))
        what = {
            ev.RUN_CREATED: "created",
            ev.APPROVAL_REQUESTED: "approval requested",
            ev.APPROVAL_DECIDED: f"approval {d.get('result', '')} by {d.get('by', '?')}",
            ev.STOP_REQUESTED: f"stop requested ({d.get('mode', '')}) by {d.get('by', '?')}",
        }.get(e.type)
        if what is None:
            what = str(d.get("status") or e.type)
            if e.type == ev.STAGE_STATUS and int(d.get("attempt") or 1) > 1:
                what += f" (retry, attempt {d.get('attempt')})"
        return f"{e.type}  {where}  {what}".replace("  ", " ", 1) if where else f"{e.type}  {what}"

    def _critical_line(self) -> str:
        from engine.insight import critical_path

        try:
            path = critical_path(self.timeline.final, self.timeline.events)
        except Exception:  # noqa: BLE001 - insight must never stop a replay
            return ""
        steps = [
            f"{s.stage}/{s.action} {clock_text(s.duration)}" if s.kind == "action"
            else f"wait {s.stage} {clock_text(s.duration)}{' (' + s.reason + ')' if s.reason else ''}"
            for s in path.steps
        ]
        return "critical path: " + " → ".join(steps) if steps else ""

    def _update_bar(self) -> None:
        if not self.ready:
            return
        tl = self.timeline
        self.query_one(TimelineBar).show(
            BarState(
                t=self.t,
                duration=tl.duration,
                index=self.index,
                total=len(tl.events),
                playing=self.playing,
                speed=self.speed,
                what=self._describe(),
                marks=self._marks,
                activity=self._activity,
                note=self._critical,
            )
        )
        self.query_one("BoardHeader").refresh()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.LIVE_ACTIONS:
            return False
        if action == "unzoom":
            return True  # esc also leaves a replay opened from another screen
        return super().check_action(action, parameters)

    def action_unzoom(self) -> None:
        seek = self.query_one("#seek", Input)
        if seek.display:
            seek.display = False
            self.set_focus(None)
            return
        if self.maximized is None and not self.query_one("#search", Input).display and not self.standalone:
            self.dismiss(None)
            return
        super().action_unzoom()


class ReplayApp(BakeryApp):
    """`bakery replay`: the app with a replay as its board (no engine, no controller)."""

    CSS_PATH = str(Path(__file__).resolve().parent.parent / "app.tcss")  # the board's styles

    def __init__(self, timeline: Timeline, *, at: float | None = None, **kwargs: Any) -> None:
        self.timeline = timeline
        self.start_at = at
        kwargs.setdefault("model", BoardModel(store=timeline.store))
        super().__init__(ListSource(store=timeline.store), **kwargs)

    def get_default_screen(self) -> Screen[Any]:
        self._board = ReplayScreen(self.timeline, at=self.start_at, standalone=True)
        return self._board


def open_replay(app: BakeryApp, store: Store, run_id: str, **kwargs: Any) -> ReplayScreen | None:
    """Push a replay of a stored execution over whatever is on screen (history, search)."""
    from engine.replay import ReplayError

    try:
        timeline = Timeline.open(store, run_id)
    except ReplayError as exc:
        app.notify(str(exc), severity="error", timeout=6)
        return None
    screen = ReplayScreen(timeline, **kwargs)
    app.push_screen(screen)
    return screen
