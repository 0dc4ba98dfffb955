"""Replay, history, compare and search on the board (Pilot).

The central promise: a replay shows, at every event, exactly the state the live board showed
when that event arrived - same reducer, same model - and its log panes show exactly the lines
that existed at the instant.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from textual.widgets import Input

from engine import events as ev
from engine.replay import Timeline
from engine.store import Store
from tests.tui.conftest import FAST_PIPELINE, live_board, run_of, screen_text, wait_for
from tests.tui.history_data import T0, many_runs, store_app, write_run
from tui.screens.compare import CompareScreen
from tui.screens.history import HistoryScreen, RunTable
from tui.screens.replay import ReplayApp, ReplayScreen, TimelineLogBuffer, parse_time
from tui.screens.search import SearchScreen


def replay_app(tmp_path: Path, timeline: Timeline, **kwargs: Any) -> ReplayApp:
    return ReplayApp(timeline, settings_dir=tmp_path / "config", desktop_notify=False,
                     animate=False, **kwargs)


def recording(model: Any, captured: dict[int, Any]) -> Any:
    """Wrap BoardModel._event: the run's to_json() right after each event is applied."""
    original = model._event

    def _event(event: ev.Event, changes: Any) -> None:
        original(event, changes)
        if event.run_id in model.runs and event.seq:
            captured[event.seq] = model.runs[event.run_id].to_json()

    return _event


# -- replay == live ------------------------------------------------------------------------
async def test_replay_state_equals_live_board_at_every_event(make_repo, tmp_path) -> None:  # noqa: ANN001
    repo = make_repo(FAST_PIPELINE)
    captured: dict[int, Any] = {}
    async with live_board(repo.path, tmp_path) as (app, pilot, host):
        app.model._event = recording(app.model, captured)
        await pilot.press("x")
        await wait_for(pilot, lambda: run_of(app) is not None and bool(run_of(app).pending_approvals()))
        await pilot.press("a")
        await pilot.pause(0.1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: run_of(app).status == ev.SUCCEEDED)
        await pilot.pause(0.2)
        run_id = run_of(app).id
        db = host.engine.store.path
    store = Store(db)
    timeline = Timeline.open(store, run_id)
    assert {e.seq for e in timeline.events} <= set(captured)
    assert any(e.type == ev.APPROVAL_DECIDED for e in timeline.events)
    rapp = replay_app(tmp_path, timeline)
    async with rapp.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.1)
        screen = rapp.board
        assert isinstance(screen, ReplayScreen)
        for i, event in enumerate(timeline.events):
            assert screen.index == i
            assert screen.run.to_json() == captured[event.seq], f"differs at event {i} ({event.type})"
            if i < 3:
                await pilot.press("right")  # the key...
            else:
                await screen.action_step(1)  # ...and what it runs, without waiting for a frame
        for i in (len(timeline.events) - 3, 5, 2):  # backwards: checkpointed states agree too
            await screen.seek_index(i)
            assert screen.run.to_json() == captured[timeline.events[i].seq]
        # the approval shows when it happened: answered by the time of the decision
        decided = next(i for i, e in enumerate(timeline.events) if e.type == ev.APPROVAL_DECIDED)
        await screen.seek_index(decided - 1)
        assert screen.run.action("Release", "Gate").approval.result is None
        await pilot.press("right")
        assert screen.run.action("Release", "Gate").approval.result == ev.APPROVED
        # replay has no live controls
        for action in ("approve", "reject", "stop", "retry", "toggle_transition", "run_now"):
            assert screen.check_action(action, ()) is False
    store.close()


# -- timeline keys and seeking -------------------------------------------------------------------
def failing_store(tmp_path: Path) -> tuple[Store, Timeline]:
    store = Store(tmp_path / "state" / "bakery.db")
    write_run(store, "green", T0, unit_lines=10)
    write_run(store, "red", T0 + 100, fail=True, unit_lines=10)
    return store, Timeline.open(store, "red")


async def test_timeline_keys(tmp_path) -> None:  # noqa: ANN001
    store, timeline = failing_store(tmp_path)
    app = replay_app(tmp_path, timeline)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.1)
        s = app.board
        assert s.index == 0 and s.t == 0.0 and s.run.status is None
        await pilot.press("right", "right")
        assert s.index == 2 and s.run.stage("Source").status == ev.IN_PROGRESS
        await pilot.press("left")
        assert s.index == 1
        await pilot.press("full_stop")  # next state change (Source stage InProgress)
        assert timeline.events[s.index].type in (ev.STAGE_STATUS, ev.ACTION_STATUS, ev.RUN_STATUS)
        assert s.index == 2
        await pilot.press("shift+right", "shift+right")
        assert s.index == 4 and s.run.action("Source", "Checkout").status == ev.SUCCEEDED
        await pilot.press("comma")
        assert s.index == 3
        await pilot.press("F")  # the first failure, with the failed action selected
        assert timeline.events[s.index].data.get("status") == ev.FAILED
        assert s.run.action("Test", "Unit").status == ev.FAILED and s.selected == ("Test", "Unit")
        assert "ERROR: test_greeting broke" in screen_text(app)
        await pilot.press("g", *"0:03.5", "enter")  # typed time: m:ss
        assert abs(s.t - 3.5) < 1e-9
        assert s.run.action("Test", "Unit").status == ev.IN_PROGRESS
        await pilot.press("g", *"2", "enter")  # typed time: seconds
        assert s.t == 2.0 and s.run.stage("Test").status is None
        await pilot.press("plus", "plus")
        assert s.speed == 10
        await pilot.press("minus")
        assert s.speed == 2
        await pilot.press("minus", "0", "space")  # 1x from the start: ~8 s to play
        assert s.playing and s.speed == 1
        await pilot.press("plus", "plus", "plus")
        assert s.speed == 100
        await wait_for(pilot, lambda: not s.playing, timeout=5)  # 5 s at 100x: the end
        assert s.t == timeline.duration and s.run.status == ev.FAILED
        text = screen_text(app)
        assert "replay of #2" in text and "Approve" not in text and "Run HEAD" not in text
    store.close()


async def test_seek_at_a_log_line_boundary(tmp_path) -> None:  # noqa: ANN001
    store, timeline = failing_store(tmp_path)
    app = replay_app(tmp_path, timeline)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.1)
        s = app.board
        await s.seek(3.5)
        await s.select("Test", "Unit")
        await pilot.pause(0.05)
        pane = s.active_pane()
        assert pane is not None and isinstance(pane.view.buffer, TimelineLogBuffer)
        line5 = T0 + 100 + 3 + 0.5 - timeline.origin  # line 5 was read at t = 3.5 exactly
        await s.seek(line5)
        assert len(pane.view.buffer) == 5  # a line read at the instant exists at the instant
        await pilot.pause(0.05)
        text = screen_text(app)
        assert "test_5 ok" in text and "test_6 ok" not in text
        await s.seek(line5 - 1e-6)
        assert len(pane.view.buffer) == 4
        await pilot.pause(0.05)
        text = screen_text(app)
        assert "test_4 ok" in text and "test_5 ok" not in text
        await s.seek(line5 + 0.1)
        assert len(pane.view.buffer) == 6
        assert pane.view.buffer.line(5) == "test_6 ok"  # fetched by page from the store
    store.close()


def test_parse_time() -> None:
    assert parse_time("75") == 75.0
    assert parse_time("1:15") == 75.0
    assert parse_time("01:02:03.5") == 3723.5
    assert parse_time("2.5s") == 2.5
    for bad in ("", "x", "1:2:3:4", "-3"):
        try:
            parse_time(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


# -- history -----------------------------------------------------------------------------------
async def test_history_opens_fast_and_filters_10000_runs(tmp_path) -> None:  # noqa: ANN001
    store = Store(tmp_path / "state" / "bakery.db")
    many_runs(store, 10_000)
    app = store_app(tmp_path, store)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.1)
        await pilot.press("H")
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        await wait_for(pilot, lambda: screen.loaded)  # how fast: bench/run.py --only history
        table = screen.query_one(RunTable)
        assert len(table.rows) == 10_000 and table.rows[0].number == 10_000
        assert "#10000" in screen_text(app) and "10,000 executions" in screen_text(app)
        await pilot.press("end")
        assert table.current().number == 1
        await pilot.press("f")  # status: Failed
        await wait_for(pilot, lambda: screen.loaded and screen.status_filter == ev.FAILED)
        assert len(table.rows) == 3333 and all(r.status == ev.FAILED for r in table.rows)
        await pilot.press("b", *"feature", "enter")
        await wait_for(pilot, lambda: screen.loaded and screen.branch_filter == "feature")
        assert len(table.rows) == 666  # multiples of 15
        assert all(r.number % 15 == 0 for r in table.rows)
        assert "status Failed, branch feature" in screen_text(app)
        await pilot.press("home", "enter")  # opens the replay of the row under the cursor
        await pilot.pause(0.1)
        assert isinstance(app.screen, ReplayScreen) and app.screen.run.number == 9990
        await pilot.press("escape")
        await pilot.pause(0.05)
        assert app.screen is screen
    store.close()


# -- compare: two real executions --------------------------------------------------------------
COMPARED = """\
name: shop
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Test
    actions:
      - {name: Unit, category: test, inputs: [source], run: "echo running; if [ -f broken ]; then echo 'ERROR: greeting broke'; exit 3; fi; echo all passed"}
"""


def bakery_run(repo: Path, state: Path) -> int:
    return subprocess.run(
        ["bakery", "run", "--plain", "-C", str(repo), "--state-dir", str(state)],
        capture_output=True, timeout=60, check=False,
    ).returncode


async def test_compare_a_green_and_a_red_execution(make_repo, tmp_path) -> None:  # noqa: ANN001
    repo = make_repo(COMPARED)
    state = tmp_path / "state"
    assert bakery_run(repo.path, state) == 0
    repo.commit("Break the greeting", broken="yes\n")
    assert bakery_run(repo.path, state) == 1
    store = Store(state / "bakery.db")
    app = store_app(tmp_path, store, repo=repo.path)
    app.model.pipeline_name = "shop"
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("H")
        history = app.screen
        await wait_for(pilot, lambda: history.loaded)
        await pilot.press("d")  # the red one (newest) against the last green
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        await wait_for(pilot, lambda: compare.comparison is not None)
        await wait_for(pilot, lambda: "greeting broke" in screen_text(app))
        text = screen_text(app)
        assert "A #1" in text and "B #2" in text
        assert "newly failing" in text
        assert "Break the greeting" in text  # the commit between them
        assert "+ERROR: greeting broke" in text and "-all passed" in text  # log diff of Test/Unit
        row = [c for c in compare.comparison.rows if c.action == "Unit"][0]
        assert row.a.status == ev.SUCCEEDED and row.b.status == ev.FAILED
        await pilot.press("escape")
        # marking two executions compares those two
        await pilot.press("space", "down", "space", "d")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.comparison is not None)
        assert app.screen.comparison.a.number == 1 and app.screen.comparison.b.number == 2
    store.close()


# -- search ------------------------------------------------------------------------------------
async def test_search_hit_opens_that_execution_at_that_line(tmp_path) -> None:  # noqa: ANN001
    store = Store(tmp_path / "state" / "bakery.db")
    write_run(store, "one", T0, unit_lines=10)
    write_run(store, "two", T0 + 100, fail=True, unit_lines=30)
    write_run(store, "three", T0 + 200, unit_lines=10)
    app = store_app(tmp_path, store)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("S")
        search = app.screen
        assert isinstance(search, SearchScreen)
        await pilot.press(*"greeting broke", "enter")
        await wait_for(pilot, lambda: search.result is not None)
        text = screen_text(app)
        assert "1 matching lines in 1 executions" in text
        assert "first seen in #2" in text and "Test/Unit line 30" in text
        await pilot.press("enter")
        await pilot.pause(0.1)
        replay = app.screen
        assert isinstance(replay, ReplayScreen)
        assert replay.run.id == "two" and replay.selected == ("Test", "Unit")
        line_t = T0 + 100 + 3 + 3.0 - replay.timeline.origin
        assert abs(replay.t - line_t) < 1e-6
        pane = replay.active_pane()
        assert len(pane.view.buffer) == 30 and pane.view.current == 29
        await pilot.pause(0.05)
        assert "ERROR: test_greeting broke" in screen_text(app)
        # a plain word that is on many lines: the newest first
        await pilot.press("escape")
        await pilot.pause(0.05)
        box = search.query_one(Input)
        box.focus()
        box.value = "test_7"
        await pilot.press("enter")
        await wait_for(pilot, lambda: search.result is not None and search.result.text == "test_7")
        assert search.result.hits[0].run_id == "three"
    store.close()


async def test_replay_of_an_export_file_needs_no_repository(tmp_path) -> None:  # noqa: ANN001
    from engine.export import write_export
    from engine.replay import load_timeline

    store, _ = failing_store(tmp_path)
    path = tmp_path / "red.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        write_export(store, "red", out)
    store.close()
    timeline = load_timeline(str(path), repo=tmp_path / "nowhere")
    app = replay_app(tmp_path, timeline)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("F")
        assert app.board.run.action("Test", "Unit").status == ev.FAILED
        assert "ERROR: test_greeting broke" in screen_text(app)
    timeline.close()
