"""The prompt shown while an approval waits: message, link, what changed, who triggered it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from engine.state import ActionState, RunState
from tui import look
from tui.approval_info import ApprovalContext

if TYPE_CHECKING:
    from tui.app import BakeryApp


class ApprovalPanel(Static):
    """Drawn from the waiting ActionState plus an ApprovalContext loaded in a thread."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.run: RunState | None = None
        self.action: ActionState | None = None
        self.context: ApprovalContext | None = None
        self.others = 0

    def show(self, run: RunState | None, action: ActionState | None, others: int = 0) -> None:
        if action is None or run is None:
            self.display = False
            self.run = self.action = None
            return
        self.run, self.action, self.others = run, action, others
        self.display = True
        self.border_title = f" Approval waiting · {action.stage} / {action.name} "
        self.border_subtitle = " a approve · r reject "
        self.refresh(layout=True)

    def set_context(self, context: ApprovalContext | None) -> None:
        self.context = context
        self.refresh(layout=True)

    def render(self) -> Group:
        app: BakeryApp = self.app  # type: ignore[assignment]
        a, r = self.action, self.run
        if a is None or r is None or a.approval is None:
            return Group()
        ap = a.approval
        accent = look.colour(app, "accent") or ""
        lines: list[Text] = []
        message = look.safe(ap.message) or "(no message)"
        lines.append(Text.assemble(("  ", ""), (message, f"bold {accent}".strip())))
        meta = Text("  ")
        if ap.link:
            meta.append("review ", "dim")
            meta.append(look.safe(ap.link), "underline")
            meta.append("   ")
        trigger = r.trigger or {}
        who = trigger.get("by") or r.commit.get("author") or "?"
        meta.append("triggered by ", "dim")
        meta.append(look.safe(who))
        meta.append(f" ({look.safe(trigger.get('type', ''))})", "dim")
        waited = look.duration(app.now() - ap.requested_at) if ap.requested_at else ""
        if waited:
            meta.append(f"   waiting {waited}", "dim")
        if ap.expires_at:
            meta.append(f" · expires {look.clock(ap.expires_at, app.now())}", "dim")
        if ap.approvers:
            meta.append(f"   approvers: {', '.join(look.safe(x) for x in ap.approvers)}", "dim")
        lines.append(meta)
        ctx = self.context
        if ctx is None:
            lines.append(Text("  reading the changes…", "dim italic"))
        elif ctx.problem:
            lines.append(Text("  " + look.safe(ctx.problem), "dim italic"))
        else:
            if ctx.base_number is not None:
                head = f"  {len(ctx.commits) + ctx.more_commits} commit(s) since #{ctx.base_number}, the last approved execution"
            else:
                head = "  no earlier approved execution: the latest commits"
            lines.append(Text(head, "bold"))
            for short, subj, author in ctx.commits:
                lines.append(
                    Text.assemble(
                        ("    ", ""), (short, accent or "bold"), (" ", ""), (look.safe(subj), ""),
                        (f"  — {look.safe(author)}", "dim"),
                        no_wrap=True, overflow="ellipsis",
                    )
                )
            if ctx.more_commits:
                lines.append(Text(f"    … {ctx.more_commits} more", "dim"))
            if ctx.summary:
                lines.append(Text("  " + look.safe(ctx.summary), "bold"))
                for f in ctx.files:
                    lines.append(Text("    " + look.safe(f), "dim", no_wrap=True, overflow="ellipsis"))
        if self.others:
            lines.append(Text(f"  (+{self.others} more approval(s) waiting)", "dim"))
        return Group(*lines)
