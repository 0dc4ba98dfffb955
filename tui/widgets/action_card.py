"""One action of the focused execution: category, name, status, duration, error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text
from textual.geometry import Size
from textual.message import Message
from textual.widgets import Static

from engine import events as ev
from engine.state import ActionState
from tui import look

if TYPE_CHECKING:
    from tui.app import BakeryApp


class ActionCard(Static):
    """A card that redraws from an `ActionState`; click selects it."""

    class Selected(Message):
        def __init__(self, stage: str, action: str) -> None:
            super().__init__()
            self.stage = stage
            self.action = action

    def __init__(self, action: ActionState, run_finished: bool = False) -> None:
        super().__init__(classes="card")
        self.state = action
        self.run_finished = run_finished
        self.stage_name = action.stage
        self.action_name = action.name
        self._extra = self._extra_line()  # what the card's height was last laid out for

    def set_state(self, action: ActionState, run_finished: bool) -> None:
        self.state = action  # often the same object, changed in place by the engine's reducer
        self.run_finished = run_finished
        self._sync_classes()
        # a layout (of the whole screen) only when the card's height may change
        extra = self._extra_line()
        self.refresh(layout=extra != self._extra)
        self._extra = extra

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """Two rows, and a third for an approval's answer: known without drawing the card."""
        extra = self._extra_line()
        if not extra:
            return 2
        if extra[0] == "approval":
            return 3
        return super().get_content_height(container, viewport, width)  # an error wraps

    def _extra_line(self) -> tuple[str, ...]:
        """What the card shows under its two rows (an error wraps, so its text counts)."""
        a = self.state
        if a.status == ev.FAILED and a.error:
            return ("error", str(a.error.get("type", "")), str(a.error.get("message", "")))
        if a.approval is not None and a.approval.result is not None:
            return ("approval",)
        return ()

    def on_mount(self) -> None:
        self._sync_classes()

    def _sync_classes(self) -> None:
        status = self._status()
        wanted = look.css_class(status)
        classes = {cls: cls == wanted for cls in look.ALL_CLASSES}
        classes["-didnt-run"] = self.state.status is None and self.run_finished
        self.update_classes(classes)  # one restyle, not one per class

    def _status(self) -> str | None:
        a = self.state
        if a.status == ev.IN_PROGRESS and a.approval is not None and a.approval.result is None:
            return "Waiting"
        return a.status

    def render(self) -> Text | Group:
        app: BakeryApp = self.app  # type: ignore[assignment]
        a = self.state
        status = self._status()
        style = look.status_style(app, status, bold=True)
        frame = app.spinner_frame if app.animate else None
        now = app.now()

        # the size of the last layout, not `content_size`: that asks the compositor, which
        # during a layout (when cards are measured) arranges the whole screen again
        width = max(0, self.outer_size.width - self.styles.gutter.width)
        narrow = 0 < width < 24
        word = ("Didn't Run" if self.run_finished else "—") if a.status is None else a.status
        right = look.duration(a.duration(now))
        if status == "Waiting" and a.approval is not None:
            right = look.duration(now - a.approval.requested_at)
        if a.attempt > 1:
            right = f"#{a.attempt} {right}"
        top = _grid(
            width,
            (Text.assemble((look.symbol(a.status, frame) + " ", style), (a.name, "bold")),
             Text("" if narrow else a.category, style="dim")),
            (Text("  " + word, style=look.status_style(app, status)), Text(right, style="dim")),
        )
        if a.status == ev.FAILED and a.error:
            error = Text.assemble(
                ("  " + str(a.error.get("type", "Error")) + ": ", look.status_style(app, ev.FAILED, bold=True)),
                (str(a.error.get("message", "")), ""),
                overflow="ellipsis",
            )
            return Group(top, error)  # the error wraps to the card's width
        if a.approval is not None and a.approval.result is not None:
            who = f" by {a.approval.by}" if a.approval.by else ""
            top.append("\n")
            top.append(f"  {a.approval.result}{who}", style="dim")
        return top

    def on_click(self) -> None:
        self.post_message(self.Selected(self.stage_name, self.action_name))


def _grid(width: int, *rows: tuple[Text, Text]) -> Text:
    """Rows of a left cell (cut with an ellipsis) and a right-aligned cell, as one Text.

    Lays out what `Table.grid(expand=True)` with a ratio-1 left column and a right-justified
    right column would, at a fraction of its cost: cards are drawn (and measured for layout)
    often, and a rich Table measures every cell on every draw.
    """
    right_width = max(right.cell_len for _, right in rows)
    left_width = max(0, width - right_width) if width else 0
    out = Text(no_wrap=True, overflow="ellipsis")
    for i, (left, right) in enumerate(rows):
        if i:
            out.append("\n")
        if width:
            left.truncate(left_width, overflow="ellipsis")
        out.append_text(left)
        out.append(" " * (left_width - left.cell_len + right_width - right.cell_len) if width else " ")
        out.append_text(right)
    return out
