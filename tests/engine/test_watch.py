"""WatchSession end to end: real commits start (or skip) executions, edits reload the file,
and overlapping executions obey the execution mode."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from engine import events as ev
from engine.core import Engine
from engine.loader import PipelineError
from engine.state import RunState
from engine.watch import WatchSession, changed_files_between

Repo = Any  # tests/conftest.py's Repo: .path, .commit(message, **files) -> sha
TIMEOUT = 10.0


def pipeline_yaml(
    name: str = "app",
    *,
    mode: str = "superseded",
    build: str = "echo built",
    trigger: str = "",
    branch: str = "",
) -> str:
    source_branch = f"\n        branch: {branch}" if branch else ""
    return textwrap.dedent(
        f"""\
            name: {name}
            execution_mode: {mode}
            stages:
              - name: Source
                actions:
                  - name: Checkout
                    category: source
                    outputs: [src]{{source_branch}}
              - name: Build
                actions:
                  - name: Compile
                    category: build
                    inputs: [src]
                    run: {build}
            """
    ).replace("{source_branch}", source_branch) + textwrap.dedent(trigger)


def git(path: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(path), *args], check=True, capture_output=True, text=True
    )
    return proc.stdout.strip()


async def eventually(pred: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """Wait (generously) until pred() is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def session_for(repo: Repo, tmp_path: Path) -> AsyncIterator[WatchSession]:
    engine = Engine(repo.path, tmp_path / f"state-{repo.path.name}", grace=1.0)
    await engine.start()
    session = WatchSession(engine, repo.path / "bakery.yaml")
    await session.open()
    task = asyncio.create_task(session.run_forever())
    await asyncio.wait_for(session.watcher.ready.wait(), TIMEOUT)
    try:
        yield session
    finally:
        await session.close()
        await asyncio.wait_for(task, TIMEOUT)
        await engine.close()


def pipeline_events(session: WatchSession, type_: str) -> list[ev.Event]:
    return [e for e in session.engine.store.events(pipeline_level=True) if e.type == type_]


def runs(session: WatchSession) -> list[RunState]:
    return [session.engine.recorder.states[r] for r in session.started]


def run_for(session: WatchSession, sha: str) -> RunState | None:
    return next((s for s in runs(session) if s.commit.get("id") == sha), None)


def finished(session: WatchSession, sha: str) -> RunState | None:
    state = run_for(session, sha)
    return state if state is not None and state.finished else None


async def commit(repo: Repo, message: str, **files: str) -> str:
    return await asyncio.to_thread(repo.commit, message, **files)


async def test_commit_on_source_branch_runs_others_are_skipped(
    make_repo: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make_repo(pipeline_yaml())
    async with session_for(repo, tmp_path) as session:
        assert session.version == 1 and session.error is None
        assert session.started == []  # existing commits do not run on startup
        sha = await commit(repo, "add feature", app="v2")
        state = await eventually(lambda: finished(session, sha))
        assert state.status == ev.SUCCEEDED
        assert state.commit["branch"] == "main"
        assert state.trigger["type"] == "Webhook"
        assert state.trigger["ref"] == "refs/heads/main"
        assert state.trigger["detail"] == f"commit {sha[:8]} on main"
        assert state.trigger["by"] == "ada@bakery.test"
        assert state.pipeline_version == 1

        await asyncio.to_thread(git, repo.path, "checkout", "-q", "-b", "feature/x")
        other = await commit(repo, "on a feature branch", f="1")
        skipped = await eventually(
            lambda: [
                e for e in pipeline_events(session, ev.TRIGGER_SKIPPED) if e.data["commit"] == other
            ]
        )
    data = skipped[-1].data
    assert data["pipeline"] == "app"
    assert data["branch"] == "feature/x"
    assert data["ref"] == "refs/heads/feature/x"
    assert "not the source branch 'main'" in data["reason"]
    assert run_for(session, other) is None


async def test_trigger_filters_skip_with_reason_and_tags_run(
    make_repo: Callable[..., Repo], tmp_path: Path
) -> None:
    trigger = """\
        trigger:
          branches:
            includes: [main]
          file_paths:
            includes: ["src/**"]
          tags:
            includes: ["v*"]
        """
    repo = make_repo(pipeline_yaml(trigger=trigger))
    async with session_for(repo, tmp_path) as session:
        docs = await commit(repo, "docs only", **{"README.md": "hello"})
        await eventually(
            lambda: [
                e for e in pipeline_events(session, ev.TRIGGER_SKIPPED) if e.data["commit"] == docs
            ]
        )
        code = await commit(repo, "code", **{"src/app.py": "print(1)"})
        state = await eventually(lambda: finished(session, code))
        assert state.status == ev.SUCCEEDED

        await asyncio.to_thread(git, repo.path, "tag", "-a", "v1.0", "-m", "release")
        tagged = await eventually(
            lambda: next((s for s in runs(session) if s.trigger["ref"] == "refs/tags/v1.0"), None)
        )
        await asyncio.to_thread(git, repo.path, "tag", "nightly")
        await eventually(
            lambda: [
                e
                for e in pipeline_events(session, ev.TRIGGER_SKIPPED)
                if e.data["ref"] == "refs/tags/nightly"
            ]
        )
    reasons = {
        e.data["ref"]: e.data["reason"] for e in pipeline_events(session, ev.TRIGGER_SKIPPED)
    }
    assert reasons["refs/heads/main"] == "no changed file matches file_paths.includes [src/**]"
    assert reasons["refs/tags/nightly"] == "tag 'nightly' is not in tags.includes [v*]"
    assert tagged.commit["id"] == code
    assert tagged.commit["branch"] == "main"  # the branch the tagged commit is on
    assert tagged.trigger["detail"] == f"tag v1.0 on commit {code[:8]}"
    assert len(session.started) == 2


async def test_pipeline_edits_invalid_keeps_last_valid_valid_bumps_version(
    make_repo: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make_repo(pipeline_yaml())
    path = repo.path / "bakery.yaml"
    async with session_for(repo, tmp_path) as session:
        path.write_text("name: app\nstages: [oops\n")
        errors = await eventually(lambda: pipeline_events(session, ev.TRIGGER_ERROR))
        assert session.error is not None and "bakery.yaml" in session.error
        assert errors[0].data["pipeline"] == "app"
        assert errors[0].data["message"] == session.error
        assert session.version == 1 and session.pipeline is not None

        # a commit while the file is broken runs the last valid version
        sha = await commit(repo, "while broken", a="1")
        state = await eventually(lambda: finished(session, sha))
        assert state.status == ev.SUCCEEDED and state.pipeline_version == 1
        assert state.stage("Build").actions[0].name == "Compile"

        fresh = path.with_name(".bakery.yaml.swp")  # save the way editors do: rename over
        fresh.write_text(pipeline_yaml(build="echo rebuilt"))
        os.replace(fresh, path)
        await eventually(lambda: session.version == 2)
        assert session.error is None
        sha2 = await commit(repo, "after the fix", a="2")
        state2 = await eventually(lambda: finished(session, sha2))
        assert state2.pipeline_version == 2 and state2.status == ev.SUCCEEDED
    assert len(pipeline_events(session, ev.TRIGGER_ERROR)) == 1
    versions = [e.data["version"] for e in pipeline_events(session, ev.PIPELINE_VERSION)]
    assert versions == [1, 2]


async def test_start_now_runs_head_by_hand(make_repo: Callable[..., Repo], tmp_path: Path) -> None:
    repo = make_repo(pipeline_yaml())
    head = git(repo.path, "rev-parse", "HEAD")
    async with session_for(repo, tmp_path) as session:
        ex = await session.start_now()
        state = await session.engine.wait(ex.run_id)
    assert state.status == ev.SUCCEEDED
    assert state.commit["id"] == head and state.commit["branch"] == "main"
    assert state.trigger["type"] == "StartPipelineExecution"


async def test_source_branch_without_trigger(
    make_repo: Callable[..., Repo], tmp_path: Path
) -> None:
    """Without a trigger only the source action's branch runs, not the current branch."""
    repo = make_repo(pipeline_yaml(branch="dev"))
    async with session_for(repo, tmp_path) as session:
        published: list[Any] = []
        session.engine.recorder.subscribe(
            lambda item: (
                published.append(item) if getattr(item, "type", "") == ev.TRIGGER_SKIPPED else None
            )
        )
        assert session.source_branch == "dev"
        sha = await commit(repo, "on main", m="1")
        skipped = await eventually(
            lambda: [
                e for e in pipeline_events(session, ev.TRIGGER_SKIPPED) if e.data["commit"] == sha
            ]
        )
        await asyncio.sleep(0.4)  # several engine polls: the event must not be published twice
    assert [e.seq for e in published] == [skipped[0].seq]
    assert "branch 'main' is not the source branch 'dev'" in skipped[0].data["reason"]
    assert session.started == []


async def test_invalid_pipeline_at_open_is_an_error(
    make_repo: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make_repo("name: app\nstages: []\n")
    engine = Engine(repo.path, tmp_path / "state")
    await engine.start()
    try:
        session = WatchSession(engine, repo.path / "bakery.yaml")
        with pytest.raises(PipelineError):
            await session.open()
        await session.close()  # closing a session that never ran is fine
    finally:
        await engine.close()


def test_changed_files_between(make_repo: Callable[..., Repo]) -> None:
    repo = make_repo(**{"a.txt": "a"})
    first = git(repo.path, "rev-parse", "HEAD")
    second = repo.commit("two", **{"dir/café.txt": "c", "b.txt": "b"})
    git(repo.path, "mv", "a.txt", "renamed.txt")
    third = repo.commit("rename")
    assert sorted(changed_files_between(repo.path, first, second)) == ["b.txt", "dir/café.txt"]
    assert sorted(changed_files_between(repo.path, second, third)) == ["a.txt", "renamed.txt"]
    assert sorted(changed_files_between(repo.path, None, third)) == ["a.txt", "renamed.txt"]
    assert changed_files_between(repo.path, None, first) == ["a.txt"]  # a root commit


async def _five_quick_commits(repo: Repo, session: WatchSession) -> list[str]:
    shas = []
    for i in range(5):
        shas.append(await commit(repo, f"quick {i}", n=str(i)))
        await asyncio.sleep(0.3)
    await eventually(lambda: run_for(session, shas[-1]))
    return shas


async def test_superseded_five_quick_commits(
    make_repo: Callable[..., Repo], tmp_path: Path
) -> None:
    repo = make_repo(pipeline_yaml(mode="superseded", build="sleep 1.5"))
    async with session_for(repo, tmp_path) as session:
        shas = await _five_quick_commits(repo, session)
        await eventually(lambda: all(s.finished for s in runs(session)), timeout=20)
        states = runs(session)
    statuses = [s.status for s in states]
    assert states[-1].commit["id"] == shas[-1]
    assert statuses[0] == ev.SUCCEEDED  # it held the Build stage first
    assert statuses[-1] == ev.SUCCEEDED  # the newest always gets through
    assert ev.SUPERSEDED in statuses
    assert set(statuses) == {ev.SUCCEEDED, ev.SUPERSEDED}
    for s in states:
        if s.status == ev.SUPERSEDED:
            assert s.stage("Build").status is None  # overtaken in front of Build, never inside
            assert "superseded by execution #" in (s.error or {}).get("message", "")


async def test_queued_five_quick_commits(make_repo: Callable[..., Repo], tmp_path: Path) -> None:
    repo = make_repo(pipeline_yaml(mode="queued", build="sleep 0.4"))
    async with session_for(repo, tmp_path) as session:
        await _five_quick_commits(repo, session)
        await eventually(lambda: all(s.finished for s in runs(session)), timeout=20)
        states = runs(session)
    assert [s.status for s in states] == [ev.SUCCEEDED] * len(states)
    assert len(states) >= 2
    builds = [s.stage("Build") for s in states]
    for earlier, later in zip(builds, builds[1:], strict=False):
        assert earlier.finished_at is not None and later.started_at is not None
        assert later.started_at >= earlier.finished_at  # one by one, in arrival order
