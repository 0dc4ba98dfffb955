"""The board driven by a fed event stream: fixed clock, no spinners, deterministic screens."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Input

from engine import events as ev
from tests.tui.conftest import screen_text
from tui.app import BakeryApp
from tui.model import BoardModel
from tui.source import ListSource, log_batch
from tui.widgets.header import HeaderInfo
from tui.widgets.log_pane import LogView

T0 = 1_700_000_000.0
STAGES = [
    {"name": "Source", "actions": [{"name": "Checkout", "category": "source", "run_order": 1}]},
    {"name": "Test", "actions": [
        {"name": "Lint", "category": "test", "run_order": 1},
        {"name": "Unit", "category": "test", "run_order": 1},
    ]},
    {"name": "Release", "actions": [{"name": "Gate", "category": "approval", "run_order": 1}]},
    {"name": "Deploy", "actions": [{"name": "Ship", "category": "deploy", "run_order": 1}]},
]
COMMIT = {"id": "a1b2c3d4e5f60718", "short": "a1b2c3d4", "branch": "main",
          "message": "Make the greeting friendlier", "author": "Ada Baker", "email": "ada@x.test"}


def E(type_: str, run_id: str | None, dt: float, seq: int = 0, **data: object) -> ev.Event:
    return ev.Event(type_, run_id, T0 + dt, dict(data), seq)


def created(run_id: str, number: int, dt: float = 0.0) -> ev.Event:
    return E(ev.RUN_CREATED, run_id, dt, number=number, pipeline="greeter", pipeline_version=2,
             execution_mode="superseded", trigger={"type": "Webhook", "by": "ada@x.test"},
             commit=COMMIT, variables={}, stages=STAGES)


def action(run_id: str, stage: str, name: str, status: str, dt: float, **extra: object) -> ev.Event:
    return E(ev.ACTION_STATUS, run_id, dt, stage=stage, action=name, status=status, attempt=1, **extra)


def stage(run_id: str, name: str, status: str, dt: float) -> ev.Event:
    return E(ev.STAGE_STATUS, run_id, dt, stage=name, status=status, attempt=1)


def parallel_run(run_id: str = "r1") -> list[ev.Event | ev.LogBatch]:
    return [
        created(run_id, 1),
        E(ev.RUN_STATUS, run_id, 0.1, status=ev.IN_PROGRESS),
        stage(run_id, "Source", ev.IN_PROGRESS, 0.1),
        action(run_id, "Source", "Checkout", ev.IN_PROGRESS, 0.1),
        action(run_id, "Source", "Checkout", ev.SUCCEEDED, 0.4),
        stage(run_id, "Source", ev.SUCCEEDED, 0.4),
        stage(run_id, "Test", ev.IN_PROGRESS, 0.5),
        action(run_id, "Test", "Lint", ev.IN_PROGRESS, 0.5),
        action(run_id, "Test", "Unit", ev.IN_PROGRESS, 0.5),
        log_batch(run_id, "Test", "Lint", [f"\x1b[32mchecking\x1b[0m file{i}.py" for i in range(40)]),
        log_batch(run_id, "Test", "Unit", [f"test_{i} ... ok" for i in range(25)]),
    ]


def make_app(tmp_path: Path, items: list, **kwargs: object) -> BakeryApp:
    source = ListSource(items)
    return BakeryApp(
        source,
        model=BoardModel("greeter"),
        header=HeaderInfo("greeter", "main", "greeter", 2, "superseded"),
        clock=lambda: T0 + 5.0,
        animate=False,
        settings_dir=tmp_path / "config",
        desktop_notify=False,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_parallel_actions_show_side_by_side_logs(tmp_path: Path) -> None:
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.2)
        text = screen_text(app)
        for expected in ("repo greeter", "branch main", "pipeline greeter", "v2", "mode superseded",
                         "#1", "a1b2c3d4", "Make the greeting friendlier", "Ada Baker",
                         "Source", "Test", "Release", "Deploy", "2 in parallel",
                         "Succeeded", "InProgress", "Test / Lint", "Test / Unit", "checking file39.py",
                         "test_24 ... ok"):
            assert expected in text, expected
        assert "\x1b" not in text and "[32m" not in text  # colours rendered, never raw codes
        assert len(app.board._panes) == 2
        # zoom one pane to the full screen and back
        await pilot.press("enter")
        assert app.board.maximized is not None
        await pilot.press("escape")
        assert app.board.maximized is None


async def test_failed_card_and_closed_transition(tmp_path: Path) -> None:
    items = [
        *parallel_run(),
        action("r1", "Test", "Lint", ev.SUCCEEDED, 1.0),
        action("r1", "Test", "Unit", ev.FAILED, 1.5, error={"type": "JobFailed", "message": "exit code 3"}),
        stage("r1", "Test", ev.FAILED, 1.5),
        E(ev.RUN_STATUS, "r1", 1.6, status=ev.FAILED, error={"type": "JobFailed", "message": "stage Test failed"}),
        E(ev.TRANSITION_CHANGED, None, 2.0, pipeline="greeter", stage="Deploy", enabled=False,
          reason="release freeze", by="ada"),
    ]
    app = make_app(tmp_path, items)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "Failed" in text and "JobFailed: exit" in text
        assert "inbound transition" in text and "release freeze" in text
        assert "Didn't Run" in text  # actions the failed execution never reached
        assert app.board.selected == ("Test", "Unit")  # the failed action is selected
        assert app.board.check_action("retry", ()) is False  # no engine attached (replay)


async def test_superseded_run_listed_faded_and_waiting_approval(tmp_path: Path) -> None:
    items = [
        created("r1", 1),
        E(ev.RUN_STATUS, "r1", 0.1, status=ev.IN_PROGRESS),
        E(ev.RUN_STATUS, "r1", 1.0, status=ev.SUPERSEDED),
        *parallel_run("r2")[0:1],
        E(ev.RUN_CREATED, "r2", 1.1, number=2, pipeline="greeter", pipeline_version=2,
          execution_mode="superseded", trigger={"type": "Webhook"}, commit=COMMIT, variables={},
          stages=STAGES),
        E(ev.RUN_STATUS, "r2", 1.2, status=ev.IN_PROGRESS),
        stage("r2", "Release", ev.IN_PROGRESS, 1.3),
        action("r2", "Release", "Gate", ev.IN_PROGRESS, 1.3),
        E(ev.APPROVAL_REQUESTED, "r2", 1.3, stage="Release", action="Gate", token="t1",
          message="Ship \x1b]0;pwned\x07it?", link="https://review.test/1"),
    ]
    app = make_app(tmp_path, items)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "#2" in text and "#1" in text and "Superseded" in text
        assert "Approval waiting" in text and "Ship it?" in text and "review.test/1" in text
        assert "pwned" not in text  # a title-setting escape never reaches the screen
        # no engine attached: the keys are absent even though an approval waits
        assert app.board.check_action("approve", ()) is False


async def test_search_in_a_log(tmp_path: Path) -> None:
    lines = [f"line {i}" for i in range(5000)]
    lines[1234] = "here is the needle"
    lines[4321] = "another NEEDLE"
    lines[100] = "ERROR: something broke"
    items = [
        created("r1", 1),
        E(ev.RUN_STATUS, "r1", 0.1, status=ev.IN_PROGRESS),
        stage("r1", "Source", ev.IN_PROGRESS, 0.1),
        action("r1", "Source", "Checkout", ev.IN_PROGRESS, 0.1),
        log_batch("r1", "Source", "Checkout", lines),
    ]
    app = make_app(tmp_path, items)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        view = app.board.active_pane().view
        assert view.following and len(view.buffer) == 5000
        assert app.board.check_action("search_next", ()) is False
        await pilot.press("slash")
        search = app.board.query_one("#search", Input)
        assert search.has_focus
        search.value = "needle"
        await pilot.press("enter")
        assert view.current == 1234 and not view.following
        assert "line 1,235" in app.board.active_pane().status_text
        assert app.board.check_action("search_next", ()) is True
        await pilot.press("n")
        assert view.current == 4321
        await pilot.press("n")  # wraps around
        assert view.current == 1234
        await pilot.press("N")
        assert view.current == 4321
        await pilot.press("e")
        assert view.current == 100
        assert "something broke" in screen_text(app)
        await pilot.press("G")  # back to following the end
        assert view.following


async def test_follow_mode_counts_new_lines_when_scrolled_up(tmp_path: Path) -> None:
    source_items = parallel_run()
    app = make_app(tmp_path, source_items)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.2)
        pane = app.board.active_pane()
        view = pane.query_one(LogView)
        view.scroll_home(animate=False, immediate=True)
        await pilot.pause(0.05)
        assert not view.following
        key = pane.key
        app.source.feed(log_batch(key[0], key[1], key[2], ["more"] * 7, first_line=1000))
        await pilot.pause(0.2)
        assert view.unseen == 7
        assert "7 new lines" in screen_text(app)
        await pilot.press("end")
        assert view.following and view.unseen == 0


async def test_theme_switch_is_remembered_and_user_themes_load(tmp_path: Path) -> None:
    config = tmp_path / "config"
    (config / "themes").mkdir(parents=True)
    (config / "themes" / "mine.yaml").write_text(
        "name: my-theme\nprimary: '#ff00ff'\nvariables:\n  status-failed: '#ff0000'\n"
    )
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(120, 40)) as pilot:
        assert app.theme == "bakery-dark"
        assert {"bakery-dark", "bakery-light", "bakery-high-contrast", "my-theme"} <= set(app.available_themes)
        await app.run_action("app.set_theme('bakery-light')")
        await pilot.pause(0.1)
        assert app.theme == "bakery-light"
        assert app.theme_variables["status-failed"] == "#c62828"
    assert json.loads((config / "settings.json").read_text())["theme"] == "bakery-light"
    again = make_app(tmp_path, [])
    async with again.run_test(size=(120, 40)) as pilot:
        assert again.theme == "bakery-light"
        await again.run_action("app.set_theme('my-theme')")
        await pilot.pause(0.1)
        # a user theme that leaves variables out still gets the defaults (the CSS parses)
        assert again.theme_variables["status-waiting"]


async def test_palette_lists_board_commands(tmp_path: Path) -> None:
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(120, 40)) as pilot:
        titles = [c.title for c in app.commands()]
        for wanted in ("Approve", "Reject", "Stop execution", "Retry stage", "Toggle transition",
                       "Run HEAD now", "Search log", "Help", "Quit"):
            assert wanted in titles
        await pilot.press("question_mark")
        assert "Bakery keys" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        app.screen.query_one(Input).value = "contrast"
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.theme == "bakery-high-contrast"
