"""Runner semantics against real git repositories and real processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import events as ev
from engine.core import ControlError, Engine
from engine.loader import load_pipeline

pytestmark = pytest.mark.timeout(60)


async def run_once(
    repo: Any, *, approve: str | None = None, variables: dict[str, str] | None = None
) -> tuple[Engine, Any]:
    engine = Engine(repo.path, repo.path / ".git" / "bakery-test")
    await engine.start()
    pipeline = load_pipeline(repo.path / "bakery.yaml")
    version = engine.register(pipeline, repo.path / "bakery.yaml")
    if approve:

        def answer(item: Any) -> None:
            if isinstance(item, ev.Event) and item.type == ev.APPROVAL_REQUESTED:
                asyncio.get_running_loop().call_soon(
                    lambda: engine.decide(
                        str(item.run_id),
                        item.data["stage"],
                        item.data["action"],
                        approve,
                        by="tester",
                        comment="from the test",
                    )
                )

        engine.recorder.subscribe(answer)
    ex = await engine.start_execution(pipeline, version=version, variables=variables)
    state = await engine.wait(ex.run_id)
    await engine.close()
    return engine, state


SOURCE = """
  - name: Source
    actions:
      - {name: Checkout, category: source, namespace: Src, outputs: [source]}
"""


def pipeline(body: str, mode: str = "superseded", head: str = "") -> str:
    return f"name: t\nexecution_mode: {mode}\n{head}stages:\n{SOURCE}{body}"


async def test_parallel_group_overlaps_and_later_group_waits(make_repo: Callable[..., Any]) -> None:
    repo = make_repo(
        pipeline(
            """
  - name: Build
    actions:
      - {name: A, category: build, run: "sleep 0.6"}
      - {name: B, category: build, run: "sleep 0.6"}
      - {name: C, category: build, run_order: 3, run: "true"}
"""
        )
    )
    engine, state = await run_once(repo)
    build = state.stage("Build")
    a, b, c = (build.action(n) for n in "ABC")
    assert state.status == ev.SUCCEEDED
    # A and B overlap in time; C starts only after both finished.
    assert a.started_at < b.finished_at and b.started_at < a.finished_at
    assert c.started_at >= max(a.finished_at, b.finished_at)


async def test_failure_lets_group_finish_and_stops_later_work(make_repo: Callable[..., Any]) -> None:
    repo = make_repo(
        pipeline(
            """
  - name: Test
    actions:
      - {name: Bad, category: test, run: "echo boom >&2; exit 3"}
      - {name: Slow, category: test, run: "sleep 0.5; echo finished"}
      - {name: Later, category: test, run_order: 2, run: "true"}
  - name: Deploy
    actions:
      - {name: Ship, category: deploy, run: "true"}
"""
        )
    )
    engine, state = await run_once(repo)
    test = state.stage("Test")
    assert state.status == ev.FAILED
    assert test.status == ev.FAILED
    assert test.action("Bad").status == ev.FAILED
    assert test.action("Bad").error == {"type": ev.JOB_FAILED, "message": "exit code 3"}
    assert test.action("Bad").exit_code == 3
    assert test.action("Slow").status == ev.SUCCEEDED  # the rest of the group finished
    assert test.action("Later").status is None  # no later group started
    assert state.stage("Deploy").status is None
    assert state.error is not None and "Bad" in state.error["message"]
    lines = [line.text for line in engine.store.logs(state.id, "Test", "Bad")]
    assert "boom" in lines


async def test_artifacts_flow_between_stages(make_repo: Callable[..., Any]) -> None:
    repo = make_repo(
        pipeline(
            """
  - name: Build
    actions:
      - name: Make
        category: build
        inputs: [source]
        run: mkdir -p dist && cp hello.txt dist/ && echo extra > dist/extra.txt && echo no > skip.txt
        outputs: [{name: dist, paths: ["dist/**"]}]
  - name: Deploy
    actions:
      - {name: Check, category: deploy, inputs: [dist], run: "cat dist/hello.txt dist/extra.txt; test ! -e skip.txt; test ! -e hello.txt"}
"""
        ),
        **{"hello.txt": "hello artifact\n"},
    )
    engine, state = await run_once(repo)
    assert state.status == ev.SUCCEEDED, state.to_json()
    lines = [line.text for line in engine.store.logs(state.id, "Deploy", "Check")]
    assert "hello artifact" in lines and "extra" in lines
    assert state.action("Build", "Make").artifacts == [{"name": "dist", "files": 2, "bytes": 21}]


async def test_output_artifact_escaping_workspace_is_refused(make_repo: Callable[..., Any]) -> None:
    repo = make_repo(
        pipeline(
            """
  - name: Build
    actions:
      - name: Make
        category: build
        run: ln -s /etc/passwd leak
        outputs: [{name: dist, paths: ["leak"]}]
"""
        )
    )
    _, state = await run_once(repo)
    make = state.action("Build", "Make")
    assert make.status == ev.FAILED
    assert "outside the workspace" in make.error["message"]


async def test_variables_are_quoted_and_flow(make_repo: Callable[..., Any], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    repo = make_repo(
        pipeline(
            """
  - name: Build
    actions:
      - name: Version
        category: build
        namespace: B
        run: echo "Tag=#{variables.GREETING}-#{codepipeline.ExecutionNumber}" >> "$BAKERY_OUTPUT"
  - name: Use
    actions:
      - name: Echo
        category: build
        env: {FROM_ENV: "#{B.Tag}"}
        run: |
          echo msg=#{Src.CommitMessage}
          echo "dq=#{Src.CommitMessage}"
          echo 'sq=#{Src.CommitMessage}'
          echo "env=$FROM_ENV"
""",
            head="variables:\n  - {name: GREETING, default: hi}\n",
        )
    )
    hostile = f"$(touch {marker}) `touch {marker}` \"; touch {marker}; #' ${{IFS}}"
    repo.commit(hostile)
    engine, state = await run_once(repo, variables={"GREETING": "hey"})
    assert state.status == ev.SUCCEEDED, state.to_json()
    assert not marker.exists()
    lines = [line.text for line in engine.store.logs(state.id, "Use", "Echo")]
    assert f"msg={hostile}" in lines
    assert f"dq={hostile}" in lines
    assert f"sq={hostile}" in lines
    assert f"env=hey-{state.number}" in lines
    assert state.action("Build", "Version").output_variables == {"Tag": f"hey-{state.number}"}


async def test_unknown_variable_override_is_refused(make_repo: Callable[..., Any]) -> None:
    repo = make_repo(pipeline("  - name: B\n    actions:\n      - {name: X, category: build, run: 'true'}\n"))
    with pytest.raises(ControlError, match="unknown variable"):
        await run_once(repo, variables={"NOPE": "1"})


async def test_approval_approved_and_rejected(make_repo: Callable[..., Any]) -> None:
    body = """
  - name: Gate
    actions:
      - {name: Ask, category: approval, message: "ship #{Src.ShortCommitId}?"}
  - name: Deploy
    actions:
      - {name: Ship, category: deploy, run: "echo shipped"}
"""
    repo = make_repo(pipeline(body))
    _, state = await run_once(repo, approve=ev.APPROVED)
    ask = state.action("Gate", "Ask")
    assert state.status == ev.SUCCEEDED
    assert ask.approval.result == ev.APPROVED and ask.approval.by == "tester"
    assert ask.approval.message.startswith("ship ") and ask.approval.comment == "from the test"

    _, state = await run_once(repo, approve=ev.REJECTED)
    assert state.status == ev.FAILED
    assert state.stage("Gate").status == ev.FAILED
    assert state.action("Gate", "Ask").error["type"] == "Rejected"
    assert state.stage("Deploy").status is None


async def test_approval_timeout_fails(make_repo: Callable[..., Any]) -> None:
    repo = make_repo(pipeline("  - name: Gate\n    actions:\n      - {name: Ask, category: approval, timeout: 1s}\n"))
    _, state = await run_once(repo)
    assert state.action("Gate", "Ask").status == ev.FAILED
    assert state.action("Gate", "Ask").error["type"] == ev.TIMED_OUT


async def test_stale_and_repeated_answers_are_refused(make_repo: Callable[..., Any], engine_kit: Any, until: Any) -> None:
    repo = make_repo(pipeline("  - name: Gate\n    actions:\n      - {name: Ask, category: approval, approvers: [boss@bakery.test]}\n"))
    kit = await engine_kit(repo)
    engine = kit.engine
    ex = await kit.execution()
    await until(ex.state.pending_approvals)
    with pytest.raises(ControlError, match="may not answer"):
        engine.decide(ex.run_id, "Gate", "Ask", ev.APPROVED, by="intern@bakery.test")
    with pytest.raises(ControlError, match="stale"):
        engine.decide(ex.run_id, "Gate", "Ask", ev.APPROVED, by="boss@bakery.test", token="old")
    engine.decide(ex.run_id, "Gate", "Ask", ev.APPROVED, by="boss@bakery.test")
    with pytest.raises(ControlError, match="already Approved"):
        engine.decide(ex.run_id, "Gate", "Ask", ev.REJECTED, by="boss@bakery.test")
    state = await engine.wait(ex.run_id)
    await engine.close()
    decided = [e for e in engine.store.events(ex.run_id) if e.type == ev.APPROVAL_DECIDED]
    assert state.status == ev.SUCCEEDED and len(decided) == 1


async def test_prevent_self_approval(make_repo: Callable[..., Any], engine_kit: Any, until: Any) -> None:
    repo = make_repo(pipeline("  - name: Gate\n    actions:\n      - {name: Ask, category: approval, prevent_self_approval: true}\n"))
    kit = await engine_kit(repo)
    engine = kit.engine
    ex = await kit.execution()
    await until(ex.state.pending_approvals)
    with pytest.raises(ControlError, match="prevent_self_approval"):
        engine.decide(ex.run_id, "Gate", "Ask", ev.APPROVED, by="ada@bakery.test")
    engine.decide(ex.run_id, "Gate", "Ask", ev.APPROVED, by="bob@bakery.test")
    assert (await engine.wait(ex.run_id)).status == ev.SUCCEEDED
    await engine.close()


async def test_timeout_ends_the_whole_tree(make_repo: Callable[..., Any], engine_kit: Any, until: Any) -> None:
    repo = make_repo(
        pipeline(
            "  - name: B\n    actions:\n      - {name: Hang, category: build, timeout: 1s, run: \"trap '' TERM; sleep 30 & sleep 30\"}\n"
        )
    )
    started = time.monotonic()
    kit = await engine_kit(repo, grace=0.5)
    engine = kit.engine
    ex = await kit.execution()
    state = await engine.wait(ex.run_id)
    await engine.close()
    hang = state.action("B", "Hang")
    assert hang.status == ev.FAILED and hang.error["type"] == ev.TIMED_OUT
    assert hang.signal in ("SIGTERM", "SIGKILL")
    assert time.monotonic() - started < 15


async def test_invoke_returns_variables_and_failures_are_contained(make_repo: Callable[..., Any]) -> None:
    repo = make_repo(
        pipeline(
            """
  - name: Call
    actions:
      - {name: Good, category: invoke, inputs: [source], function: "ci/fns.py:good", params: {who: "#{Src.AuthorName}"}, namespace: G}
      - {name: Raises, category: invoke, inputs: [source], function: "ci/fns.py:raises"}
      - {name: Exits, category: invoke, inputs: [source], function: "ci/fns.py:exits"}
      - {name: Hard, category: invoke, inputs: [source], function: "ci/fns.py:hard_exit"}
      - {name: Crash, category: invoke, inputs: [source], function: "ci/fns.py:segfault"}
      - {name: Loop, category: invoke, inputs: [source], function: "ci/fns.py:loop", timeout: 1s}
"""
        ),
        **{
            "ci/fns.py": """
                import ctypes, os, sys
                def good(params, context):
                    print("hello from", params["who"])
                    return {"Greeting": "hi " + params["who"], "Count": 3}
                def raises(params):
                    raise RuntimeError("kaboom")
                def exits(params):
                    sys.exit(4)
                def hard_exit(params):
                    os._exit(7)
                def segfault(params):
                    ctypes.string_at(0)
                def loop(params):
                    while True:
                        pass
            """
        },
    )
    engine, state = await run_once(repo)
    call = state.stage("Call")
    assert call.action("Good").status == ev.SUCCEEDED
    assert call.action("Good").output_variables == {"Greeting": "hi Ada Baker", "Count": "3"}
    assert "RuntimeError: kaboom" in call.action("Raises").error["message"]
    assert "sys.exit(4)" in call.action("Exits").error["message"]
    assert "code 7" in call.action("Hard").error["message"]
    assert "SIGSEGV" in call.action("Crash").error["message"]
    assert call.action("Loop").error["type"] == ev.TIMED_OUT
    lines = [line.text for line in engine.store.logs(state.id, "Call", "Good")]
    assert "hello from Ada Baker" in lines


async def test_stop_abandon_and_retry(make_repo: Callable[..., Any], engine_kit: Any, until: Any) -> None:
    repo = make_repo(
        pipeline(
            """
  - name: Build
    actions:
      - {name: Quick, category: build, run: "echo quick"}
      - {name: Slow, category: build, run: "test -f $BAKERY_WORKSPACE/../../../retry-ok || sleep 30"}
  - name: Deploy
    actions:
      - {name: Ship, category: deploy, run: "echo shipped"}
"""
        )
    )
    kit = await engine_kit(repo, grace=0.5)
    engine = kit.engine
    ex = await kit.execution()
    await until(lambda: ex.state.action("Build", "Slow").status == ev.IN_PROGRESS)
    await asyncio.sleep(0.3)
    await engine.stop(ex.run_id, mode="abandon", comment="wrong commit")
    state = await engine.wait(ex.run_id)
    assert state.status == ev.STOPPED
    assert state.stage("Build").status == ev.STOPPED
    assert state.action("Build", "Slow").status == ev.ABANDONED
    assert state.action("Build", "Quick").status == ev.SUCCEEDED
    assert state.stop["comment"] == "wrong commit"

    (engine.run_dir(ex.run_id) / "retry-ok").write_text("")
    with pytest.raises(ControlError, match="no stage"):
        await engine.retry(ex.run_id, "Nope")
    await engine.retry(ex.run_id, "Build")
    state = await engine.wait(ex.run_id)
    await engine.close()
    assert state.status == ev.SUCCEEDED, state.to_json()
    assert state.action("Build", "Quick").attempt == 1  # FAILED_ACTIONS keeps what passed
    assert state.action("Build", "Slow").attempt == 2
    assert state.stage("Deploy").status == ev.SUCCEEDED


async def test_retry_refused_when_definition_changed(make_repo: Callable[..., Any]) -> None:
    repo = make_repo(pipeline("  - name: B\n    actions:\n      - {name: X, category: build, run: 'exit 1'}\n"))
    engine, state = await run_once(repo)
    repo.write("bakery.yaml", pipeline("  - name: B\n    actions:\n      - {name: X, category: build, run: 'exit 0'}\n"))
    engine2 = Engine(repo.path, repo.path / ".git" / "bakery-test")
    await engine2.start()
    engine2.register(load_pipeline(repo.path / "bakery.yaml"), "bakery.yaml")
    with pytest.raises(ControlError, match="pipeline changed"):
        await engine2.retry(state.id, "B")
    await engine2.close()


async def test_missing_or_short_secret_fails_clearly(make_repo: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(
        pipeline(
            "  - name: B\n    actions:\n      - {name: X, category: build, env: {T: '#{secrets.TOKEN}'}, run: 'echo $T'}\n",
            head="secrets:\n  - {name: TOKEN, env: BAKERY_TEST_TOKEN}\n",
        )
    )
    monkeypatch.delenv("BAKERY_TEST_TOKEN", raising=False)
    _, state = await run_once(repo)
    assert state.status == ev.FAILED and "not set" in state.error["message"]
    monkeypatch.setenv("BAKERY_TEST_TOKEN", "short")
    _, state = await run_once(repo)
    assert state.status == ev.FAILED and "shorter than 8" in state.error["message"]
    monkeypatch.setenv("BAKERY_TEST_TOKEN", "a-long-enough-secret")
    engine, state = await run_once(repo)
    assert state.status == ev.SUCCEEDED
    assert [line.text for line in engine.store.logs(state.id, "B", "X", attempt=1) if line.stream == "stdout"] == ["***"]
