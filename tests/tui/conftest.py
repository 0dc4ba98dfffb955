"""Helpers for board tests: a live engine on its own thread, screen text, waiting."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from engine import events as ev
from engine.core import Engine
from engine.host import EngineHost
from engine.loader import load_pipeline
from tui.app import BakeryApp
from tui.controller import Controller
from tui.model import BoardModel
from tui.source import HostSource
from tui.widgets.header import HeaderInfo

FAST_PIPELINE = """\
name: shop
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Build
    actions:
      - {name: Compile, category: build, inputs: [source], run: "echo compiling; echo built"}
      - {name: Lint, category: test, inputs: [source], run: "echo lint ok"}
  - name: Release
    actions:
      - {name: Gate, category: approval, message: "Ship it?", link: "https://example.test/review"}
  - name: Deploy
    actions:
      - {name: Ship, category: deploy, run: "echo shipped"}
"""


def screen_text(app: BakeryApp) -> str:
    """The screen as plain text, rendered the way export_screenshot renders it."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    console.print(update)
    return console.export_text()


async def wait_for(pilot: Any, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not met in time")


def run_of(app: BakeryApp) -> Any:
    return app.board.run


@asynccontextmanager
async def live_board(repo: Path, tmp_path: Path, *, size: tuple[int, int] = (160, 45),
                     grace: float = 1.0) -> AsyncIterator[tuple[BakeryApp, Any, EngineHost]]:
    """The board on a real engine (no watcher): x starts an execution on HEAD."""
    path = repo / "bakery.yaml"
    pipeline = load_pipeline(path)
    state = tmp_path / "state"
    host = EngineHost(lambda: Engine(repo, state, grace=grace))
    host.start()
    assert host.engine is not None
    version = host.call_sync(host.engine.register, pipeline, path).result(10)
    controller = Controller(host, None, pipeline, version)
    model = BoardModel(pipeline.name, host.engine.store)
    app = BakeryApp(
        HostSource(host, host.engine.store),
        model=model,
        controller=controller,
        header=HeaderInfo(repo.name, "main", pipeline.name, version, "superseded"),
        repo=repo,
        grace=grace,
        settings_dir=tmp_path / "config",
        desktop_notify=False,
        animate=False,
    )
    try:
        async with app.run_test(size=size) as pilot:
            await pilot.pause(0.1)
            yield app, pilot, host
    finally:
        await asyncio.to_thread(controller.close, grace + 1.8)


def stored_events(host: EngineHost, run_id: str, type_: str) -> list[ev.Event]:
    assert host.engine is not None
    return [e for e in host.engine.store.events(run_id) if e.type == type_]
