"""Stored executions written straight into a Store (no engine): exact times, any number."""

from __future__ import annotations

from pathlib import Path

from engine import events as ev
from engine.store import Store
from tui.app import BakeryApp
from tui.model import BoardModel
from tui.source import ListSource
from tui.widgets.header import HeaderInfo

T0 = 1_700_000_000.0
STAGES = [
    {"name": "Source", "actions": [{"name": "Checkout", "category": "source", "run_order": 1}]},
    {"name": "Test", "actions": [{"name": "Unit", "category": "test", "run_order": 1}]},
    {"name": "Deploy", "actions": [{"name": "Ship", "category": "deploy", "run_order": 1}]},
]


def created(run_id: str, t0: float, *, branch: str = "main", commit: str = "c0ffee00d15ea5e0",
            subject: str = "Make the greeting friendlier") -> ev.Event:
    return ev.Event(ev.RUN_CREATED, run_id, t0, {
        "pipeline": "greeter", "pipeline_version": 1, "execution_mode": "superseded",
        "trigger": {"type": "Webhook", "by": "ada"},
        "commit": {"id": commit, "short": commit[:8], "branch": branch, "message": subject,
                   "author": "Ada"},
        "variables": {}, "stages": STAGES,
    })


def write_run(store: Store, run_id: str, t0: float, *, fail: bool = False, branch: str = "main",
              unit_lines: int = 10, subject: str = "Make the greeting friendlier") -> None:
    """A whole execution: Source ok, Test/Unit logs `unit_lines` lines (0.1 s apart) then
    passes or fails, Deploy runs only after a pass. Event times are t0 + whole seconds."""
    store.create_run(created(run_id, t0, branch=branch, subject=subject))

    def add(dt: float, type_: str, **data: object) -> None:
        store.append(ev.Event(type_, run_id, t0 + dt, dict(data)))

    add(1, ev.RUN_STATUS, status=ev.IN_PROGRESS)
    add(1, ev.STAGE_STATUS, stage="Source", status=ev.IN_PROGRESS, attempt=1)
    add(1, ev.ACTION_STATUS, stage="Source", action="Checkout", status=ev.IN_PROGRESS, attempt=1)
    add(2, ev.ACTION_STATUS, stage="Source", action="Checkout", status=ev.SUCCEEDED, attempt=1)
    add(2, ev.STAGE_STATUS, stage="Source", status=ev.SUCCEEDED, attempt=1)
    add(3, ev.STAGE_STATUS, stage="Test", status=ev.IN_PROGRESS, attempt=1)
    add(3, ev.ACTION_STATUS, stage="Test", action="Unit", status=ev.IN_PROGRESS, attempt=1)
    store.append_logs([
        ev.LogLine(run_id, "Test", "Unit", 1, i, t0 + 3 + 0.1 * i, "stdout",
                   f"test_{i} ok" if not (fail and i == unit_lines) else "ERROR: test_greeting broke")
        for i in range(1, unit_lines + 1)
    ])
    end = 4 + 0.1 * unit_lines
    if fail:
        add(end, ev.ACTION_STATUS, stage="Test", action="Unit", status=ev.FAILED, attempt=1,
            error={"type": "JobFailed", "message": "exit code 1"})
        add(end, ev.STAGE_STATUS, stage="Test", status=ev.FAILED, attempt=1)
        add(end, ev.RUN_STATUS, status=ev.FAILED)
        return
    add(end, ev.ACTION_STATUS, stage="Test", action="Unit", status=ev.SUCCEEDED, attempt=1)
    add(end, ev.STAGE_STATUS, stage="Test", status=ev.SUCCEEDED, attempt=1)
    add(end + 1, ev.STAGE_STATUS, stage="Deploy", status=ev.IN_PROGRESS, attempt=1)
    add(end + 1, ev.ACTION_STATUS, stage="Deploy", action="Ship", status=ev.IN_PROGRESS, attempt=1)
    add(end + 2, ev.ACTION_STATUS, stage="Deploy", action="Ship", status=ev.SUCCEEDED, attempt=1)
    add(end + 2, ev.STAGE_STATUS, stage="Deploy", status=ev.SUCCEEDED, attempt=1)
    add(end + 2, ev.RUN_STATUS, status=ev.SUCCEEDED)


def store_app(tmp_path: Path, store: Store, **kwargs: object) -> BakeryApp:
    """A board with no engine over a store (what history, compare and search need)."""
    return BakeryApp(
        ListSource(store=store),
        model=BoardModel("greeter", store),
        header=HeaderInfo("greeter", "main", "greeter", 1, "superseded"),
        settings_dir=tmp_path / "config",
        desktop_notify=False,
        animate=False,
        **kwargs,  # type: ignore[arg-type]
    )


def many_runs(store: Store, count: int) -> None:
    """`count` short executions in one transaction (Store.create_run/append would commit each:
    ~1 ms apiece). Every third Failed, every fifth on branch "feature"."""
    with store.transaction() as conn:
        for i in range(1, count + 1):
            run_id = f"run{i:06d}"
            event = created(run_id, T0 + i * 10, branch="feature" if i % 5 == 0 else "main",
                            subject=f"change number {i}")
            event = ev.Event(event.type, run_id, event.ts, dict(event.data, number=i))
            store._append(conn, event)
            store._append(conn, ev.Event(ev.RUN_STATUS, run_id, T0 + i * 10 + 1, {"status": ev.IN_PROGRESS}))
            status = ev.FAILED if i % 3 == 0 else ev.SUCCEEDED
            store._append(conn, ev.Event(ev.RUN_STATUS, run_id, T0 + i * 10 + 5, {"status": status}))
