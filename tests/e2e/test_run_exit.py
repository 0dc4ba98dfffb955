"""How a headless `bakery run` ends: its store closed by the run, indexing left to search.

The process skips the garbage collections of interpreter exit (engine.cli._freeze_at_exit)
and starts no background indexer, so what those used to do at exit must happen anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_cli import bakery

pytestmark = pytest.mark.timeout(90)

PIPELINE = """
name: exits
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Build
    actions:
      - {name: Say, category: build, run: "echo marmalade-sandwich"}
"""


def test_run_closes_its_store_before_exit(make_repo: Callable[..., Any]) -> None:
    repo = make_repo(PIPELINE)
    proc = bakery("run", "--plain", cwd=repo.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    db = repo.path / ".git" / "bakery" / "bakery.db"
    assert db.exists()
    # the last connection to close checkpoints the WAL into the file and removes it: left
    # behind, it would mean the connection was never closed
    assert not Path(f"{db}-wal").exists()


def test_run_leaves_indexing_to_search(
    make_repo: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.indexer
    from engine.cli import main

    attached: list[object] = []
    real_attach = engine.indexer.attach_indexer

    def attach(recorder: Any) -> Any:
        attached.append(recorder)
        return real_attach(recorder)

    monkeypatch.setattr(engine.indexer, "attach_indexer", attach)
    repo = make_repo(PIPELINE)
    assert main(["run", "--plain", "-C", str(repo.path)]) == 0
    assert attached == []  # the process ends with its run: no indexer to race its exit

    found = bakery("search", "marmalade", "--json", cwd=repo.path)
    assert found.returncode == 0, found.stderr
    assert "marmalade-sandwich" in found.stdout  # the search indexed the run first


def test_long_lived_engines_still_index(make_repo: Callable[..., Any]) -> None:
    from engine.core import Engine

    async def started(index_logs: bool) -> object:
        repo = make_repo(PIPELINE)
        eng = Engine(repo.path, repo.path / ".git" / "bakery", index_logs=index_logs)
        await eng.start()
        try:
            return eng.indexer
        finally:
            await eng.close()
            eng.store.close()

    assert asyncio.run(started(True)) is not None  # the board and watch index as runs end
    assert asyncio.run(started(False)) is None


def test_only_commands_that_close_their_store_skip_the_exit_collections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import atexit
    import gc

    from engine import cli

    registered: list[object] = []
    monkeypatch.setattr(cli, "_exit_hook_set", False)
    monkeypatch.setattr(atexit, "register", lambda fn, *a, **k: registered.append(fn))
    assert cli.main(["watch", "-C", str(tmp_path)]) == 2  # no board plugged in here
    assert registered == []  # the board's engine leaves its store to the ordinary exit
    assert cli.main(["history", "-C", str(tmp_path)]) == 2  # not a repository
    assert registered == [gc.freeze]
