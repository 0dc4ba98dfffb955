"""One action of the focused execution: category, name, status, duration, error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
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

    def set_state(self, action: ActionState, run_finished: bool) -> None:
        self.state = action
        self.run_finished = run_finished
        self._sync_classes()
        self.refresh(layout=True)

    def on_mount(self) -> None:
        self._sync_classes()

    def _sync_classes(self) -> None:
        status = self._status()
        wanted = look.css_class(status)
        for cls in look.ALL_CLASSES:
            self.set_class(cls == wanted, cls)
        self.set_class(self.state.status is None and self.run_finished, "-didnt-run")

    def _status(self) -> str | None:
        a = self.state
        if a.status == ev.IN_PROGRESS and a.approval is not None and a.approval.result is None:
            return "Waiting"
        return a.status

    def render(self) -> Group:
        app: BakeryApp = self.app  # type: ignore[assignment]
        a = self.state
        status = self._status()
        style = look.status_style(app, status, bold=True)
        frame = app.spinner_frame if app.animate else None
        now = app.now()

        top = Table.grid(expand=True, padding=0)
        top.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        top.add_column(justify="right", no_wrap=True)
        narrow = 0 < self.content_size.width < 24
        top.add_row(
            Text.assemble((look.symbol(a.status, frame) + " ", style), (a.name, "bold")),
            Text("" if narrow else a.category, style="dim"),
        )
        word = ("Didn't Run" if self.run_finished else "—") if a.status is None else a.status
        right = look.duration(a.duration(now))
        if status == "Waiting" and a.approval is not None:
            right = look.duration(now - a.approval.requested_at)
        if a.attempt > 1:
            right = f"#{a.attempt} {right}"
        top.add_row(Text("  " + word, style=look.status_style(app, status)), Text(right, style="dim"))
        parts: list[Table | Text] = [top]
        if a.status == ev.FAILED and a.error:
            parts.append(
                Text.assemble(
                    ("  " + str(a.error.get("type", "Error")) + ": ", look.status_style(app, ev.FAILED, bold=True)),
                    (str(a.error.get("message", "")), ""),
                    overflow="ellipsis",
                )
            )
        elif a.approval is not None and a.approval.result is not None:
            who = f" by {a.approval.by}" if a.approval.by else ""
            parts.append(Text(f"  {a.approval.result}{who}", style="dim", overflow="ellipsis", no_wrap=True))
        return Group(*parts)

    def on_click(self) -> None:
        self.post_message(self.Selected(self.stage_name, self.action_name))
