"""See refs move in a git repository: new commits, amends, resets, merges, new branches and tags.

`RepoWatcher` compares snapshots of the repository's refs (branch -> commit, tag -> commit)
and reports every ref that is new or points somewhere else as a `RefChange`. Snapshots are
taken when watchfiles reports a write under `.git` (debounce 50 ms, step 10 ms: a commit is
seen a few ms after `git commit` returns) and, as a safety net for missed events, once per
`poll_interval`. Comparing snapshots (rather than decoding file events) makes every way git
moves a ref look the same: commit, `--amend`, `reset --hard`, pull, `update-ref`, packed refs.

watchfiles' default filter drops everything under `.git`, so we pass our own. We watch
`.git/refs` recursively and `.git` itself non-recursively (HEAD, ORIG_HEAD, packed-refs) -
not all of `.git`, because Bakery's own state (SQLite, workspaces) lives in `.git/bakery`
and would wake the watcher on every write.

When git moved a branch several times between two snapshots, only the newest commit is
reported (CodePipeline also starts one execution for one push); the tips in between are read
from the branch's reflog and listed in `RefChange.skipped`, so the caller can say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import subprocess
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from watchfiles import Change, awatch

from engine.gitinfo import GitError, open_repo

__all__ = ["RefChange", "RepoWatcher", "git_dirs", "read_refs"]

ZERO_SHA = "0" * 40
HEADS = "refs/heads/"
TAGS = "refs/tags/"
_TOP_LEVEL_FILES = frozenset({"HEAD", "ORIG_HEAD", "packed-refs"})

RefKind = Literal["branch", "tag"]


@dataclass(frozen=True, slots=True)
class RefChange:
    """A branch or tag that is new or points at another commit than at the last look."""

    kind: RefKind
    name: str  # short name: "main", "feature/x", "v1.0"
    old_sha: str | None  # None: the ref is new
    new_sha: str  # for a tag, the commit it points at (annotated tags are peeled)
    skipped: tuple[str, ...] = ()  # tips git wrote in between that were never seen as tips

    @property
    def ref(self) -> str:
        return (HEADS if self.kind == "branch" else TAGS) + self.name

    def describe(self) -> str:
        """One line for people: what moved, and from where."""
        short = self.new_sha[:8]
        if self.kind == "tag":
            text = f"tag {self.name} -> {short}" + ("" if self.old_sha is None else " (moved)")
        elif self.old_sha is None:
            text = f"new branch {self.name} at {short}"
        else:
            text = f"{self.name}: {self.old_sha[:8]} -> {short}"
        if self.skipped:
            text += f" (newest of {len(self.skipped) + 1} moves seen at once)"
        return text


def git_dirs(repo: str | Path) -> tuple[Path, Path, Path]:
    """(working tree, git dir, common dir): refs live in the common dir, HEAD in the git dir."""
    r = open_repo(str(Path(repo).resolve()))
    root = Path(r.working_tree_dir or r.git_dir)
    git_dir = Path(r.git_dir)
    common = Path(getattr(r, "common_dir", None) or git_dir)
    return root, git_dir, common


def read_refs(root: str | Path) -> dict[str, str]:
    """Every branch and tag that names a commit: full ref name -> commit sha."""
    fmt = "%(refname)%00%(objecttype)%00%(objectname)%00%(*objecttype)%00%(*objectname)"
    proc = subprocess.run(
        ["git", "-C", str(root), "for-each-ref", f"--format={fmt}", "refs/heads", "refs/tags"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
    )
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip()
        raise GitError(message or f"git for-each-ref failed in {root}")
    refs: dict[str, str] = {}
    for line in proc.stdout.decode("utf-8", "surrogateescape").splitlines():
        parts = line.split("\0")
        if len(parts) != 5:
            continue
        name, kind, sha, peeled_kind, peeled = parts
        if kind == "tag":  # annotated tag: what it points at
            kind, sha = peeled_kind, peeled
        if kind == "commit" and sha:
            refs[name] = sha
    return refs


def _split(ref: str) -> tuple[RefKind, str] | None:
    if ref.startswith(HEADS):
        return "branch", ref[len(HEADS) :]
    if ref.startswith(TAGS):
        return "tag", ref[len(TAGS) :]
    return None


class _GitFilter:
    """Keep ref files and HEAD/ORIG_HEAD/packed-refs; drop *.lock, objects/ and the rest."""

    def __init__(self, git_dir: Path, common_dir: Path) -> None:
        self.bases = sorted({str(git_dir), str(common_dir)}, key=len, reverse=True)

    def __call__(self, change: Change, path: str) -> bool:
        if path.endswith(".lock"):
            return False
        for base in self.bases:
            if path.startswith(base + os.sep):
                rel = path[len(base) + 1 :].replace(os.sep, "/")
                return rel in _TOP_LEVEL_FILES or rel.startswith(("refs/heads/", "refs/tags/"))
        return False


class RepoWatcher:
    """Reports moved and new branches and tags of one repository, in order, until stopped.

    Use `snapshot()` first (refs that exist then never count as changes), then either
    `async for change in watcher:` or `await watcher.run(callback)`; `stop()` ends both, for
    good (a stopped watcher stays stopped, so a stop that comes before the loop starts counts).
    """

    def __init__(
        self,
        repo: str | Path,
        *,
        debounce_ms: int = 50,
        step_ms: int = 10,
        poll_interval: float = 1.0,
    ) -> None:
        self.root, self.git_dir, self.common_dir = git_dirs(repo)
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.poll_interval = poll_interval
        self.refs: dict[str, str] | None = None  # the last snapshot
        self.ready = asyncio.Event()  # set once the file watches are in place
        self.error: str | None = None  # the last problem reading refs or watching files
        self._reflog_pos: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()

    # -- snapshots -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, str]:
        """Take the refs as they are now as the baseline; returns ref -> sha."""
        refs = read_refs(self.root)
        with self._lock:
            self.refs = refs
            self._reflog_pos = {
                ref[len(HEADS) :]: self._reflog_size(ref[len(HEADS) :])
                for ref in refs
                if ref.startswith(HEADS)
            }
        return dict(refs)

    def check_now(self) -> list[RefChange]:
        """Compare the refs with the last snapshot (blocking: run it in a thread)."""
        refs = read_refs(self.root)
        with self._lock:
            if self.refs is None:
                self.refs = refs
                return []
            previous, self.refs = self.refs, refs
            changes: list[RefChange] = []
            for ref, sha in refs.items():
                old = previous.get(ref)
                split = _split(ref)
                if split is None or old == sha:
                    continue
                kind, name = split
                skipped = self._skipped_tips(name, old, sha) if kind == "branch" else ()
                changes.append(RefChange(kind, name, old, sha, skipped))
            for ref in set(previous) - set(refs):  # deleted: forget its reflog position
                split = _split(ref)
                if split and split[0] == "branch":
                    self._reflog_pos.pop(split[1], None)
        changes.sort(key=lambda c: (c.kind == "tag", c.name))
        return changes

    async def check(self) -> list[RefChange]:
        return await asyncio.to_thread(self.check_now)

    # -- reflog --------------------------------------------------------------------------
    def _reflog_path(self, branch: str) -> Path:
        return self.common_dir / "logs" / "refs" / "heads" / branch

    def _reflog_size(self, branch: str) -> int:
        try:
            return self._reflog_path(branch).stat().st_size
        except OSError:
            return 0

    def _skipped_tips(self, branch: str, old: str | None, new: str) -> tuple[str, ...]:
        """Tips the branch had between `old` and `new` that no snapshot saw.

        Reads the reflog entries written since the last look, up to the one that set the
        branch to `new` (later entries belong to the next look). No reflog: nothing known.
        """
        path = self._reflog_path(branch)
        pos = self._reflog_pos.get(branch, 0)
        try:
            with path.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size < pos:  # rewritten (reflog expire, branch re-created): start over
                    self._reflog_pos[branch] = size
                    return ()
                fh.seek(pos)
                data = fh.read()
        except OSError:
            return ()
        entries: list[tuple[str, int]] = []  # (new sha, offset after the entry)
        offset = pos
        for raw in data.split(b"\n")[:-1]:  # the last piece is "" or a partial line
            offset += len(raw) + 1
            fields = raw.split(b" ", 2)
            if len(fields) >= 2:
                entries.append((fields[1].decode("ascii", "replace"), offset))
        last = max((i for i, (sha, _) in enumerate(entries) if sha == new), default=None)
        if last is None:
            return ()
        self._reflog_pos[branch] = entries[last][1]
        seen = {new, old, ZERO_SHA}
        tips: list[str] = []
        for sha, _ in entries[:last]:
            if sha not in seen:
                seen.add(sha)
                tips.append(sha)
        return tuple(tips)

    # -- watching ------------------------------------------------------------------------
    def _watch_specs(self) -> list[tuple[list[Path], bool]]:
        """(paths, recursive) per watcher: refs/ recursively, the git dirs themselves flat."""
        flat = sorted({self.git_dir, self.common_dir})
        return [([self.common_dir / "refs"], True), (flat, False)]

    async def _feed(self, paths: list[Path], recursive: bool) -> None:
        """Wake the checker whenever watchfiles reports a relevant write."""
        try:
            async for _ in awatch(
                *paths,
                watch_filter=_GitFilter(self.git_dir, self.common_dir),
                debounce=self.debounce_ms,
                step=self.step_ms,
                stop_event=self._stop,
                recursive=recursive,
            ):
                self._wake.set()
        except Exception as exc:  # noqa: BLE001 - fall back to polling, say why
            self.error = f"watching {', '.join(map(str, paths))} failed ({exc}); polling instead"

    async def changes(self) -> AsyncIterator[RefChange]:
        """Every RefChange from now on, in the order seen, until `stop()`."""
        if self.refs is None:
            await asyncio.to_thread(self.snapshot)
        feeders = [
            asyncio.create_task(self._feed(paths, rec), name="bakery-refwatch")
            for paths, rec in self._watch_specs()
        ]
        # awatch sets its watches up synchronously on its first step: let the feeders take it
        for _ in range(3):
            await asyncio.sleep(0)
        self.ready.set()
        self._wake.set()  # look once now: a ref may have moved before the watches existed
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    found = await self.check()
                except (GitError, OSError) as exc:
                    self.error = str(exc)
                    continue
                for change in found:
                    yield change
        finally:
            self._stop.set()
            self.ready.clear()
            done, pending = await asyncio.wait(feeders, timeout=1.0)
            for task in pending:
                task.cancel()
            for task in feeders:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def __aiter__(self) -> AsyncIterator[RefChange]:
        return self.changes()

    async def run(self, on_change: Callable[[RefChange], Awaitable[None] | None]) -> None:
        """Call `on_change` for each change (awaited when it is a coroutine) until `stop()`."""
        async with contextlib.aclosing(self.changes()) as stream:
            async for change in stream:
                result = on_change(change)
                if inspect.isawaitable(result):
                    await result

    def stop(self) -> None:
        """End `changes()` / `run()` within about one step; safe to call more than once."""
        self._stop.set()
        self._wake.set()
