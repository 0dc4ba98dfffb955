"""Compare two executions: per stage and action both outcomes, what changed, the commits in
between, the variables that differ, and a log diff of the chosen action.

engine/compare.py computes everything; this screen only lays it out. The comparison reads git
(the commits between), so it runs in a worker thread, as does each log diff.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine import compare as cmp
from engine import events as ev
from tui import look

if TYPE_CHECKING:
    from engine.store import Store
    from tui.app import BakeryApp

MAX_SHOWN_DIFF = 3000  # lines of a log diff drawn (the rest: `bakery diff --action`)
GOOD = frozenset({cmp.FIXED, cmp.FASTER})
BAD = frozenset({cmp.NEWLY_FAILING, cmp.SLOWER, cmp.REMOVED, cmp.STATUS_CHANGED})


def change_text(c: cmp.Change) -> str:
    """"slower +2.1s (+40%)", "newly failing", ..."""
    if c.change in (cmp.SLOWER, cmp.FASTER) and c.delta is not None and c.a and c.a.duration:
        return f"{c.change} {c.delta:+.1f}s ({c.delta / c.a.duration:+.0%})"
    return c.change or ""


class CompareScreen(Screen[None]):
    """A (older, usually the last green) against B (usually the red one)."""

    DEFAULT_CSS = """
    CompareScreen #compare-title { height: auto; background: $panel; padding: 0 1; }
    CompareScreen #compare-top { height: 1fr; }
    CompareScreen #compare-rows { width: 3fr; height: 1fr; }
    CompareScreen #compare-side { width: 2fr; height: 1fr; padding: 0 1; background: $surface; }
    CompareScreen #compare-diff-title { height: 1; background: $panel; text-style: bold; padding: 0 1; }
    CompareScreen #compare-diff { height: 1fr; background: $surface; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("enter,l", "log_diff", "Log diff"),
        Binding("a", "replay('a')", "Replay A"),
        Binding("b", "replay('b')", "Replay B"),
    ]

    def __init__(self, store: Store, a_id: str, b_id: str, repo: Path | None = None) -> None:
        super().__init__()
        self.store = store
        self.a_id, self.b_id = a_id, b_id
        self.repo = repo
        self.comparison: cmp.Comparison | None = None
        self.diff_target: tuple[str, str] | None = None
        self._row_keys: list[tuple[str, str | None]] = []

    @property
    def bapp(self) -> BakeryApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("comparing…", id="compare-title")
        with Horizontal(id="compare-top"):
            yield DataTable(id="compare-rows", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="compare-side"):
                yield Static("", id="compare-info")
        yield Static("log diff", id="compare-diff-title")
        with VerticalScroll(id="compare-diff"):
            yield Static("", id="compare-diff-text")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("stage / action", "A", "took", "B", "took", "change")
        table.focus()
        self._compute()

    @work(thread=True, exit_on_error=False, group="compare", exclusive=True)
    def _compute(self) -> None:
        try:
            result: Any = cmp.compare(self.store, self.a_id, self.b_id, repo=self.repo)
        except cmp.CompareError as exc:
            result = exc
        self.app.call_from_thread(self._computed, result)

    def _computed(self, result: cmp.Comparison | cmp.CompareError) -> None:
        if isinstance(result, cmp.CompareError):
            self.query_one("#compare-title", Static).update(f"cannot compare: {result}")
            return
        self.comparison = result
        app = self.bapp
        a, b = result.a, result.b
        title = Text.assemble(
            ("A ", "dim"), (f"#{a.number} ", "bold"),
            (f"{look.symbol(a.status)} {a.status}", look.status_style(app, a.status, bold=True)),
            (f"  {str(a.commit.get('id') or '')[:8]} {look.subject(a.commit.get('message'))}", "dim"),
            ("    →    ", ""),
            ("B ", "dim"), (f"#{b.number} ", "bold"),
            (f"{look.symbol(b.status)} {b.status}", look.status_style(app, b.status, bold=True)),
            (f"  {str(b.commit.get('id') or '')[:8]} {look.subject(b.commit.get('message'))}", "dim"),
        )
        changes = result.changes
        summary = ", ".join(
            f"{c.stage}/{c.action or '(stage)'} {change_text(c)}" for c in changes if c.action
        ) or "no stage or action changed"
        title.append(f"\n{summary}", "italic")
        self.query_one("#compare-title", Static).update(title)
        self._fill_rows(result)
        self._fill_side(result)
        target = next((c for c in changes if c.action and c.change == cmp.NEWLY_FAILING), None)
        target = target or next((c for c in changes if c.action), None)
        if target is not None and target.action is not None:
            self.show_diff(target.stage, target.action)
        else:
            self.query_one("#compare-diff-text", Static).update(
                Text("Select an action and press Enter to diff its log.", style="dim")
            )

    def _side(self, side: cmp.Side | None) -> tuple[Text, str]:
        if side is None:
            return Text("—", style="dim"), ""
        status = side.status or "Didn't Run"
        return (
            Text(f"{look.symbol(side.status)} {status}", style=look.status_style(self.bapp, side.status)),
            look.duration(side.duration),
        )

    def _fill_rows(self, result: cmp.Comparison) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self._row_keys = []
        app = self.bapp
        for c in result.rows:
            a_text, a_took = self._side(c.a)
            b_text, b_took = self._side(c.b)
            name = Text(c.stage, style="bold") if c.action is None else Text(f"  {c.action}")
            colour = (
                look.status_style(app, ev.SUCCEEDED, bold=True) if c.change in GOOD
                else look.status_style(app, ev.FAILED, bold=True) if c.change in BAD else ""
            )
            table.add_row(name, a_text, a_took, b_text, b_took, Text(change_text(c), style=colour))
            self._row_keys.append((c.stage, c.action))

    def _fill_side(self, result: cmp.Comparison) -> None:
        text = Text()
        text.append("Commits between A and B\n", "bold")
        if result.commits:
            for commit in result.commits[:50]:
                text.append(f"  {commit.id[:8]} ", "bold")
                text.append(f"{look.safe(commit.subject)}", "")
                text.append(f"  {look.safe(commit.author)}\n", "dim")
            if len(result.commits) > 50:
                text.append(f"  … {len(result.commits) - 50} more\n", "dim")
        if result.commits_note or not result.commits:
            text.append(f"  {result.commits_note or 'none'}\n", "dim")
        text.append("\nVariables that differ\n", "bold")
        if result.variables:
            for key, (va, vb) in result.variables.items():
                text.append(f"  {look.safe(key)}: ", "bold")
                text.append(f"{look.safe(va) if va is not None else '(unset)'} → {look.safe(vb) if vb is not None else '(unset)'}\n")
        else:
            text.append("  none\n", "dim")
        self.query_one("#compare-info", Static).update(text)

    # -- the log diff -----------------------------------------------------------------------------
    def show_diff(self, stage: str, action: str) -> None:
        self.diff_target = (stage, action)
        self.query_one("#compare-diff-title", Static).update(f"log diff · {stage} / {action} · computing…")
        self._diff(stage, action)

    @work(thread=True, exit_on_error=False, group="diff", exclusive=True)
    def _diff(self, stage: str, action: str) -> None:
        assert self.comparison is not None
        try:
            lines, note = cmp.log_diff(self.store, self.comparison.a, self.comparison.b, stage, action)
            result: Any = (lines, note)
        except cmp.CompareError as exc:
            result = exc
        self.app.call_from_thread(self._diffed, stage, action, result)

    def _diffed(self, stage: str, action: str, result: tuple[list[str], str] | cmp.CompareError) -> None:
        if (stage, action) != self.diff_target:
            return
        body = self.query_one("#compare-diff-text", Static)
        title = self.query_one("#compare-diff-title", Static)
        if isinstance(result, cmp.CompareError):
            title.update(f"log diff · {stage} / {action}")
            body.update(Text(str(result), style="dim"))
            return
        lines, note = result
        title.update(f"log diff · {stage} / {action}" + (f" · {note}" if note else "") + " · timestamps, paths and ids ignored")
        if not lines:
            body.update(Text("The two logs are the same (once timestamps, paths and ids are ignored).", style="dim"))
            return
        app = self.bapp
        added = look.status_style(app, ev.SUCCEEDED)
        removed = look.status_style(app, ev.FAILED)
        text = Text(no_wrap=True)
        for line in lines[:MAX_SHOWN_DIFF]:
            safe = look.safe(line)
            if line.startswith("@@"):
                text.append(safe + "\n", "bold")
            elif line.startswith(("+++", "---")):
                text.append(safe + "\n", "dim")
            elif line.startswith("+"):
                text.append(safe + "\n", added)
            elif line.startswith("-"):
                text.append(safe + "\n", removed)
            else:
                text.append(safe + "\n", "dim")
        if len(lines) > MAX_SHOWN_DIFF:
            text.append(f"… {len(lines) - MAX_SHOWN_DIFF} more lines (bakery diff --action {stage}/{action})", "dim")
        body.update(text)

    def action_log_diff(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        if 0 <= row < len(self._row_keys):
            stage, action = self._row_keys[row]
            if action is None:
                self.notify("choose an action row (a stage has no log of its own)", timeout=3)
                return
            self.show_diff(stage, action)

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        message.stop()
        self.action_log_diff()

    def action_replay(self, which: str) -> None:
        from tui.screens.replay import open_replay

        open_replay(self.bapp, self.store, self.a_id if which == "a" else self.b_id)

    def action_close(self) -> None:
        self.dismiss(None)


def open_compare(app: BakeryApp, store: Store, a_id: str, b_id: str) -> None:
    app.push_screen(CompareScreen(store, a_id, b_id, repo=app.repo))


def compare_with_last_green(app: BakeryApp, store: Store, run_id: str) -> None:
    """`d`: this execution against the newest one before it that Succeeded."""
    green = cmp.last_green_before(store, run_id)
    if green is None:
        app.notify("no execution before this one succeeded: nothing to compare with", severity="warning", timeout=4)
        return
    open_compare(app, store, green, run_id)
