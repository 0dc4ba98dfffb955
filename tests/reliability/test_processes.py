"""Guarantees 4, 7, 8 and 11: what bakery starts, bakery ends; nothing it starts hangs it.

Every action writes the pids of what it started to a file, so the tests can look at /proc
afterwards instead of trusting bakery's own account.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import events as ev
from tests.reliability._support import (
    action_of,
    alive,
    bakery,
    carrying,
    db_path,
    engine_for,
    log_texts,
    pids_in,
    poll,
    run_to_end,
    runs,
    show,
    start_bakery,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)


def tree_pipeline(tmp: Path, timeout: str | None = None) -> str:
    """Three actions: one that ignores SIGTERM, a polite one, and one that starts daemons
    (setsid, and nohup with SIGTERM ignored) that leave its process group."""
    t = f"\n        timeout: {timeout}" if timeout else ""
    return f"""
name: tree
stages:
  - name: Source
    actions:
      - {{name: Checkout, category: source}}
  - name: Work
    actions:
      - name: Stubborn
        category: build{t}
        run: |
          trap '' TERM
          sleep 300 &
          echo $$ $! >> {tmp}/stubborn
          wait
      - name: Polite
        category: build{t}
        run: |
          echo $$ >> {tmp}/polite
          sleep 300
      - name: Daemons
        category: build{t}
        run: |
          (trap '' TERM; setsid sleep 300 & echo $! >> {tmp}/daemons)
          (trap '' TERM; nohup sleep 301 >/dev/null 2>&1 & echo $! >> {tmp}/daemons)
          echo $$ >> {tmp}/daemons
          sleep 302
"""


def started(tmp: Path) -> list[int]:
    """Every pid the three actions reported (empty until all of them did)."""
    groups = [pids_in(tmp / name) for name in ("stubborn", "polite", "daemons")]
    if len(groups[0]) < 2 or len(groups[1]) < 1 or len(groups[2]) < 3:
        return []
    return [pid for group in groups for pid in group]


def assert_tree_gone(pids: list[int], run_id: str) -> None:
    wait_for(lambda: not any(alive(p) for p in pids), timeout=10, what="the tree to be gone")
    assert carrying("BAKERY_RUN_ID", run_id) == []


# -- 4. SIGINT / SIGTERM / `bakery stop` on a headless run -------------------------------------


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "bakery stop --abandon"])
def test_headless_run_stops_its_whole_tree_on_signal_or_stop(
    how: str, make_repo: Callable[..., Any], tmp_path: Path
) -> None:
    """TERM, grace, KILL to every action, the execution Stopped, the signal recorded, and
    (for a signal) bakery gone within grace + 2 s."""
    grace = 2.0
    repo = make_repo(tree_pipeline(tmp_path))
    run = start_bakery("run", "--plain", "--grace", str(grace), cwd=repo.path)
    try:
        wait_for(lambda: bool(started(tmp_path)), what="all actions to start")
        pids = started(tmp_path)
        ((run_id, _, _),) = runs(db_path(repo.path))
        began = time.monotonic()
        if how.startswith("SIG"):
            run.send_signal(getattr(signal, how))
        else:
            answer = bakery("stop", "1", "--abandon", "-m", "wrong commit", cwd=repo.path)
            assert answer.returncode == 0, answer.stdout + answer.stderr
        output, _ = run.communicate(timeout=60)
        took = time.monotonic() - began
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, output
    assert "#1 execution Stopped" in output
    assert "Traceback" not in output
    if how.startswith("SIG"):
        assert took < grace + 2.0, f"bakery took {took:.1f}s to exit"
    doc = show(repo.path, 1)
    assert doc["status"] == ev.STOPPED
    assert doc["stop"]["mode"] == "abandon"
    signals = {name: action_of(doc, "Work", name) for name in ("Stubborn", "Polite", "Daemons")}
    assert {n: a["status"] for n, a in signals.items()} == dict.fromkeys(signals, ev.ABANDONED)
    assert signals["Stubborn"]["signal"] == "SIGKILL"  # it ignored SIGTERM for the grace
    assert signals["Polite"]["signal"] == "SIGTERM"
    assert signals["Daemons"]["signal"] == "SIGTERM"
    assert_tree_gone(pids, run_id)


# -- 7. stop and timeout through the engine ----------------------------------------------------


async def test_stop_kills_the_tree_with_term_grace_kill_and_records_the_signal(
    make_repo: Callable[..., Any], tmp_path: Path
) -> None:
    repo = make_repo(tree_pipeline(tmp_path))
    engine, pipeline, version = await engine_for(repo.path, grace=0.5)
    try:
        ex = await engine.start_execution(pipeline, version=version)
        await poll(lambda: bool(started(tmp_path)), what="all actions to start")
        pids = started(tmp_path)
        await engine.stop(ex.run_id, mode="abandon", comment="enough")
        state = await engine.wait(ex.run_id)
    finally:
        await engine.close()
    assert state.status == ev.STOPPED
    work = state.stage("Work")
    assert work.status == ev.STOPPED
    assert {a.name: (a.status, a.signal) for a in work.actions} == {
        "Stubborn": (ev.ABANDONED, "SIGKILL"),
        "Polite": (ev.ABANDONED, "SIGTERM"),
        "Daemons": (ev.ABANDONED, "SIGTERM"),
    }
    assert "SIGKILL" in work.action("Stubborn").error["message"]
    assert_tree_gone(pids, ex.run_id)


async def test_timeout_kills_the_tree_with_term_grace_kill_and_records_the_signal(
    make_repo: Callable[..., Any], tmp_path: Path
) -> None:
    repo = make_repo(tree_pipeline(tmp_path, timeout="1s"))
    _, state = await run_to_end(repo.path, grace=0.5)
    pids = started(tmp_path)
    assert pids, "the actions never reported their pids"
    work = state.stage("Work")
    assert state.status == ev.FAILED and work.status == ev.FAILED
    assert {a.name: (a.status, a.error["type"], a.signal) for a in work.actions} == {
        "Stubborn": (ev.FAILED, ev.TIMED_OUT, "SIGKILL"),
        "Polite": (ev.FAILED, ev.TIMED_OUT, "SIGTERM"),
        "Daemons": (ev.FAILED, ev.TIMED_OUT, "SIGTERM"),
    }
    assert_tree_gone(pids, state.id)


# -- 8. a grandchild that keeps the pipes open ---------------------------------------------------


async def test_grandchild_holding_stdout_does_not_hold_the_action(
    make_repo: Callable[..., Any], tmp_path: Path
) -> None:
    """`sleep 30 & exit 0`: the action ends when the shell exits; the sleeper is killed."""
    repo = make_repo(
        f"""
name: bg
stages:
  - name: Source
    actions:
      - {{name: Checkout, category: source}}
  - name: Work
    actions:
      - {{name: Out, category: build, run: "echo before; sleep 30 & echo $! >> {tmp_path}/bg; exit 0"}}
      - {{name: Err, category: build, run: "(sleep 31; echo late) >&2 & echo $! >> {tmp_path}/bg; exit 0"}}
"""
    )
    began = time.monotonic()
    engine, state = await run_to_end(repo.path)
    assert state.status == ev.SUCCEEDED, state.to_json()
    assert time.monotonic() - began < 25, "completion waited for the grandchild"
    assert all(a.exit_code == 0 for a in state.stage("Work").actions)
    assert "before" in [line.text for line in engine.store.logs(state.id, "Work", "Out")]
    pids = pids_in(tmp_path / "bg")
    assert len(pids) == 2
    wait_for(lambda: not any(alive(p) for p in pids), timeout=10, what="grandchildren killed")


# -- 11. stdin is /dev/null ----------------------------------------------------------------


def test_actions_read_stdin_from_dev_null_even_when_bakery_has_a_terminal_or_pipe(
    make_repo: Callable[..., Any],
) -> None:
    """bakery's own stdin is a pipe nobody closes: an action reading stdin would hang if
    it inherited it. It reads /dev/null: `cat` and `sys.stdin.read()` end at once."""
    repo = make_repo(
        """
name: stdin
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Work
    actions:
      - {name: Shell, category: build, run: "readlink /proc/self/fd/0; cat; echo after-cat", timeout: 60s}
      - {name: Python, category: invoke, inputs: [source], function: "fns.py:read_stdin", timeout: 60s}
""",
        **{
            "fns.py": """
                import os, sys
                def read_stdin(params):
                    data = sys.stdin.read()
                    return {"Read": repr(data), "Fd0": os.readlink("/proc/self/fd/0")}
            """
        },
    )
    run = start_bakery("run", "--plain", cwd=repo.path, stdin=subprocess.PIPE)
    try:
        run.wait(timeout=60)  # small output: the pipe cannot fill
        assert run.stdout is not None
        output = run.stdout.read()
    finally:
        assert run.stdin is not None
        run.stdin.close()
        if run.poll() is None:
            run.kill()
    assert "#1 execution Succeeded" in output, output
    ((run_id, _, _),) = runs(db_path(repo.path))
    assert log_texts(db_path(repo.path), run_id, "Work", "Shell")[1:3] == ["/dev/null", "after-cat"]
    python = action_of(show(repo.path, 1), "Work", "Python")
    assert python["output_variables"] == {"Read": "''", "Fd0": "/dev/null"}
