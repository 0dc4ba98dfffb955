"""The history screen draws its first page, then every row, without redrawing what it drew,
without rebuilding its Footer, and loads the trends once the rows are drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.store import Store
from tests.tui.conftest import screen_text, wait_for
from tests.tui.history_data import many_runs, store_app
from tui.screens.history import FIRST_PAGE, HistoryFooter, HistoryScreen, RunTable


def history_app(tmp_path: Path, runs: int) -> tuple[Store, Any]:
    store = Store(tmp_path / "state" / "bakery.db")
    many_runs(store, runs)
    return store, store_app(tmp_path, store)


async def open_history(pilot: Any, app: Any) -> HistoryScreen:
    """`H` on the board: the history screen."""
    await pilot.pause(0.1)
    await pilot.press("H")
    screen = app.screen
    assert isinstance(screen, HistoryScreen)
    return screen

async def test_first_page_then_every_row_keeps_the_drawn_lines(tmp_path: Path) -> None:
    store, app = history_app(tmp_path, 300)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_history(pilot, app)
        table = screen.query_one(RunTable)
        await wait_for(pilot, lambda: screen.loaded)
        assert [r.number for r in table.rows] == list(range(300, 0, -1))
        assert table.virtual_size.height == 300
        assert "300 executions" in screen_text(app) and "1 of 300" in screen_text(app)

        first = table.rows[:FIRST_PAGE]
        table.set_rows(first)
        drawn = table.render_line(0)
        assert table.render_line(0) is drawn  # from the cache
        table.set_rows([*first, *store.runs(limit=400)[FIRST_PAGE:]])  # the same rows, and more
        assert table.render_line(0) is drawn and table.virtual_size.height == 300
        table.set_rows(store.runs(status="Failed"))  # other rows: drawn again
        assert table.render_line(0) is not drawn and table.rows[0].number == 300
        await wait_for(pilot, lambda: "#299" not in screen_text(app))
        assert "#300" in screen_text(app)

        # the end of the list is reachable: the scrollbar knows the new height
        table.set_rows(store.runs())
        await pilot.press("end")
        await wait_for(pilot, lambda: "#1 " in screen_text(app))
        assert table.current().number == 1
    store.close()


async def test_footer_keys_come_with_the_screen_and_trends_after_the_rows(tmp_path: Path) -> None:
    store, app = history_app(tmp_path, 30)
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await open_history(pilot, app)
        footer = screen.query_one(HistoryFooter)
        assert len(footer.children) >= 7  # composed with the screen, not after it
        await wait_for(pilot, lambda: screen.loaded)
        await wait_for(pilot, lambda: "Durations of the last executions" in screen_text(app))
        text = screen_text(app)
        assert "Replay" in text and "Status filter" in text
        assert footer.recomposed == 0
        await pilot.press("b")  # the branch box opens and closes: the keys are still shown
        await pilot.pause(0.1)
        await pilot.press("escape")
        await wait_for(pilot, lambda: "Replay" in screen_text(app))
    store.close()
