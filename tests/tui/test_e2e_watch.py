"""End to end: a real repository, a commit, the watcher starts an execution, the board shows
it, an approval answered by a key press lands in the store; quitting stops what runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from engine import events as ev
from engine.store import Store
from tests.tui.conftest import FAST_PIPELINE, live_board, run_of, screen_text, wait_for
from tui.launch import _board, _open_watch


async def test_commit_runs_and_key_approval_is_stored(make_repo, tmp_path: Path) -> None:  # noqa: ANN001
    repo = make_repo(FAST_PIPELINE)
    state = tmp_path / "state"
    host, controller, _ = await asyncio.to_thread(_open_watch, repo.path, repo.path / "bakery.yaml", state, 1.0)
    app = _board(host, controller, repo.path, 1.0, settings_dir=tmp_path / "config",
                 desktop_notify=False, animate=False)
    try:
        async with app.run_test(size=(160, 45)) as pilot:
            await pilot.pause(0.2)
            sha = await asyncio.to_thread(repo.commit, "Add the shop front", **{"shop.txt": "open\n"})
            await wait_for(pilot, lambda: run_of(app) is not None, timeout=15)
            await wait_for(pilot, lambda: bool(run_of(app).pending_approvals()), timeout=15)
            run = run_of(app)
            assert run.commit["id"] == sha
            await pilot.pause(0.3)
            text = screen_text(app)
            assert "Add the shop front" in text and sha[:8] in text and "Ada Baker" in text
            assert "Approval waiting" in text and "Ship it?" in text
            await pilot.press("a")
            await pilot.pause(0.1)
            await pilot.press("enter")
            await wait_for(pilot, lambda: run_of(app).status == ev.SUCCEEDED, timeout=15)
    finally:
        await asyncio.to_thread(controller.close, 2.8)
    store = Store(state / "bakery.db")
    decided = [e for e in store.events(run.id) if e.type == ev.APPROVAL_DECIDED]
    assert decided and decided[0].data["result"] == ev.APPROVED
    assert store.load_run(run.id).status == ev.SUCCEEDED


SLOW = """\
name: slow
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Build
    actions:
      - {name: Forever, category: build, run: "trap '' TERM; echo stubborn; sleep 30"}
"""


async def test_quit_with_running_actions_confirms_and_stops(make_repo, tmp_path: Path) -> None:  # noqa: ANN001
    repo = make_repo(SLOW)
    async with live_board(repo.path, tmp_path, grace=1.0) as (app, pilot, host):
        await pilot.press("x")
        await wait_for(pilot, lambda: run_of(app) is not None
                       and run_of(app).action("Build", "Forever").status == ev.IN_PROGRESS)
        run_id = run_of(app).id
        await pilot.press("q")
        await pilot.pause(0.1)
        assert "Quit Bakery?" in screen_text(app)
        await pilot.press("n")  # keep running
        await pilot.pause(0.1)
        assert app.is_running and run_of(app).status == ev.IN_PROGRESS
        started = time.monotonic()
        await pilot.press("q")
        await pilot.pause(0.1)
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running, timeout=6)
        assert time.monotonic() - started < 1.0 + 2.0 + 1.0  # grace + 2 s (+ test slack)
    state = host.engine.store.load_run(run_id)  # type: ignore[union-attr]
    assert state.status == ev.STOPPED
    assert state.action("Build", "Forever").status == ev.ABANDONED


async def test_quit_leaves_a_waiting_approval_for_the_next_start(make_repo, tmp_path: Path) -> None:  # noqa: ANN001
    """Quitting never decides an approval: it keeps waiting, and the next start resumes it."""
    repo = make_repo(FAST_PIPELINE)
    async with live_board(repo.path, tmp_path, grace=1.0) as (app, pilot, host):
        await pilot.press("x")
        await wait_for(pilot, lambda: run_of(app) is not None and bool(run_of(app).pending_approvals()))
        run_id = run_of(app).id
        await pilot.press("q")  # nothing runs: no question asked
        await wait_for(pilot, lambda: not app.is_running, timeout=6)
    store_path = host.engine.store.path  # type: ignore[union-attr]
    state = Store(store_path).load_run(run_id)
    assert state.status == ev.IN_PROGRESS and state.pending_approvals()

    from engine.core import Engine
    from engine.loader import load_pipeline

    engine = Engine(repo.path, store_path.parent)
    await engine.start()
    pipeline = load_pipeline(repo.path / "bakery.yaml")
    engine.register(pipeline, repo.path / "bakery.yaml")
    notes = await engine.recover(pipeline)
    assert any("resumed" in note for note in notes)
    approval = engine.state(run_id).pending_approvals()[0]
    from engine.core import ControlError

    for _ in range(100):
        try:
            engine.decide(run_id, approval.stage, approval.name, ev.APPROVED, by="later@bakery.test")
            break
        except ControlError:  # the resumed approval starts waiting again a moment later
            await asyncio.sleep(0.05)
    final = await engine.wait(run_id)
    await engine.close()
    assert final.status == ev.SUCCEEDED
