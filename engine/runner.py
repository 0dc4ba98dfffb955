"""One execution: stages in order, run_order groups one after another, a group in parallel.

An `Execution` never stores status of its own: it emits events and reads its state back from
the recorder's fold, so what it decides is exactly what the store (and the board) shows.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.actions import shell, source
from engine.actions.artifacts import ArtifactError, collect
from engine.actions.base import ActionContext, Outcome
from engine.masking import Masker
from engine.model import Action, Category, Pipeline, Stage
from engine.state import RunState

if TYPE_CHECKING:
    from engine.core import Engine


async def _invoke(ctx: ActionContext) -> Outcome:
    from engine.actions import invoke  # imported by the pipelines that have such an action

    return await invoke.run(ctx)


async def _approval(ctx: ActionContext) -> Outcome:
    from engine.actions import approval  # as _invoke

    return await approval.run(ctx)


RUNNERS: dict[Category, Callable[[ActionContext], Awaitable[Outcome]]] = {
    Category.SOURCE: source.run,
    Category.BUILD: shell.run,
    Category.TEST: shell.run,
    Category.DEPLOY: shell.run,
    Category.INVOKE: _invoke,
    Category.APPROVAL: _approval,
}

FAILED_ACTIONS = "FAILED_ACTIONS"
ALL_ACTIONS = "ALL_ACTIONS"


class Execution:
    """Drives one execution of a pipeline through the stage gates."""

    def __init__(
        self, engine: Engine, pipeline: Pipeline, run_id: str, secrets: dict[str, str]
    ) -> None:
        self.engine = engine
        self.pipeline = pipeline
        self.run_id = run_id
        self.secrets = secrets
        self.masker = Masker(secrets.values())
        self.halted = False
        self.stop_mode: str | None = None
        self.running: dict[str, asyncio.Task[Outcome]] = {}
        self.task: asyncio.Task[None] | None = None
        self.store_error: str | None = None  # the store refused a write: see fail_store
        self.detached = False  # left InProgress for the next start: see detach

    # -- facts ---------------------------------------------------------------------------
    @property
    def state(self) -> RunState:
        return self.engine.recorder.states[self.run_id]

    @property
    def number(self) -> int:
        return self.state.number

    @property
    def run_dir(self) -> Path:
        return self.engine.run_dir(self.run_id)

    def emit(self, type_: str, **data: Any) -> ev.Event:
        return self.engine.recorder.emit(type_, self.run_id, **data)

    # -- gate callbacks ------------------------------------------------------------------
    def supersede(self, by: Any) -> None:
        if self.halted:
            return
        self.halted = True
        self.emit(
            ev.RUN_STATUS,
            status=ev.SUPERSEDED,
            error={
                "type": "Superseded",
                "message": f"superseded by execution #{by.number} while waiting",
            },
        )

    def announce_wait(self, stage: str, reason: str) -> None:
        self.emit(ev.STAGE_WAITING, stage=stage, reason=reason)

    # -- the run -------------------------------------------------------------------------
    async def run(
        self, start: int = 0, *, retry_mode: str | None = None, resume: bool = False
    ) -> None:
        """Run stages from `start`; `retry_mode` reruns that stage, `resume` continues it."""
        gates = self.engine.gates_for(self.pipeline)
        try:
            if self.state.status != ev.IN_PROGRESS:
                self.emit(ev.RUN_STATUS, status=ev.IN_PROGRESS)
            for index in range(start, len(self.pipeline.stages)):
                stage = self.pipeline.stages[index]
                if self.store_error is not None:
                    self._finish_store_failed()
                    return
                if not await gates.enter(self, stage.name):
                    if self.stop_mode:
                        self._finish_stopped()
                    return
                try:
                    first = index == start
                    result = await self._run_stage(
                        stage,
                        retry_mode=retry_mode if first else None,
                        resume=resume and first,
                    )
                finally:
                    await gates.leave(self, stage.name)
                if result == ev.STOPPED:
                    self._finish_stopped()
                    return
                if result == ev.FAILED:
                    failed = [
                        a
                        for a in self.state.stage(stage.name).actions
                        if a.status in (ev.FAILED, ev.ABANDONED)
                    ]
                    first_error = failed[0].error if failed and failed[0].error else None
                    message = (
                        f"stage {stage.name} failed: {failed[0].name}: {first_error['message']}"
                        if first_error
                        else f"stage {stage.name} failed"
                    )
                    self.emit(
                        ev.RUN_STATUS,
                        status=ev.FAILED,
                        error={
                            "type": first_error["type"] if first_error else ev.JOB_FAILED,
                            "message": message,
                        },
                    )
                    return
                if self.stop_mode:
                    self._finish_stopped()
                    return
            self.emit(ev.RUN_STATUS, status=ev.SUCCEEDED)
        except asyncio.CancelledError:
            if not self.state.finished and not self.detached:
                self._finish_stopped()
            raise
        except Exception as exc:  # noqa: BLE001 - never let a bug leave a run InProgress
            self.engine.recorder.flush()
            self.emit(
                ev.RUN_STATUS,
                status=ev.FAILED,
                error={"type": "InternalError", "message": f"{type(exc).__name__}: {exc}"},
            )
            raise

    def _finish_stopped(self) -> None:
        if self.state.finished:
            return
        for s in self.state.stages:
            if s.status == ev.IN_PROGRESS:
                self.emit(ev.STAGE_STATUS, stage=s.name, status=ev.STOPPED)
        self.emit(ev.RUN_STATUS, status=ev.STOPPED)

    async def _run_stage(self, stage: Stage, *, retry_mode: str | None, resume: bool) -> str:
        st = self.state.stage(stage.name)
        reset: list[str] = []
        if retry_mode == ALL_ACTIONS:
            reset = [a.name for a in stage.actions]
        elif retry_mode == FAILED_ACTIONS:
            reset = [a.name for a in st.actions if a.status != ev.SUCCEEDED]
        if not resume:
            self.emit(
                ev.STAGE_STATUS,
                stage=stage.name,
                status=ev.IN_PROGRESS,
                attempt=st.attempt + 1,
                reset=reset,
                retry_mode=retry_mode,
            )
        failed = False
        for _order, group in stage.groups():
            if self.stop_mode:
                break
            todo = [a for a in group if st.action(a.name).status != ev.SUCCEEDED]
            if not todo:
                continue
            tasks = {
                a.name: asyncio.create_task(self._run_action(stage, a), name=f"{stage.name}/{a.name}")
                for a in todo
            }
            self.running = tasks
            outcomes = await asyncio.gather(*tasks.values(), return_exceptions=True)
            self.running = {}
            for outcome in outcomes:
                if isinstance(outcome, BaseException) or outcome.status != ev.SUCCEEDED:
                    failed = True
            if failed:
                break
        if self.stop_mode and (failed or any(a.status != ev.SUCCEEDED for a in st.actions)):
            self.emit(ev.STAGE_STATUS, stage=stage.name, status=ev.STOPPED)
            return ev.STOPPED
        status = ev.FAILED if failed else ev.SUCCEEDED
        self.emit(ev.STAGE_STATUS, stage=stage.name, status=status)
        return status

    async def _run_action(self, stage: Stage, action: Action) -> Outcome:
        current = self.state.action(stage.name, action.name)
        resuming = current.status == ev.IN_PROGRESS and current.approval is not None
        attempt = current.attempt if resuming else current.attempt + 1
        if not resuming:
            self.emit(
                ev.ACTION_STATUS,
                stage=stage.name,
                action=action.name,
                status=ev.IN_PROGRESS,
                attempt=attempt,
                category=action.category.value,
            )
        ctx = self._context(stage, action, attempt)
        try:
            outcome = await RUNNERS[action.category](ctx)
            if outcome.status == ev.SUCCEEDED:
                outcome = await self._store_outputs(ctx, outcome)
        except asyncio.CancelledError:
            if self.detached:
                raise  # nothing recorded: the next start resumes the waiting approval
            outcome = Outcome(
                ev.ABANDONED,
                {"type": ev.INTERRUPTED, "message": "abandoned by a stop"},
            )
            outcome = self._store_failure(outcome)
            self._record_outcome(stage, action, outcome)
            return outcome
        except Exception as exc:  # noqa: BLE001 - an action bug fails the action, not bakery
            ctx.log("internal error:\n" + "".join(traceback.format_exception(exc)))
            outcome = Outcome.fail("InternalError", f"{type(exc).__name__}: {exc}")
        outcome = self._store_failure(outcome)
        self._record_outcome(stage, action, outcome)
        return outcome

    def _store_failure(self, outcome: Outcome) -> Outcome:
        """An action that ran while the store refused writes fails: its record is incomplete."""
        if self.store_error is None:
            return outcome
        return Outcome.fail(
            "InternalError",
            f"{self.store_error}; the action was stopped",
            exit_code=outcome.exit_code,
            signal=outcome.signal,
        )

    def detach(self) -> None:
        """Let go of an execution that only waits for approvals, recording nothing.

        It stays InProgress with its approvals pending; its owner (this process) is about
        to exit, so the next start resumes it (Engine.recover).
        """
        self.detached = True
        if self.task is not None:
            self.task.cancel()

    def fail_store(self, message: str) -> None:
        """The store refused a write (disk full...): stop the running actions, fail them."""
        if self.store_error is not None or self.state.finished:
            return
        self.store_error = message
        for task in list(self.running.values()):
            task.cancel()

    def _finish_store_failed(self) -> None:
        if self.state.finished:
            return
        for s in self.state.stages:
            if s.status == ev.IN_PROGRESS:
                self.emit(ev.STAGE_STATUS, stage=s.name, status=ev.FAILED)
        self.emit(
            ev.RUN_STATUS,
            status=ev.FAILED,
            error={"type": "InternalError", "message": str(self.store_error)},
        )

    def _record_outcome(self, stage: Stage, action: Action, outcome: Outcome) -> None:
        data: dict[str, Any] = {
            "stage": stage.name,
            "action": action.name,
            "status": outcome.status,
            "attempt": self.state.action(stage.name, action.name).attempt,
            "output_variables": outcome.output_variables,
        }
        if outcome.error:
            data["error"] = outcome.error
        if outcome.exit_code is not None:
            data["exit_code"] = outcome.exit_code
        if outcome.signal:
            data["signal"] = outcome.signal
        self.emit(ev.ACTION_STATUS, **data)

    async def _store_outputs(self, ctx: ActionContext, outcome: Outcome) -> Outcome:
        if ctx.action.category in (Category.SOURCE, Category.APPROVAL):
            return outcome
        for artifact in ctx.action.outputs:
            dest = ctx.artifacts_dir / artifact.name
            try:
                files, size = await asyncio.to_thread(collect, ctx.workspace, artifact, dest)
            except (ArtifactError, OSError) as exc:
                return Outcome.fail(ev.CONFIGURATION_ERROR, str(exc))
            if files == 0:
                ctx.log(f"artifact {artifact.name}: no file matched {artifact.paths or ['**/*']}")
            else:
                ctx.log(f"artifact {artifact.name}: {files} files, {size} bytes")
            self.emit(
                ev.ARTIFACT_STORED,
                stage=ctx.stage,
                action=ctx.action.name,
                name=artifact.name,
                files=files,
                bytes=size,
            )
        return outcome

    def scope(self) -> dict[str, dict[str, str]]:
        """Every variable an action may reference, from the execution's state."""
        state = self.state
        scope: dict[str, dict[str, str]] = {
            "variables": dict(state.variables),
            "secrets": dict(self.secrets),
            "codepipeline": {
                "PipelineExecutionId": state.id,
                "PipelineName": state.pipeline,
                "PipelineVersion": str(state.pipeline_version),
                "ExecutionNumber": str(state.number),
            },
        }
        for stage in self.pipeline.stages:
            for action in stage.actions:
                if action.namespace:
                    a = state.action(stage.name, action.name)
                    if a.status == ev.SUCCEEDED:
                        scope[action.namespace] = dict(a.output_variables)
        return scope

    def _context(self, stage: Stage, action: Action, attempt: int) -> ActionContext:
        artifacts = self.run_dir / "artifacts"
        return ActionContext(
            run_id=self.run_id,
            stage=stage.name,
            action=action,
            attempt=attempt,
            repo=self.engine.repo,
            run_dir=self.run_dir,
            workspace=self.run_dir / "work" / _safe(stage.name) / _safe(action.name),
            inputs={name: artifacts / name for name in action.inputs},
            scope=self.scope(),
            secrets=self.secrets,
            masker=self.masker,
            recorder=self.engine.recorder,
            commit=self.state.commit,
            env_cookies={"BAKERY_RUN_ID": self.run_id},
            grace=self.engine.grace,
            wait_for_approval=self.engine.wait_for_approval,
        )

    # -- control -------------------------------------------------------------------------
    def request_stop(self, mode: str) -> None:
        """Stop and wait lets running actions finish; abandon ends them now."""
        self.stop_mode = mode
        self.halted = True
        for name, task in list(self.running.items()):
            a = self._running_action(name)
            if mode == "abandon" or (a is not None and a.category == Category.APPROVAL):
                task.cancel()

    def _running_action(self, name: str) -> Action | None:
        for stage in self.pipeline.stages:
            for action in stage.actions:
                if action.name == name and self.state.stage(stage.name).status == ev.IN_PROGRESS:
                    return action
        return None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
