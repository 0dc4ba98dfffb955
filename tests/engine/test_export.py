"""Export to JSON lines and replay the file without the repository: a round trip."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import cli
from engine import events as ev
from engine.export import FORMAT, VERSION, ExportError, iter_export, load_export, write_export
from engine.replay import ReplayError, Timeline, load_timeline
from engine.store import Store
from tests.conftest import run_to_end

pytestmark = pytest.mark.timeout(60)

PIPELINE = """\
name: exported
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Build
    actions:
      - name: Compile
        category: build
        run: "printf 'plain\\n\\033[31mred\\033[0m\\n'; echo oops >&2; sleep 0.1; echo last"
      - {name: Quick, category: build, run: "echo quick"}
"""


async def run(repo: Any) -> tuple[Store, str]:
    engine, run_id = await run_to_end(repo)
    return engine.store, run_id


def line_key(line: Any) -> tuple[Any, ...]:
    return (
        line.stage,
        line.action,
        line.attempt,
        line.line_no,
        line.ts,
        line.stream,
        line.text,
        line.raw,
    )


async def test_round_trip_replays_identically(
    make_repo: Callable[..., Any], tmp_path: Path
) -> None:
    repo = make_repo(PIPELINE)
    store, run_id = await run(repo)
    path = tmp_path / "run.jsonl"
    with path.open("w", encoding="utf-8") as out:
        count = write_export(store, run_id, out)
    records = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    header, body = records[0], records[1:]
    assert (header["format"], header["version"]) == (FORMAT, VERSION)
    assert header["run"]["id"] == run_id and header["definition"]["name"] == "exported"
    assert count == len(body)
    assert [r["ts"] for r in body] == sorted(r["ts"] for r in body)  # time order
    assert sum(r["kind"] == "event" for r in body) == len(store.events(run_id))
    assert sum(r["kind"] == "log" for r in body) == len(store.logs(run_id))

    original = Timeline.open(store, run_id)
    with Timeline.from_export(path) as copy:
        assert copy.run_id == run_id
        assert [(e.type, e.ts, e.data) for e in copy.events] == [
            (e.type, e.ts, e.data) for e in original.events
        ]
        for t in original.times:
            assert copy.state_at(t).to_json() == original.state_at(t).to_json()
        assert [line_key(x) for x in copy.store.logs(run_id)] == [
            line_key(x) for x in store.logs(run_id)
        ]
        final = original.duration
        assert [x.text for x in copy.logs_at(final, "Build", "Compile")] == [
            x.text for x in original.logs_at(final, "Build", "Compile")
        ]
        tmp_dir = copy.store.path.parent
        assert tmp_dir.exists()
    assert not tmp_dir.exists()  # the private store goes with the timeline


async def test_cli_export_then_replay_the_file_elsewhere(
    make_repo: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = make_repo(PIPELINE)
    store, run_id = await run(repo)
    assert cli.main(["export", "1", "-C", str(repo.path)]) == 0
    exported = capsys.readouterr().out
    path = tmp_path / "elsewhere" / "run.jsonl"
    path.parent.mkdir()
    path.write_text(exported, encoding="utf-8")
    monkeypatch.chdir(path.parent)  # no repository here
    assert cli.main(["replay", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == store.load_run(run_id).to_json()
    assert cli.main(["replay", "run.jsonl", "--json", "--at", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] is None


def _export_lines(store: Store, run_id: str) -> list[str]:
    return list(iter_export(store, run_id))


def test_raw_bytes_and_unicode_survive(tmp_path: Path) -> None:
    store = Store(tmp_path / "a" / "bakery.db")
    stages = [{"name": "S", "actions": [{"name": "A", "category": "build"}]}]
    store.append(
        ev.Event(ev.RUN_CREATED, "r", 100.0, {"number": 3, "pipeline": "p", "stages": stages})
    )
    store.append_logs(
        [
            ev.LogLine(
                "r", "S", "A", 1, 1, 101.0, "stdout", "héllo ✓", b"\x1b[1mh\xc3\xa9llo\x1b[0m"
            ),
            ev.LogLine("r", "S", "A", 1, 2, 102.0, "system", "$ make", None),
        ]
    )
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(_export_lines(store, "r")) + "\n", encoding="utf-8")
    target = Store(tmp_path / "b" / "bakery.db")
    assert load_export(path, target) == "r"
    assert [line_key(x) for x in target.logs("r")] == [line_key(x) for x in store.logs("r")]
    assert target.runs()[0].number == 3
    with pytest.raises(ExportError, match="already in"):
        load_export(path, target)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json\n", ":1: not a Bakery export"),
        ('{"format": "something-else"}\n', ":1: not a Bakery export"),
        (
            json.dumps({"format": FORMAT, "version": VERSION + 1, "run": {"id": "x"}}) + "\n",
            "newer Bakery",
        ),
        (
            json.dumps({"format": FORMAT, "version": 1, "run": {"id": "x"}}) + "\n[1]\n",
            ":2: expected an object",
        ),
        (json.dumps({"format": FORMAT, "version": 1, "run": {"id": "x"}}) + "\n", "no run.created"),
    ],
)
def test_bad_files_are_refused_with_a_location(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReplayError, match=message):
        load_timeline(str(path))


def test_write_export_to_a_stream(tmp_path: Path) -> None:
    store = Store(tmp_path / "bakery.db")
    with pytest.raises(ExportError, match="no recorded start"):
        write_export(store, "nothing", io.StringIO())
