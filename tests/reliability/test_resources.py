"""Guarantees 12 and 13: many actions leak nothing; a hostile function cannot take bakery down."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from engine import events as ev
from tests.conftest import own_threads
from tests.reliability._support import (
    action_of,
    bakery,
    engine_for,
    my_zombies,
    poll,
    show,
)

pytestmark = pytest.mark.timeout(120)

# -- 12. 200 short actions, 20 at a time -------------------------------------------------------

SCRIPTS = [
    "true",
    "echo out; echo err >&2",
    "sleep 5 & echo grandchild",  # a grandchild left behind: killed at exit
    "printf no-newline",
    "exit 0",
]


def many_actions() -> str:
    stages = ["  - name: Source\n    actions:\n      - {name: Checkout, category: source}"]
    for s in range(10):
        actions = "\n".join(
            f'      - {{name: A{a:02d}, category: build, run: "{SCRIPTS[(s + a) % len(SCRIPTS)]}"}}'
            for a in range(20)
        )
        stages.append(f"  - name: S{s}\n    actions:\n{actions}")
    return "name: many\nexecution_mode: parallel\nstages:\n" + "\n".join(stages) + "\n"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _usage() -> tuple[int, int, int]:
    """File descriptors, threads and tasks, after collecting transports that are already closed
    but not yet freed (they would count in whichever reading happened to come first)."""
    gc.collect()
    return (_fds(), own_threads(), len(asyncio.all_tasks()))


def _within(now: tuple[int, ...], base: tuple[int, ...]) -> bool:
    """Each figure at or below its baseline: fewer is fine (a transient of the baseline went
    away), more is a leak. Tuples compare lexicographically, so compare each one."""
    return all(n <= b for n, b in zip(now, base, strict=True))


async def test_two_hundred_actions_twenty_at_a_time_return_to_the_baseline(
    make_repo: Callable[..., Any],
) -> None:
    """File descriptors, threads and asyncio tasks come back to where they were, and no
    child is left a zombie, after 10 stages of 20 parallel actions through the engine."""
    repo = make_repo(many_actions())
    engine, pipeline, version = await engine_for(repo.path)
    try:
        warm = await engine.start_execution(pipeline, version=version)  # executor threads etc.
        assert (await engine.wait(warm.run_id)).status == ev.SUCCEEDED
        await asyncio.to_thread(engine.indexer.wait, 30)
        await asyncio.sleep(0.2)
        base = _usage()

        ex = await engine.start_execution(pipeline, version=version)
        state = await engine.wait(ex.run_id)
        assert state.status == ev.SUCCEEDED, state.to_json()
        ran = [a for s in state.stages[1:] for a in s.actions]
        assert len(ran) == 200 and all(a.status == ev.SUCCEEDED for a in ran)
        await asyncio.to_thread(engine.indexer.wait, 30)

        await poll(lambda: _within(_usage(), base), timeout=20, what=f"back to {base}")
        assert _within(_usage(), base), f"{_usage()} above {base}"
        assert my_zombies() == []
    finally:
        await engine.close()


# -- 13. functions that misbehave ----------------------------------------------------------

FUNCTIONS = """
import ctypes, os, sys

def good(params):
    return {"Fine": "yes"}

def raises(params):
    raise RuntimeError("kaboom")

def exits(params):
    sys.exit(4)

def hard_exit(params):
    os._exit(7)

def segfault(params):
    ctypes.string_at(0)

def spin(params):
    while True:
        pass

def hog(params):
    chunks = []
    while True:  # allocates without bound; the child's address-space limit (4 GiB) ends it
        chunks.append(bytes(256 * 2**20))  # calloc'd: the CI machine's RAM is not touched
"""


def test_misbehaving_functions_fail_their_action_and_never_take_bakery_down(
    make_repo: Callable[..., Any],
) -> None:
    repo = make_repo(
        """
name: calls
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Call
    actions:
      - {name: Good, category: invoke, inputs: [source], function: "fns.py:good"}
      - {name: Raises, category: invoke, inputs: [source], function: "fns.py:raises"}
      - {name: Exits, category: invoke, inputs: [source], function: "fns.py:exits"}
      - {name: HardExit, category: invoke, inputs: [source], function: "fns.py:hard_exit"}
      - {name: Segfault, category: invoke, inputs: [source], function: "fns.py:segfault"}
      - {name: Spin, category: invoke, inputs: [source], function: "fns.py:spin", timeout: 2s}
      - {name: Hog, category: invoke, inputs: [source], function: "fns.py:hog", timeout: 60s}
""",
        **{"fns.py": FUNCTIONS},
    )
    began = time.monotonic()
    proc = bakery("run", "--plain", "--grace", "1", cwd=repo.path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip() == ""
    assert "#1 execution Failed" in proc.stdout
    assert time.monotonic() - began < 60
    doc = show(repo.path, 1)
    outcome = {
        name: (action_of(doc, "Call", name)["status"], action_of(doc, "Call", name)["error"])
        for name in ("Good", "Raises", "Exits", "HardExit", "Segfault", "Spin", "Hog")
    }
    assert outcome["Good"] == (ev.SUCCEEDED, None)
    assert "RuntimeError: kaboom" in outcome["Raises"][1]["message"]
    assert "sys.exit(4)" in outcome["Exits"][1]["message"]
    assert "code 7" in outcome["HardExit"][1]["message"]
    assert "SIGSEGV" in outcome["Segfault"][1]["message"]
    assert outcome["Spin"][1]["type"] == ev.TIMED_OUT
    assert "MemoryError" in outcome["Hog"][1]["message"]
    assert all(status == ev.FAILED for name, (status, _) in outcome.items() if name != "Good")
    again = bakery("history", cwd=repo.path)  # the store and bakery are fine afterwards
    assert again.returncode == 0 and "Failed" in again.stdout
