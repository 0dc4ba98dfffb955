"""`?`: every key of the board, in one place."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: list[tuple[str, list[tuple[str, str]]]] = [
    ("Move", [
        ("←→↑↓ / hjkl", "move between action cards (stages left/right, actions up/down)"),
        ("[ / ]", "previous / next execution in the list (click one too)"),
        ("f", "follow live: focus the newest execution and the running action"),
        ("click", "select a card, an execution, or a log pane"),
    ]),
    ("Control", [
        ("a / r", "approve / reject the waiting approval (with a comment)"),
        ("s", "stop the execution: wait for running actions, or abandon them"),
        ("R", "retry the selected failed stage: failed actions or all actions"),
        ("t", "disable (with a reason) / enable the selected stage's inbound transition"),
        ("x", "start an execution on HEAD now"),
    ]),
    ("Logs", [
        ("enter / z", "zoom the selected action's log to the full screen (esc: back)"),
        ("/", "search the log; n / N next / previous match"),
        ("e", "jump to the first error line"),
        ("T", "timestamps on / off"),
        ("End / G", "follow the end of the log again"),
        ("PgUp PgDn Home", "scroll the selected log"),
    ]),
    ("History and replay", [
        ("H", "history: f status, b branch, enter replay, space mark, d compare"),
        ("S / ctrl+f", "search every stored log; enter replays at that line"),
        ("replay", "space play, + / - speed, ← → event, , . status change, F first failure, g go to time"),
    ]),
    ("App", [
        ("ctrl+p", "command palette: every command, themes"),
        ("?", "this help"),
        ("q / ctrl+c", "quit (asks first when actions run; stops them)"),
    ]),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for section, rows in KEYS:
            table.add_row(Text(section, style="bold underline"), "")
            for key, what in rows:
                table.add_row(key, what)
            table.add_row("", "")
        with VerticalScroll(classes="dialog help"):
            yield Static("Bakery keys", classes="dialog-title")
            yield Static(table)
            yield Static("esc to close", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
