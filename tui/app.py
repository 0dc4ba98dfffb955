"""The Bakery app: event source, model, themes, settings, screens and app-wide keys.

The app owns the one timer that drains the event source (~40 ms) and folds what it got into
the model; screens only draw the model. Screens are a registry (`SCREENS`) so history,
replay and diff screens can be added without touching the board.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen

from engine import events as ev
from tui import look
from tui.commands import COMMANDS, BakeryCommands, Command
from tui.controller import Controller
from tui.model import BoardModel, Changes, LogKey
from tui.screens.approval import confirm_quit_modal
from tui.screens.board import BoardScreen
from tui.screens.help import HelpScreen
from tui.settings import Settings, config_dir
from tui.source import EventSource
from tui.themes import DEFAULT_THEME, VARIABLE_DEFAULTS, all_themes
from tui.widgets.header import HeaderInfo

DRAIN_INTERVAL = 0.04
TICK_INTERVAL = 0.1
INPUT_HOLD = 0.25  # seconds the engine's log output waits after a key press or a click


class BakeryApp(App[int]):
    """The board and, later, its sibling screens (history, replay, diff)."""

    CSS_PATH = "app.tcss"
    TITLE = "bakery"
    COMMANDS = App.COMMANDS | {BakeryCommands}
    SCREENS: ClassVar[dict[str, Callable[[], Screen[Any]]]] = {"help": HelpScreen}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help"),
        Binding("H", "history", "History"),  # history, replay, compare, search: tui/screens/
        Binding("S,ctrl+f", "search_logs", "Search all", show=False),
    ]

    def __init__(
        self,
        source: EventSource,
        *,
        model: BoardModel | None = None,
        controller: Controller | None = None,
        header: HeaderInfo | None = None,
        repo: Path | None = None,
        focus_run: str | None = None,
        settings_dir: Path | None = None,
        clock: Callable[[], float] | None = None,
        animate: bool = True,
        grace: float = 5.0,
        on_ready: Callable[[BakeryApp], None] | None = None,
        desktop_notify: bool = True,
    ) -> None:
        self.settings_dir = settings_dir or config_dir()
        self.settings = Settings.load(self.settings_dir)
        super().__init__()
        self.source = source
        self.model = model or BoardModel(store=source.store)
        self.controller = controller
        self.header_info = header or HeaderInfo()
        self.repo = repo
        self.initial_run = focus_run
        self.clock = clock
        self.animate = animate
        self.grace = grace
        self.spinner_frame = 0
        self._ticks = 0
        self.on_ready = on_ready
        self.desktop_notify = desktop_notify
        self.bakery_themes: list[str] = []
        self._quitting = False
        self._input_until = 0.0  # drains wait until then: a key's answer is being drawn
        self._inputs = 0  # keys and clicks so far
        self._load_themes()

    # -- time -----------------------------------------------------------------------------
    def now(self) -> float:
        return self.clock() if self.clock is not None else time.time()

    # -- themes and settings --------------------------------------------------------------
    def _load_themes(self) -> None:
        themes, problems = all_themes(self.settings_dir)
        for theme in themes:
            self.register_theme(theme)
        self.bakery_themes = [t.name for t in themes]
        self._theme_problems = problems
        wanted = self.settings.theme
        self.theme = wanted if wanted in self.available_themes else DEFAULT_THEME

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(VARIABLE_DEFAULTS)

    def watch_theme(self, theme_name: str) -> None:
        """Remember the choice (the board redraws when theme_changed_signal fires)."""
        if self.settings.theme != theme_name:
            self.settings.theme = theme_name
            self.settings.save(self.settings_dir)

    def action_set_theme(self, name: str) -> None:
        if name in self.available_themes:
            self.theme = name
            self.notify(f"theme: {name}", timeout=2)

    # -- screens ----------------------------------------------------------------------------
    def get_default_screen(self) -> Screen[Any]:
        self._board = BoardScreen()
        return self._board

    @property
    def board(self) -> BoardScreen:
        return self._board

    def commands(self) -> list[Command]:
        """The palette's command table (other screens extend COMMANDS)."""
        return list(COMMANDS)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen("help")

    def action_history(self) -> None:
        from tui.screens.history import open_history

        open_history(self)

    def action_search_logs(self) -> None:
        from tui.screens.search import open_search

        open_search(self)

    # -- lifecycle --------------------------------------------------------------------------
    def on_mount(self) -> None:
        for problem in self._theme_problems:
            self.notify(problem, title="theme skipped", severity="warning")
        self.theme_changed_signal.subscribe(self, lambda _theme: self.board.redraw_all())
        self.set_interval(DRAIN_INTERVAL, self._drain)
        self.set_interval(TICK_INTERVAL, self._tick)
        self.call_after_refresh(self._ready)

    async def _ready(self) -> None:
        # What exists once the board is up (modules, CSS, widgets, the engine) lives as long
        # as the process: out of the collector's way, a full collection no longer walks it all
        # (one took 0.1-0.3 s while a flood was drawn, in the middle of a key press). Once a
        # process: objects frozen are never collected, and tests start many apps.
        if not gc.get_freeze_count():
            gc.freeze()
        await self._drain()
        if self.on_ready is not None:
            self.run_ready_hook()

    @work(thread=True, exit_on_error=False, group="startup")
    def run_ready_hook(self) -> None:
        """Startup work that must not block drawing (the demo's first commit)."""
        if self.on_ready is not None:
            self.on_ready(self)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown):
            hold = getattr(self.source, "hold", None)
            if hold is not None:  # input first: a flood waits while a key is answered
                hold(INPUT_HOLD)
            # ...and so do the drains, until what the key changed is on the screen: a drain
            # in between would add its lines (and every log row they scroll) to that repaint
            self._input_until = time.monotonic() + INPUT_HOLD
            self._inputs += 1
            await super().on_event(event)
            self.call_after_refresh(self._input_answered, self._inputs)
            return
        await super().on_event(event)

    def _input_answered(self, input_number: int) -> None:
        if input_number == self._inputs:  # not while a later key waits for its own answer
            self._input_until = 0.0

    async def _drain(self) -> None:
        if time.monotonic() < self._input_until:
            return  # a key's answer is being drawn (bounded by INPUT_HOLD)
        items = self.source.drain()
        if not items:
            return
        started = time.perf_counter()
        changes = self.model.ingest(items)
        applied = getattr(self.source, "applied", None)  # a live source paces its drains
        if applied is not None:
            lines = sum(len(i.lines) for i in items if isinstance(i, ev.LogBatch))
            applied(lines, time.perf_counter() - started)
        if changes:
            with contextlib.suppress(NoMatches):
                await self.apply_changes(changes)

    async def apply_changes(self, changes: Changes) -> None:
        for severity, message in changes.notices:
            self.notify(look.safe(message), severity=severity, timeout=6)  # type: ignore[arg-type]
        for event in changes.approvals:
            self._approval_alert(event)
        await self.board.apply(changes)

    def _tick(self) -> None:
        """Spinners every tick when animated; otherwise elapsed times once a second."""
        self._ticks += 1
        if self.animate:
            self.spinner_frame += 1
        elif self._ticks % 10:
            return
        with contextlib.suppress(NoMatches):  # widgets go away while the app shuts down
            self.board.tick()

    def _approval_alert(self, event: ev.Event) -> None:
        """Ring the bell and send a desktop notification: someone must answer."""
        run = self.model.runs.get(str(event.run_id))
        number = f"#{run.number} " if run else ""
        where = f"{event.data.get('stage')}/{event.data.get('action')}"
        message = look.safe(event.data.get("message") or "")
        self.bell()
        self.notify(f"{number}{where}: {message}", title="Approval waiting", timeout=8)
        if self.desktop_notify and not self.is_headless and shutil.which("notify-send"):
            with contextlib.suppress(OSError):
                subprocess.Popen(
                    ["notify-send", "--app-name=bakery", f"Bakery: approval waiting {number}{where}", message],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )

    # -- logs written before the board opened ------------------------------------------------
    @work(thread=True, exit_on_error=False, group="logs")
    def load_history(self, key: LogKey) -> None:
        store = self.source.store
        buffer = self.model.logs.get(key)
        if store is None or buffer is None:
            return
        lines: list[tuple[int, float, str, str]] = []
        after = 0
        run_id, stage, action, attempt = key
        while True:
            page = store.logs(run_id, stage, action, attempt=attempt, after_id=after, limit=50_000)
            if not page:
                break
            lines.extend((s.line_no, s.ts, s.stream, s.text) for s in page)
            after = page[-1].id
        self.call_from_thread(self._history_loaded, key, lines)

    def _history_loaded(self, key: LogKey, lines: list[tuple[int, float, str, str]]) -> None:
        buffer = self.model.logs.get(key)
        if buffer is not None:
            buffer.finish_load(lines)
            self.board.log_grew(key)

    # -- quitting ---------------------------------------------------------------------------
    def running_executions(self) -> int:
        if self.controller is None:
            return 0
        return sum(
            1
            for r in self.model.runs.values()
            if r.id in self.model.live_runs and not r.finished and not r.waits_only_for_approvals
        )

    async def action_quit(self) -> None:
        if self._quitting:
            return
        running = self.running_executions()
        if running:
            def answered(answer: Any) -> None:
                if answer is not None and answer.value == "quit":
                    self._stop_and_exit()

            self.push_screen(confirm_quit_modal(running, self.grace), answered)
            return
        self._stop_and_exit()

    def _stop_and_exit(self) -> None:
        self._quitting = True
        if self.controller is None:
            self.exit(0)
            return
        if self.running_executions():
            self.notify(f"stopping running actions (up to {self.grace:g}s)…", timeout=self.grace + 2)
        self._close_engine()

    @work(thread=True, exit_on_error=False, group="shutdown")
    def _close_engine(self) -> None:
        assert self.controller is not None
        try:
            self.controller.close(self.grace + 1.8)
        finally:
            self.call_from_thread(self.exit, 0)
