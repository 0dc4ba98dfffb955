"""Invoke: call a Python function in a child process, so nothing it does can take Bakery down."""

from __future__ import annotations

import asyncio
import json
import sys

from engine import events as ev
from engine.actions.artifacts import prepare_workspace
from engine.actions.base import ActionContext, Outcome
from engine.actions.shell import base_env, describe_failure, run_child
from engine.invoke_child import write_private
from engine.process import ProcessError
from engine.variables import UnresolvedVariable, resolve

DEFAULT_TIMEOUT = 3600.0


async def run(ctx: ActionContext) -> Outcome:
    action = ctx.action
    first = ctx.inputs.get(action.inputs[0]) if action.inputs else None
    await asyncio.to_thread(prepare_workspace, first, ctx.workspace)
    try:
        params = {k: resolve(v, ctx.scope) for k, v in action.params.items()}
        env_values = {k: resolve(v, ctx.scope) for k, v in action.env.items()}
    except UnresolvedVariable as exc:
        return Outcome.fail(ev.CONFIGURATION_ERROR, str(exc))
    io_dir = ctx.run_dir / "invoke" / f"{ctx.stage}.{action.name}.{ctx.attempt}"
    io_dir.mkdir(parents=True, exist_ok=True)
    result_file = io_dir / "result.json"
    result_file.unlink(missing_ok=True)
    spec = {
        "function": action.function,
        "params": params,
        "workspace": str(ctx.workspace),
        "inputs": {name: str(path) for name, path in ctx.inputs.items()},
        "context": {
            "run_id": ctx.run_id,
            "stage": ctx.stage,
            "action": action.name,
            "attempt": ctx.attempt,
            "commit": {k: ctx.commit.get(k) for k in ("id", "branch", "author", "email")},
        },
        "result_file": str(result_file),
    }
    spec_file = io_dir / "spec.json"
    write_private(spec_file, json.dumps(spec))
    ctx.log(f"calling {action.function}({', '.join(f'{k}=…' for k in params)})")
    timeout = action.timeout or DEFAULT_TIMEOUT
    env = {**base_env(ctx), **env_values}
    try:
        result = await run_child(
            ctx, [sys.executable, "-m", "engine.invoke_child", str(spec_file)], env, timeout
        )
    except ProcessError as exc:
        return Outcome.fail(ev.JOB_FAILED, str(exc))
    finally:
        spec_file.unlink(missing_ok=True)  # its params may hold secrets in clear
    reply: dict[str, object] = {}
    try:
        reply = json.loads(result_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        reply = {}
    result_file.unlink(missing_ok=True)  # the returned values are kept masked, not in clear
    if result.end_reason != "exited":
        return describe_failure(result, timeout)
    if "error" in reply:
        return Outcome.fail(ev.JOB_FAILED, ctx.masker.mask(str(reply["error"])), exit_code=result.exit_code)
    if result.exit_code != 0 or "variables" not in reply:
        if result.signal:
            return Outcome.fail(ev.JOB_FAILED, f"the function's process died of {result.signal}", signal=result.signal)
        return Outcome.fail(
            ev.JOB_FAILED,
            f"the function's process exited with code {result.exit_code} before returning",
            exit_code=result.exit_code,
        )
    raw = reply["variables"]
    variables = {str(k): ctx.masker.mask(str(v)) for k, v in (raw or {}).items()} if isinstance(raw, dict) else {}
    ctx.log(f"returned {len(variables)} output variable(s)")
    return Outcome.ok(variables, exit_code=0)
