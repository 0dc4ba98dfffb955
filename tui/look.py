"""How statuses look: symbol, theme variable, CSS class. One table, used by every widget.

Every status has a symbol as well as a colour, so the board reads without colour too.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.style import Style

from engine import events as ev
from engine.printer import human_duration
from engine.sanitize import terminal_safe

if TYPE_CHECKING:
    from textual.app import App

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

_LOOK: dict[str | None, tuple[str, str]] = {
    None: ("○", "pending"),
    ev.IN_PROGRESS: ("◐", "inprogress"),
    ev.SUCCEEDED: ("✔", "succeeded"),
    ev.FAILED: ("✘", "failed"),
    ev.STOPPED: ("■", "stopped"),
    ev.STOPPING: ("■", "stopped"),
    ev.ABANDONED: ("■", "stopped"),
    ev.SUPERSEDED: ("»", "superseded"),
    ev.CANCELLED: ("⊘", "superseded"),
    ev.SKIPPED: ("↷", "superseded"),
    ev.APPROVED: ("✔", "succeeded"),
    ev.REJECTED: ("✘", "failed"),
    "Waiting": ("◆", "waiting"),
    "Queued": ("…", "waiting"),
}


def kind(status: str | None) -> str:
    """The status family ("succeeded", "failed"...) naming the CSS class and theme variable."""
    return _LOOK.get(status, ("?", "pending"))[1]


def symbol(status: str | None, frame: int | None = None) -> str:
    """The status symbol; in-progress items spin when a frame number is given."""
    if status in (ev.IN_PROGRESS, ev.STOPPING) and frame is not None:
        return SPINNER[frame % len(SPINNER)]
    return _LOOK.get(status, ("?", "pending"))[0]


def css_class(status: str | None) -> str:
    return f"-{kind(status)}"


ALL_CLASSES = tuple(sorted({f"-{k}" for _, k in _LOOK.values()}))


def colour(app: App, name: str) -> str:
    """A theme variable's colour (hex), e.g. colour(app, "status-failed")."""
    return str(app.theme_variables.get(name) or "")


def status_style(app: App, status: str | None, *, bold: bool = False) -> Style:
    value = colour(app, f"status-{kind(status)}")
    try:
        return Style(color=value or None, bold=bold)
    except Exception:  # noqa: BLE001 - a user theme with an odd colour must not crash drawing
        return Style(bold=bold)


def duration(seconds: float | None) -> str:
    return human_duration(seconds) if seconds is not None else ""


def clock(ts: float | None, now: float | None = None) -> str:
    """HH:MM:SS, with the date in front when `ts` is not today (relative to `now`)."""
    if not ts:
        return ""
    when = time.localtime(ts)
    if now is not None and time.strftime("%Y%m%d", when) != time.strftime("%Y%m%d", time.localtime(now)):
        return time.strftime("%Y-%m-%d %H:%M", when)
    return time.strftime("%H:%M:%S", when)


def safe(text: object) -> str:
    """Untrusted text (commit messages, names) with every control sequence made harmless."""
    return terminal_safe(str(text if text is not None else ""))


def subject(message: str | None) -> str:
    text = (message or "").strip()
    return safe(text.splitlines()[0]) if text else ""
