"""Search: FTS5 over every stored line, indexed lazily from a cursor, hits with locations."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import cli
from engine import events as ev
from engine.core import Engine
from engine.indexer import BackgroundIndexer
from engine.replay import query
from engine.search import (
    SearchError,
    fts_query,
    index_pending,
    indexed_up_to,
    search,
)
from engine.store import Store
from tests.conftest import run_to_end

pytestmark = pytest.mark.timeout(60)

PIPELINE = """\
name: searched
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Test
    actions:
      - {name: Unit, category: test, inputs: [source], run: "cat src/out.txt"}
"""


async def run(repo: Any) -> tuple[Engine, str]:
    engine, run_id = await run_to_end(repo)
    if getattr(engine, "indexer", None) is not None:
        engine.indexer.wait(10)  # the background indexer must not race the test
    return engine, run_id


@pytest.fixture
async def two_runs(make_repo: Callable[..., Any]) -> tuple[Any, Store, list[str], list[str]]:
    repo = make_repo(PIPELINE, **{"src/out.txt": "collecting\nall good\n"})
    first_commit = repo.commit("nothing yet")
    _, first = await run(repo)
    second_commit = repo.commit(
        "introduce the bug",
        **{"src/out.txt": "collecting\nModuleNotFoundError: No module named 'crumb'\ndone\n"},
    )
    engine, second = await run(repo)
    return repo, engine.store, [first, second], [first_commit, second_commit]


async def test_hits_name_execution_action_line_and_time(two_runs: Any) -> None:
    _repo, store, (first, second), (_c1, c2) = two_runs
    result = search(store, "no module named")
    assert result.total == 1 and result.executions == 1
    [hit] = result.hits
    assert (hit.run_id, hit.number, hit.stage, hit.action) == (second, 2, "Test", "Unit")
    stored = [x for x in store.logs(second, "Test", "Unit") if "crumb" in x.text]
    assert (hit.line_no, hit.ts, hit.text) == (stored[0].line_no, stored[0].ts, stored[0].text)
    start, end = hit.spans[0]
    assert hit.text[start:end] == "No module named" and len(hit.spans) == 1
    seen = result.first_seen
    assert seen is not None and (seen.number, seen.commit_id, seen.subject) == (
        2,
        c2,
        "introduce the bug",
    )
    # a line in both executions: newest first, first seen in the first one
    both = search(store, "COLLECTING")
    assert [h.number for h in both.hits] == [2, 1] and both.executions == 2
    assert both.first_seen is not None and both.first_seen.run_id == first
    assert search(store, "collecting", limit=1).hits[0].number == 2
    assert [h.number for h in search(store, "collecting", run_id=first).hits] == [1]


async def test_indexing_is_lazy_and_never_by_trigger(two_runs: Any) -> None:
    _repo, store, (_first, second), _commits = two_runs
    assert query(store, "SELECT name FROM sqlite_master WHERE type = 'trigger'") == []
    top = query(store, "SELECT MAX(id) FROM log_chunks")[0][0]
    search(store, "collecting")
    assert indexed_up_to(store) == top
    assert index_pending(store) == 0  # nothing twice
    store.append_logs(
        [ev.LogLine(second, "Test", "Unit", 1, 99, 1e9, "stdout", "late collecting line")]
    )
    assert indexed_up_to(store) == top  # not indexed on insert ...
    hits = search(store, "late collecting").hits  # ... but before the next search
    assert [h.line_no for h in hits] == [99]
    assert len(search(store, "collecting").hits) == 3


async def test_finished_execution_is_indexed_in_the_background(
    make_repo: Callable[..., Any],
) -> None:
    repo = make_repo(PIPELINE, **{"src/out.txt": "background words\n"})
    engine, _run_id = await run(repo)
    indexer = getattr(engine, "indexer", None)
    if indexer is None:  # the engine does not attach one: do what it would
        indexer = BackgroundIndexer(engine.store.path)
        indexer.kick()
    top = query(engine.store, "SELECT MAX(id) FROM log_chunks")[0][0]
    deadline = time.monotonic() + 15  # a hang guard: the indexer runs on its own thread
    while indexed_up_to(engine.store) != top and time.monotonic() < deadline:
        indexer.wait(1)
    assert indexed_up_to(engine.store) == top
    assert search(engine.store, "background words", index=False).total == 1


def test_user_text_is_a_phrase_and_raw_errors_are_reported(tmp_path: Path) -> None:
    store = Store(tmp_path / "bakery.db")
    stages = [{"name": "S", "actions": [{"name": "A", "category": "build"}]}]
    store.append(
        ev.Event(ev.RUN_CREATED, "r", 1.0, {"number": 1, "pipeline": "p", "stages": stages})
    )
    texts = ['say "hi" AND bye', "error: x OR y", "a --> b", "NEAR the end", "100% done"]
    store.append_logs(
        [ev.LogLine("r", "S", "A", 1, n, 1.0 + n, "stdout", t) for n, t in enumerate(texts, 1)]
    )
    assert fts_query('say "hi"') == '"say ""hi"""'
    assert [h.line_no for h in search(store, 'say "hi" AND').hits] == [1]
    assert [h.line_no for h in search(store, "x OR y").hits] == [2]  # not an FTS operator
    assert [h.line_no for h in search(store, "NEAR").hits] == [4]
    assert [h.line_no for h in search(store, "-->").hits] == [3]  # no words: plain scan
    assert search(store, "-->").hits[0].spans == ((2, 5),)
    assert [h.line_no for h in search(store, "%").hits] == [5]
    assert [h.line_no for h in search(store, "error AND y", raw=True).hits] == [2]
    assert [h.line_no for h in search(store, "hi*", raw=True).hits] == [1]
    for bad in ("AND", '"open', "a OR", "col:umn"):
        with pytest.raises(SearchError, match="not a valid FTS5 query"):
            search(store, bad, raw=True)
    with pytest.raises(SearchError):
        search(store, "   ")


async def test_cli_search(two_runs: Any, capsys: pytest.CaptureFixture[str]) -> None:
    repo, _store, _runs, (_c1, c2) = two_runs
    assert cli.main(["search", "ModuleNotFoundError", "-C", str(repo.path)]) == 0
    out = capsys.readouterr().out
    assert "#2     Test/Unit:" in out and "ModuleNotFoundError" in out
    assert "first seen in #2 (Test/Unit:" in out and c2[:8] in out
    assert cli.main(["search", "collecting", "--json", "--limit", "1", "-C", str(repo.path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == 2 and len(data["hits"]) == 1 and data["first_seen"]["number"] == 1
    assert cli.main(["search", "AND", "--raw", "-C", str(repo.path)]) == cli.EXIT_USAGE
    assert "--raw" in capsys.readouterr().err


def test_lines_of_a_chunk_are_matched_alone(tmp_path: Path) -> None:
    """A chunk joins lines: neither a phrase begun on the line before nor a NOT clause about
    another line may hide a matching line."""
    store = Store(tmp_path / "bakery.db")
    stages = [{"name": "S", "actions": [{"name": "A", "category": "build"}]}]
    store.append(
        ev.Event(ev.RUN_CREATED, "r", 1.0, {"number": 1, "pipeline": "p", "stages": stages})
    )
    texts = ["retry", "retry retry", "error here", "plain words"]
    store.append_chunks(
        [ev.LogChunk("r", "S", "A", 1, 1, len(texts), 1.0, "stdout", "\n".join(texts))]
    )
    assert [h.line_no for h in search(store, "retry retry").hits] == [2]
    assert [h.line_no for h in search(store, "error NOT plain + words", raw=True).hits] == [3]
    assert [h.line_no for h in search(store, "words NOT plain + words", raw=True).hits] == []
