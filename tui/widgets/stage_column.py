"""Stages as columns, left to right, joined by transition arrows.

The board rebuilds the columns only when the shape changes (another pipeline version, a
replay of another one); otherwise each card redraws in place from the latest `RunState`, also
for the next execution of the same stages. Before the first execution the columns show the
pipeline's outline (`outline`), so an execution starting never mounts a column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import HorizontalScroll, Vertical
from textual.message import Message
from textual.widgets import Static

from engine import events as ev
from engine.state import RunState, StageState, new_run
from tui import look
from tui.widgets.action_card import ActionCard
from tui.widgets.restyle import set_classes

if TYPE_CHECKING:
    from engine.model import Pipeline
    from tui.app import BakeryApp


NO_RUN_HINT = "Commit to the repository, or press x to run HEAD now."
ARROW_WIDTH = 5
MIN_COLUMN = 21
MAX_COLUMN = 46


def shape(run: RunState | None) -> tuple[Any, ...]:
    """What the columns are built from: stages, their actions and run orders (not the
    execution: cards are rebound to another execution's states in place)."""
    if run is None:
        return ()
    return tuple((s.name, tuple((a.name, a.run_order) for a in s.actions)) for s in run.stages)


def outline(pipeline: Pipeline) -> RunState:
    """An execution of `pipeline` that has not started: every action without a status."""
    created = ev.Event(
        ev.RUN_CREATED, "", 0.0,
        data={
            "number": 0,
            "pipeline": pipeline.name,
            "stages": [
                {
                    "name": s.name,
                    "actions": [
                        {"name": a.name, "category": a.category.value, "run_order": a.run_order}
                        for a in s.actions
                    ],
                }
                for s in pipeline.stages
            ],
        },
    )
    return new_run(created)


class TransitionArrow(Static):
    """The way into a stage: an arrow, or a closed gate when the transition is disabled."""

    def __init__(self, stage: str) -> None:
        super().__init__(classes="transition")
        self.stage = stage
        self.disabled_info: dict[str, Any] | None = None
        self.waiting = False

    def set_info(self, disabled: dict[str, Any] | None, waiting: bool) -> None:
        self.disabled_info = disabled
        self.waiting = waiting
        self.set_class(disabled is not None, "-closed")
        self.set_class(waiting, "-waiting")
        self.refresh()

    def render(self) -> Text:
        if self.disabled_info is not None:
            return Text("\n\n─┤├\n ✕\nshut", justify="center")
        return Text("\n\n──▶", justify="center")


class StageColumn(Vertical):
    """One stage: a border titled with its name and status, then its run-order groups."""

    class Selected(Message):
        def __init__(self, stage: str) -> None:
            super().__init__()
            self.stage = stage

    def __init__(self, stage: StageState, run_finished: bool) -> None:
        super().__init__(classes="stage")
        self.stage = stage
        self.run_finished = run_finished
        self.cards: dict[str, ActionCard] = {}

    def compose(self) -> ComposeResult:
        yield Static("", classes="closed-note")
        groups = self.stage.groups()
        for i, (order, actions) in enumerate(groups):
            if len(groups) > 1 or len(actions) > 1:
                parts = [f"run order {order}"] if len(groups) > 1 else []
                if len(actions) > 1:
                    parts.append(f"{len(actions)} in parallel")
                yield Static(("↓ " if i else "") + " · ".join(parts), classes="group-label")
            for a in actions:
                card = ActionCard(a, self.run_finished)
                self.cards[a.name] = card
                yield card

    def update_stage(self, stage: StageState, run_finished: bool, closed: dict[str, Any] | None,
                     waiting_reason: str | None) -> None:
        self.stage = stage
        self.run_finished = run_finished
        app: BakeryApp = self.app  # type: ignore[assignment]
        status = stage.status
        self.border_title = f" {stage.name} "
        sub = status or ("Didn't Run" if run_finished else "")
        if waiting_reason:
            sub = "waiting: " + ("transition disabled" if "transition" in waiting_reason else waiting_reason)
        if stage.attempt > 1 and status:
            sub += f" · attempt {stage.attempt}"
        self.border_subtitle = f" {look.symbol(status)} {sub} " if sub else ""
        wanted = look.css_class(status)
        set_classes(self, {cls: cls == wanted for cls in look.ALL_CLASSES})  # the column's border only
        note = self.query_one(".closed-note", Static)
        if closed is not None:
            reason = closed.get("reason") or "no reason given"
            by = f" by {closed['by']}" if closed.get("by") else ""
            note.update(
                Text.assemble(
                    ("✕ inbound transition disabled", look.status_style(app, ev.FAILED, bold=True)),
                    (f"\n{reason}{by}", "italic"),
                )
            )
            note.display = True
        else:
            note.display = False
        for a in stage.actions:
            card = self.cards.get(a.name)
            if card is not None:
                card.set_state(a, run_finished)

    def on_click(self) -> None:
        self.post_message(self.Selected(self.stage.name))


class StageBoard(HorizontalScroll):
    """The row of stage columns for the focused execution."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shape: tuple[Any, ...] | None = None  # nothing shown yet, not even "no execution"
        self.columns: dict[str, StageColumn] = {}
        self.arrows: dict[str, TransitionArrow] = {}

    async def show(self, run: RunState | None, disabled: dict[str, dict[str, Any]]) -> None:
        new_shape = shape(run)
        if new_shape != self._shape:
            self._shape = new_shape
            await self.remove_children()
            self.columns, self.arrows = {}, {}
            if run is None:
                await self.mount(Static(f"No execution yet. {NO_RUN_HINT}", classes="empty"))
                return
            widgets: list[Static | StageColumn] = []
            for i, stage in enumerate(run.stages):
                if i:
                    arrow = TransitionArrow(stage.name)
                    self.arrows[stage.name] = arrow
                    widgets.append(arrow)
                column = StageColumn(stage, run.finished)
                self.columns[stage.name] = column
                widgets.append(column)
            await self.mount_all(widgets)
            self.fit_columns()
        if run is None:
            return
        waiting = run.waiting or {}
        for i, stage in enumerate(run.stages):
            closed = disabled.get(stage.name) if i else None
            reason = waiting.get("reason") if waiting.get("stage") == stage.name else None
            self.columns[stage.name].update_stage(stage, run.finished, closed, reason)
            if i:
                self.arrows[stage.name].set_info(closed, bool(reason))

    def on_resize(self) -> None:
        self.fit_columns()

    def fit_columns(self) -> None:
        """Share the width among the stages (scrolling only when they cannot fit)."""
        if not self.columns:
            return
        arrows = len(self.arrows) * ARROW_WIDTH
        width = (self.size.width - arrows - 1) // len(self.columns)
        width = max(MIN_COLUMN, min(MAX_COLUMN, width))
        for column in self.columns.values():
            column.styles.width = width

    def card(self, stage: str, action: str) -> ActionCard | None:
        column = self.columns.get(stage)
        return column.cards.get(action) if column else None

    def cards(self) -> list[ActionCard]:
        return [card for column in self.columns.values() for card in column.cards.values()]
