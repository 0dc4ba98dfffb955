"""Compare: last green vs this red on two real executions, and the pieces it is made of."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from engine import cli
from engine import events as ev
from engine.compare import (
    FASTER,
    FIXED,
    NEWLY_FAILING,
    SLOWER,
    Side,
    classify,
    compare,
    duration_change,
    last_green_before,
    normalise,
)
from engine.store import Store
from tests.conftest import run_to_end

pytestmark = pytest.mark.timeout(60)

PIPELINE = """\
name: compared
variables:
  - {name: TARGET, default: staging}
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Test
    actions:
      - name: Unit
        category: test
        inputs: [source]
        run: "echo started $(date +%H:%M:%S) in $PWD; echo id $(date +%s%N | sha1sum | cut -c1-40); sh check.sh"
      - {name: Docs, category: test, run: "echo docs fine"}
"""


async def run(repo: Any, variables: dict[str, str] | None = None) -> tuple[Store, str]:
    engine, run_id = await run_to_end(repo, variables=variables)
    return engine.store, run_id


@pytest.fixture
async def green_red(make_repo: Callable[..., Any]) -> tuple[Any, Store, str, str, list[str]]:
    repo = make_repo(PIPELINE, **{"check.sh": "echo all 12 tests passed\n"})
    _, green = await run(repo)
    first = repo.commit("tidy the docs", **{"README": "docs\n"})
    second = repo.commit(
        "make the check stricter",
        **{"check.sh": "echo ran 12 tests in 0.42s\necho 'FAILED test_price' >&2\nexit 1\n"},
    )
    store, red = await run(repo, {"TARGET": "prod"})
    return repo, store, green, red, [second, first]


async def test_green_vs_red(green_red: Any) -> None:
    repo, store, green, red, commits = green_red
    assert last_green_before(store, red) == green
    assert last_green_before(store, green) is None
    cmp = compare(store, green, red, repo=repo.path, action=("Test", "Unit"))
    rows = {(r.stage, r.action): r for r in cmp.rows}
    assert rows[("Test", "Unit")].change == NEWLY_FAILING
    assert rows[("Test", None)].change == NEWLY_FAILING
    assert rows[("Test", "Unit")].a.status == ev.SUCCEEDED
    assert rows[("Test", "Unit")].b.status == ev.FAILED
    assert rows[("Test", "Docs")].change is None  # same outcome, sub-second wobble ignored
    assert rows[("Source", "Checkout")].change is None
    assert [c.id for c in cmp.commits] == commits  # git log green..red, newest first
    assert [c.subject for c in cmp.commits] == ["make the check stricter", "tidy the docs"]
    assert cmp.variables == {"TARGET": ("staging", "prod")}
    diff = cmp.log_diff
    assert diff is not None and diff[0].startswith("--- #1 Test/Unit")
    changed = [x for x in diff if x[:1] in "+-" and not x.startswith(("---", "+++"))]
    # the first lines (clock time, workspace path, random id) differ on every run: ignored
    assert not any(x[1:].startswith(("started", "id ")) for x in changed), changed
    assert "-all 12 tests passed" in changed
    assert "+ran 12 tests in <duration>" in changed
    assert "+FAILED test_price" in changed
    assert not any("/tmp" in x for x in diff)
    as_json = cmp.to_json()
    assert as_json["changes"][0]["change"] == NEWLY_FAILING
    assert as_json["log_diff"]["diff"] == diff


async def test_cli_diff_with_one_argument_uses_last_green(
    green_red: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _store, green, red, commits = green_red
    assert cli.main(["diff", "2", "--json", "-C", str(repo.path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["a"]["id"], out["b"]["id"]) == (green, red)
    assert [c["id"] for c in out["commits"]] == commits
    assert cli.main(["diff", "1", "2", "--action", "Test/Unit", "-C", str(repo.path)]) == 0
    text = capsys.readouterr().out
    assert "newly failing" in text and "+FAILED test_price" in text
    assert "make the check stricter" in text
    assert cli.main(["diff", "1", "-C", str(repo.path)]) == cli.EXIT_USAGE
    assert "no execution succeeded before" in capsys.readouterr().err


def test_normalise_hides_what_changes_every_run() -> None:
    rid = "20240101-120000-abc123"
    line = (
        f"2024-05-01T12:00:01.123Z 12:00:01 built /tmp/pytest-of-x/t0/a.o in "
        f"/home/u/repo/.git/bakery/runs/{rid}/work/B in 1.25s (took 300 ms) "
        "commit 3f9a1c2d7e5b id 123e4567-e89b-12d3-a456-426614174000 \x1b[32mok\x1b[0m  "
    )
    assert normalise(line, (rid,)) == (
        "<time> <time> built <tmp> in <run>/work/B in <duration> (took <duration>) "
        "commit <hex> id <id> ok"
    )
    assert normalise("12 tests, 3 failed, exit 1") == "12 tests, 3 failed, exit 1"
    assert (
        normalise("see 20240101-120000-ffffff/x", ("20240101-120000-ffffff",)) == "see <run-id>/x"
    )


def test_duration_changes_ignore_small_wobbles() -> None:
    assert duration_change(10.0, 11.0) is None  # 10 %: noise
    assert duration_change(0.2, 0.6) is None  # 200 % but only 0.4 s
    assert duration_change(2.0, 3.0) == SLOWER
    assert duration_change(3.0, 2.0) == FASTER
    assert duration_change(None, 3.0) is None
    ok, bad = Side(ev.SUCCEEDED, 1.0), Side(ev.FAILED, 1.0)
    assert classify(bad, ok) == FIXED and classify(ok, bad) == NEWLY_FAILING
    assert classify(None, ok) == "added" and classify(ok, None) == "removed"
