"""A key is answered before the next drain: drains wait until what the key changed is drawn,
so a flood's lines (and the log rows they scroll) never join a key's repaint."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import tui.app
from engine import events as ev
from tests.tui.conftest import wait_for
from tests.tui.test_board_moves import settled
from tests.tui.test_board_views import action, make_app, parallel_run
from tui.source import log_batch


async def test_drains_wait_until_a_keys_answer_is_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a hold far longer than the slow move below: on a loaded machine the move alone may
    # outlast the real bound, and the drains must resume because the answer was drawn
    monkeypatch.setattr(tui.app, "INPUT_HOLD", 30.0)
    app = make_app(tmp_path, parallel_run())
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot, app)
        board = app.board
        seen: list[str] = []
        drain = app.source.drain

        def counting_drain() -> Any:
            seen.append("drain")
            return drain()

        app.source.drain = counting_drain  # type: ignore[method-assign]
        move = board.action_move

        async def slow_move(dx: int, dy: int) -> None:
            seen.append("key")
            await move(dx, dy)
            await asyncio.sleep(0.2)  # five drain intervals: a drain could run meanwhile
            seen.append("moved")
            board.call_after_refresh(lambda: seen.append("drawn"))

        board.action_move = slow_move  # type: ignore[method-assign]
        await wait_for(pilot, lambda: "drain" in seen)  # the timer drains before the key
        await pilot.press("left")
        await wait_for(pilot, lambda: "drawn" in seen)
        key = seen.index("key")
        assert seen[key : seen.index("drawn") + 1] == ["key", "moved", "drawn"]
        assert board.selected == ("Source", "Checkout")
        # then the drains resume: what the engine published meanwhile arrives
        app.source.feed(
            action("r1", "Test", "Lint", ev.SUCCEEDED, 1.0),
            log_batch("r1", "Test", "Unit", ["after the key"], first_line=26),
        )
        await wait_for(pilot, lambda: board.run.action("Test", "Lint").status == ev.SUCCEEDED)
        assert "drain" in seen[seen.index("drawn") :]
