"""What a key press on the board costs stays small without changing what it shows.

Moving the selection restyles a column or a pane without its children, keeps the Footer's
keys (a key that stops applying turns grey), keeps the run list's rows and never lays the
screen out for a log of another length. Each test checks the result, not the time.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widget import Widget
from textual.widgets._footer import FooterKey

from engine import events as ev
from tests.tui.conftest import FAST_PIPELINE, live_board, run_of, screen_text, wait_for
from tests.tui.test_board_views import E, action, make_app, parallel_run, stage
from tui.source import log_batch
from tui.widgets.action_card import ActionCard, _grid
from tui.widgets.footer import BoardFooter
from tui.widgets.run_list import RunList
from tui.widgets.stage_column import StageColumn


def second_run(ts: float, stages: list[dict[str, Any]]) -> Any:
    """Execution #2 of the greeter pipeline arriving on the board."""
    return E(
        ev.RUN_CREATED, "r2", ts, number=2, pipeline="greeter", pipeline_version=2,
        execution_mode="superseded", trigger={"type": "Webhook"}, commit={}, variables={},
        stages=stages,
    )


async def settled(pilot: Any, app: Any) -> None:
    """Until the board stops laying itself out (a loaded machine draws the first frames late)."""
    seen = -1
    for _ in range(100):
        if app.board._layout_updates == seen and not app.board._layout_required:
            return
        seen = app.board._layout_updates
        await pilot.pause(0.1)


def styles_of(app: Any) -> dict[Widget, dict[str, object]]:
    return {w: dict(w.styles.get_render_rules()) for w in app.board.walk_children(Widget)}


def full_restyle_agrees(app: Any) -> bool:
    """Textual's own answer to a class change: re-apply CSS to the whole screen."""
    before = styles_of(app)
    app.update_styles(app.board)
    return styles_of(app) == before


async def test_selection_moves_restyle_like_a_full_restyle(tmp_path: Path) -> None:
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        board = app.board
        assert len(board._panes) == 2  # Lint and Unit run side by side
        for key, selected in (
            ("down", ("Test", "Unit")),
            ("left", ("Source", "Checkout")),
            ("right", ("Test", "Lint")),
            ("down", ("Test", "Unit")),
        ):
            await pilot.press(key)
            await pilot.pause(0.05)
            assert board.selected == selected
            columns = board.query(StageColumn)
            assert [c.stage.name for c in columns if c.has_class("-selected")] == [selected[0]]
            if selected[0] == "Test":
                active = [p.key[2] for p in board._panes if p.has_class("-active")]
                assert active == [selected[1]]
            assert full_restyle_agrees(app), f"after {key}"


async def test_the_check_sees_a_rule_for_a_columns_children(tmp_path: Path) -> None:
    """A rule on a column's class for its cards would be missed: the check above says so."""
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        app.stylesheet.add_source(
            "StageColumn.-selected ActionCard { text-style: italic; }",
            read_from=("test", "descendant-rule"),
        )
        app.refresh_css(animate=False)
        await pilot.pause(0.05)
        await pilot.press("left")  # Test -> Source: the Test column loses -selected
        await pilot.pause(0.05)
        assert not full_restyle_agrees(app)


async def test_a_log_of_another_length_does_not_lay_the_screen_out(tmp_path: Path) -> None:
    items = [
        *parallel_run(),
        action("r1", "Test", "Lint", ev.SUCCEEDED, 1.0),
        action("r1", "Test", "Unit", ev.SUCCEEDED, 1.0),
        log_batch("r1", "Source", "Checkout", ["checked out"]),
    ]
    app = make_app(tmp_path, items)
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        board = app.board
        assert len(board._panes) == 1 and board.selected[0] == "Test"
        view = board._panes[0].view
        assert view.show_vertical_scrollbar  # a long log
        layouts = board._layout_updates
        await pilot.press("left")  # Checkout: one line
        await pilot.pause(0.05)
        assert board._panes[0].key[1:3] == ("Source", "Checkout")
        assert view.show_vertical_scrollbar  # still there: the pane keeps its width
        await pilot.press("right")
        await pilot.pause(0.05)
        assert board._layout_updates == layouts  # same panes, same sizes: no layout


async def test_hidden_panes_keep_their_log_until_another_execution(tmp_path: Path) -> None:
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        board = app.board
        unit = board._panes[1]
        assert unit.key[2] == "Unit"
        buffer = unit.view.buffer
        await pilot.press("left")  # one pane: Unit's is hidden, still bound to Unit's log
        await pilot.pause(0.05)
        assert not unit.display and unit.key[2] == "Unit" and unit.view.buffer is buffer
        app.source.feed(log_batch("r1", "Test", "Unit", ["while hidden"], first_line=26))
        await wait_for(pilot, lambda: len(buffer) == 26)
        await pilot.press("right")  # shown again: the same log, at its end, with the new line
        await wait_for(pilot, lambda: unit.display and "while hidden" in screen_text(app))
        assert unit.view.buffer is buffer and unit.view.following
        app.source.feed(
            second_run(2.0, [{"name": "Source", "actions": [{"name": "Checkout", "category": "source", "run_order": 1}]}])
        )
        await wait_for(pilot, lambda: board.run is not None and board.run.id == "r2")
        await pilot.pause(0.05)  # the board follows the new execution: one pane
        assert not unit.display and unit.key is None


async def test_run_list_rows_are_redrawn_in_place(tmp_path: Path) -> None:
    now = [T := 1_700_000_000.0 + 5.0]
    app = make_app(tmp_path, parallel_run())
    app.clock = lambda: now[0]
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        runs = app.board.query_one(RunList)
        option = runs.get_option_at_index(0)
        before = str(option.prompt)
        layouts = app.board._layout_updates
        now[0] = T + 61.0  # a minute later: the running execution's row says so
        runs.show(app.model.recent(30), app.board.focused_run)
        await pilot.pause(0.05)
        assert runs.get_option_at_index(0) is option  # the same row, a new prompt
        assert str(option.prompt) != before and "1m" in str(option.prompt)
        assert app.board._layout_updates == layouts
        app.source.feed(second_run(70.0, []))
        await wait_for(pilot, lambda: runs.option_count == 2)  # another execution: rebuilt
        assert runs.get_option_at_index(0).id == "r2"  # newest first
        assert runs.highlighted == 0  # the board follows it


async def test_cards_know_their_height_without_drawing(tmp_path: Path) -> None:
    items = [
        *parallel_run(),
        action(
            "r1",
            "Test",
            "Unit",
            ev.FAILED,
            1.5,
            error={"type": "JobFailed", "message": "exit code 3 " + "and more " * 20},
        ),
        stage("r1", "Test", ev.FAILED, 1.5),
    ]
    app = make_app(tmp_path, items)
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        cards = {c.action_name: c for c in app.board.query(ActionCard)}
        size = cards["Lint"].outer_size
        assert cards["Lint"].get_content_height(size, size, 30) == 2
        assert cards["Checkout"].outer_size.height == 2
        failed = cards["Unit"]  # the error wraps over several lines: measured by drawing it
        assert failed.get_content_height(size, size, 30) > 3
        assert failed.outer_size.height > 3 and "JobFailed: exit" in screen_text(app)


async def test_an_answered_approval_grows_its_card(tmp_path: Path) -> None:
    """The reducer changes the card's ActionState in place: the card still sees it grow."""
    app = make_app(
        tmp_path,
        [
            *parallel_run()[:2],
            stage("r1", "Release", ev.IN_PROGRESS, 1.0),
            action("r1", "Release", "Gate", ev.IN_PROGRESS, 1.0),
            E(
                ev.APPROVAL_REQUESTED,
                "r1",
                1.0,
                stage="Release",
                action="Gate",
                token="t1",
                message="Ship?",
            ),
        ],
    )
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        gate = next(c for c in app.board.query(ActionCard) if c.action_name == "Gate")
        assert gate.outer_size.height == 2
        app.source.feed(
            E(
                ev.APPROVAL_DECIDED,
                "r1",
                2.0,
                stage="Release",
                action="Gate",
                token="t1",
                result=ev.APPROVED,
                by="ada.lovelace@analytical-engines.example",
            ),
            action("r1", "Release", "Gate", ev.SUCCEEDED, 2.0),
        )
        await wait_for(pilot, lambda: gate.outer_size.height == 3)
        # a row too long for the card is cut with an ellipsis, never wrapped out of sight
        assert "Approved by ada.lov" in screen_text(app) and "…" in screen_text(app)


def test_card_rows_put_the_right_cell_at_the_edge() -> None:
    rows = _grid(20, (Text("○ Compile"), Text("build")), (Text("  InProgress"), Text("12s")))
    assert rows.plain.split("\n") == ["○ Compile      build", "  InProgress     12s"]
    cut = _grid(16, (Text("○ A very long name"), Text("test")), (Text("  —"), Text("")))
    assert cut.plain.split("\n") == ["○ A very lo…test", "  —             "]
    assert _grid(0, (Text("○ A"), Text("b")), (Text("x"), Text("y"))).plain == "○ A b\nx y"


async def test_moving_keeps_the_footer_and_greys_what_does_not_apply(make_repo, tmp_path) -> None:  # noqa: ANN001
    repo = make_repo(FAST_PIPELINE)
    async with live_board(repo.path, tmp_path) as (app, pilot, host):
        footer = app.board.query_one(BoardFooter)

        def key(action: str) -> FooterKey:
            return next(k for k in footer.query(FooterKey) if k.action == action)

        await settled(pilot, app)
        # nothing runs yet: stop and transition are there, greyed out; no approval keys
        await wait_for(pilot, lambda: any(k.action == "stop" for k in footer.query(FooterKey)))
        assert key("stop").has_class("-disabled")
        assert key("toggle_transition").has_class("-disabled")
        assert not any(k.action == "approve" for k in footer.query(FooterKey))
        await pilot.press("x")
        await wait_for(pilot, lambda: bool(run_of(app) and run_of(app).pending_approvals()))
        # the footer was rebuilt for a/r
        await wait_for(pilot, lambda: any(k.action == "approve" for k in footer.query(FooterKey)))
        await settled(pilot, app)
        assert not key("approve").has_class("-disabled")
        transition = key("toggle_transition")
        rebuilt = footer.recomposed
        await pilot.press("left", "left")  # Release -> Build -> Source
        assert app.board.selected[0] == "Source"
        await wait_for(pilot, lambda: transition.has_class("-disabled"))
        assert "Transition" in screen_text(app)
        await pilot.press("right")
        assert app.board.selected[0] == "Build"
        await wait_for(pilot, lambda: not transition.has_class("-disabled"))
        assert key("toggle_transition") is transition and footer.recomposed == rebuilt
        # greyed when the Footer hears of it, not after the next refresh: painted with the
        # move that greyed it (a second repaint a key press waited for)
        app.board.selected = ("Source", "Checkout")
        footer.bindings_changed(app.board)
        assert transition.has_class("-disabled") and footer.recomposed == rebuilt


async def test_the_board_freezes_what_it_starts_with(tmp_path: Path) -> None:
    gc.unfreeze()
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        assert gc.get_freeze_count() > 0  # out of the collector's full passes
