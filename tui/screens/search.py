"""Search every stored log line (SQLite FTS5): hits with execution, action, line and time,
where the text was first seen, and Enter opens the replay at that line.

The first search of a store indexes what was logged since the last one, which can take a
while, so searches run in a worker thread; only the newest search's answer is shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from engine.search import Hit, SearchError, SearchResult, search
from tui import look

if TYPE_CHECKING:
    from engine.store import Store
    from tui.app import BakeryApp

LIMIT = 200


class SearchScreen(Screen[None]):
    """`S` / ctrl+f: type, Enter searches; Enter on a hit replays that execution at that line."""

    DEFAULT_CSS = """
    SearchScreen #search-box { border: tall $accent; }
    SearchScreen #search-summary { height: auto; padding: 0 1; background: $panel; }
    SearchScreen #search-hits { height: 1fr; background: $surface; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("ctrl+r", "toggle_raw", "FTS5 syntax"),
    ]

    def __init__(self, store: Store, pipeline: str | None = None, text: str = "") -> None:
        super().__init__()
        self.store = store
        self.pipeline = pipeline
        self.initial = text
        self.raw = False
        self.result: SearchResult | None = None
        self._asked = 0

    @property
    def bapp(self) -> BakeryApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Input(value=self.initial, placeholder="search every log (words as one phrase; Enter: search)", id="search-box")
        yield Static("Type some text and press Enter.", id="search-summary")
        yield OptionList(id="search-hits")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        if self.initial:
            self.run_search(self.initial)

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        self.run_search(message.value)

    def run_search(self, text: str) -> None:
        if not text.strip():
            return
        self._asked += 1
        self.query_one("#search-summary", Static).update(f"searching for {text!r}… (the first search indexes new lines)")
        self._search(text, self.raw, self._asked)

    @work(thread=True, exit_on_error=False, group="search")
    def _search(self, text: str, raw: bool, asked: int) -> None:
        try:
            result: Any = search(self.store, text, limit=LIMIT, raw=raw, pipeline=self.pipeline)
        except SearchError as exc:
            result = exc
        self.app.call_from_thread(self._found, result, asked)

    def _found(self, result: SearchResult | SearchError, asked: int) -> None:
        if asked != self._asked:
            return  # an older search finishing late
        summary = self.query_one("#search-summary", Static)
        hits = self.query_one("#search-hits", OptionList)
        hits.clear_options()
        if isinstance(result, SearchError):
            self.result = None
            summary.update(Text(str(result), style=look.status_style(self.bapp, "Failed")))
            return
        self.result = result
        text = Text()
        more = "+" if result.capped else ""
        text.append(f"{result.total:,}{more} matching lines in {result.executions:,} executions", "bold")
        if result.hits and len(result.hits) < result.total:
            text.append(f" · the newest {len(result.hits)} shown", "dim")
        first = result.first_seen
        if first is not None:
            text.append("\nfirst seen in ")
            text.append(f"#{first.number}", "bold")
            text.append(f" ({(first.commit_id or '?')[:8]} {look.subject(first.subject)}) {first.stage}/{first.action} line {first.line_no}", "")
        summary.update(text)
        hits.add_options([self._option(h) for h in result.hits])
        if result.hits:
            hits.highlighted = 0
            hits.focus()

    def _option(self, hit: Hit) -> Option:
        app = self.bapp
        head = Text.assemble(
            (f"#{hit.number:<5}", "bold"),
            (f"{hit.stage}/{hit.action}", ""),
            (f"  line {hit.line_no}", "dim"),
            (f"  {look.clock(hit.ts, app.now())}", "dim"),
            (f"  attempt {hit.attempt}" if hit.attempt > 1 else "", "dim"),
        )
        line = Text("    " + look.safe(hit.text), no_wrap=True, overflow="ellipsis")
        accent = look.colour(app, "accent")
        for start, end in hit.spans:
            line.stylize(f"bold reverse {accent}".strip(), 4 + start, 4 + end)
        return Option(Text.assemble(head, "\n", line), id=str(hit.line_id))

    def on_option_list_option_selected(self, message: OptionList.OptionSelected) -> None:
        message.stop()
        if self.result is None:
            return
        index = message.option_index
        if 0 <= index < len(self.result.hits):
            self.open_hit(self.result.hits[index])

    def open_hit(self, hit: Hit) -> None:
        """Replay the hit's execution at the instant the line was written, on that line."""
        from engine.replay import ReplayError, Timeline
        from tui.screens.replay import ReplayScreen

        try:
            timeline = Timeline.open(self.store, hit.run_id)
        except ReplayError as exc:
            self.notify(str(exc), severity="error")
            return
        self.app.push_screen(
            ReplayScreen(
                timeline,
                at=timeline.t_of(hit.ts),
                select=(hit.stage, hit.action),
                line=hit.line_no,
                find=self.query_one(Input).value.strip() if not self.raw else None,
            )
        )

    def action_toggle_raw(self) -> None:
        self.raw = not self.raw
        box = self.query_one(Input)
        box.placeholder = (
            "FTS5 query: error AND NOT warn, \"a b\", modu*, NEAR(a b)" if self.raw
            else "search every log (words as one phrase; Enter: search)"
        )
        self.notify("FTS5 syntax " + ("on" if self.raw else "off"), timeout=2)

    def action_close(self) -> None:
        self.dismiss(None)


def open_search(app: BakeryApp, text: str = "") -> None:
    store = app.source.store
    if store is None:
        app.notify("no store: nothing recorded to search", severity="warning")
        return
    if isinstance(app.screen, SearchScreen):
        return
    app.push_screen(SearchScreen(store, app.model.pipeline_name or None, text))
