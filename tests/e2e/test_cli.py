"""The `bakery` command as a user runs it: real subprocesses against real repositories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(90)

APPROVAL_PIPELINE = """
name: shop
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, namespace: Src, outputs: [source]}
  - name: Build
    actions:
      - {name: Compile, category: build, inputs: [source], run: "echo compiled #{Src.ShortCommitId}"}
  - name: Release
    actions:
      - {name: Gate, category: approval, message: "Ship it?"}
  - name: Deploy
    actions:
      - {name: Ship, category: deploy, run: "echo shipped"}
"""


def bakery(*args: str, cwd: Path, check: bool = False, **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        **kw,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_run_exit_codes_and_show_json(make_repo: Callable[..., Any]) -> None:
    repo = make_repo(APPROVAL_PIPELINE)
    ok = bakery("run", "--approve", "--comment", "lgtm", cwd=repo.path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "[Build/Compile] | compiled" in ok.stdout
    assert "execution Succeeded" in ok.stdout

    rejected = bakery("run", "--reject", cwd=repo.path)
    assert rejected.returncode == 1
    assert "execution Failed" in rejected.stdout

    shown = json.loads(bakery("show", "1", "--json", cwd=repo.path, check=True).stdout)
    for key in ("id", "number", "status", "pipeline", "pipeline_version", "trigger", "commit",
                "started_at", "finished_at", "variables", "stages"):
        assert key in shown
    assert shown["status"] == "Succeeded" and shown["number"] == 1
    assert set(shown["commit"]) >= {"id", "branch", "message", "author"}
    gate = shown["stages"][2]["actions"][0]
    assert gate["approval"]["result"] == "Approved" and gate["approval"]["comment"] == "lgtm"
    assert shown["stages"][1]["actions"][0]["run_order"] == 1
    assert shown["started_at"].endswith("Z")

    history = json.loads(bakery("history", "--json", cwd=repo.path, check=True).stdout)
    assert [h["status"] for h in history] == ["Failed", "Succeeded"]

    logs = bakery("logs", "1", "Build/Compile", cwd=repo.path, check=True).stdout
    assert "compiled" in logs


def test_run_json_prints_final_state(make_repo: Callable[..., Any]) -> None:
    repo = make_repo(APPROVAL_PIPELINE)
    proc = bakery("run", "--approve", "--json", cwd=repo.path)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["status"] == "Succeeded"
    assert "Succeeded" in proc.stderr  # progress went to stderr


def test_invalid_pipeline_exits_2_with_location(make_repo: Callable[..., Any]) -> None:
    repo = make_repo("name: x\nstages:\n  - name: Source\n    actions:\n      - {name: C, category: sauce}\n")
    proc = bakery("run", cwd=repo.path)
    assert proc.returncode == 2
    assert "bakery.yaml:5:" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = bakery("validate", "bakery.yaml", cwd=repo.path)
    assert proc.returncode == 2 and "bakery.yaml:5:" in proc.stderr


def test_approve_from_a_second_process(make_repo: Callable[..., Any]) -> None:
    repo = make_repo(APPROVAL_PIPELINE)
    run = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", "--plain"],
        cwd=repo.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        seen: list[str] = []
        assert run.stdout is not None
        for line in run.stdout:
            seen.append(line)
            if "approval needed" in line:
                break
        answer = bakery("approve", "1", "Release/Gate", "--comment", "ship it", cwd=repo.path)
        assert answer.returncode == 0, answer.stdout + answer.stderr
        assert "Approved" in answer.stdout
        rest = run.stdout.read()
        assert run.wait(timeout=30) == 0, "".join(seen) + rest
        assert "shipped" in rest
    finally:
        if run.poll() is None:
            run.kill()
    again = bakery("approve", "1", "Release/Gate", cwd=repo.path)
    assert again.returncode == 1 and "Succeeded" in again.stdout + again.stderr


def test_kill_9_leaves_an_interrupted_execution(make_repo: Callable[..., Any], tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    repo = make_repo(
        f"""
name: crash
stages:
  - name: Source
    actions:
      - {{name: Checkout, category: source}}
  - name: Build
    actions:
      - {{name: Long, category: build, run: "test -f {pidfile} && exit 0; echo started; echo $$ > {pidfile}; sleep 60"}}
"""
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", "--plain"],
        cwd=repo.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    time.sleep(0.3)  # let the "started" line be flushed to the store
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    child = int(pidfile.read_text())
    second = bakery("run", "--plain", cwd=repo.path)
    assert "execution #1: Failed (Interrupted)" in second.stderr
    shown = json.loads(bakery("show", "1", "--json", cwd=repo.path, check=True).stdout)
    assert shown["status"] == "Failed" and shown["error"]["type"] == "Interrupted"
    assert shown["stages"][1]["actions"][0]["status"] == "Failed"
    logs = bakery("logs", "1", "Build/Long", cwd=repo.path, check=True).stdout
    assert "started" in logs
    wait_for(lambda: not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2])
    db = repo.path / ".git" / "bakery" / "bakery.db"
    import sqlite3

    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_engine_never_imports_the_ui() -> None:
    code = (
        "import sys, engine.cli, engine.core, engine.runner, engine.store, engine.host;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'tui')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["history"], ["validate", "nope.yaml"]])
def test_the_bakery_command_loads_textual_only_for_the_board(tmp_path: Path, argv: list[str]) -> None:
    """`bakery` (tui.main) plugs the board in, but headless commands never load Textual."""
    code = (
        f"import sys; sys.argv=['bakery', *{argv!r}]\n"
        "from tui.main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit: pass\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')];"
        "sys.stderr.write(repr(bad)); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_board_commands_need_the_bakery_command(tmp_path: Path) -> None:
    proc = bakery("watch", cwd=tmp_path)
    assert proc.returncode == 2 and "opens the board" in proc.stderr
