"""Recent and waiting executions, newest first; superseded ones faded. Click focuses one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from engine import events as ev
from engine.state import RunState
from tui import look

if TYPE_CHECKING:
    from tui.app import BakeryApp


def run_status(run: RunState) -> str | None:
    """The word the list shows: the run's status, or why it waits."""
    if run.waiting and not run.finished:
        return "Waiting"
    if run.status is None:
        return "Queued"
    return run.status


class RunList(OptionList):
    """The executions the board knows, newest first."""

    class Focused(Message):
        def __init__(self, run_id: str) -> None:
            super().__init__()
            self.run_id = run_id

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._signature: tuple[object, ...] = ()
        self.focused_run: str | None = None

    def show(self, runs: list[RunState], focused: str | None) -> None:
        app: BakeryApp = self.app  # type: ignore[assignment]
        now = app.now()
        frame = app.spinner_frame if app.animate else None
        ticking = (int(now), frame)
        rows = [
            (r.id, r.status, bool(r.waiting), r.last_seq, r.id == focused)
            + (ticking if not r.finished else ())
            for r in runs
        ]
        signature = tuple(rows)
        if signature == self._signature:
            return
        before = self._signature
        self._signature = signature
        self.focused_run = focused
        ids = [r.id for r in runs]
        if len(before) == len(rows) and [row[0] for row in before] == ids:
            # The same executions: redraw the rows that changed in place. Clearing and
            # re-adding every option (as on the first show) lays the whole screen out, and
            # a running execution changes its row every second (every spinner frame).
            for i, (r, row) in enumerate(zip(runs, rows, strict=True)):
                if row != before[i]:
                    self.replace_option_prompt_at_index(i, self._prompt(r, focused, now, frame))
        else:
            highlighted = self.highlighted
            self.clear_options()
            self.add_options(Option(self._prompt(r, focused, now, frame), id=r.id) for r in runs)
            if focused not in ids and highlighted is not None and highlighted < len(ids):
                self.highlighted = highlighted
        if focused in ids and self.highlighted != ids.index(focused):
            self.highlighted = ids.index(focused)

    def _prompt(self, r: RunState, focused: str | None, now: float, frame: int | None) -> Text:
        """Two lines: number, status and time; short commit and subject."""
        app: BakeryApp = self.app  # type: ignore[assignment]
        status = run_status(r)
        faded = r.status in (ev.SUPERSEDED, ev.CANCELLED)
        style = look.status_style(app, status, bold=not faded)
        marker = "▶ " if r.id == focused else "  "
        took = look.duration(r.duration(now)) if r.started_at else ""
        line1 = Text.assemble(
            (marker, "bold"),
            (f"#{r.number:<3} ", "bold" if not faded else "dim"),
            (look.symbol(status, frame) + " " + (status or ""), style),
        )
        if took:
            line1.append(f"  {took}", style="dim")
        if status == "Waiting" and r.waiting:
            line1.append(f" ({r.waiting.get('reason', '')} {r.waiting.get('stage', '')})", "dim")
        commit = r.commit or {}
        width = max(30, self.outer_size.width - self.styles.gutter.width - 2)  # no compositor query
        line2 = Text(
            f"    {str(commit.get('short') or commit.get('id', ''))[:8]} {look.subject(commit.get('message'))}"[:width],
            style="dim" if faded else "",
            no_wrap=True,
            overflow="ellipsis",
        )
        if faded:
            line1.stylize("dim")
        line1.no_wrap = True
        line1.overflow = "ellipsis"
        return Text.assemble(line1, "\n", line2, no_wrap=True, overflow="ellipsis")

    def on_option_list_option_selected(self, message: OptionList.OptionSelected) -> None:
        message.stop()
        if message.option.id:
            self.post_message(self.Focused(message.option.id))
