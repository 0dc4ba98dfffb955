"""RepoWatcher on real repositories with real watchfiles: every way git moves a ref is seen."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from watchfiles import Change

from engine.trigger import RefChange, RepoWatcher, _GitFilter, read_refs

Repo = Any  # tests/conftest.py's Repo: .path, .commit(message, **files) -> sha

TIMEOUT = 10.0


class Seen:
    """Collects what a running watcher reports, and waits for what a test expects."""

    def __init__(self, watcher: RepoWatcher) -> None:
        self.watcher = watcher
        self.changes: list[RefChange] = []
        self._new = asyncio.Event()

    async def consume(self) -> None:
        async for change in self.watcher:
            self.changes.append(change)
            self._new.set()

    async def until(self, pred: Callable[[list[RefChange]], bool]) -> list[RefChange]:
        async def wait() -> None:
            while not pred(self.changes):
                self._new.clear()
                await self._new.wait()

        await asyncio.wait_for(wait(), TIMEOUT)
        return self.changes

    def of(self, name: str) -> list[RefChange]:
        return [c for c in self.changes if c.name == name]


@contextlib.asynccontextmanager
async def watching(repo: Repo) -> AsyncIterator[Seen]:
    watcher = RepoWatcher(repo.path, poll_interval=30)  # no safety poll: watchfiles must see it
    watcher.snapshot()
    seen = Seen(watcher)
    task = asyncio.create_task(seen.consume())
    await asyncio.wait_for(watcher.ready.wait(), TIMEOUT)
    try:
        yield seen
    finally:
        watcher.stop()
        await asyncio.wait_for(task, TIMEOUT)


def git(path: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(path), *args], check=True, capture_output=True, text=True
    )
    return proc.stdout.strip()


async def run_git(repo: Repo, *args: str) -> str:
    return await asyncio.to_thread(git, repo.path, *args)


async def commit(repo: Repo, message: str, **files: str) -> str:
    return await asyncio.to_thread(repo.commit, message, **files)


async def test_snapshot_is_the_baseline(make_repo: Callable[..., Repo]) -> None:
    repo = make_repo()
    head = git(repo.path, "rev-parse", "HEAD")
    git(repo.path, "tag", "-a", "v0", "-m", "annotated")
    watcher = RepoWatcher(repo.path)
    refs = watcher.snapshot()
    assert refs == {"refs/heads/main": head, "refs/tags/v0": head}  # annotated tag peeled
    assert read_refs(repo.path) == refs
    async with watching(repo) as seen:
        await asyncio.sleep(0.3)
        assert seen.changes == []  # existing refs never start anything


async def test_commit_amend_reset_tag_and_branch_are_seen(make_repo: Callable[..., Repo]) -> None:
    repo = make_repo()
    first = git(repo.path, "rev-parse", "HEAD")
    async with watching(repo) as seen:
        second = await commit(repo, "second", a="1")
        await seen.until(lambda cs: any(c.new_sha == second for c in cs))

        await run_git(repo, "commit", "--amend", "-q", "-m", "second, amended")
        amended = await run_git(repo, "rev-parse", "HEAD")
        await seen.until(lambda cs: any(c.new_sha == amended for c in cs))

        await run_git(repo, "reset", "-q", "--hard", "HEAD~1")
        await seen.until(lambda cs: cs[-1].new_sha == first)

        await run_git(repo, "tag", "v1")
        await seen.until(lambda cs: any(c.kind == "tag" for c in cs))

        await run_git(repo, "branch", "feature/x")
        await seen.until(lambda cs: any(c.name == "feature/x" for c in cs))

    main = seen.of("main")
    assert [(c.old_sha, c.new_sha) for c in main] == [
        (first, second),
        (second, amended),
        (amended, first),  # a reset moves the ref too: that is a change
    ]
    assert all(c.kind == "branch" and c.ref == "refs/heads/main" for c in main)
    (tag,) = seen.of("v1")
    assert (tag.kind, tag.ref, tag.old_sha, tag.new_sha) == ("tag", "refs/tags/v1", None, first)
    (branch,) = seen.of("feature/x")
    assert (branch.kind, branch.old_sha, branch.new_sha) == ("branch", None, first)


async def test_merge_and_packed_refs(make_repo: Callable[..., Repo]) -> None:
    repo = make_repo()
    git(repo.path, "checkout", "-q", "-b", "topic")
    topic = repo.commit("on topic", t="t")
    git(repo.path, "checkout", "-q", "main")
    repo.commit("on main", m="m")
    git(repo.path, "pack-refs", "--all")  # refs now live in packed-refs only
    async with watching(repo) as seen:
        await run_git(repo, "merge", "-q", "--no-edit", "topic")
        merged = await run_git(repo, "rev-parse", "HEAD")
        await seen.until(lambda cs: any(c.new_sha == merged for c in cs))
        await asyncio.sleep(0.2)
    assert [c.name for c in seen.changes] == ["main"]  # topic did not move
    assert git(repo.path, "rev-parse", "HEAD^2") == topic


async def test_quick_commits_each_seen_or_reported_as_skipped(
    make_repo: Callable[..., Repo],
) -> None:
    """Five commits in about two seconds: each sha is either reported or named as skipped."""
    repo = make_repo()
    async with watching(repo) as seen:
        shas = []
        for i in range(5):
            shas.append(await commit(repo, f"quick {i}", q=str(i)))
            await asyncio.sleep(0.3)
        await seen.until(lambda cs: any(c.new_sha == shas[-1] for c in cs))
    reported = [c.new_sha for c in seen.changes]
    assert reported[-1] == shas[-1]
    covered = {s for c in seen.changes for s in (c.new_sha, *c.skipped)}
    assert covered == set(shas)
    assert len(set(reported)) == len(reported)


async def test_burst_reports_the_newest_and_says_so(make_repo: Callable[..., Repo]) -> None:
    """Several moves between two looks: one change for the newest, the rest listed."""
    repo = make_repo()
    watcher = RepoWatcher(repo.path)
    watcher.snapshot()
    shas = [repo.commit(f"burst {i}", b=str(i)) for i in range(4)]  # no look in between
    (change,) = await watcher.check()
    assert change.new_sha == shas[-1]
    assert change.skipped == tuple(shas[:-1])
    assert "newest of 4" in change.describe()
    assert await watcher.check() == []


async def test_stop_before_start_and_run_callback(make_repo: Callable[..., Repo]) -> None:
    repo = make_repo()
    watcher = RepoWatcher(repo.path)
    watcher.snapshot()
    watcher.stop()
    await asyncio.wait_for(watcher.run(lambda c: None), TIMEOUT)  # ends at once

    got: list[RefChange] = []
    watcher = RepoWatcher(repo.path)
    watcher.snapshot()

    async def on_change(change: RefChange) -> None:
        got.append(change)
        watcher.stop()

    task = asyncio.create_task(watcher.run(on_change))
    await asyncio.wait_for(watcher.ready.wait(), TIMEOUT)
    sha = await commit(repo, "via callback", c="1")
    await asyncio.wait_for(task, TIMEOUT)
    assert [c.new_sha for c in got] == [sha]


async def test_writes_elsewhere_in_git_dir_are_ignored(make_repo: Callable[..., Repo]) -> None:
    """Bakery's own state lives in .git/bakery: writing there must not look like a commit."""
    repo = make_repo()
    git_dir = repo.path / ".git"
    keep = _GitFilter(git_dir, git_dir)
    kept = [
        "refs/heads/main",
        "refs/heads/feature/x",
        "refs/tags/v1",
        "HEAD",
        "ORIG_HEAD",
        "packed-refs",
    ]
    dropped = [
        "refs/heads/main.lock",
        "packed-refs.lock",
        "objects/ab/cdef",
        "index",
        "logs/refs/heads/main",
        "bakery/bakery.db-wal",
        "refs/remotes/origin/main",
    ]
    for rel in kept:
        assert keep(Change.added, str(git_dir / rel)), rel
    for rel in dropped:
        assert not keep(Change.added, str(git_dir / rel)), rel
    async with watching(repo) as seen:
        state = Path(git_dir / "bakery")
        state.mkdir()
        for i in range(20):
            (state / f"f{i}").write_text("x")
        await run_git(repo, "status")  # rewrites .git/index
        await asyncio.sleep(0.3)
    assert seen.changes == []
