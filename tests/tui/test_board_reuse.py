"""An execution starting mounts nothing: the stage columns are built when the board opens
(the pipeline's outline) and rebound to every later execution of the same stages; a log
pane is one widget that draws its title and status rows itself. Each test checks what the
board shows and which widgets show it, not the time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.geometry import Region

from engine import events as ev
from tests.tui.conftest import FAST_PIPELINE, live_board, run_of, screen_text, wait_for
from tests.tui.test_board_moves import settled
from tests.tui.test_board_views import STAGES, E, action, make_app, parallel_run
from tui.widgets.action_card import ActionCard
from tui.widgets.log_pane import LogView
from tui.widgets.stage_column import StageBoard, StageColumn, shape


def mounted(app: Any) -> tuple[dict[str, StageColumn], dict[tuple[str, str], ActionCard]]:
    board = app.board.query_one(StageBoard)
    cards = {(c.stage_name, c.action_name): c for c in app.board.query(ActionCard)}
    return dict(board.columns), cards



def created(run_id: str, number: int, stages: list[dict[str, Any]]) -> Any:
    """The RUN_CREATED event of execution `number` of the greeter pipeline."""
    return E(
        ev.RUN_CREATED, run_id, 5.0 + number, number=number, pipeline="greeter",
        pipeline_version=number, execution_mode="superseded", trigger={"type": "Webhook"},
        commit={}, variables={}, stages=stages,
    )

async def test_a_second_execution_of_the_same_stages_reuses_the_columns(tmp_path: Path) -> None:
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        columns, cards = mounted(app)
        assert set(columns) == {"Source", "Test", "Release", "Deploy"}
        app.source.feed(
            created("r2", 2, STAGES),
            E(ev.RUN_STATUS, "r2", 6.1, status=ev.IN_PROGRESS),
            action("r2", "Source", "Checkout", ev.IN_PROGRESS, 6.1),
        )
        await wait_for(pilot, lambda: run_of(app) is not None and run_of(app).id == "r2")
        await settled(pilot, app)
        assert mounted(app) == (columns, cards)  # the same widgets...
        second = app.model.runs["r2"]
        for (stage_name, name), card in cards.items():  # ...showing the new execution
            assert card.state is second.action(stage_name, name)
        assert columns["Test"].stage is second.stage("Test")
        assert cards[("Test", "Lint")].state.status is None  # r1's Lint was InProgress
        assert cards[("Source", "Checkout")].has_class("-inprogress")
        assert not cards[("Test", "Lint")].has_class("-inprogress")
        assert "#2" in screen_text(app)
        # another shape (a stage fewer) is built anew
        app.source.feed(created("r3", 3, STAGES[:3]))
        await wait_for(pilot, lambda: run_of(app) is not None and run_of(app).id == "r3")
        await settled(pilot, app)
        assert set(mounted(app)[0]) == {"Source", "Test", "Release"}
        assert mounted(app)[0]["Source"] is not columns["Source"]


def test_the_shape_leaves_the_execution_out() -> None:
    app_items = parallel_run("r1")
    from engine.state import new_run

    first, second = new_run(app_items[0]), new_run(parallel_run("r2")[0])
    assert first.id != second.id and shape(first) == shape(second)
    assert shape(None) == ()


async def test_the_board_opens_on_the_outline_the_first_execution_reuses(
    make_repo, tmp_path
) -> None:  # noqa: ANN001
    repo = make_repo(FAST_PIPELINE)
    async with live_board(repo.path, tmp_path) as (app, pilot, _host):
        await settled(pilot, app)
        assert run_of(app) is None
        columns, cards = mounted(app)
        assert list(columns) == ["Source", "Build", "Release", "Deploy"]
        assert set(cards) == {
            ("Source", "Checkout"),
            ("Build", "Compile"),
            ("Build", "Lint"),
            ("Release", "Gate"),
            ("Deploy", "Ship"),
        }
        text = screen_text(app)
        for expected in (
            "No execution yet",
            "press x to run HEAD",
            "Checkout",
            "Compile",
            "2 in parallel",
            "Select an action to see its log.",
        ):
            assert expected in text, expected
        assert app.board.selected is None and not app.board._panes
        await pilot.press("right")  # nothing to move on yet
        assert app.board.selected is None
        await pilot.press("x")
        await wait_for(pilot, lambda: bool(run_of(app) and run_of(app).pending_approvals()))
        await settled(pilot, app)
        assert mounted(app) == (columns, cards)
        run = run_of(app)
        assert cards[("Build", "Compile")].state is run.action("Build", "Compile")
        assert cards[("Build", "Compile")].has_class("-succeeded")
        assert cards[("Release", "Gate")].has_class("-waiting")
        text = screen_text(app)
        assert "No execution yet" not in text and "#1" in text


async def test_a_log_pane_is_one_view_drawing_its_title_and_status(tmp_path: Path) -> None:
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        board = app.board
        lint, unit = board._panes
        assert [type(w) for w in lint.children] == [LogView]
        assert lint.title.startswith(" ● Test / Lint") or "Test / Lint" in lint.title
        assert "InProgress" in lint.title
        assert lint.status_text == "40 lines · following"
        text = screen_text(app).splitlines()
        title_row = next(i for i, line in enumerate(text) if "Test / Lint" in line)
        assert "Test / Unit" in text[title_row]  # side by side, on the same row
        status_row = next(i for i, line in enumerate(text) if "40 lines · following" in line)
        assert "25 lines · following" in text[status_row] and status_row > title_row + 10
        assert "checking file39.py" in "\n".join(text[title_row + 1 : status_row])

        view = lint.view
        width, height = view.outer_size
        # the active pane's title row is drawn in its own style
        assert lint.has_class("-active") and view.active and not unit.view.active

        def row_style(v: LogView, y: int) -> Any:
            strip = v.render_lines(Region(0, y, width, 1))[0]
            return strip.text, {s.style.bgcolor for s in strip if s.style is not None}

        active_text, active_bg = row_style(view, 0)
        idle_text, idle_bg = row_style(unit.view, 0)
        assert "Test / Lint" in active_text and "Test / Unit" in idle_text
        assert active_bg == {view.get_component_rich_style("logview--title-active").bgcolor}
        assert idle_bg == {view.get_component_rich_style("logview--title").bgcolor}
        assert active_bg != idle_bg
        status_text, status_bg = row_style(view, height - 1)
        assert status_text.startswith("40 lines · following")
        assert status_bg == {view.get_component_rich_style("logview--status").bgcolor}

        # a new title or status repaints its one row, never the log under it
        view._repaint_regions.clear()
        lint.set_title(" Test / Lint (renamed)")
        assert view._repaint_regions == {Region(0, 0, width, 1)}
        view._repaint_regions.clear()
        lint.note = "a note"
        lint.update_status()
        assert view._repaint_regions == {Region(0, height - 1, width, 1)}
        await pilot.pause(0.05)
        assert "(renamed)" in screen_text(app) and "a note" in screen_text(app)
        view._repaint_regions.clear()
        lint.update_status()  # unchanged: nothing to repaint
        assert not view._repaint_regions

        await pilot.press("down")  # Unit becomes the active pane: both title rows change
        await pilot.pause(0.05)
        assert board.selected == ("Test", "Unit")
        assert unit.view.active and not view.active
        assert row_style(unit.view, 0)[1] == active_bg


async def test_without_a_pipeline_or_an_execution_the_board_says_what_to_do(tmp_path: Path) -> None:
    app = make_app(tmp_path, [])  # no engine attached: no outline to show
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        assert not app.board.query(StageColumn)
        text = screen_text(app)
        assert "No execution yet. Commit to the repository, or press x to run HEAD now." in text
        assert "No execution in focus" in text


def test_a_log_of_one_line_says_line() -> None:
    from tui.widgets.log_pane import _lines

    assert (_lines(0), _lines(1), _lines(1500)) == ("0 lines", "1 line", "1,500 lines")
