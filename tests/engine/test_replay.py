"""Replay: a stored execution folded to any instant equals what the live recorder held then."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import cli
from engine import events as ev
from engine import replay as replay_mod
from engine.core import Engine
from engine.loader import load_pipeline
from engine.replay import ReplayError, Timeline, load_timeline
from engine.store import CHUNK_LINES, Store

pytestmark = pytest.mark.timeout(60)

PIPELINE = """\
name: replayed
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Build
    actions:
      - {name: Compile, category: build, inputs: [source], run: "echo compiling; sleep 0.2; echo done"}
      - {name: Lint, category: build, run: "echo lint; echo warn >&2"}
      - {name: Pack, category: build, run_order: 2, run: "echo packing; exit 4"}
  - name: Deploy
    actions:
      - {name: Ship, category: deploy, run: "echo never"}
"""


async def record_live(repo: Any) -> tuple[Store, str, list[tuple[ev.Event, dict[str, Any]]]]:
    """Run the pipeline for real, noting the recorder's state right after every event."""
    engine = Engine(repo.path, repo.path / ".git" / "bakery")
    await engine.start()
    pipeline = load_pipeline(repo.path / "bakery.yaml")
    version = engine.register(pipeline, repo.path / "bakery.yaml")
    live: list[tuple[ev.Event, dict[str, Any]]] = []

    def note(item: Any) -> None:
        if isinstance(item, ev.Event) and item.run_id is not None:
            live.append((item, engine.recorder.states[item.run_id].to_json()))

    engine.recorder.subscribe(note)
    ex = await engine.start_execution(pipeline, version=version)
    await engine.wait(ex.run_id)
    await engine.close()
    return engine.store, ex.run_id, live


@pytest.fixture
async def recorded(make_repo: Callable[..., Any]) -> tuple[Any, Store, str, list[Any]]:
    repo = make_repo(PIPELINE)
    store, run_id, live = await record_live(repo)
    return repo, store, run_id, live


async def test_state_at_every_event_equals_the_live_state(recorded: Any) -> None:
    _repo, store, run_id, live = recorded
    timeline = Timeline.open(store, run_id)
    assert [e.seq for e in timeline.events] == [e.seq for e, _ in live]
    for i, (event, state_json) in enumerate(live):
        assert timeline.state_at_index(i).to_json() == state_json, event.type
        t = timeline.t_of(event.ts)
        last_same_time = max(j for j, (e, _) in enumerate(live) if e.ts == event.ts)
        assert timeline.state_at(t).to_json() == live[last_same_time][1]
    assert timeline.state_at(timeline.duration).to_json() == store.load_run(run_id).to_json()
    assert timeline.state_at(-5).to_json() == live[0][1]  # before creation: the created state


async def test_navigation_and_first_failure(recorded: Any) -> None:
    _repo, store, run_id, _live = recorded
    tl = Timeline.open(store, run_id)
    assert tl.next_event(-1.0).index == 0
    assert tl.prev_event(0.0) is None
    mid = tl.times[3]
    assert tl.next_event(mid).index == 4 or tl.times[4] == mid
    assert tl.prev_event(mid).t < mid
    change = tl.next_state_change(0.0)
    assert change is not None and change.event.type in replay_mod.STATUS_EVENTS
    assert tl.prev_state_change(tl.duration + 1).event.type == ev.RUN_STATUS
    failure = tl.first_failure()
    assert failure is not None
    assert failure.event.type == ev.ACTION_STATUS
    assert (failure.event.data["action"], failure.event.data["status"]) == ("Pack", ev.FAILED)
    before = tl.state_at(failure.t - 1e-6)
    assert before.action("Build", "Pack").status == ev.IN_PROGRESS
    assert tl.state_at(failure.t).action("Build", "Pack").status == ev.FAILED
    assert tl.final.status == ev.FAILED and tl.finished
    assert tl.state_at(tl.duration).stage("Deploy").status is None
    assert tl.duration >= tl.times[-1]


async def test_logs_at_follow_the_clock(recorded: Any) -> None:
    _repo, store, run_id, _live = recorded
    tl = Timeline.open(store, run_id)
    every = store.logs(run_id, "Build", "Compile")
    assert [x.text for x in tl.logs_at(tl.duration, "Build", "Compile")] == [x.text for x in every]
    # at the instant each line was read, it and the ones before it exist; the next does not
    for k, line in enumerate(every):
        seen = tl.logs_at(tl.t_of(line.ts), "Build", "Compile")
        assert [x.id for x in seen][: k + 1] == [x.id for x in every[: k + 1]]
        assert all(x.ts <= line.ts for x in seen)
    start = tl.state_at(tl.duration).action("Build", "Compile").started_at
    assert tl.logs_at(tl.t_of(start) - 1e-3, "Build", "Compile") == []
    streams = {x.stream for x in tl.logs_at(tl.duration, "Build", "Lint")}
    assert {"stdout", "stderr"} <= streams


def _store_with_lines(
    tmp_path: Path, times: list[float], *, attempts: int = 1
) -> tuple[Store, float]:
    """A hand-made execution: one action, lines read at origin + each of `times`."""
    store = Store(tmp_path / "s" / "bakery.db")
    origin = 1_700_000_000.25
    stages = [{"name": "B", "actions": [{"name": "A", "category": "build"}]}]
    store.append(
        ev.Event(ev.RUN_CREATED, "r1", origin, {"number": 1, "pipeline": "p", "stages": stages})
    )
    store.append(ev.Event(ev.RUN_STATUS, "r1", origin + 0.1, {"status": ev.IN_PROGRESS}))
    for attempt in range(1, attempts + 1):
        base = (attempt - 1) * 100.0
        store.append(
            ev.Event(
                ev.ACTION_STATUS,
                "r1",
                origin + base + 0.5,
                {"stage": "B", "action": "A", "status": ev.IN_PROGRESS, "attempt": attempt},
            )
        )
        store.append_logs(
            [
                ev.LogLine(
                    "r1", "B", "A", attempt, n, origin + base + t, "stdout", f"a{attempt} line {n}"
                )
                for n, t in enumerate(times, start=1)
            ]
        )
        store.append(
            ev.Event(
                ev.ACTION_STATUS,
                "r1",
                origin + base + 50,
                {"stage": "B", "action": "A", "status": ev.FAILED, "attempt": attempt},
            )
        )
    return store, origin


def test_seek_is_exact_at_a_log_line_boundary(tmp_path: Path) -> None:
    store, _origin = _store_with_lines(tmp_path, [1.0, 2.0, 2.0, 3.0, 7.5])
    tl = Timeline.open(store, "r1")
    texts = lambda t: [x.text for x in tl.logs_at(t, "B", "A")]  # noqa: E731
    assert texts(0.999999) == []
    assert texts(1.0) == ["a1 line 1"]  # a line read exactly at t is there
    assert texts(1.999999) == ["a1 line 1"]
    assert texts(2.0) == ["a1 line 1", "a1 line 2", "a1 line 3"]
    assert tl.log_count_at(3.0, "B", "A") == 4
    assert tl.log_count_at(100.0, "B", "A") == 5
    # a line's own time, as the UI gets it from StoredLine.ts, lands on that line
    for line in store.logs("r1"):
        assert tl.logs_at(tl.t_of(line.ts), "B", "A")[-1].ts == line.ts
    assert [x.line_no for x in tl.logs_at(7.5, "B", "A", start=1, limit=2)] == [2, 3]
    assert [x.line_no for x in tl.tail_at(3.0, "B", "A", 2)] == [3, 4]
    assert tl.next_line(2.0) == 3.0 and tl.prev_line(2.0) == 1.0
    assert tl.next_line(7.5) is None and tl.prev_line(1.0) is None
    assert sum(tl.activity(10)) == 5


def test_logs_follow_the_attempt_current_at_t(tmp_path: Path) -> None:
    store, _origin = _store_with_lines(tmp_path, [1.0, 2.0], attempts=2)
    tl = Timeline.open(store, "r1")
    assert tl.attempt_at(0.2, "B", "A") == 0
    assert [x.text for x in tl.logs_at(60.0, "B", "A")] == ["a1 line 1", "a1 line 2"]
    assert [x.text for x in tl.logs_at(101.0, "B", "A")] == ["a2 line 1"]
    assert [x.text for x in tl.logs_at(101.0, "B", "A", attempt=1)] == ["a1 line 1", "a1 line 2"]
    assert len(tl.sources()) == 2


def test_refresh_takes_in_new_events(tmp_path: Path) -> None:
    store, origin = _store_with_lines(tmp_path, [1.0])
    tl = Timeline.open(store, "r1")
    n = len(tl.events)
    store.append(ev.Event(ev.RUN_STATUS, "r1", origin + 60, {"status": ev.FAILED}))
    assert tl.refresh() == 1 and len(tl.events) == n + 1
    assert tl.state_at(60).status == ev.FAILED and tl.state_at(59).status == ev.IN_PROGRESS


def test_a_million_lines_open_without_loading_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening and seeking query by range: no query returns more rows than asked for."""
    store, origin = _store_with_lines(tmp_path, [1.0])
    source = store.logs("r1")[0]
    total = 1_000_000
    with store.transaction() as conn:  # generated in SQL: a Python loop would dominate the test
        src = conn.execute(
            "SELECT source FROM log_chunks WHERE id = ?", (source.id // CHUNK_LINES,)
        ).fetchone()[0]
        # chunks of 100 lines (lines 2-100, 101-200, ...), each read at its last line's time
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO log_chunks (source, first_line, last_line, ts, stream, text)"
            " SELECT ?, MIN(i), MAX(i), ? + 1.0 + MAX(i) / 65536.0, 0,"
            " group_concat('generated line ' || i, char(10)) FROM n GROUP BY (i - 1) / 100",
            (total, src, origin),
        )
    largest: list[int] = []
    real_query = replay_mod.query

    def counting(store_: Store, sql: str, args: Any = ()) -> list[Any]:
        rows = real_query(store_, sql, args)
        largest.append(len(rows))
        return rows

    monkeypatch.setattr(replay_mod, "query", counting)
    monkeypatch.setattr(Store, "logs", lambda *a, **k: pytest.fail("Timeline loaded lines"))
    tl = Timeline.open(store, "r1")
    assert tl.sources()[0].lines == total
    at = 1.0 + 500_000 / 65536  # exact in binary, as a line's own time would be
    count = tl.log_count_at(at, "B", "A")
    assert count == 500_000
    tail = tl.tail_at(at, "B", "A", 40)
    assert [x.line_no for x in tail] == list(range(count - 39, count + 1))
    assert tail[-1].text == "generated line 500000"
    assert len(tl.activity(30)) == 30
    assert max(largest) <= 40
    assert len(largest) < 2000


async def test_cli_replay_json_at_a_time(recorded: Any, capsys: pytest.CaptureFixture[str]) -> None:
    repo, store, run_id, live = recorded
    tl = Timeline.open(store, run_id)
    mark = tl.first_failure()
    assert mark is not None
    code = cli.main(
        [
            "replay",
            "1",
            "--json",
            "--at",
            repr(mark.t),
            "-C",
            str(repo.path),
            "--state-dir",
            str(repo.path / ".git" / "bakery"),
        ]
    )
    assert code == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == tl.state_at(mark.t).to_json()
    assert shown["stages"][1]["actions"][2]["status"] == ev.FAILED
    code = cli.main(
        [
            "replay",
            "1",
            "--json",
            "-C",
            str(repo.path),
            "--state-dir",
            str(repo.path / ".git" / "bakery"),
        ]
    )
    assert json.loads(capsys.readouterr().out) == live[-1][1]


def test_cli_replay_without_json_needs_the_board(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Headless, `replay` without --json says how to get JSON; with a board it opens it."""
    assert cli.main(["replay", "1"]) == cli.EXIT_USAGE
    assert "replay --json" in capsys.readouterr().err.replace("RUN ", "")
    seen: list[Any] = []

    class Board:  # a stand-in for tui.main's board: textual never loads here
        def replay(self, args: Any) -> int:
            seen.append(args)
            return 0

    assert cli.main(["replay", "7", "--at", "3"], board=Board()) == 0  # type: ignore[arg-type]
    assert seen[0].run == "7" and seen[0].at == 3.0


def test_load_timeline_errors(tmp_path: Path, make_repo: Callable[..., Any]) -> None:
    with pytest.raises(ReplayError, match="no such file"):
        load_timeline(str(tmp_path / "missing.jsonl"))
    repo = make_repo(PIPELINE)
    with pytest.raises(ReplayError, match="no executions recorded"):
        load_timeline("1", repo=repo.path, state_dir=tmp_path / "empty")
