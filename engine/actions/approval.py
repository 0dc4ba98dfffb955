"""Manual approval: ask a person, wait for Approved or Rejected, fail on timeout."""

from __future__ import annotations

from engine import events as ev
from engine.actions.base import ActionContext, Outcome
from engine.variables import UnresolvedVariable, resolve

DEFAULT_TIMEOUT = 7 * 86400.0


async def run(ctx: ActionContext) -> Outcome:
    action = ctx.action
    try:
        message = resolve(action.message or "", ctx.scope)
        link = resolve(action.link or "", ctx.scope)
    except UnresolvedVariable as exc:
        return Outcome.fail(ev.CONFIGURATION_ERROR, str(exc))
    if ctx.wait_for_approval is None:
        return Outcome.fail(ev.CONFIGURATION_ERROR, "approvals need an engine to wait on")
    return await ctx.wait_for_approval(
        ctx,
        {
            "message": ctx.masker.mask(message),
            "link": link,
            "timeout": action.timeout or DEFAULT_TIMEOUT,
            "approvers": list(action.approvers),
            "prevent_self_approval": action.prevent_self_approval,
        },
    )
