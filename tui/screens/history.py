"""History: every stored execution, filterable, opened to replay, inspect or compare.

The table is a Line-API view over a plain list of `RunSummary` rows: it draws only the rows on
screen, so 10,000 (or 100,000) executions open as fast as ten. (A DataTable took ~8 s to add
10,000 rows here.) Rows are read by `Store.runs` in a worker thread; the action trends and
flaky marks above the table (engine/insight.py) load the same way, after the rows.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

from engine import events as ev
from engine.store import RunSummary
from tui import look
from tui.widgets.footer import BoardFooter
from tui.widgets.sparkline import spark_text

if TYPE_CHECKING:
    from engine.store import Store
    from tui.app import BakeryApp

STATUS_FILTERS: tuple[str | None, ...] = (
    None, ev.FAILED, ev.SUCCEEDED, ev.IN_PROGRESS, ev.STOPPED, ev.SUPERSEDED, ev.CANCELLED,
)
MAX_ROWS = 200_000
FIRST_PAGE = 100  # more than a screenful of rows

# (title, width); a width of 0 takes what is left
COLUMNS: list[tuple[str, int]] = [
    ("", 2), ("#", 7), ("status", 13), ("trigger", 24), ("commit", 9), ("subject", 0),
    ("branch", 16), ("started", 17), ("took", 9),
]


def _cells(r: RunSummary, now: float) -> list[str]:
    took = r.duration if r.duration is not None else (now - (r.started_at or r.created_at) if r.status == ev.IN_PROGRESS else None)
    return [
        f"#{r.number}",
        f"{look.symbol(r.status or 'Queued')} {r.status or 'Queued'}",
        look.safe(r.trigger_type or ""),
        (r.commit_id or "")[:8],
        look.subject(r.subject),
        look.safe(r.branch or ""),
        time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started_at or r.created_at)),
        look.duration(took),
    ]


def _fit(text: str, width: int) -> str:
    if len(text) > width:
        return text[: max(0, width - 1)] + "…"
    return text.ljust(width)


class RunTable(ScrollView, can_focus=True):
    """Executions, one per line, drawn lazily; a cursor row, and marks for comparing."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"runtable--cursor", "runtable--marked"}
    DEFAULT_CSS = """
    /* rows are cut to the width: a horizontal scrollbar only hid the last row */
    RunTable { height: 1fr; background: $surface; scrollbar-size-vertical: 1; overflow-x: hidden; }
    RunTable > .runtable--cursor { background: $primary 40%; text-style: bold; }
    RunTable > .runtable--marked { color: $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", show=False),
        Binding("down,j", "cursor(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(-1)", show=False),
    ]

    class Moved(Message):
        """The cursor moved (the screen updates its status line)."""

    class Chosen(Message):
        def __init__(self, summary: RunSummary) -> None:
            super().__init__()
            self.summary = summary

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows: list[RunSummary] = []
        self.cursor = 0
        self.marked: list[str] = []
        self._cache: LRUCache[tuple[int, bool, bool, int], Strip] = LRUCache(512)

    def set_rows(self, rows: list[RunSummary]) -> None:
        """Show `rows`. Lines already drawn are kept when `rows` only adds to the rows shown
        (every row after the first page), and the table's size changes without laying the
        screen out: its own size never depends on its rows."""
        keep = self.current().id if self.current() else None
        if not (len(rows) >= len(self.rows) and rows[: len(self.rows)] == self.rows):
            self._cache.clear()
        self.rows = rows
        self.cursor = 0
        if keep is not None:
            for i, r in enumerate(rows):
                if r.id == keep:
                    self.cursor = i
                    break
        size = Size(self.size.width, len(rows))
        if self.is_mounted and self.container_size:
            # `virtual_size` is a layout reactive; a scrollbar that appears or goes still
            # lays the screen out (show_vertical_scrollbar is one too)
            self.set_reactive(RunTable.virtual_size, size)
            self._scroll_update(size)
        else:
            self.virtual_size = size
        self._show_cursor()
        self.refresh()
        self.post_message(self.Moved())

    def current(self) -> RunSummary | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def toggle_mark(self) -> None:
        row = self.current()
        if row is None:
            return
        if row.id in self.marked:
            self.marked.remove(row.id)
        else:
            self.marked = [*self.marked[-1:], row.id]  # two at most: the pair to compare
        self._cache.clear()
        self.refresh()

    def move_to(self, index: int) -> None:
        if not self.rows:
            return
        self.cursor = max(0, min(len(self.rows) - 1, index))
        self._show_cursor()
        self.refresh()
        self.post_message(self.Moved())

    def _show_cursor(self) -> None:
        height = max(1, self.size.height)
        if self.cursor < self.scroll_y:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= self.scroll_y + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def action_cursor(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_page(self, delta: int) -> None:
        self.move_to(self.cursor + delta * max(1, self.size.height - 1))

    def action_jump(self, where: int) -> None:
        self.move_to(len(self.rows) - 1 if where < 0 else where)

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_y) + event.y
        if 0 <= index < len(self.rows):
            if index == self.cursor and event.chain >= 2:
                self.post_message(self.Chosen(self.rows[index]))
            self.move_to(index)

    def on_resize(self) -> None:
        self._cache.clear()
        self.virtual_size = Size(self.size.width, len(self.rows))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def render_line(self, y: int) -> Strip:
        index = int(self.scroll_y) + y
        width = self.size.width
        base = self.rich_style
        if index >= len(self.rows):
            return Strip.blank(width, base)
        row = self.rows[index]
        key = (index, index == self.cursor, row.id in self.marked, width)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._build(row, index == self.cursor, row.id in self.marked, width, base)
            self._cache[key] = strip
        return strip

    def _build(self, row: RunSummary, cursor: bool, marked: bool, width: int, base: Style) -> Strip:
        app: BakeryApp = self.app  # type: ignore[assignment]
        cells = ["●" if marked else "", *_cells(row, app.now())]
        fixed = sum(w + 1 for _, w in COLUMNS if w)
        flexible = max(10, width - fixed)
        text = Text(no_wrap=True, end="")
        for (_, w), cell in zip(COLUMNS, cells, strict=True):
            style: Style | str = ""
            if _ == "status":
                style = look.status_style(app, row.status or "Queued", bold=True)
            elif _ in ("commit", "started", "took"):
                style = "dim"
            elif _ == "" and marked:
                style = self.get_component_rich_style("runtable--marked", partial=True)
            text.append(_fit(cell, w or flexible) + " ", style)
        if row.status in (ev.SUPERSEDED, ev.CANCELLED):
            text.stylize("dim")
        if cursor:
            text.stylize(self.get_component_rich_style("runtable--cursor", partial=True))
        segments = [Segment(s.text, base + s.style if s.style else base) for s in text.render(app.console)]
        return Strip(segments, text.cell_len).crop_extend(0, width, base)


class HistoryFooter(BoardFooter):
    """The keys, composed with the screen: a Footer composes none until the screen's bindings
    are announced, then mounts them all again (~50 ms, while the first rows are drawn)."""

    def compose(self) -> ComposeResult:
        self._bindings_ready = True
        self._layout_shown, _ = self._shown(self.screen)  # what a later sync compares with
        yield from super().compose()


def header_line(width: int) -> Text:
    fixed = sum(w + 1 for _, w in COLUMNS if w)
    flexible = max(10, width - fixed)
    return Text("".join(_fit(t, w or flexible) + " " for t, w in COLUMNS), style="bold", no_wrap=True)


class HistoryScreen(Screen[None]):
    """`H`: executions newest first, filter by status (f) and branch (b)."""

    DEFAULT_CSS = """
    HistoryScreen #history-title { height: 1; background: $panel; text-style: bold; padding: 0 1; }
    HistoryScreen #history-insight { height: auto; max-height: 12; padding: 0 1; background: $surface; }
    HistoryScreen #history-head { height: 1; padding: 0 0; color: $text-muted; background: $panel; }
    HistoryScreen #history-status { height: 1; padding: 0 1; color: $text-muted; background: $panel; }
    HistoryScreen #branch { dock: bottom; margin: 0 0 1 0; border: tall $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("enter", "replay", "Replay"),
        Binding("o", "inspect", "Open on board"),
        Binding("space,m", "mark", "Mark"),
        Binding("d", "compare", "Compare"),
        Binding("f", "status_filter", "Status filter"),
        Binding("b", "branch_filter", "Branch filter"),
        Binding("i", "insight", "Trends", show=False),
    ]

    def __init__(self, store: Store, pipeline: str | None = None) -> None:
        super().__init__()
        self.store = store
        self.pipeline = pipeline
        self.status_filter: str | None = None
        self.branch_filter: str | None = None
        self.total = 0
        self.shown = False  # the newest rows are on screen
        self.loaded = False  # every row is
        self._insight_started = False

    @property
    def bapp(self) -> BakeryApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("History", id="history-title")
        yield Static("", id="history-insight")
        yield Static("", id="history-head")
        yield RunTable(id="history-table")
        yield Static("loading…", id="history-status")
        yield Input(placeholder="branch (empty: every branch; Enter: apply, Esc: cancel)", id="branch")
        yield HistoryFooter()

    def on_mount(self) -> None:
        self.query_one("#branch", Input).display = False
        self.query_one(RunTable).focus()
        self.reload()

    @property
    def table(self) -> RunTable:
        return self.query_one(RunTable)

    # -- loading ----------------------------------------------------------------------------
    def reload(self) -> None:
        self.shown = self.loaded = False
        self._title()
        self._load(self.status_filter, self.branch_filter)

    @work(thread=True, exit_on_error=False, group="history", exclusive=True)
    def _load(self, status: str | None, branch: str | None) -> None:
        """A first screenful, drawn before every row is read (`_load_rest`): reading 10,000
        rows takes a tenth of a second or more on a busy machine, and the newest executions
        are what is looked at. Reading them while the screen is first drawn slowed both
        (the reading thread and the drawing take turns holding the GIL)."""
        first = self.store.runs(pipeline=self.pipeline, status=status, branch=branch, limit=FIRST_PAGE)
        self.app.call_from_thread(self._loaded, first, status, branch, complete=len(first) < FIRST_PAGE)

    def _read_the_rest(self, status: str | None, branch: str | None) -> None:
        if (status, branch) == (self.status_filter, self.branch_filter):  # else a reload is on
            self._load_rest(status, branch)

    @work(thread=True, exit_on_error=False, group="history", exclusive=True)
    def _load_rest(self, status: str | None, branch: str | None) -> None:
        rows = self.store.runs(pipeline=self.pipeline, status=status, branch=branch, limit=MAX_ROWS)
        self.app.call_from_thread(self._loaded, rows, status, branch, complete=True)

    def _loaded(
        self, rows: list[RunSummary], status: str | None, branch: str | None, *, complete: bool
    ) -> None:
        if (status, branch) != (self.status_filter, self.branch_filter):
            return  # a newer filter is on its way
        self.table.set_rows(rows)
        self.shown = True
        if not complete:
            self.call_after_refresh(self._read_the_rest, status, branch)
            return
        self.total = len(rows)
        self.loaded = True
        self._title()
        self._status()
        if not self._insight_started:
            self._insight_started = True
            # once the rows are drawn: both read the store and want the GIL
            self.call_after_refresh(self.load_insight)

    @work(thread=True, exit_on_error=False, group="insight", exclusive=True)
    def load_insight(self) -> None:
        from engine.insight import action_trends, flaky_actions

        try:
            trends = action_trends(self.store, self.pipeline, last=20)
            flaky = flaky_actions(self.store, self.pipeline)
        except Exception as exc:  # noqa: BLE001 - insight is a bonus, never a failure
            self.app.call_from_thread(self.query_one("#history-insight", Static).update, f"trends unavailable: {exc}")
            return
        self.app.call_from_thread(self._insight_loaded, trends, flaky)

    def _insight_loaded(self, trends: list[Any], flaky: list[Any]) -> None:
        app = self.bapp
        flaky_by = {(f.stage, f.action): f for f in flaky}
        text = Text(no_wrap=True, overflow="ellipsis")
        if trends:
            text.append("Durations of the last executions (oldest → newest)\n", "dim")
        for trend in trends:
            styles = [look.status_style(app, p.status) for p in trend.points]
            last = next((d for d in reversed(trend.durations) if d is not None), None)
            text.append(f"{_fit(trend.stage + '/' + trend.action, 30)} ")
            text.append_text(spark_text(trend.durations, styles))
            text.append(f"  {look.duration(last)}", "dim")
            f = flaky_by.get((trend.stage, trend.action))
            if f is not None:
                text.append(
                    f"  ⚑ flaky: failed in #{', #'.join(map(str, f.failed_in[-3:]))} then passed on the same commit",
                    look.status_style(app, "Waiting", bold=True),
                )
            text.append("\n")
        self.query_one("#history-insight", Static).update(text if trends else "")

    # -- drawing ----------------------------------------------------------------------------
    def on_resize(self) -> None:
        self.query_one("#history-head", Static).update(header_line(self.table.size.width or self.size.width))

    def _title(self) -> None:
        parts = ["History"]
        if self.pipeline:
            parts.append(self.pipeline)
        parts.append(f"{self.total:,} executions" if self.loaded else "loading…")
        filters = []
        if self.status_filter:
            filters.append(f"status {self.status_filter}")
        if self.branch_filter:
            filters.append(f"branch {self.branch_filter}")
        parts.append("filter: " + ", ".join(filters) if filters else "no filter")
        # one line each, whatever they say: no layout
        self.query_one("#history-title", Static).update(" · ".join(parts), layout=False)
        self.query_one("#history-head", Static).update(
            header_line(self.table.size.width or self.size.width), layout=False
        )

    def _status(self) -> None:
        table = self.table
        where = f"{table.cursor + 1:,} of {len(table.rows):,}" if table.rows else "no execution matches"
        marked = f" · marked {len(table.marked)} (d compares them)" if table.marked else ""
        self.query_one("#history-status", Static).update(
            f"{where}{marked} · enter replay · o open on board · space mark · d compare (with the last green) · f status · b branch",
            layout=False,
        )

    def on_run_table_moved(self, message: RunTable.Moved) -> None:
        message.stop()
        self._status()

    async def on_run_table_chosen(self, message: RunTable.Chosen) -> None:
        message.stop()
        self.action_replay()

    # -- actions ----------------------------------------------------------------------------
    def action_close(self) -> None:
        branch = self.query_one("#branch", Input)
        if branch.display:
            branch.display = False
            self.table.focus()
            return
        self.dismiss(None)

    def action_status_filter(self) -> None:
        i = STATUS_FILTERS.index(self.status_filter) if self.status_filter in STATUS_FILTERS else 0
        self.status_filter = STATUS_FILTERS[(i + 1) % len(STATUS_FILTERS)]
        self.reload()

    def action_branch_filter(self) -> None:
        box = self.query_one("#branch", Input)
        box.value = self.branch_filter or ""
        box.display = True
        box.focus()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        if message.input.id != "branch":
            return
        message.stop()
        message.input.display = False
        self.table.focus()
        self.branch_filter = message.value.strip() or None
        self.reload()

    def action_mark(self) -> None:
        self.table.toggle_mark()
        self._status()

    def action_replay(self) -> None:
        from tui.screens.replay import open_replay

        row = self.table.current()
        if row is not None:
            open_replay(self.bapp, self.store, row.id)

    async def action_inspect(self) -> None:
        """Show the execution on the live board (a replay when there is no live board)."""
        from tui.screens.replay import ReplayScreen

        row = self.table.current()
        if row is None:
            return
        app = self.bapp
        board = app.board
        if isinstance(board, ReplayScreen) or app.source.store is not self.store:
            self.action_replay()
            return
        if row.id not in app.model.runs:
            state = self.store.load_run(row.id)
            if state is None:
                self.notify("that execution has no events", severity="warning")
                return
            app.model.runs[row.id] = state
        self.dismiss(None)
        await board.focus_run(row.id)

    def action_compare(self) -> None:
        from tui.screens.compare import compare_with_last_green, open_compare

        table = self.table
        if len(table.marked) == 2:
            a, b = table.marked
            by_id = {r.id: r for r in table.rows if r.id in (a, b)}
            if a in by_id and b in by_id and by_id[a].number > by_id[b].number:
                a, b = b, a
            open_compare(self.bapp, self.store, a, b)
            return
        row = table.current()
        if row is not None:
            compare_with_last_green(self.bapp, self.store, row.id)

    def action_insight(self) -> None:
        box = self.query_one("#history-insight", Static)
        box.display = not box.display


def open_history(app: BakeryApp) -> None:
    """`H` from the board or a replay."""
    store = app.source.store
    if store is None:
        app.notify("no store: nothing recorded to show", severity="warning")
        return
    if isinstance(app.screen, HistoryScreen):
        return
    app.push_screen(HistoryScreen(store, app.model.pipeline_name or None))
