"""A move between one log pane and several lays the screen out once and redraws scrollbars
only when their thumb moved, and the log panes still look as Textual would draw them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.geometry import Region
from textual.scrollbar import ScrollBar, ScrollBarRender

from tests.tui.test_board_moves import settled
from tests.tui.test_board_views import make_app, parallel_run
from tui.source import log_batch
from tui.widgets.log_scrollbar import LogScrollBar, thumb


def count_layouts(screen: Any) -> list[int]:
    """How many times the screen is laid out (reflowed), from now on."""
    calls = [0]
    refresh_layout = screen._refresh_layout

    def counting(*args: Any, **kwargs: Any) -> None:
        if not kwargs.get("scroll"):
            calls[0] += 1
        refresh_layout(*args, **kwargs)

    screen._refresh_layout = counting
    return calls


async def test_moving_between_one_pane_and_two_lays_the_screen_out_once(tmp_path: Path) -> None:
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        board = app.board
        assert len(board._panes) == 2
        layouts = count_layouts(board)
        compositor = board._compositor
        arranged = [0]
        arrange_root = compositor._arrange_root

        def counting(*args: Any, **kwargs: Any) -> Any:
            arranged[0] += 1
            return arrange_root(*args, **kwargs)

        compositor._arrange_root = counting
        for key, panes in (("left", 1), ("right", 2), ("left", 1), ("right", 2)):
            before, arranged_before = layouts[0], arranged[0]
            await pilot.press(key)
            await pilot.pause(0.05)
            assert len(board._panes) == panes
            assert [p.size.width for p in board._panes] == [board._panes[0].size.width] * panes
            # the panes' new widths need one layout: a second one (the panes, their title and
            # status lines and scrollbars asking for it with their new sizes) redraws them all again
            assert layouts[0] - before == 1, f"{key}: {layouts[0] - before} layouts"
            # and that layout's own arrangement only: a scrollbar measuring itself through the
            # compositor while the layout refreshes it would arrange the whole screen again
            assert arranged[0] - arranged_before == 1, f"{key}: {arranged[0] - arranged_before} arrangements"


async def test_a_shown_again_pane_does_not_redraw_its_scrollbar(tmp_path: Path) -> None:
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        board = app.board
        unit = board._panes[1]
        bar = unit.view.vertical_scrollbar
        assert isinstance(bar, LogScrollBar) and bar.display
        drawn = bar.draws
        assert drawn >= 1
        for key in ("left", "right", "left", "right"):
            await pilot.press(key)
            await pilot.pause(0.05)
        assert unit.display and bar.display
        assert bar.draws == drawn  # same log, same size, same thumb: the rows it drew before


async def test_log_scrollbars_look_as_textual_draws_them(tmp_path: Path) -> None:
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        board = app.board
        await pilot.press("left", "right")
        await pilot.pause(0.05)
        thumbs = 0
        for pane in board._panes:  # Lint's 40 lines scroll, Unit's 25 fit
            view = pane.view
            view.scroll_to(y=view.max_scroll_y // 2, animate=False, immediate=True)
            await pilot.pause(0.05)
            bar = view.vertical_scrollbar
            crop = Region(0, 0, *bar.size)
            kept = bar.render_lines(crop)
            bar.refresh()  # Textual's own drawing, from scratch
            assert kept == ScrollBar.render_lines(bar, crop)
            if view.max_scroll_y:
                assert len({s.style for strip in kept for s in strip}) > 1  # a thumb on a track
                thumbs += 1
        assert thumbs == 1


def test_the_thumb_tells_every_picture_apart() -> None:
    """Positions with the same thumb draw the same bar; another thumb, another bar."""
    for size, virtual, window in ((25, 1000, 25), (25, 1_000_000, 25), (10, 37, 10), (7, 7, 7)):
        pictures: dict[Any, Any] = {}
        for step in range(0, 400):
            position = (virtual - window) * step / 399
            position = int(position * 8) / 8  # ScrollBar.validate_position
            drawn = tuple(ScrollBarRender.render_bar(size, virtual, window, position).segments)
            where = thumb(size, virtual, window, position)
            assert pictures.setdefault(where, drawn) == drawn, (size, virtual, position)
        assert len(set(pictures.values())) == len(pictures)


async def test_a_scroll_that_keeps_the_thumb_does_not_repaint_the_scrollbar(tmp_path: Path) -> None:
    items = [*parallel_run(), log_batch("r1", "Test", "Lint", [f"line {i}" for i in range(5000)], first_line=41)]
    app = make_app(tmp_path, items)
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        view = app.board._panes[0].view
        assert len(view.buffer) == 5040
        bar = view.vertical_scrollbar
        view.scroll_to(y=2500, animate=False, immediate=True)
        await pilot.pause(0.1)
        drawn = bar.draws
        bar._repaint_regions.clear()  # what was asked before is drawn by now
        view.scroll_to(y=2501, animate=False, immediate=True)  # 5,040 lines: the thumb stays put
        assert not bar._repaint_regions
        view.scroll_to(y=0, animate=False, immediate=True)  # the thumb goes to the top
        assert bar._repaint_regions
        await pilot.pause(0.1)
        assert bar.draws == drawn + 1


async def test_plain_lines_are_drawn_as_any_line_is(tmp_path: Path) -> None:
    """Plain ASCII stdout lines take a shorter way to their strip: the same strip."""
    texts = ["plain line", "tab\there", "ünïcode ok", "", "x" * 300, "\x1b[31mred\x1b[0m", "bell\x07"]
    items = [*parallel_run(), log_batch("r1", "Test", "Unit", texts, first_line=26)]
    app = make_app(tmp_path, items)
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        view = app.board._panes[1].view
        assert view.buffer.line(len(view.buffer) - 1) == "bell\x07"
        base = view.rich_style
        drawn = [view._build(i, base) for i in range(len(view.buffer))]
        view.set_search("text no line holds")  # every line the general way
        general = [view._build(i, base) for i in range(len(view.buffer))]
        assert drawn == general
        assert [s.text for s in drawn[-7:-2]] == ["plain line", "tab     here", "ünïcode ok", "", "x" * 300]


async def test_the_kept_layout_map_is_the_one_a_fresh_arrangement_gives(tmp_path: Path) -> None:
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        board = app.board
        compositor = board._compositor
        for key in ("left", "right", "down", "left", "right"):
            await pilot.press(key)
            await pilot.pause(0.05)
            fresh, _ = compositor._arrange_root(compositor.root, compositor.size, visible_only=False)
            assert compositor.full_map == fresh, key
            for pane in board._pool:
                if pane.display:
                    assert board.find_widget(pane.view).region == fresh[pane.view].region
