"""The board's header line and the banner of the execution in focus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from engine.state import RunState
from tui import look
from tui.widgets.run_list import run_status

if TYPE_CHECKING:
    from tui.app import BakeryApp


@dataclass
class HeaderInfo:
    repo: str = ""
    branch: str = ""
    pipeline: str = ""
    version: int = 0
    mode: str = ""
    note: str = ""  # e.g. "watching" or "pipeline error: ..."


class BoardHeader(Static):
    """repo · branch · pipeline vN · mode · clock."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.info = HeaderInfo()

    def set_info(self, info: HeaderInfo) -> None:
        self.info = info
        self.refresh()

    def render(self) -> Text:
        app: BakeryApp = self.app  # type: ignore[assignment]
        i = self.info
        accent = look.colour(app, "accent") or None
        sep = ("  │  ", "dim")
        text = Text.assemble(
            (" bakery", f"bold {accent}" if accent else "bold"),
            sep,
            ("repo ", "dim"),
            (i.repo or "?", "bold"),
            sep,
            ("branch ", "dim"),
            (i.branch or "(detached)", "bold"),
            sep,
            ("pipeline ", "dim"),
            (i.pipeline or "?", "bold"),
            (f" v{i.version}" if i.version else "", ""),
            sep,
            ("mode ", "dim"),
            (i.mode or "?", "bold"),
        )
        if i.note:
            text.append("  │  ", "dim")
            text.append(i.note, "italic")
        clock = look.clock(app.now())
        pad = max(1, self.size.width - text.cell_len - len(clock) - 1)
        text.append(" " * pad)
        text.append(clock + " ", "bold")
        return text


class RunBanner(Static):
    """The execution in focus: number, status, commit (short id, subject, author, branch)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.run: RunState | None = None
        self.hint = ""

    def show(self, run: RunState | None, hint: str = "") -> None:
        """`hint`: what to do when there is no execution (under the banner's first line, so
        the first execution to arrive keeps the banner's height)."""
        self.run = run
        self.hint = hint
        self.refresh(layout=True)

    def render(self) -> Text:
        app: BakeryApp = self.app  # type: ignore[assignment]
        r = self.run
        if r is None:
            if self.hint:
                return Text.assemble((" No execution yet", "bold"), "\n", ("   " + self.hint, "dim"))
            return Text(" No execution in focus", style="dim")
        status = run_status(r)
        frame = app.spinner_frame if app.animate else None
        c = r.commit or {}
        now = app.now()
        text = Text.assemble(
            (f" #{r.number} ", "bold"),
            (f"{look.symbol(status, frame)} {status}", look.status_style(app, status, bold=True)),
            ("   ", ""),
            (str(c.get("short") or str(c.get("id", ""))[:8]), "bold"),
            (" ", ""),
            (look.subject(c.get("message")), ""),
        )
        took = look.duration(r.duration(now)) if r.started_at else ""
        line2 = Text.assemble(
            ("   by ", "dim"),
            (look.safe(c.get("author", "?")), ""),
            (f" <{look.safe(c['email'])}>" if c.get("email") else "", "dim"),
            ("  on ", "dim"),
            (look.safe(c.get("branch") or "?"), "bold"),
            ("  · trigger ", "dim"),
            (_trigger(r), ""),
            ("  · v", "dim"),
            (str(r.pipeline_version), ""),
            ("  · started ", "dim") if r.started_at else ("", ""),
            (look.clock(r.started_at), "") if r.started_at else ("", ""),
            (f"  · {took}", "dim") if took else ("", ""),
        )
        if r.error:
            line2.append("\n   ")
            line2.append(look.safe(f"{r.error.get('type')}: {r.error.get('message')}"), look.status_style(app, "Failed"))
        if r.stop:
            line2.append(f"\n   stop requested ({r.stop.get('mode')}) by {r.stop.get('by')}", "dim")
            if r.stop.get("comment"):
                line2.append(": " + look.safe(r.stop["comment"]), "dim")
        return Text.assemble(text, "\n", line2)


def _trigger(run: RunState) -> str:
    t = run.trigger or {}
    kind = str(t.get("type", ""))
    by = t.get("by")
    return f"{kind} by {by}" if by else kind
