"""The engine: starts executions, answers control requests, recovers after a crash.

It is pure asyncio and knows nothing of screens. Front ends (the headless CLI, the board)
call its methods and subscribe to its recorder; other bakery processes reach it through the
store's command inbox, which it polls cheaply with `PRAGMA data_version`.
"""

from __future__ import annotations

import asyncio
import os
import secrets as pysecrets
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.actions.base import ActionContext, Outcome
from engine.gitinfo import GitError, commit_info, git_user_email, repo_root
from engine.loader import definition_hash
from engine.masking import SecretTooShort
from engine.model import Pipeline
from engine.recorder import Recorder
from engine.runner import ALL_ACTIONS, FAILED_ACTIONS, Execution
from engine.scheduler import StageGates
from engine.state import PipelineState, RunState, fold
from engine.store import Store, default_state_dir, open_store

if TYPE_CHECKING:
    from engine.indexer import BackgroundIndexer

POLL_INTERVAL = 0.1


class ControlError(Exception):
    """A request the engine refuses (stale approval, retry not allowed...): tell the user."""


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + pysecrets.token_hex(3)


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


_LIVE_ENGINES: set[str] = set()
"""Engines of this process that are started and not closed (by their owner token)."""


def owner_info() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "pid": pid,
        "start": _start_ticks(pid),
        "host": socket.gethostname(),
        "engine": pysecrets.token_hex(4),
    }


def owner_alive(owner: dict[str, Any] | None) -> bool:
    """Whether the engine that drives an execution still runs (in this process or another)."""
    if not owner or owner.get("host") != socket.gethostname():
        return False
    pid = int(owner.get("pid") or 0)
    if pid == os.getpid() and owner.get("engine"):
        return owner["engine"] in _LIVE_ENGINES  # a closed engine of this process is gone
    return pid > 0 and _start_ticks(pid) == owner.get("start")


def whoami(repo: Path | None = None) -> str:
    """Who answers an approval: git user.email when set, else the OS user."""
    if repo is not None:
        email = git_user_email(repo)
        if email:
            return email
    import getpass  # here: most repositories have user.email

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


class Engine:
    """Everything that runs executions for one repository and one store."""

    def __init__(
        self,
        repo: str | Path,
        state_dir: str | Path | None = None,
        *,
        grace: float = 5.0,
        store: Store | None = None,
        index_logs: bool = True,
    ) -> None:
        """`index_logs=False`: no background indexing of finished runs (a process that exits
        as soon as its run ends would only start it; the next search indexes them)."""
        self.repo = repo_root(repo)
        self.state_dir = Path(state_dir) if state_dir else default_state_dir(self.repo)
        self.notices: list[str] = []
        if store is None:
            store, notice = open_store(self.state_dir)
            if notice:
                self.notices.append(notice)
        self.store = store
        self.recorder = Recorder(store)
        self.recorder.on_store_error(self._on_store_error)
        self.grace = grace
        self.executions: dict[str, Execution] = {}
        self.pipelines: dict[str, PipelineState] = {}
        self._gates: dict[str, StageGates] = {}
        self._approvals: dict[str, asyncio.Future[tuple[str, str, str]]] = {}
        self._background: list[asyncio.Task[None]] = []
        self._pipeline_seq = 0
        self._index_logs = index_logs
        self.indexer: BackgroundIndexer | None = None
        self.owner = owner_info()
        self.user = whoami(self.repo)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        last = self.store.events(pipeline_level=True)
        self._pipeline_seq = last[-1].seq if last else 0
        _LIVE_ENGINES.add(self.owner["engine"])
        self._background = [
            asyncio.create_task(self.recorder.flush_forever(), name="bakery-flush"),
            asyncio.create_task(self._poll_forever(), name="bakery-poll"),
        ]
        if self._index_logs:
            from engine.indexer import attach_indexer  # index finished runs' logs for search

            self.indexer = attach_indexer(self.recorder)

    async def close(self, comment: str = "bakery exited", *, keep_approvals: bool = False) -> None:
        """Stop what still runs (TERM, grace, KILL), write everything, end background work.

        With `keep_approvals`, an execution whose only unfinished work is a waiting approval
        is left InProgress (the next start resumes it, its timeout still counting) instead
        of being stopped: `bakery run` must not end someone's pending approval on its way out.
        """
        live = [ex for ex in self.executions.values() if not ex.state.finished]
        for ex in live:
            if keep_approvals and ex.stop_mode is None and ex.state.waits_only_for_approvals:
                ex.detach()
                continue
            await self.stop(ex.run_id, mode="abandon", comment=comment, by=self.user)
        tasks = [ex.task for ex in live if ex.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self.grace + 1.5)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []
        self.recorder.flush()
        _LIVE_ENGINES.discard(self.owner["engine"])

    def _on_store_error(self, message: str) -> None:
        """The store refused a write (disk full...): fail what runs, clearly, never hang."""
        for ex in list(self.executions.values()):
            ex.fail_store(message)

    def run_dir(self, run_id: str) -> Path:
        return self.state_dir / "runs" / run_id

    # -- pipelines -----------------------------------------------------------------------
    def pipeline_state(self, name: str) -> PipelineState:
        if name not in self.pipelines:
            state = PipelineState(name)
            for event in self.store.events(pipeline_level=True):
                state.apply(event)
            self.pipelines[name] = state
        return self.pipelines[name]

    def gates_for(self, pipeline: Pipeline) -> StageGates:
        gates = self._gates.get(pipeline.name)
        if gates is None:
            gates = StageGates(pipeline.execution_mode, self.pipeline_state(pipeline.name))
            self._gates[pipeline.name] = gates
        gates.mode = pipeline.execution_mode
        return gates

    def register(self, pipeline: Pipeline, path: str | Path) -> int:
        """Record this definition; a changed definition gets the next version number."""
        version = self.store.register_pipeline(
            pipeline.name,
            definition_hash(pipeline),
            pipeline.model_dump(mode="json"),
            str(path),
        )
        state = self.pipeline_state(pipeline.name)
        state.version = version
        return version

    # -- executions ----------------------------------------------------------------------
    async def start_execution(
        self,
        pipeline: Pipeline,
        *,
        version: int,
        rev: str = "HEAD",
        branch: str | None = None,
        trigger: dict[str, Any] | None = None,
        variables: dict[str, str] | None = None,
    ) -> Execution:
        """Create an execution on a commit and start driving it."""
        declared = {v.name: v.default for v in pipeline.variables}
        overrides = dict(variables or {})
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise ControlError(
                f"unknown variable(s) {', '.join(unknown)}; the pipeline declares "
                f"{', '.join(sorted(declared)) or 'none'}"
            )
        try:
            commit = await asyncio.to_thread(commit_info, self.repo, rev, branch)
        except GitError as exc:
            raise ControlError(str(exc)) from exc
        run_id = new_run_id()
        self.recorder.emit(
            ev.RUN_CREATED,
            run_id,
            number=0,
            pipeline=pipeline.name,
            pipeline_version=version,
            execution_mode=pipeline.execution_mode.value,
            trigger=trigger or {"type": "StartPipelineExecution", "by": self.user},
            commit=commit,
            variables={**declared, **overrides},
            stages=[
                {
                    "name": s.name,
                    "actions": [
                        {"name": a.name, "category": a.category.value, "run_order": a.run_order}
                        for a in s.actions
                    ],
                }
                for s in pipeline.stages
            ],
            owner=self.owner,
        )
        secret_values, problem = self._read_secrets(pipeline)
        ex = Execution(self, pipeline, run_id, secret_values)
        self.executions[run_id] = ex
        if problem:
            self.recorder.emit(ev.RUN_STATUS, run_id, status=ev.IN_PROGRESS)
            self.recorder.emit(
                ev.RUN_STATUS,
                run_id,
                status=ev.FAILED,
                error={"type": ev.CONFIGURATION_ERROR, "message": problem},
            )
            return ex
        ex.task = asyncio.create_task(self._drive(ex, ex.run()), name=f"run-{run_id}")
        return ex

    def _read_secrets(self, pipeline: Pipeline) -> tuple[dict[str, str], str | None]:
        values: dict[str, str] = {}
        for secret in pipeline.secrets:
            value = os.environ.get(secret.env)
            if value is None:
                return {}, f"secret {secret.name}: environment variable {secret.env} is not set"
            if len(value) < 8:
                return {}, (
                    f"secret {secret.name}: the value of {secret.env} is shorter than 8 "
                    "characters; such a value cannot be masked reliably"
                )
            values[secret.name] = value
        try:
            from engine.masking import Masker

            Masker(values.values())
        except SecretTooShort as exc:
            return {}, str(exc)
        return values, None

    async def _drive(self, ex: Execution, work: Any) -> None:
        try:
            await work
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - recorded as InternalError by the execution
            pass
        finally:
            self.recorder.flush()

    async def wait(self, run_id: str) -> RunState:
        ex = self.executions.get(run_id)
        if ex is not None and ex.task is not None:
            await asyncio.shield(ex.task)
        return self.recorder.states[run_id]

    def state(self, run_id: str) -> RunState | None:
        if run_id in self.recorder.states:
            return self.recorder.states[run_id]
        return self.store.load_run(run_id)

    # -- approvals -----------------------------------------------------------------------
    async def wait_for_approval(self, ctx: ActionContext, spec: dict[str, Any]) -> Outcome:
        state = self.recorder.states[ctx.run_id]
        action = state.action(ctx.stage, ctx.action.name)
        pending = action.approval
        if pending is not None and pending.result is None and action.status == ev.IN_PROGRESS:
            token, expires_at = pending.token, pending.expires_at  # resumed after a restart
        else:
            token = pysecrets.token_urlsafe(12)
            expires_at = time.time() + float(spec["timeout"])
            self.recorder.emit(
                ev.APPROVAL_REQUESTED,
                ctx.run_id,
                stage=ctx.stage,
                action=ctx.action.name,
                token=token,
                message=spec["message"],
                link=spec["link"],
                expires_at=expires_at,
                approvers=spec["approvers"],
                prevent_self_approval=spec["prevent_self_approval"],
                triggered_by=state.trigger.get("by") or state.commit.get("email"),
            )
        future: asyncio.Future[tuple[str, str, str]] = asyncio.get_running_loop().create_future()
        self._approvals[token] = future
        try:
            remaining = max(0.0, (expires_at or time.time()) - time.time())
            result, by, comment = await asyncio.wait_for(future, remaining)
        except TimeoutError:
            return Outcome.fail(ev.TIMED_OUT, "no answer before the approval timed out")
        finally:
            self._approvals.pop(token, None)
        if result == ev.APPROVED:
            ctx.log(f"approved by {by}" + (f": {comment}" if comment else ""))
            return Outcome.ok()
        ctx.log(f"rejected by {by}" + (f": {comment}" if comment else ""))
        return Outcome.fail("Rejected", f"rejected by {by}" + (f": {comment}" if comment else ""))

    def decide(
        self,
        run_id: str,
        stage: str,
        action: str,
        result: str,
        *,
        by: str | None = None,
        comment: str = "",
        token: str | None = None,
    ) -> str:
        """Answer a waiting approval; refuse stale, foreign or repeated answers."""
        if result not in (ev.APPROVED, ev.REJECTED):
            raise ControlError(f"an approval is Approved or Rejected, not {result!r}")
        by = by or self.user
        state = self.recorder.states.get(run_id)
        if state is None:
            raise ControlError(f"execution {run_id} is not driven by this bakery process")
        try:
            a = state.action(stage, action)
        except KeyError:
            raise ControlError(f"execution #{state.number} has no action {stage}/{action}") from None
        approval = a.approval
        if approval is None or a.status != ev.IN_PROGRESS or approval.result is not None:
            if approval is not None and approval.result is not None:
                raise ControlError(
                    f"{stage}/{action} was already {approval.result} by {approval.by}"
                )
            if state.finished:
                raise ControlError(
                    f"execution #{state.number} is {state.status}; its approval cannot be answered"
                )
            raise ControlError(f"no approval waits at {stage}/{action} in execution #{state.number}")
        if token is not None and token != approval.token:
            raise ControlError("that approval request is stale (a newer request replaced it)")
        if approval.approvers and by not in approval.approvers:
            raise ControlError(
                f"{by} may not answer {stage}/{action}; approvers: {', '.join(approval.approvers)}"
            )
        spec = self.executions[run_id].pipeline.stage(stage).action(action)
        if spec.prevent_self_approval and by in {
            state.commit.get("email"),
            state.commit.get("author"),
        }:
            raise ControlError(f"{by} wrote this commit and may not approve it (prevent_self_approval)")
        future = self._approvals.get(approval.token)
        if future is None or future.done():
            raise ControlError(f"the approval at {stage}/{action} is not waiting any more")
        self.recorder.emit(
            ev.APPROVAL_DECIDED,
            run_id,
            stage=stage,
            action=action,
            token=approval.token,
            result=result,
            by=by,
            comment=comment,
        )
        future.set_result((result, by, comment))
        return f"{stage}/{action} of execution #{state.number}: {result} by {by}"

    # -- stop, retry, transitions --------------------------------------------------------
    async def stop(
        self, run_id: str, *, mode: str = "wait", comment: str = "", by: str | None = None
    ) -> str:
        if mode not in ("wait", "abandon"):
            raise ControlError("a stop is 'wait' (let running actions finish) or 'abandon'")
        ex = self.executions.get(run_id)
        state = self.state(run_id)
        if state is None:
            raise ControlError(f"no execution {run_id}")
        if ex is None or state.finished:
            raise ControlError(f"execution #{state.number} is {state.status}; nothing to stop")
        if ex.stop_mode == "abandon" or (ex.stop_mode == mode):
            return f"execution #{state.number} is already stopping"
        self.recorder.emit(
            ev.STOP_REQUESTED, run_id, mode=mode, comment=comment, by=by or self.user
        )
        if state.status != ev.STOPPING:
            self.recorder.emit(ev.RUN_STATUS, run_id, status=ev.STOPPING)
        ex.request_stop(mode)
        await self.gates_for(ex.pipeline).poke()
        return f"stopping execution #{state.number} ({'abandon' if mode == 'abandon' else 'wait'})"

    async def retry(self, run_id: str, stage: str, *, mode: str = FAILED_ACTIONS) -> Execution:
        """Run a failed or stopped stage again, then the stages after it."""
        if mode not in (FAILED_ACTIONS, ALL_ACTIONS):
            raise ControlError("retry mode is FAILED_ACTIONS or ALL_ACTIONS")
        state = self.state(run_id)
        if state is None:
            raise ControlError(f"no execution {run_id}")
        live = self.executions.get(run_id)
        if live is not None and live.task is not None and not live.task.done():
            raise ControlError(f"execution #{state.number} is still running")
        if state.status not in (ev.FAILED, ev.STOPPED):
            raise ControlError(
                f"execution #{state.number} is {state.status}; only a Failed or Stopped one "
                "can be retried"
            )
        try:
            st = state.stage(stage)
        except KeyError:
            raise ControlError(f"execution #{state.number} has no stage {stage!r}") from None
        if st.status not in (ev.FAILED, ev.STOPPED):
            raise ControlError(f"stage {stage} is {st.status or 'not started'}; nothing to retry")
        current = self.pipeline_state(state.pipeline).version
        if current and current != state.pipeline_version:
            raise ControlError(
                f"the pipeline changed since execution #{state.number} "
                f"(version {state.pipeline_version} -> {current}); start a new execution"
            )
        if self.store.newer_run_entered(state.pipeline, state.number, stage):
            raise ControlError(
                f"a newer execution has entered {stage}; retrying #{state.number} is not allowed"
            )
        definition = self.store.pipeline_definition(state.pipeline, state.pipeline_version)
        if definition is None:
            raise ControlError(f"the definition of {state.pipeline} v{state.pipeline_version} is gone")
        pipeline = Pipeline.model_validate(definition)
        secret_values, problem = self._read_secrets(pipeline)
        if problem:
            raise ControlError(problem)
        self.recorder.adopt(state)
        if state.owner != self.owner:
            self.recorder.emit(ev.RUN_OWNER, run_id, **self.owner)
        ex = Execution(self, pipeline, run_id, secret_values)
        self.executions[run_id] = ex
        index = pipeline.stage_index(stage)
        ex.task = asyncio.create_task(
            self._drive(ex, ex.run(index, retry_mode=mode)), name=f"retry-{run_id}"
        )
        return ex

    async def set_transition(
        self, pipeline: str, stage: str, *, enabled: bool, reason: str = "", by: str | None = None
    ) -> str:
        pstate = self.pipeline_state(pipeline)
        if enabled == (stage not in pstate.disabled):
            return f"the transition into {stage} is already {'enabled' if enabled else 'disabled'}"
        event = self.recorder.emit(
            ev.TRANSITION_CHANGED,
            None,
            pipeline=pipeline,
            stage=stage,
            enabled=enabled,
            reason=reason,
            by=by or self.user,
        )
        pstate.apply(event)
        self._pipeline_seq = max(self._pipeline_seq, event.seq)
        gates = self._gates.get(pipeline)
        if gates is not None:
            await gates.poke()
        return f"transition into {stage} {'enabled' if enabled else 'disabled'}"

    # -- crash recovery ------------------------------------------------------------------
    async def recover(self, pipeline: Pipeline | None = None) -> list[str]:
        """Settle executions left unfinished by a bakery that died.

        An execution whose only unfinished work is a waiting approval is adopted and waits
        again (its timeout still counts); any other is marked Failed (Interrupted): it is
        never re-run by itself. Returns what was done, for the user.
        """
        from engine.process import sweep

        notes: list[str] = []
        for summary in self.store.runs(unfinished=True):
            if summary.id in self.executions:
                continue
            state = self.store.load_run(summary.id)
            if state is None or state.finished or owner_alive(state.owner):
                continue
            killed = await asyncio.to_thread(sweep, ("BAKERY_RUN_ID", summary.id))
            if pipeline is not None and self._resumable(state, pipeline):
                self.recorder.adopt(state)
                self.recorder.emit(ev.RUN_OWNER, state.id, **self.owner)
                secret_values, _ = self._read_secrets(pipeline)
                ex = Execution(self, pipeline, state.id, secret_values)
                self.executions[state.id] = ex
                stage_index = next(
                    i for i, s in enumerate(state.stages) if s.status == ev.IN_PROGRESS
                )
                ex.task = asyncio.create_task(
                    self._drive(ex, ex.run(stage_index, resume=True)), name=f"resume-{state.id}"
                )
                notes.append(f"execution #{state.number}: resumed, its approval still waits")
                continue
            self._interrupt(state, len(killed))
            notes.append(f"execution #{state.number}: Failed (Interrupted)")
        return notes

    def _resumable(self, state: RunState, pipeline: Pipeline) -> bool:
        if state.pipeline != pipeline.name:
            return False
        version = self.pipeline_state(pipeline.name).version
        if version != state.pipeline_version:
            return False
        return state.waits_only_for_approvals

    def _interrupt(self, state: RunState, killed: int) -> None:
        pid = (state.owner or {}).get("pid", "?")
        message = f"bakery (pid {pid}) ended while this execution ran; it was not re-run"
        if killed:
            message += f"; {killed} leftover process(es) were killed"
        error = {"type": ev.INTERRUPTED, "message": message}
        self.recorder.adopt(state)
        for stage in state.stages:
            for a in stage.actions:
                if a.status == ev.IN_PROGRESS:
                    self.recorder.emit(
                        ev.ACTION_STATUS,
                        state.id,
                        stage=stage.name,
                        action=a.name,
                        status=ev.FAILED,
                        attempt=a.attempt,
                        error=error,
                    )
            if stage.status == ev.IN_PROGRESS:
                self.recorder.emit(ev.STAGE_STATUS, state.id, stage=stage.name, status=ev.FAILED)
        self.recorder.emit(ev.RUN_STATUS, state.id, status=ev.FAILED, error=error)

    # -- other processes -----------------------------------------------------------------
    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                await self.poll_once()
            except Exception:  # noqa: BLE001 - a bad command must not stop the poller
                continue

    async def poll_once(self) -> None:
        last_event, last_command = self.store.inbox_marks()
        if last_event <= self._pipeline_seq and last_command == 0:
            return
        news = self.store.events(after_seq=self._pipeline_seq, pipeline_level=True)
        if news:
            self._pipeline_seq = news[-1].seq
            for event in news:
                for pstate in self.pipelines.values():
                    pstate.apply(event)
            self.recorder.publish_external(news)
            for gates in self._gates.values():
                await gates.poke()
        live = [
            rid
            for rid, ex in self.executions.items()
            if not ex.state.finished
            # a resumed execution takes answers once its approvals wait again (not before)
            and all(a.approval.token in self._approvals for a in ex.state.pending_approvals())  # type: ignore[union-attr]
        ]
        for command in self.store.take_commands(live):
            try:
                result = await self._execute(command.run_id or "", command.kind, command.payload)
            except ControlError as exc:
                result = f"refused: {exc}"
            self.store.finish_command(command.id, result)

    async def _execute(self, run_id: str, kind: str, payload: dict[str, Any]) -> str:
        if kind in ("approve", "reject"):
            return "ok: " + self.decide(
                run_id,
                payload["stage"],
                payload["action"],
                ev.APPROVED if kind == "approve" else ev.REJECTED,
                by=payload.get("by"),
                comment=payload.get("comment", ""),
            )
        if kind == "stop":
            return "ok: " + await self.stop(
                run_id,
                mode=payload.get("mode", "wait"),
                comment=payload.get("comment", ""),
                by=payload.get("by"),
            )
        raise ControlError(f"unknown command {kind!r}")


def load_state(store: Store, run_id: str) -> RunState | None:
    return fold(store.events(run_id))
