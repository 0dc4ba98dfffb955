"""The replay bar: play state, speed, the instant, the event there, and a seekable track.

The track is one character per slice of the execution: log activity as a sparkline, status
changes as ticks (failures in the failure colour) and the cursor. A click on the track posts
`Seek` with the time under the mouse; the replay screen does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text
from textual import events
from textual.message import Message
from textual.widget import Widget

from tui import look
from tui.widgets.sparkline import BLOCKS, resample

if TYPE_CHECKING:
    from tui.app import BakeryApp

TRACK_ROW = 1  # the line of the widget that is the seekable track


def clock_text(t: float) -> str:
    """Seconds since the start as m:ss.s (h:mm:ss past an hour)."""
    t = max(0.0, t)
    hours, rest = divmod(t, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{int(hours)}:{int(minutes):02d}:{seconds:04.1f}"
    return f"{int(minutes)}:{seconds:04.1f}"


@dataclass
class BarState:
    """Everything the bar draws (the replay screen fills it in after each seek)."""

    t: float = 0.0
    duration: float = 0.0
    index: int = 0
    total: int = 0
    playing: bool = False
    speed: int = 1
    what: str = ""  # the event at the cursor, in words
    marks: list[tuple[float, str | None]] = field(default_factory=list)  # (time, status)
    activity: list[int] = field(default_factory=list)
    note: str = ""  # e.g. the critical path


class TimelineBar(Widget):
    """Three lines: state and position, the track, a note."""

    DEFAULT_CSS = """
    TimelineBar {
        height: 3;
        background: $panel;
        color: $foreground;
    }
    """

    class Seek(Message):
        def __init__(self, t: float) -> None:
            super().__init__()
            self.t = t

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.state = BarState()

    def show(self, state: BarState) -> None:
        self.state = state
        self.refresh()

    def _track_width(self) -> int:
        return max(1, self.size.width - 2)

    def column_of(self, t: float) -> int:
        width = self._track_width()
        span = self.state.duration or 1.0
        return max(0, min(width - 1, int(t / span * (width - 1) + 0.5)))

    def time_at(self, x: int) -> float:
        width = self._track_width()
        column = max(0, min(width - 1, x - 1))
        return self.state.duration * column / max(1, width - 1)

    def render(self) -> Text:
        app: BakeryApp = self.app  # type: ignore[assignment]
        s = self.state
        accent = look.colour(app, "accent") or None
        play = "▶ playing" if s.playing else "‖ paused"
        head = Text.assemble(
            (f" {play} ", f"bold {accent}" if accent else "bold"),
            (f" {s.speed}x ", "bold reverse"),
            ("   ", ""),
            (clock_text(s.t), "bold"),
            (f" / {clock_text(s.duration)}", "dim"),
            (f"   event {s.index + 1}/{s.total}", "dim"),
            ("   ", ""),
            (look.safe(s.what), ""),
            no_wrap=True,
            overflow="ellipsis",
        )
        return Text.assemble(head, "\n", self._track(app), "\n", Text(f" {s.note}", style="dim", no_wrap=True, overflow="ellipsis"))

    def _track(self, app: BakeryApp) -> Text:
        s = self.state
        width = self._track_width()
        counts = resample(s.activity, width) if s.activity else [0] * width
        high = max(counts) if counts else 0
        chars = [
            BLOCKS[min(len(BLOCKS) - 1, round(c / high * (len(BLOCKS) - 1)))] if high and c else " "
            for c in counts
        ]
        styles: list[Style | str] = ["dim"] * width
        for t, status in s.marks:
            col = self.column_of(t)
            styles[col] = look.status_style(app, status, bold=True)
            if chars[col] == " ":
                chars[col] = "╵"
        cursor = self.column_of(s.t)
        text = Text(" ", no_wrap=True)
        for i, ch in enumerate(chars):
            if i == cursor:
                text.append("┃", f"bold {look.colour(app, 'accent') or ''}".strip())
            elif i < cursor:
                text.append(ch, styles[i] if styles[i] != "dim" else "")
            else:
                text.append(ch, styles[i])
        return text

    def on_click(self, event: events.Click) -> None:
        if event.y == TRACK_ROW and self.state.duration > 0:
            event.stop()
            self.post_message(self.Seek(self.time_at(event.x)))
