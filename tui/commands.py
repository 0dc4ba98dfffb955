"""The command palette (ctrl+p): every board command and every theme, searchable.

Commands are a table (title, help, action) so new screens add rows rather than code; an
action string runs like a key binding ("screen.approve", "app.set_theme('x')").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from tui.app import BakeryApp


@dataclass(frozen=True)
class Command:
    title: str
    help: str
    action: str  # an action string, e.g. "screen.approve"


COMMANDS: list[Command] = [
    Command("Approve", "Approve the waiting approval (a)", "screen.approve"),
    Command("Reject", "Reject the waiting approval (r)", "screen.reject"),
    Command("Stop execution", "Stop and wait, or stop and abandon (s)", "screen.stop"),
    Command("Retry stage", "Retry the failed stage: failed or all actions (R)", "screen.retry"),
    Command("Toggle transition", "Disable / enable the selected stage's inbound transition (t)", "screen.toggle_transition"),
    Command("Run HEAD now", "Start an execution on HEAD (x)", "screen.run_now"),
    Command("Search log", "Search the selected log (/)", "screen.search"),
    Command("Next match", "Next search match (n)", "screen.search_next"),
    Command("Previous match", "Previous search match (N)", "screen.search_prev"),
    Command("First error", "Jump to the first error line of the log (e)", "screen.first_error"),
    Command("Toggle timestamps", "Show or hide log timestamps (T)", "screen.timestamps"),
    Command("Zoom log", "Show the selected log full screen (enter)", "screen.zoom"),
    Command("Follow live", "Focus the newest execution and its running action (f)", "screen.follow"),
    Command("Previous execution", "Focus the previous execution ([)", "screen.prev_run"),
    Command("Next execution", "Focus the next execution (])", "screen.next_run"),
    Command("History", "Every stored execution: filter, replay, compare (H)", "app.history"),
    Command("Search all logs", "Search every stored log line; open a hit in replay (S)", "app.search_logs"),
    Command("Help", "Every key of the board (?)", "app.help"),
    Command("Quit", "Quit (stops running actions first) (q)", "app.quit"),
]


class BakeryCommands(Provider):
    """Board commands plus one "Theme: <name>" entry per registered theme."""

    def _entries(self) -> list[tuple[str, str, str]]:
        app: BakeryApp = self.app  # type: ignore[assignment]
        rows = [(c.title, c.help, c.action) for c in app.commands()]
        for name in app.bakery_themes:
            rows.append((f"Theme: {name}", "Switch the colour theme (remembered)", f"app.set_theme('{name}')"))
        return rows

    async def discover(self) -> Hits:
        for title, help_text, action in self._entries():
            yield DiscoveryHit(title, partial(self.app.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.app.run_action, action), help=help_text)
