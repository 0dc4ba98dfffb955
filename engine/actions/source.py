"""Source: a clean copy of the execution's commit, and the commit's facts as variables."""

from __future__ import annotations

import asyncio
import tarfile

from engine import events as ev
from engine.actions.base import ActionContext, Outcome
from engine.gitinfo import GitError, export_tree


def source_variables(commit: dict[str, str]) -> dict[str, str]:
    return {
        "CommitId": commit.get("id", ""),
        "ShortCommitId": commit.get("id", "")[:8],
        "BranchName": commit.get("branch", ""),
        "CommitMessage": commit.get("message", ""),
        "AuthorName": commit.get("author", ""),
        "AuthorEmail": commit.get("email", ""),
        "AuthorDate": commit.get("date", ""),
        "RepositoryName": commit.get("repository", ""),
    }


async def run(ctx: ActionContext) -> Outcome:
    commit_id = ctx.commit.get("id")
    if not commit_id:
        return Outcome.fail(ev.CONFIGURATION_ERROR, "the execution has no commit to check out")
    ctx.log(f"checking out {commit_id[:8]} ({ctx.commit.get('branch') or 'detached'})")
    variables = source_variables(ctx.commit)
    for artifact in ctx.action.outputs:
        dest = ctx.artifacts_dir / artifact.name
        try:
            count = await asyncio.to_thread(export_tree, ctx.repo, commit_id, dest)
        except (GitError, OSError, tarfile.TarError) as exc:  # TarError: a link leaving the tree
            return Outcome.fail(ev.JOB_FAILED, f"cannot check out {commit_id[:8]}: {exc}")
        ctx.log(f"artifact {artifact.name}: {count} files")
    return Outcome.ok(variables)
