"""Compare two executions: what changed between "last green" and "this red".

Per stage and action: both statuses and durations and what changed (newly failing, fixed,
slower or faster - small wobbles are ignored), the commits between the two, the variables
that differ, and for one action a log diff that ignores what differs on every run anyway
(timestamps, temporary paths, the run directory, hex ids, durations).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.state import ActionState, RunState, iso
from engine.store import Store

MIN_RATIO = 0.2  # a duration change below 20 % ...
MIN_SECONDS = 0.5  # ... or below half a second is noise
MAX_COMMITS = 200
MAX_DIFF_LINES = 5000  # per side: the end of a log is where failures are

NEWLY_FAILING = "newly failing"
FIXED = "fixed"
SLOWER = "slower"
FASTER = "faster"
ADDED = "added"
REMOVED = "removed"
STATUS_CHANGED = "status changed"

_BAD = frozenset({ev.FAILED, ev.ABANDONED, ev.STOPPED, ev.CANCELLED})


class CompareError(Exception):
    """The executions cannot be compared as asked; the message is for the user."""


@dataclass(frozen=True, slots=True)
class Side:
    status: str | None
    duration: float | None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "duration": _r(self.duration)}


@dataclass(frozen=True, slots=True)
class Change:
    """One stage's or action's status and duration in both executions."""

    stage: str
    action: str | None  # None for the stage itself
    a: Side | None  # None: not in that execution's pipeline
    b: Side | None
    change: str | None  # NEWLY_FAILING, FIXED, SLOWER, FASTER, ADDED, REMOVED, STATUS_CHANGED
    delta: float | None  # b - a seconds, when both have a duration

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "action": self.action,
            "a": self.a.to_json() if self.a else None,
            "b": self.b.to_json() if self.b else None,
            "change": self.change,
            "delta": _r(self.delta),
        }


@dataclass(frozen=True, slots=True)
class CommitInfo:
    id: str
    author: str
    date: str
    subject: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "author": self.author, "date": self.date, "subject": self.subject}


@dataclass(slots=True)
class Comparison:
    a: RunState
    b: RunState
    rows: list[Change] = field(default_factory=list)  # stage rows, each followed by its actions
    commits: list[CommitInfo] | None = None  # a..b; None when the repository was not readable
    commits_note: str = ""
    variables: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    log_target: tuple[str, str] | None = None
    log_diff: list[str] | None = None
    log_note: str = ""

    @property
    def changes(self) -> list[Change]:
        return [r for r in self.rows if r.change is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "a": _run_json(self.a),
            "b": _run_json(self.b),
            "stages": [
                {
                    **r.to_json(),
                    "actions": [x.to_json() for x in self.rows if x.stage == r.stage and x.action],
                }
                for r in self.rows
                if r.action is None
            ],
            "changes": [c.to_json() for c in self.changes],
            "commits": [c.to_json() for c in self.commits] if self.commits is not None else None,
            "commits_note": self.commits_note,
            "variables": {k: {"a": v[0], "b": v[1]} for k, v in self.variables.items()},
            "log_diff": None
            if self.log_target is None
            else {
                "stage": self.log_target[0],
                "action": self.log_target[1],
                "diff": self.log_diff or [],
                "note": self.log_note,
            },
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _run_json(state: RunState) -> dict[str, Any]:
    return {
        "id": state.id,
        "number": state.number,
        "status": state.status,
        "commit": state.commit.get("id"),
        "branch": state.commit.get("branch"),
        "created_at": iso(state.created_at),
        "duration": _r(state.duration(state.last_ts) if state.finished else None),
    }


# -- what changed ----------------------------------------------------------------------------
def duration_change(
    a: float | None,
    b: float | None,
    *,
    min_ratio: float = MIN_RATIO,
    min_seconds: float = MIN_SECONDS,
) -> str | None:
    """SLOWER/FASTER when the change is both >= min_seconds and >= min_ratio of the old."""
    if a is None or b is None:
        return None
    delta = b - a
    if abs(delta) < min_seconds or abs(delta) < min_ratio * max(a, 1e-9):
        return None
    return SLOWER if delta > 0 else FASTER


def classify(
    a: Side | None,
    b: Side | None,
    *,
    min_ratio: float = MIN_RATIO,
    min_seconds: float = MIN_SECONDS,
) -> str | None:
    if a is None and b is None:
        return None
    if a is None:
        return ADDED
    if b is None:
        return REMOVED
    if b.status == ev.FAILED and a.status != ev.FAILED:
        return NEWLY_FAILING
    if a.status in _BAD and b.status == ev.SUCCEEDED:
        return FIXED
    if a.status == b.status == ev.SUCCEEDED:
        return duration_change(a.duration, b.duration, min_ratio=min_ratio, min_seconds=min_seconds)
    if a.status != b.status and b.status is not None and a.status is not None:
        return STATUS_CHANGED
    return None


def _action_side(a: ActionState) -> Side:
    duration = a.finished_at - a.started_at if a.finished_at and a.started_at else None
    return Side(a.status, duration)


def _stage_side(state: RunState, name: str) -> Side | None:
    try:
        s = state.stage(name)
    except KeyError:
        return None
    duration = s.finished_at - s.started_at if s.finished_at and s.started_at else None
    return Side(s.status, duration)


def compare_states(
    a: RunState, b: RunState, *, min_ratio: float = MIN_RATIO, min_seconds: float = MIN_SECONDS
) -> Comparison:
    """Stage and action rows (in b's pipeline order, then anything only a had) and variables."""
    out = Comparison(a, b)
    stage_names = [s.name for s in b.stages] + [
        s.name for s in a.stages if s.name not in {x.name for x in b.stages}
    ]
    for name in stage_names:
        sa, sb = _stage_side(a, name), _stage_side(b, name)
        out.rows.append(
            Change(
                name,
                None,
                sa,
                sb,
                classify(sa, sb, min_ratio=min_ratio, min_seconds=min_seconds),
                _delta(sa, sb),
            )
        )
        acts_a = {x.name: x for x in a.stage(name).actions} if sa else {}
        acts_b = {x.name: x for x in b.stage(name).actions} if sb else {}
        for act in list(acts_b) + [n for n in acts_a if n not in acts_b]:
            xa = _action_side(acts_a[act]) if act in acts_a else None
            xb = _action_side(acts_b[act]) if act in acts_b else None
            out.rows.append(
                Change(
                    name,
                    act,
                    xa,
                    xb,
                    classify(xa, xb, min_ratio=min_ratio, min_seconds=min_seconds),
                    _delta(xa, xb),
                )
            )
    for key in sorted(set(a.variables) | set(b.variables)):
        va, vb = a.variables.get(key), b.variables.get(key)
        if va != vb:
            out.variables[key] = (va, vb)
    return out


def _delta(a: Side | None, b: Side | None) -> float | None:
    if a is None or b is None or a.duration is None or b.duration is None:
        return None
    return b.duration - a.duration


# -- commits ---------------------------------------------------------------------------------
def commits_between(
    repo: str | Path, old: str, new: str, *, limit: int = MAX_COMMITS
) -> list[CommitInfo]:
    """`git log old..new`, newest first (GitPython); raises CompareError when unreadable."""
    import git

    from engine.gitinfo import GitError, open_repo

    try:
        r = open_repo(str(Path(repo).resolve()))
        commits = list(r.iter_commits(f"{old}..{new}", max_count=limit))
    except (GitError, git.GitCommandError, git.BadName, ValueError) as exc:
        raise CompareError(f"cannot list the commits {old[:8]}..{new[:8]}: {exc}") from exc
    return [
        CommitInfo(
            c.hexsha,
            str(c.author.name or ""),
            c.authored_datetime.isoformat(),
            (c.message if isinstance(c.message, str) else "").strip().splitlines()[0]
            if c.message
            else "",
        )
        for c in commits
    ]


# -- log diff --------------------------------------------------------------------------------
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*(?:\x07|\x1b\\)")
_ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
)
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b")
_RUN_DIR = re.compile(r"\S*/runs/\d{8}-\d{6}-[0-9a-f]{6}")
_TMP = re.compile(r"(?:/private)?(?:/tmp|/var/tmp|/var/folders|/dev/shm)/[^\s'\":,;)\]}]*")
_HEX = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,64}\b", re.IGNORECASE)
_UUID = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE
)
_DURATION = re.compile(
    r"\b\d+(?:\.\d+)?\s?(?:ns|us|µs|ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)\b"
)


def normalise(line: str, run_ids: tuple[str, ...] = ()) -> str:
    """A log line with what differs on every run replaced by placeholders."""
    line = _ANSI.sub("", line)
    for rid in run_ids:
        if rid:
            line = re.sub(r"\S*/runs/" + re.escape(rid), "<run>", line)
            line = line.replace(rid, "<run-id>")
    line = _RUN_DIR.sub("<run>", line)
    line = _TMP.sub("<tmp>", line)
    line = _ISO_TIME.sub("<time>", line)
    line = _CLOCK.sub("<time>", line)
    line = _UUID.sub("<id>", line)
    line = _HEX.sub("<hex>", line)
    line = _DURATION.sub("<duration>", line)
    return line.rstrip()


def log_diff(
    store: Store,
    a: RunState,
    b: RunState,
    stage: str,
    action: str,
    *,
    context: int = 3,
    max_lines: int = MAX_DIFF_LINES,
) -> tuple[list[str], str]:
    """Unified diff of one action's normalised log (its latest attempt in each run)."""
    sides: list[list[str]] = []
    notes: list[str] = []
    for state in (a, b):
        try:
            attempt = state.action(stage, action).attempt
        except KeyError:
            raise CompareError(
                f"execution #{state.number} has no action {stage}/{action}"
            ) from None
        lines = _last_lines(store, state.id, stage, action, attempt, max_lines)
        if len(lines) == max_lines:
            notes.append(f"#{state.number}: only the last {max_lines} lines compared")
        sides.append([normalise(x, (a.id, b.id)) for x in lines])
    diff = difflib.unified_diff(
        sides[0],
        sides[1],
        fromfile=f"#{a.number} {stage}/{action}",
        tofile=f"#{b.number} {stage}/{action}",
        n=context,
        lineterm="",
    )
    return list(diff), "; ".join(notes)


def _last_lines(
    store: Store, run_id: str, stage: str, action: str, attempt: int, n: int
) -> list[str]:
    from engine.replay import query

    source = query(
        store,
        "SELECT id FROM log_sources WHERE run_id = ? AND stage = ? AND action = ? AND attempt = ?",
        (run_id, stage, action, attempt),
    )
    if not source or n <= 0:
        return []
    out: list[str] = []  # newest first
    before: tuple[int, int] | None = None
    while len(out) < n:
        rows = query(
            store,
            "SELECT id, first_line, last_line, text FROM log_chunks WHERE source = ?"
            + (" AND (first_line, id) < (?, ?)" if before else "")
            + " ORDER BY first_line DESC, id DESC LIMIT 64",
            (source[0][0], *before) if before else (source[0][0],),
        )
        for _cid, first, last, text in rows:
            texts = [text] if last == first else str(text).split("\n")
            out.extend(reversed(texts[-(n - len(out)) :]))
            if len(out) >= n:
                break
        if len(rows) < 64:
            break
        before = (rows[-1][1], rows[-1][0])
    return [str(x) for x in reversed(out)]


# -- the whole comparison ----------------------------------------------------------------------
def last_green_before(store: Store, run_id: str) -> str | None:
    """The newest execution of the same pipeline, created before `run_id`, that Succeeded."""
    from engine.replay import query

    rows = query(
        store,
        "SELECT g.id FROM runs g JOIN runs r ON r.id = ? WHERE g.pipeline = r.pipeline"
        " AND g.status = ? AND g.number < r.number ORDER BY g.number DESC LIMIT 1",
        (run_id, ev.SUCCEEDED),
    )
    return str(rows[0][0]) if rows else None


def compare(
    store: Store,
    a_id: str,
    b_id: str,
    *,
    repo: str | Path | None = None,
    action: tuple[str, str] | None = None,
    min_ratio: float = MIN_RATIO,
    min_seconds: float = MIN_SECONDS,
) -> Comparison:
    """Everything `bakery diff A B` shows; `repo` enables the commit list."""
    a, b = store.load_run(a_id), store.load_run(b_id)
    if a is None or b is None:
        raise CompareError(f"execution {a_id if a is None else b_id} has no events")
    out = compare_states(a, b, min_ratio=min_ratio, min_seconds=min_seconds)
    old, new = a.commit.get("id"), b.commit.get("id")
    if not old or not new:
        out.commits_note = "an execution has no commit"
    elif old == new:
        out.commits = []
        out.commits_note = "same commit"
    elif repo is None:
        out.commits_note = "no repository to read commits from"
    else:
        try:
            out.commits = commits_between(repo, old, new)
            if not out.commits:
                back = commits_between(repo, new, old, limit=1)
                if back:
                    out.commits_note = f"#{b.number} runs an older commit than #{a.number}"
            elif len(out.commits) >= MAX_COMMITS:
                out.commits_note = f"only the newest {MAX_COMMITS} commits are listed"
        except CompareError as exc:
            out.commits_note = str(exc)
    if action is not None:
        out.log_target = action
        out.log_diff, out.log_note = log_diff(store, a, b, *action)
    return out
