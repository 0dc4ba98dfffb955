"""Control from keys on a live board: approve, reject, stop, retry, transitions, run now."""

from __future__ import annotations

from textual.widgets import Input

from engine import events as ev
from tests.tui.conftest import (
    FAST_PIPELINE,
    live_board,
    run_of,
    screen_text,
    stored_events,
    wait_for,
)


def type_comment(app, text: str) -> None:  # noqa: ANN001
    app.screen.query_one("#comment", Input).value = text


def _waiting(app) -> bool:  # noqa: ANN001
    run = run_of(app)
    return run is not None and bool(run.pending_approvals())


async def test_approve_by_key_lands_in_store(make_repo, tmp_path) -> None:  # noqa: ANN001
    repo = make_repo(FAST_PIPELINE)
    async with live_board(repo.path, tmp_path) as (app, pilot, host):
        assert app.board.check_action("approve", ()) is False  # nothing waits: no a/r
        assert "Approve" not in screen_text(app)
        await pilot.press("x")
        await wait_for(pilot, lambda: _waiting(app))
        await pilot.pause(0.1)
        assert app.board.check_action("approve", ()) is True
        text = screen_text(app)
        assert "Approval waiting" in text and "Ship it?" in text
        assert "Approve" in text  # the footer shows the key now
        await pilot.press("a")
        await pilot.pause(0.1)
        type_comment(app, "looks good")
        await pilot.press("enter")
        await wait_for(pilot, lambda: run_of(app).status == ev.SUCCEEDED)
        decided = stored_events(host, run_of(app).id, ev.APPROVAL_DECIDED)
        assert decided and decided[0].data["result"] == ev.APPROVED
        assert decided[0].data["comment"] == "looks good"
        assert app.board.check_action("approve", ()) is False


async def test_reject_by_key_fails_the_execution(make_repo, tmp_path) -> None:  # noqa: ANN001
    repo = make_repo(FAST_PIPELINE)
    async with live_board(repo.path, tmp_path) as (app, pilot, host):
        await pilot.press("x")
        await wait_for(pilot, lambda: _waiting(app))
        await pilot.press("r")
        await pilot.pause(0.1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: run_of(app).status == ev.FAILED)
        decided = stored_events(host, run_of(app).id, ev.APPROVAL_DECIDED)
        assert decided[0].data["result"] == ev.REJECTED
        await pilot.pause(0.1)
        assert "Rejected" in screen_text(app)


SLOW = """\
name: slow
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Build
    actions:
      - {name: Forever, category: build, run: "echo started; sleep 30"}
"""


async def test_stop_and_abandon(make_repo, tmp_path) -> None:  # noqa: ANN001
    repo = make_repo(SLOW)
    async with live_board(repo.path, tmp_path) as (app, pilot, host):
        await pilot.press("x")
        await wait_for(
            pilot, lambda: run_of(app) is not None and run_of(app).action("Build", "Forever").status == ev.IN_PROGRESS
        )
        assert app.board.check_action("stop", ()) is True
        await pilot.press("s")
        await pilot.pause(0.1)
        await pilot.press("a")  # stop and abandon
        await wait_for(pilot, lambda: run_of(app).status == ev.STOPPED, timeout=10)
        assert run_of(app).action("Build", "Forever").status == ev.ABANDONED
        stops = stored_events(host, run_of(app).id, ev.STOP_REQUESTED)
        assert stops[0].data["mode"] == "abandon"


def flaky(flag: str) -> str:
    return f"""\
name: flaky
stages:
  - name: Source
    actions:
      - {{name: Checkout, category: source, outputs: [source]}}
  - name: Test
    actions:
      - {{name: Unit, category: test, run: "test -f {flag} || {{ touch {flag}; echo 'ERROR: first try fails'; exit 3; }}; echo passed"}}
      - {{name: Lint, category: test, run: "echo lint ok"}}
"""


async def test_retry_failed_actions(make_repo, tmp_path) -> None:  # noqa: ANN001
    repo = make_repo(flaky(str(tmp_path / "flag")))
    async with live_board(repo.path, tmp_path) as (app, pilot, host):
        await pilot.press("x")
        await wait_for(pilot, lambda: run_of(app) is not None and run_of(app).status == ev.FAILED)
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "JobFailed" in text
        assert app.board.check_action("retry", ()) is True
        await pilot.press("R")
        await pilot.pause(0.1)
        await pilot.press("f")
        await wait_for(pilot, lambda: run_of(app).status == ev.SUCCEEDED)
        run = run_of(app)
        assert run.action("Test", "Unit").attempt == 2
        assert run.action("Test", "Lint").attempt == 1  # only the failed action ran again


async def test_disable_and_enable_a_transition(make_repo, tmp_path) -> None:  # noqa: ANN001
    repo = make_repo(FAST_PIPELINE)
    async with live_board(repo.path, tmp_path) as (app, pilot, host):
        await pilot.press("x")
        await wait_for(pilot, lambda: _waiting(app))
        await pilot.press("right")  # Release -> Deploy
        assert app.board.selected == ("Deploy", "Ship")
        await pilot.press("t")
        await pilot.pause(0.1)
        type_comment(app, "freeze")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Deploy" in app.model.pipeline.disabled)
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "inbound transition" in text and "freeze" in text
        await pilot.press("t")  # enabling needs no reason
        await wait_for(pilot, lambda: "Deploy" not in app.model.pipeline.disabled)
        assert app.board.check_action("toggle_transition", ()) is True
        await pilot.press("left", "left", "left")  # the first stage has no inbound transition
        assert app.board.selected[0] == "Source"
        assert app.board.check_action("toggle_transition", ()) is None  # shown greyed out
        await pilot.press("t")  # ...and does nothing there: no modal, no change
        await pilot.pause(0.1)
        assert app.screen is app.board and "Source" not in app.model.pipeline.disabled
