"""Helpers for the reliability suite: real `bakery` processes, real stores, real /proc.

Nothing here imports textual: the suite proves the headless engine's guarantees.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BAKERY = [sys.executable, "-m", "engine.cli"]
HANG_GUARD = 90.0
"""Seconds a single bakery command may take before we call it hung (never a timing claim)."""


def bakery(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = HANG_GUARD
) -> subprocess.CompletedProcess[str]:
    """Run one `bakery` command to its end, as a user would (stdin is /dev/null)."""
    return subprocess.run(
        [*BAKERY, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def start_bakery(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: Any = subprocess.DEVNULL,
    stdout: Any = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """Start `bakery` in the background; stderr goes with stdout."""
    return subprocess.Popen(
        [*BAKERY, *args],
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float = HANG_GUARD) -> str:
    """Read `proc`'s output until a line holds `needle`; returns what was read."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if needle in line:
            return "".join(seen)
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"{needle!r} never appeared; output:\n{''.join(seen)}")


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll until `predicate()` holds (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout:g}s: {what}")


def state_dir(repo_path: Path) -> Path:
    return repo_path / ".git" / "bakery"


def db_path(repo_path: Path) -> Path:
    return state_dir(repo_path) / "bakery.db"


@contextmanager
def sql(db: Path) -> Iterator[sqlite3.Connection]:
    """A plain SQLite connection: what we check must not depend on Bakery's own code."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        yield conn
    finally:
        conn.close()


def integrity(db: Path) -> str:
    with sql(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def runs(db: Path) -> list[tuple[str, int, str | None]]:
    """(id, number, status) of every execution, oldest first."""
    with sql(db) as conn:
        return [
            (str(r[0]), int(r[1]), r[2])
            for r in conn.execute("SELECT id, number, status FROM runs ORDER BY number")
        ]


def show(repo_path: Path, number: int) -> dict[str, Any]:
    """`bakery show N --json`: the document a user scripts against."""
    proc = bakery("show", str(number), "--json", cwd=repo_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(proc.stdout))


def action_of(doc: dict[str, Any], stage: str, action: str) -> dict[str, Any]:
    for s in doc["stages"]:
        if s["name"] == stage:
            for a in s["actions"]:
                if a["name"] == action:
                    return dict(a)
    raise KeyError(f"{stage}/{action}")


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def carrying(name: str, value: str) -> list[int]:
    """Live processes whose environment holds NAME=VALUE (the env cookie)."""
    from engine.process import sweep

    return [pid for pid in sweep((name, value), 0) if alive(pid)]


def my_zombies() -> list[int]:
    """Children of this process that exited and were never reaped."""
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and fields[1] == me:
            found.append(int(entry))
    return found


@contextmanager
def reader(db: Path) -> Iterator[Any]:
    """A read-only Store: log lines through its API (the table layout is not the contract)."""
    from engine.store import Store

    store = Store(db, readonly=True)
    try:
        yield store
    finally:
        store.close()


def log_texts(db: Path, run_id: str, stage: str, action: str) -> list[str]:
    with reader(db) as store:
        return [line.text for line in store.logs(run_id, stage, action)]


def line_numbers_are_gap_free(db: Path, run_id: str | None = None) -> dict[tuple[Any, ...], int]:
    """Assert log line numbers are exactly 1..N per action attempt (of one execution, or all).

    Returns (run, stage, action, attempt) -> N."""
    counts: dict[tuple[Any, ...], int] = {}
    with reader(db) as store:
        ids = [run_id] if run_id else [r.id for r in store.runs()]
        for rid in ids:
            numbers: dict[tuple[Any, ...], list[int]] = {}
            for line in store.logs(rid):
                numbers.setdefault((rid, line.stage, line.action, line.attempt), []).append(
                    line.line_no
                )
            for key, seen in numbers.items():
                assert seen == list(range(1, len(seen) + 1)), f"{key}: torn line numbers"
                counts[key] = len(seen)
    return counts


# -- the engine in this process ------------------------------------------------------------


async def engine_for(repo_path: Path, *, grace: float = 5.0, state: Path | None = None) -> Any:
    """A started Engine on `repo_path`'s bakery.yaml, and the pipeline's registered version."""
    from engine.core import Engine
    from engine.loader import load_pipeline

    engine = Engine(repo_path, state or state_dir(repo_path), grace=grace)
    await engine.start()
    pipeline = load_pipeline(repo_path / "bakery.yaml")
    version = engine.register(pipeline, repo_path / "bakery.yaml")
    return engine, pipeline, version


async def run_to_end(repo_path: Path, *, grace: float = 5.0, **kw: Any) -> tuple[Any, Any]:
    """Run the pipeline once through the engine; returns (engine, final RunState)."""
    engine, pipeline, version = await engine_for(repo_path, grace=grace)
    try:
        ex = await engine.start_execution(pipeline, version=version, **kw)
        state = await engine.wait(ex.run_id)
    finally:
        await engine.close()
    return engine, state


async def poll(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Async wait_for: poll without blocking the engine's loop."""
    import asyncio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met in {timeout:g}s: {what}")


def pids_in(path: Path) -> list[int]:
    """Pids an action wrote to a file, one per line (the file may still be growing)."""
    try:
        return [int(p) for p in path.read_text().split()]
    except (OSError, ValueError):
        return []
