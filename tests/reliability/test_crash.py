"""Guarantees 1-3: bakery killed with SIGKILL loses nothing acknowledged and re-runs nothing.

Each test kills a real `bakery run --plain` process and then looks at the store with plain
SQLite, at /proc and at the next bakery start.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import events as ev
from engine.state import fold
from engine.store import open_store
from tests.reliability._support import (
    action_of,
    alive,
    bakery,
    carrying,
    db_path,
    integrity,
    line_numbers_are_gap_free,
    log_texts,
    read_until,
    reader,
    runs,
    show,
    sql,
    start_bakery,
    state_dir,
    wait_for,
)

SOURCE = """
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
"""


# -- 1. kill -9 mid-execution ------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_kill_9_mid_execution_is_failed_interrupted_with_logs_and_no_leftovers(
    make_repo: Callable[..., Any], tmp_path: Path
) -> None:
    """The next start marks it Failed/Interrupted, never re-runs it, keeps every stored line
    and kills what the execution had started, including a daemon that escaped with setsid."""
    starts = tmp_path / "starts"
    ready = tmp_path / "ready"
    pids = tmp_path / "pids"
    repo = make_repo(
        f"""
name: crash
stages:
{SOURCE}
  - name: Build
    actions:
      - name: Long
        category: build
        run: |
          echo "#{{codepipeline.ExecutionNumber}}" >> {starts}
          if [ "#{{codepipeline.ExecutionNumber}}" != 1 ]; then exit 0; fi
          for i in $(seq 1 500); do echo "line $i"; done
          (setsid sleep 300 & echo $! >> {pids})
          nohup sleep 301 >/dev/null 2>&1 &
          echo $! >> {pids}
          echo $$ >> {pids}
          touch {ready}
          sleep 302
"""
    )
    run = start_bakery("run", "--plain", cwd=repo.path, stdout=subprocess.DEVNULL)
    try:
        wait_for(ready.exists, what="the action to start its children")
        time.sleep(0.5)  # > the recorder's flush interval: the 500 lines are acknowledged
        ((run_id, _, status),) = runs(db_path(repo.path))
        assert status == ev.IN_PROGRESS
        started = carrying("BAKERY_RUN_ID", run_id)
        children = [int(p) for p in pids.read_text().split()]
        assert set(children) <= set(started)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    # bakery is gone; its children are orphans that still run until the next start
    assert [p for p in children if alive(p)] == children

    second = bakery("run", "--plain", cwd=repo.path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "execution #1: Failed (Interrupted)" in second.stderr

    first = show(repo.path, 1)
    assert first["status"] == ev.FAILED and first["error"]["type"] == ev.INTERRUPTED
    long = action_of(first, "Build", "Long")
    assert long["status"] == ev.FAILED and long["error"]["type"] == ev.INTERRUPTED
    assert long["attempt"] == 1
    assert starts.read_text().split() == ["1", "2"]  # #1 ran once and was never re-run
    assert all(r[2] in ev.RUN_TERMINAL for r in runs(db_path(repo.path)))

    texts = log_texts(db_path(repo.path), run_id, "Build", "Long")
    assert [t for t in texts if t.startswith("line ")] == [f"line {i}" for i in range(1, 501)]
    line_numbers_are_gap_free(db_path(repo.path))

    wait_for(lambda: not any(alive(p) for p in started), timeout=10, what="leftovers killed")
    assert carrying("BAKERY_RUN_ID", run_id) == []
    assert integrity(db_path(repo.path)) == "ok"


# -- 2. fifty kills at random moments ----------------------------------------------------------

PAD = "x" * 150
NOISY = f"""
name: noisy
stages:
{SOURCE}
  - name: Noise
    actions:
      - name: Out
        category: build
        run: for b in $(seq 1 100); do seq 1 30 | sed "s/^/out $b /; s/$/ {PAD}/"; sleep 0.01; done
      - name: Err
        category: build
        run: for b in $(seq 1 100); do seq 1 30 | sed "s/^/err $b /; s/$/ {PAD}/" >&2; sleep 0.01; done
      - name: Bursts
        category: test
        run: for b in $(seq 1 50); do seq 1 100; sleep 0.02; done
  - name: After
    actions:
      - {{name: Tail, category: deploy, run: "echo tail"}}
"""

FORK_SERVER = r"""
import json, os, signal, sys
import engine.cli, engine.core, engine.printer, engine.search, engine.runner  # warm imports
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    if "wait" in cmd:
        _, status = os.waitpid(cmd["wait"], 0)
        print(json.dumps({"status": status}), flush=True)
        continue
    pid = os.fork()
    if pid == 0:
        os.chdir(cmd["cwd"])
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os._exit(engine.cli.main(cmd["args"]))
    print(json.dumps({"pid": pid}), flush=True)
"""


class ForkServer:
    """Starts `bakery` as forks of a process that already imported it.

    Python's start-up and imports take a second or two on a loaded machine; forking a warm
    interpreter lets 50 kills land while bakery is actually running the pipeline, with the
    same code path as the `bakery` command (engine.cli.main).
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def _ask(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def run(self, cwd: Path, *args: str) -> int:
        return int(self._ask({"cwd": str(cwd), "args": list(args)})["pid"])

    def wait(self, pid: int) -> int:
        return int(self._ask({"wait": pid})["status"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def fork_server() -> Iterator[ForkServer]:
    server = ForkServer()
    try:
        yield server
    finally:
        server.close()


def _snapshot(db: Path) -> tuple[int, dict[tuple[Any, ...], int]]:
    """What is committed now: the last event seq, and the line count of every action attempt
    of the newest execution (older ones were settled by an earlier check)."""
    if not db.exists():
        return 0, {}
    try:
        with sql(db) as conn:
            seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
            newest = conn.execute(
                "SELECT run_id FROM events WHERE type = ? ORDER BY seq DESC LIMIT 1",
                (ev.RUN_CREATED,),
            ).fetchone()
        lines: dict[tuple[Any, ...], int] = {}
        if newest:
            with reader(db) as store:  # up to now: never chase a writer that keeps going
                for line in store.logs(newest[0], until_ts=time.time()):
                    key = (newest[0], line.stage, line.action, line.attempt)
                    lines[key] = lines.get(key, 0) + 1
    except sqlite3.OperationalError:  # the very first run may not have made the tables yet
        return 0, {}
    return seq, lines


def _check_store(db: Path, acknowledged: tuple[int, dict[tuple[Any, ...], int]]) -> None:
    """The store opens as it is, is intact, and still holds everything acknowledged.

    Line numbers are checked for the newest execution (the one just killed; older ones
    cannot change any more) and for every execution at the end of the test."""
    store, notice = open_store(db.parent)
    store.close()
    assert notice is None, notice
    assert integrity(db) == "ok"
    with sql(db) as conn:
        seqs = [int(r[0]) for r in conn.execute("SELECT seq FROM events ORDER BY seq")]
        by_run: dict[str, list[ev.Event]] = {}
        for seq, run_id, ts, type_, data in conn.execute(
            "SELECT seq, run_id, ts, type, data FROM events WHERE run_id IS NOT NULL ORDER BY seq"
        ):
            by_run.setdefault(run_id, []).append(ev.Event(type_, run_id, ts, json.loads(data), seq))
    assert seqs == list(range(1, len(seqs) + 1)), "event seqs are not contiguous"
    for run_id, events in by_run.items():
        assert events[0].type == ev.RUN_CREATED, run_id
        state = fold(events)  # every prefix that survived folds into a valid state
        assert state is not None and all(a.attempt <= 1 for a in state.actions())
    last_seq, lines = acknowledged
    newest = max(by_run, key=lambda r: by_run[r][0].seq, default=None)
    counts: dict[tuple[Any, ...], int] = {}
    for run_id in {newest, *(key[0] for key in lines)} - {None}:
        counts.update(line_numbers_are_gap_free(db, run_id))
    assert (seqs[-1] if seqs else 0) >= last_seq, "an acknowledged event was lost"
    for key, count in lines.items():
        assert counts.get(key, 0) >= count, f"acknowledged lines of {key} lost"


@pytest.mark.slow
@pytest.mark.timeout(170)
def test_fifty_kills_at_random_moments_lose_and_tear_nothing(
    make_repo: Callable[..., Any], fork_server: ForkServer
) -> None:
    """SIGKILL at 50 random moments of a noisy run (0.05-0.8 s after start): the store
    always opens unchanged, stays intact, and keeps every event and line committed before
    the kill; line numbers stay 1..N; the next start settles every killed execution."""
    repo = make_repo(NOISY)
    db = db_path(repo.path)
    rng = random.Random(int(os.environ.get("BAKERY_KILL_SEED", "20240611")))
    for i in range(50):
        pid = fork_server.run(repo.path, "run", "--plain")
        time.sleep(rng.uniform(0.05, 0.8))  # from opening the store to the noisy stage
        acknowledged = _snapshot(db)
        os.kill(pid, signal.SIGKILL)
        status = fork_server.wait(pid)
        assert os.WIFSIGNALED(status) or os.WEXITSTATUS(status) in (0, 1), (i, status)
        _check_store(db, acknowledged)

    pid = fork_server.run(repo.path, "run", "--plain")  # one run to its end settles the rest
    assert os.WEXITSTATUS(fork_server.wait(pid)) == 0
    _check_store(db, _snapshot(db))
    line_numbers_are_gap_free(db)
    every = runs(db)
    assert every[-1][2] == ev.SUCCEEDED
    assert all(status in ev.RUN_TERMINAL for _, _, status in every), every
    with sql(db) as conn:
        errors = [
            json.loads(data).get("error", {}).get("type")
            for (data,) in conn.execute(
                "SELECT data FROM events WHERE type = ? AND json_extract(data, '$.status') = ?",
                (ev.RUN_STATUS, ev.FAILED),
            )
        ]
    assert set(errors) <= {ev.INTERRUPTED}, errors
    for run_id, _, _ in every:
        assert carrying("BAKERY_RUN_ID", run_id) == []


# -- 3. a pending approval survives restarts ---------------------------------------------------

APPROVAL = f"""
name: gated
stages:
{SOURCE}
  - name: Build
    actions:
      - {{name: Compile, category: build, inputs: [source], run: "test ! -f broken"}}
  - name: Release
    actions:
      - {{name: Gate, category: approval, message: "Ship #{{Src.ShortCommitId}}?", timeout: TIMEOUT}}
  - name: Deploy
    actions:
      - {{name: Ship, category: deploy, run: "echo shipped"}}
""".replace("outputs: [source]", "outputs: [source], namespace: Src")


def _kill_while_waiting(repo_path: Path) -> None:
    run = start_bakery("run", "--plain", cwd=repo_path)
    try:
        read_until(run, "approval needed")
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()


def _events(db: Path, run_id: str, type_: str) -> list[dict[str, Any]]:
    with sql(db) as conn:
        return [
            {**json.loads(data), "ts": ts}
            for ts, data in conn.execute(
                "SELECT ts, data FROM events WHERE run_id = ? AND type = ? ORDER BY seq",
                (run_id, type_),
            )
        ]


@pytest.mark.timeout(150)
def test_pending_approval_survives_kill_and_later_runs_and_a_queued_answer_applies(
    make_repo: Callable[..., Any],
) -> None:
    """kill -9 while an approval waits; a later `bakery run` (whose own execution fails)
    must leave it waiting, not stop it; `bakery approve` queues the answer; the next start
    resumes the execution and applies it, once, with who and the comment."""
    repo = make_repo(APPROVAL.replace("TIMEOUT", "1h"))
    db = db_path(repo.path)
    _kill_while_waiting(repo.path)
    ((run_id, _, _),) = runs(db)

    repo.commit("broken", broken="x\n")
    second = bakery("run", "--plain", cwd=repo.path)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "execution #1: resumed, its approval still waits" in second.stderr
    first = show(repo.path, 1)
    assert first["status"] == ev.IN_PROGRESS, first  # still waiting, not Stopped
    assert action_of(first, "Release", "Gate")["approval"]["result"] is None

    answer = bakery("approve", "1", "Release/Gate", "-m", "after the crash", cwd=repo.path)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "queued" in answer.stdout

    (repo.path / "broken").unlink()
    repo.commit("fixed")
    third = bakery("run", "--plain", "--approve", cwd=repo.path)
    assert third.returncode == 0, third.stdout + third.stderr
    first = show(repo.path, 1)
    assert first["status"] == ev.SUCCEEDED, first
    gate = action_of(first, "Release", "Gate")
    assert gate["approval"]["result"] == ev.APPROVED
    assert gate["approval"]["by"] == "ada@bakery.test"
    assert gate["approval"]["comment"] == "after the crash"
    assert gate["approval"]["decided_at"] > gate["approval"]["requested_at"]
    assert action_of(first, "Deploy", "Ship")["status"] == ev.SUCCEEDED
    assert len(_events(db, run_id, ev.APPROVAL_REQUESTED)) == 1  # the same request waited
    assert len(_events(db, run_id, ev.APPROVAL_DECIDED)) == 1  # decided once
    assert [s for _, _, s in runs(db)] == [ev.SUCCEEDED, ev.FAILED, ev.SUCCEEDED]


@pytest.mark.timeout(120)
def test_approval_timeout_keeps_counting_while_bakery_is_down(
    make_repo: Callable[..., Any],
) -> None:
    """An approval whose timeout passed while bakery was down fails (TimedOut) on resume; the
    deadline is the original one, never restarted."""
    repo = make_repo(APPROVAL.replace("TIMEOUT", "3s"))
    db = db_path(repo.path)
    _kill_while_waiting(repo.path)
    ((run_id, _, _),) = runs(db)
    (requested,) = _events(db, run_id, ev.APPROVAL_REQUESTED)
    wait_for(lambda: time.time() > requested["expires_at"] + 0.2, timeout=10)

    second = bakery("run", "--plain", "--reject", cwd=repo.path)
    assert second.returncode == 1
    assert "execution #1: resumed" in second.stderr
    first = show(repo.path, 1)
    gate = action_of(first, "Release", "Gate")
    assert first["status"] == ev.FAILED
    assert gate["status"] == ev.FAILED and gate["error"]["type"] == ev.TIMED_OUT
    resumed_at = _events(db, run_id, ev.RUN_OWNER)[-1]["ts"]
    finished = [e for e in _events(db, run_id, ev.ACTION_STATUS) if e["action"] == "Gate"][-1]
    assert finished["ts"] - resumed_at < 2.0  # at once on resume, not 3 s after it
    assert _events(db, run_id, ev.APPROVAL_DECIDED) == []
    assert state_dir(repo.path).exists()
