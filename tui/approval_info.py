"""What a reviewer needs before answering an approval: what changed since the last approval.

Finds the last execution of the pipeline whose approval at the same stage/action was
Approved, then lists the commits and the diffstat between its commit and this one. Runs in a
thread (git and the store can take a moment on large repositories).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine import events as ev
from engine.gitinfo import GitError, open_repo

if TYPE_CHECKING:
    from engine.store import Store

MAX_COMMITS = 12
MAX_FILES = 10
SCAN_RUNS = 60


@dataclass
class ApprovalContext:
    base_number: int | None = None  # the last approved execution, if any
    base_commit: str | None = None
    commits: list[tuple[str, str, str]] = field(default_factory=list)  # short, subject, author
    more_commits: int = 0
    files: list[str] = field(default_factory=list)  # diffstat lines
    summary: str = ""
    problem: str = ""


def last_approved(store: Store, pipeline: str, stage: str, action: str,
                  before_number: int) -> tuple[int, str] | None:
    """(number, commit id) of the newest earlier execution approved at stage/action."""
    for summary in store.runs(pipeline=pipeline, limit=SCAN_RUNS):
        if summary.number >= before_number:
            continue
        for event in store.events(summary.id):
            d = event.data
            if (
                event.type == ev.APPROVAL_DECIDED
                and d.get("stage") == stage
                and d.get("action") == action
                and d.get("result") == ev.APPROVED
            ):
                return summary.number, summary.commit_id or ""
    return None


def approval_context(repo: str | Path, store: Store | None, pipeline: str, number: int,
                     stage: str, action: str, commit: str) -> ApprovalContext:
    ctx = ApprovalContext()
    base = last_approved(store, pipeline, stage, action, number) if store is not None else None
    try:
        git = open_repo(str(Path(repo).resolve()))
        if base is not None and base[1]:
            ctx.base_number, ctx.base_commit = base
            span = f"{base[1]}..{commit}"
            log = git.git.log("--format=%h%x1f%s%x1f%an", span)
            stat = git.git.diff("--stat=80", base[1], commit)
        else:
            log = git.git.log("--format=%h%x1f%s%x1f%an", "-n", str(MAX_COMMITS + 1), commit)
            parents = git.commit(commit).parents
            stat = git.git.diff("--stat=80", parents[0].hexsha, commit) if parents else ""
    except (GitError, Exception) as exc:  # noqa: BLE001 - shown to the reviewer, not fatal
        ctx.problem = f"cannot read git history: {exc}"
        return ctx
    rows = [line.split("\x1f") for line in log.splitlines() if line]
    ctx.commits = [(r[0], r[1], r[2]) for r in rows[:MAX_COMMITS] if len(r) == 3]
    ctx.more_commits = max(0, len(rows) - MAX_COMMITS)
    stat_lines = [line.strip() for line in stat.splitlines() if line.strip()]
    if stat_lines:
        ctx.summary = stat_lines[-1]
        ctx.files = stat_lines[:-1][:MAX_FILES]
        if len(stat_lines) - 1 > MAX_FILES:
            ctx.files.append(f"… and {len(stat_lines) - 1 - MAX_FILES} more files")
    return ctx
