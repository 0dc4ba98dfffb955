"""Guarantees 17 and 18: artifacts never reach outside the run; approvals obey their rules.

Artifacts: an outside directory (the "victim") is snapshotted before and after runs whose
actions try every way out: `..`, absolute paths, symlinked files and directories, a link
committed to the repository, a link planted where Bakery will copy to.
Approvals: who may answer, when an answer is refused, and that each decision is recorded
once with who, when and the comment.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import events as ev
from engine.actions.artifacts import ArtifactError, collect
from engine.core import ControlError
from engine.model import OutputArtifact
from tests.conftest import git
from tests.reliability._support import (
    action_of,
    bakery,
    engine_for,
    poll,
    read_until,
    run_to_end,
    show,
    start_bakery,
    state_dir,
)

pytestmark = pytest.mark.timeout(120)


# -- 17. artifacts -----------------------------------------------------------------------------


ESCAPE_HEAD = """
name: escape
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Build
    actions:
"""


def snapshot(root: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under `root`: kind and content (files), target (links)."""
    found: dict[str, tuple[str, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_file():
                found[rel] = ("file", path.read_bytes())
            else:
                found[rel] = ("dir", "")
    return found


def test_artifact_paths_leaving_the_workspace_are_refused_and_nothing_is_written_outside(
    make_repo: Callable[..., Any], tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "secret.txt").write_text("keep me\n")
    repo = make_repo(
        ESCAPE_HEAD
        + f"""\
      - name: FileLink
        category: build
        run: ln -s ../../../../../../../../../../../../../{victim}/secret.txt leak
        outputs: [{{name: a1, paths: ["leak"]}}]
      - name: DirLink
        category: build
        run: ln -s {victim} d
        outputs: [{{name: a2, paths: ["d/**"]}}]
      - name: Everything
        category: build
        inputs: [source]
        outputs: [{{name: a4}}]
        run: mkdir -p sub && ln -s {victim} sub/out && echo x > sub/x
      - name: Planted
        category: build
        run: |
          ln -s {victim} "$BAKERY_WORKSPACE/../../../artifacts/a5"
          echo x > x
        outputs: [{{name: a5, paths: ["x"]}}]
      - name: Inside
        category: build
        run: mkdir real && echo fine > real/f && ln -s real inlink && ln -s real/f flink
        outputs: [{{name: a6}}]
  - name: Use
    actions:
      - {{name: Read, category: deploy, inputs: [a6], run: "cat inlink/f flink"}}
""",
    )
    (repo.path / "ws-marker").write_text("untracked, must stay as is\n")
    before_victim = snapshot(victim)
    before_repo = snapshot(repo.path)

    _, state = asyncio.run(run_to_end(repo.path))
    build = state.stage("Build")
    for name in ("FileLink", "DirLink", "Everything", "Planted"):
        action = build.action(name)
        assert action.status == ev.FAILED, (name, action)
        assert action.error["type"] == ev.CONFIGURATION_ERROR, (name, action.error)
    assert "outside the workspace" in build.action("FileLink").error["message"]
    assert build.action("Inside").status == ev.SUCCEEDED
    assert state.stage("Use").status is None  # the stage failed: nothing ran after it

    assert snapshot(victim) == before_victim  # nothing written, moved or deleted there
    after_repo = {k: v for k, v in snapshot(repo.path).items() if not k.startswith(".git")}
    assert after_repo == {k: v for k, v in before_repo.items() if not k.startswith(".git")}
    run_dir = state_dir(repo.path) / "runs" / state.id
    for dirpath, _, filenames in os.walk(state_dir(repo.path)):
        for name in filenames:
            path = Path(dirpath) / name
            assert path.parent == state_dir(repo.path) or run_dir in path.parents, path


def test_output_paths_leaving_the_workspace_are_refused_before_anything_runs(
    make_repo: Callable[..., Any], tmp_path: Path
) -> None:
    """`..` and absolute output paths are a pipeline error with their place in the file (the
    collector refuses them again at run time, below)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    repo = make_repo(
        ESCAPE_HEAD
        + f"""\
      - name: DotDot
        category: build
        run: echo x > "$BAKERY_WORKSPACE/../up"
        outputs: [{{name: a0, paths: ["../up"]}}]
      - name: Absolute
        category: build
        run: echo x > {victim}/planted
        outputs: [{{name: a7, paths: ["{victim}/secret.txt"]}}]
"""
    )
    run = bakery("run", "--plain", cwd=repo.path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "bakery.yaml:12:" in run.stderr and "climbs out of the workspace with '..'" in run.stderr
    assert "bakery.yaml:16:" in run.stderr and "is absolute" in run.stderr
    assert "Traceback" not in run.stderr
    assert list(victim.iterdir()) == []  # nothing ran
    assert not (state_dir(repo.path) / "runs").exists()


@pytest.mark.parametrize("target", ["absolute", "relative"])
def test_a_committed_link_leaving_the_repository_is_refused_at_checkout(
    target: str, make_repo: Callable[..., Any], tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "secret.txt").write_text("keep me\n")
    repo = make_repo(
        """
name: linked
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Build
    actions:
      - {name: Use, category: build, inputs: [source], run: "cat outside/secret.txt", outputs: [o]}
"""
    )
    link = victim if target == "absolute" else Path(os.path.relpath(victim, repo.path))
    os.symlink(link, repo.path / "outside")
    repo.commit("a link that leaves the repository")
    before = snapshot(victim)
    _, state = asyncio.run(run_to_end(repo.path))
    checkout = state.action("Source", "Checkout")
    assert checkout.status == ev.FAILED and checkout.error["type"] == ev.JOB_FAILED
    assert checkout.error["message"].startswith("cannot check out"), checkout.error
    assert "outside" in checkout.error["message"]
    assert state.action("Build", "Use").status is None
    assert snapshot(victim) == before


@pytest.mark.parametrize("pattern", ["../x", "/etc/passwd", "~/x", "a/../../x", "dist/../../x"])
def test_collect_refuses_escaping_patterns_even_past_the_loader(
    pattern: str, tmp_path: Path
) -> None:
    """Defence in depth: the copy itself refuses what validation already refuses."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (tmp_path / "x").write_text("outside\n")
    with pytest.raises(ArtifactError):
        collect(workspace, OutputArtifact(name="o", paths=[pattern]), tmp_path / "dest")
    assert not (tmp_path / "dest").exists() or not any((tmp_path / "dest").iterdir())


# -- 18. approvals -----------------------------------------------------------------------------

GATED = """
name: gated
execution_mode: {mode}
stages:
  - name: Source
    actions:
      - {{name: Checkout, category: source}}
  - name: Release
    actions:
      - name: Gate
        category: approval
        message: ship?
        approvers: [boss@bakery.test, ada@bakery.test]
        prevent_self_approval: true
  - name: Deploy
    actions:
      - {{name: Ship, category: deploy, run: "echo shipped"}}
"""


def test_approvers_self_approval_and_repeats_through_the_command_line(
    make_repo: Callable[..., Any],
) -> None:
    """From another terminal: not an approver, the commit's own author, then the boss, then a
    second answer; the decision is stored once, with who, when and the comment."""
    repo = make_repo(GATED.format(mode="superseded"))
    run = start_bakery("run", "--plain", cwd=repo.path)
    try:
        read_until(run, "approval needed")

        def answer(who: str, *args: str) -> subprocess.CompletedProcess[str]:
            git(repo.path, "config", "user.email", who)
            return bakery(*args, cwd=repo.path)

        intern = answer("intern@bakery.test", "approve", "1", "Release/Gate")
        assert intern.returncode == 1 and "may not answer" in intern.stdout + intern.stderr
        author = answer("ada@bakery.test", "approve", "1", "Release/Gate")
        assert author.returncode == 1 and "prevent_self_approval" in author.stdout + author.stderr
        boss = answer("boss@bakery.test", "approve", "1", "Release/Gate", "-m", "ship it")
        assert boss.returncode == 0 and "Approved by boss@bakery.test" in boss.stdout, boss
        late = answer("boss@bakery.test", "reject", "1", "Release/Gate")
        assert late.returncode == 1
        assert (
            "already Approved" in late.stdout + late.stderr
            or "Succeeded" in late.stdout + late.stderr
        )
        assert run.wait(timeout=60) == 0
    finally:
        if run.poll() is None:
            run.kill()
    gate = action_of(show(repo.path, 1), "Release", "Gate")["approval"]
    assert (gate["result"], gate["by"], gate["comment"]) == (
        ev.APPROVED,
        "boss@bakery.test",
        "ship it",
    )
    assert gate["decided_at"] and gate["decided_at"] >= gate["requested_at"]
    export = bakery("export", "1", cwd=repo.path)
    decided = [
        r
        for r in map(json.loads, export.stdout.splitlines())
        if r.get("type") == ev.APPROVAL_DECIDED
    ]
    assert len(decided) == 1, decided


async def _waiting(ex: Any) -> None:
    await poll(lambda: bool(ex.state.pending_approvals()), what="the approval to wait")


async def test_answers_for_stopped_superseded_and_stale_approvals_are_refused(
    make_repo: Callable[..., Any],
) -> None:
    repo = make_repo(GATED.format(mode="superseded"))
    engine, pipeline, version = await engine_for(repo.path, grace=0.5)
    try:
        # stale: an answer carrying the token of a request that a retry replaced
        first = await engine.start_execution(pipeline, version=version)
        await _waiting(first)
        stale_token = first.state.action("Release", "Gate").approval.token
        engine.decide(
            first.run_id, "Release", "Gate", ev.REJECTED, by="boss@bakery.test", comment="no"
        )
        assert (await engine.wait(first.run_id)).status == ev.FAILED
        retried = await engine.retry(first.run_id, "Release")
        await _waiting(retried)
        fresh = retried.state.action("Release", "Gate").approval.token
        assert fresh != stale_token
        with pytest.raises(ControlError, match="stale"):
            engine.decide(
                first.run_id,
                "Release",
                "Gate",
                ev.APPROVED,
                by="boss@bakery.test",
                token=stale_token,
            )

        # superseded: #1 holds Release; #2 waits in front of it; #3 arrives and supersedes #2
        second = await engine.start_execution(pipeline, version=version)
        await poll(lambda: second.state.waiting is not None, what="#2 to wait at the gate")
        third = await engine.start_execution(pipeline, version=version)
        assert (await engine.wait(second.run_id)).status == ev.SUPERSEDED
        with pytest.raises(ControlError, match="Superseded"):
            engine.decide(second.run_id, "Release", "Gate", ev.APPROVED, by="boss@bakery.test")

        # stopped: #1 stopped while its new request waits; then #3 the same way
        await engine.stop(first.run_id, mode="wait", comment="changed my mind")
        assert (await engine.wait(first.run_id)).status == ev.STOPPED
        await _waiting(third)
        await engine.stop(third.run_id, mode="abandon", comment="not today")
        assert (await engine.wait(third.run_id)).status == ev.STOPPED
        with pytest.raises(ControlError, match="Stopped"):
            engine.decide(
                first.run_id, "Release", "Gate", ev.APPROVED, by="boss@bakery.test", token=fresh
            )
        with pytest.raises(ControlError, match="Stopped"):
            engine.decide(third.run_id, "Release", "Gate", ev.APPROVED, by="boss@bakery.test")
    finally:
        await engine.close()

    decided = [e for e in engine.store.events(first.run_id) if e.type == ev.APPROVAL_DECIDED]
    assert [(e.data["result"], e.data["by"], e.data["comment"]) for e in decided] == [
        (ev.REJECTED, "boss@bakery.test", "no")
    ]  # one decision, recorded once; every refused answer left no trace
    assert all(e.type != ev.APPROVAL_DECIDED for e in engine.store.events(second.run_id))
    gate = engine.store.load_run(first.run_id).action("Release", "Gate")
    assert gate.status == ev.ABANDONED and gate.approval.result is None
    cli = bakery("approve", "1", "Release/Gate", cwd=repo.path)
    assert cli.returncode == 1 and "is Stopped" in cli.stdout + cli.stderr
