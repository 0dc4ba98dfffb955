"""Build, test and deploy actions: a bash script in a fresh copy of the first input artifact."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from engine import events as ev
from engine.actions.artifacts import prepare_workspace
from engine.actions.base import ActionContext, Outcome
from engine.process import ChildProcess, ProcessError, ProcessResult
from engine.variables import UnresolvedVariable, resolve, resolve_shell, resolve_shell_env

BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]
_OUTPUT_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")

LOG_LIMIT_ENV = "BAKERY_LOG_LIMIT"
DEFAULT_LOG_LIMIT = 64 * 2**20
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)


def log_limit() -> int:
    """Bytes of output stored per action: `$BAKERY_LOG_LIMIT` (`4M`, `512K`, `1G`) or 64 MiB.

    Past the limit the output is drained and dropped (the action keeps running), as GitLab
    does; an unreadable value falls back to the default rather than failing every action.
    """
    m = _SIZE.match(os.environ.get(LOG_LIMIT_ENV, ""))
    if not m or int(m.group(1)) <= 0:
        return DEFAULT_LOG_LIMIT
    return int(m.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m.group(2).lower()]


def base_env(ctx: ActionContext) -> dict[str, str]:
    """The environment every child of an action gets: the user's, plus Bakery's facts."""
    env = dict(os.environ)
    env.update(ctx.env_cookies)
    env.update(
        {
            "CI": "true",
            "BAKERY": "1",
            "BAKERY_STAGE": ctx.stage,
            "BAKERY_ACTION": ctx.action.name,
            "BAKERY_ATTEMPT": str(ctx.attempt),
            "BAKERY_WORKSPACE": str(ctx.workspace),
            "BAKERY_COMMIT": str(ctx.commit.get("id", "")),
            "BAKERY_BRANCH": str(ctx.commit.get("branch", "")),
        }
    )
    for name, path in ctx.inputs.items():
        env[f"BAKERY_INPUT_{name.upper()}"] = str(path)
    return env


def read_output_variables(path: Path, limit: int = 1 << 20) -> dict[str, str]:
    """KEY=VALUE lines an action wrote to $BAKERY_OUTPUT (last one wins)."""
    if not path.is_file():
        return {}
    text = path.read_bytes()[:limit].decode("utf-8", "replace")
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _OUTPUT_LINE.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def describe_failure(result: ProcessResult, timeout: float | None) -> Outcome:
    if result.end_reason == "timeout":
        return Outcome.fail(
            ev.TIMED_OUT,
            f"timed out after {timeout:g}s; ended with {result.killed_with or 'SIGTERM'}",
            exit_code=result.exit_code,
            signal=result.killed_with or result.signal,
        )
    if result.end_reason == "stopped":
        return Outcome(
            ev.ABANDONED,
            {"type": ev.INTERRUPTED, "message": f"stopped with {result.killed_with or 'SIGTERM'}"},
            exit_code=result.exit_code,
            signal=result.killed_with or result.signal,
        )
    if result.signal:
        return Outcome.fail(
            ev.JOB_FAILED, f"killed by {result.signal}", signal=result.signal
        )
    return Outcome.fail(
        ev.JOB_FAILED, f"exit code {result.exit_code}", exit_code=result.exit_code
    )


async def run_child(
    ctx: ActionContext, argv: list[str], env: dict[str, str], timeout: float | None = None
) -> ProcessResult:
    """Run one child for the action; cancelling this (abandon) stops its whole tree."""
    cookie = ("BAKERY_JOB_ID", f"{ctx.run_id}.{ctx.stage}.{ctx.action.name}.{ctx.attempt}")
    # shielded: a stop that lands while the child starts must not leave its tree behind
    spawning = asyncio.ensure_future(ChildProcess.spawn(
        argv,
        cwd=ctx.workspace,
        env=env,
        cookie=cookie,
        on_output=ctx.on_output,
        masker=ctx.masker,
        grace=ctx.grace,
        max_log_bytes=log_limit(),
        throttle=ctx.recorder.congested,
        on_chunk=ctx.on_chunk,
    ))
    try:
        proc = await asyncio.shield(spawning)
        return await proc.wait(timeout=timeout or ctx.action.timeout)
    except asyncio.CancelledError:
        # Abandoned (a stop, bakery closing), maybe while the child was still starting: end
        # the whole tree (TERM, grace, KILL, sweep) and report how it ended, so the action
        # records the signal that ended it.
        proc = await spawning
        await asyncio.shield(proc.stop(ctx.grace))
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return await asyncio.shield(proc.wait())


async def run(ctx: ActionContext) -> Outcome:
    action = ctx.action
    first = ctx.inputs.get(action.inputs[0]) if action.inputs else None
    await asyncio.to_thread(prepare_workspace, first, ctx.workspace)
    try:
        script = resolve_shell(action.run or "", ctx.scope)  # shown in the log
        # what runs: values travel in the environment and never become script text
        run_script, ref_env = resolve_shell_env(action.run or "", ctx.scope)
        env_values = {k: resolve(v, ctx.scope) for k, v in action.env.items()}
    except UnresolvedVariable as exc:
        return Outcome.fail(ev.CONFIGURATION_ERROR, str(exc))
    output_file = ctx.run_dir / "outputs" / f"{ctx.stage}.{action.name}.{ctx.attempt}.env"
    output_file.parent.mkdir(parents=True, exist_ok=True)
    output_file.unlink(missing_ok=True)
    env = base_env(ctx)
    env.update(env_values)
    env.update(ref_env)
    env["BAKERY_OUTPUT"] = str(output_file)
    for i, line in enumerate(ctx.masker.mask(script).rstrip("\n").splitlines() or [""]):
        ctx.log(("$ " if i == 0 else "  ") + line)
    try:
        result = await run_child(ctx, [*BASH, run_script], env)
    except ProcessError as exc:
        return Outcome.fail(ev.JOB_FAILED, str(exc))
    variables = {k: ctx.masker.mask(v) for k, v in read_output_variables(output_file).items()}
    output_file.unlink(missing_ok=True)  # it may hold a secret in clear; the masked copy is kept
    if result.truncated:
        ctx.log("log truncated: the action's output passed the log limit")
    if result.exit_code == 0 and result.end_reason == "exited":
        ctx.log(f"exit code 0 in {result.duration:.2f}s")
        return Outcome.ok(variables, exit_code=0)
    outcome = describe_failure(result, action.timeout)
    outcome.output_variables = variables
    ctx.log(f"{outcome.error['message'] if outcome.error else 'failed'} after {result.duration:.2f}s")
    return outcome
