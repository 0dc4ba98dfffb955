"""Small modals: a comment for an answer, a choice of stop or retry mode, a confirmation.

Each modal dismisses itself directly with its result (never via call_after_refresh, which
hangs run_test: textual#6600). A result of None means "cancelled".
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


@dataclass
class Choice:
    key: str  # the key that picks it (also the button id)
    label: str
    value: str
    variant: str = "default"


@dataclass
class Answer:
    value: str
    comment: str


class ChoiceModal(ModalScreen[Answer | None]):
    """A question with a few answers, each on a key, plus an optional comment line."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, body: str, choices: list[Choice], *, comment: bool = True,
                 placeholder: str = "comment (optional)") -> None:
        super().__init__(classes="modal")
        self.title_text = title
        self.body = body
        self.choices = choices
        self.with_comment = comment
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            if self.body:
                yield Static(self.body, classes="dialog-body")
            if self.with_comment:
                yield Input(placeholder=self.placeholder, id="comment")
            with Horizontal(classes="dialog-buttons"):
                for c in self.choices:
                    label = c.label if c.key == "enter" else f"{c.label} ({c.key})"
                    yield Button(label, id=f"choice-{c.value}", variant=c.variant)  # type: ignore[arg-type]
                yield Button("Cancel", id="cancel")
            if self.with_comment:
                hint = f"Enter: {self.choices[0].label.lower()} · Esc: cancel"
            else:
                hint = " · ".join(f"{c.key}: {c.label.lower()}" for c in self.choices) + " · Esc: cancel"
            yield Static(hint, classes="dialog-hint")

    def on_mount(self) -> None:
        if self.with_comment:
            self.query_one("#comment", Input).focus()
        else:
            self.query_one(Button).focus()

    def _comment(self) -> str:
        return self.query_one("#comment", Input).value.strip() if self.with_comment else ""

    def pick(self, value: str) -> None:
        self.dismiss(Answer(value, self._comment()))

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        self.pick(self.choices[0].value)

    def on_button_pressed(self, message: Button.Pressed) -> None:
        message.stop()
        if message.button.id == "cancel":
            self.dismiss(None)
        elif message.button.id and message.button.id.startswith("choice-"):
            self.pick(message.button.id.removeprefix("choice-"))

    def on_key(self, event: object) -> None:
        key = getattr(event, "key", "")
        if self.with_comment and isinstance(self.focused, Input):
            return  # typing a comment: letters are text, not shortcuts
        for c in self.choices:
            if key == c.key:
                getattr(event, "stop", lambda: None)()
                self.pick(c.value)
                return

    def action_cancel(self) -> None:
        self.dismiss(None)


def approve_modal(approve: bool, target: str) -> ChoiceModal:
    word = "Approve" if approve else "Reject"
    return ChoiceModal(
        f"{word} {target}",
        "The comment is recorded with the answer.",
        [Choice("enter", word, "approve" if approve else "reject", "success" if approve else "error")],
    )


def stop_modal(number: int, running: int) -> ChoiceModal:
    return ChoiceModal(
        f"Stop execution #{number}",
        f"{running} action(s) running. Stop and wait lets them finish; stop and abandon ends "
        "them now (TERM, then KILL after the grace period).",
        [
            Choice("w", "Stop and wait", "wait", "warning"),
            Choice("a", "Stop and abandon", "abandon", "error"),
        ],
        comment=False,
    )


def retry_modal(number: int, stage: str) -> ChoiceModal:
    return ChoiceModal(
        f"Retry {stage} in execution #{number}",
        "Run the failed actions again, or every action of the stage; then the stages after it.",
        [
            Choice("f", "Failed actions", "FAILED_ACTIONS", "primary"),
            Choice("a", "All actions", "ALL_ACTIONS", "warning"),
        ],
        comment=False,
    )


def transition_modal(stage: str) -> ChoiceModal:
    return ChoiceModal(
        f"Disable the transition into {stage}",
        "Executions will wait before this stage until it is enabled again.",
        [Choice("enter", "Disable", "disable", "warning")],
        placeholder="reason (shown on the board)",
    )


def confirm_quit_modal(running: int, grace: float) -> ChoiceModal:
    return ChoiceModal(
        "Quit Bakery?",
        f"{running} execution(s) still running. Quitting stops them (TERM, up to {grace:g}s "
        "grace, then KILL) and marks them Stopped. Approvals that wait keep waiting: the "
        "next bakery start on this repository picks them up.",
        [Choice("y", "Stop and quit", "quit", "error"), Choice("n", "Keep running", "stay")],
        comment=False,
    )
