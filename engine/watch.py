"""The headless side of `bakery watch`: new commits start executions, edits reload the pipeline.

A `WatchSession` owns two watchers. `RepoWatcher` reports moved branches and tags; each one
is judged by the pipeline's trigger (engine.filters) and either starts an execution (which
then obeys the execution mode through the engine's stage gates) or is recorded as a
`trigger.skipped` event saying why. A watcher on the pipeline file reloads it: a valid edit
becomes a new version used by the next execution (running ones keep theirs); an invalid
edit is recorded as `trigger.error` and the last valid version stays active.

The session does not own the engine: the caller creates it, calls `engine.start()` before
`open()`/`run_forever()`, and `engine.close()` after `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchfiles import Change, awatch

from engine import events as ev
from engine.core import ControlError
from engine.filters import match_trigger, trigger_is_empty
from engine.gitinfo import GitError, commit_info, current_branch
from engine.loader import PipelineError, load_pipeline
from engine.model import Category, Pipeline
from engine.trigger import HEADS, RefChange, RepoWatcher

if TYPE_CHECKING:
    from engine.core import Engine
    from engine.runner import Execution

__all__ = ["WatchSession", "changed_files_between", "source_branch_of"]


def source_branch_of(pipeline: Pipeline) -> str | None:
    """The `branch` of the first Source action that declares one."""
    for stage in pipeline.stages:
        for action in stage.actions:
            if action.category == Category.SOURCE and action.branch:
                return action.branch
    return None


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-C", str(root), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
    )


def _names(out: bytes) -> list[str]:
    return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]


def changed_files_between(root: Path, old: str | None, new: str) -> list[str]:
    """Paths a push changed: old..new, or what the tip commit changed when the ref is new.

    NUL-separated and without rename detection, so unusual names are not quoted and a
    rename counts as both of its paths (both were touched, as far as a filter cares).
    """
    if old is not None:
        proc = _git(root, "diff", "--name-only", "-z", "--no-renames", old, new, "--")
        if proc.returncode == 0:
            return _names(proc.stdout)
        # old is gone (gc'd after a rewrite): judge by the tip commit alone
    proc = _git(root, "diff", "--name-only", "-z", "--no-renames", f"{new}~1", new, "--")
    if proc.returncode == 0:
        return _names(proc.stdout)
    proc = _git(root, "ls-tree", "-r", "--name-only", "-z", new)  # a root commit
    if proc.returncode != 0:
        raise GitError(proc.stderr.decode("utf-8", "replace").strip() or f"cannot read {new}")
    return _names(proc.stdout)


class WatchSession:
    """The controller behind `bakery watch` for one pipeline file and its repository."""

    def __init__(
        self,
        engine: Engine,
        pipeline_path: Path,
        *,
        debounce_ms: int = 50,
        step_ms: int = 10,
        poll_interval: float = 1.0,
    ) -> None:
        self.engine = engine
        self.path = Path(pipeline_path).resolve()
        self.pipeline: Pipeline | None = None  # the active (last valid) definition
        self.version = 0
        self.error: str | None = None  # why the file on disk cannot be used, or None
        self.source_branch: str | None = None  # without a trigger, only this branch runs
        self.started: list[str] = []  # run ids this session started, oldest first
        self.watcher = RepoWatcher(
            engine.repo, debounce_ms=debounce_ms, step_ms=step_ms, poll_interval=poll_interval
        )
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.poll_interval = poll_interval
        self._start_branch: str | None = None
        self._file_sig: tuple[int, int, int] | None = None
        self._reported_error: str | None = None
        self._reload_lock = asyncio.Lock()
        self._closing = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._opened = False

    @property
    def name(self) -> str:
        if self.pipeline is None:
            raise RuntimeError("WatchSession.open() has not loaded a pipeline yet")
        return self.pipeline.name

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> list[str]:
        """Load, register and recover; take the ref baseline. Raises PipelineError if invalid.

        Returns the recovery notes (executions a dead bakery left behind) for the user.
        """
        self._file_sig = self._signature()
        pipeline = await asyncio.to_thread(load_pipeline, self.path)
        self.pipeline = pipeline
        self.version = self.engine.register(pipeline, self.path)
        notes = await self.engine.recover(pipeline)
        self._start_branch = await asyncio.to_thread(current_branch, self.engine.repo)
        self.source_branch = source_branch_of(pipeline) or self._start_branch
        await asyncio.to_thread(self.watcher.snapshot)
        self._opened = True
        return notes

    async def run_forever(self) -> None:
        """Watch the repository and the pipeline file until `close()`."""
        if not self._opened:
            await self.open()
        if self._closing.is_set():
            return
        self._tasks = [
            asyncio.create_task(self.watcher.run(self._handle_safely), name="bakery-watch-repo"),
            asyncio.create_task(self._watch_file(), name="bakery-watch-file"),
        ]
        try:
            await asyncio.gather(*self._tasks)
        finally:
            self.watcher.stop()
            self._closing.set()
            for task in self._tasks:
                if not task.done():
                    task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def close(self) -> None:
        """Stop watching (running executions go on; `engine.close()` ends those)."""
        self._closing.set()
        self.watcher.stop()
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=2.0)
            for task in pending:
                task.cancel()

    # -- the pipeline file ---------------------------------------------------------------
    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def _watch_file(self) -> None:
        """Reload on every write to the file; poll its stat as a safety net for lost events.

        The parent directory is watched (not the file): editors save by renaming a new file
        over the old one, which a watch on the old file would never report.
        """
        name, parent = self.path.name, str(self.path.parent)

        def keep(_change: Change, path: str) -> bool:
            return os.path.basename(path) == name and os.path.dirname(path) == parent

        try:
            async for batch in awatch(
                parent,
                watch_filter=keep,
                debounce=max(self.debounce_ms, 100),
                step=max(self.step_ms, 30),
                stop_event=self._closing,
                recursive=False,
                rust_timeout=int(self.poll_interval * 1000),
                yield_on_timeout=True,
            ):
                if batch or self._signature() != self._file_sig:
                    await self.reload()
        except Exception as exc:  # noqa: BLE001 - keep working on the last version; say why
            if not self._closing.is_set():
                self._report_error(f"watching {self.path} failed: {exc}")

    async def _reload_if_changed(self) -> None:
        if self._signature() != self._file_sig:
            await self.reload()

    async def reload(self) -> bool:
        """Load the file again; True when a new version became the active one."""
        async with self._reload_lock:
            self._file_sig = self._signature()
            try:
                pipeline = await asyncio.to_thread(load_pipeline, self.path)
            except PipelineError as exc:
                self._report_error(str(exc), problems=exc.problems)
                return False
            self.error = None
            self._reported_error = None
            version = self.engine.register(pipeline, self.path)
            assert self.pipeline is not None
            changed = (pipeline.name, version) != (self.pipeline.name, self.version)
            self.pipeline, self.version = pipeline, version
            self.source_branch = source_branch_of(pipeline) or self._start_branch
            return changed

    def _report_error(self, message: str, problems: list[Any] | None = None) -> None:
        """Record a trigger.error once per distinct problem (editors save in bursts)."""
        self.error = message
        if message == self._reported_error or self.pipeline is None:
            return
        self._reported_error = message
        extra: dict[str, Any] = {"path": str(self.path), "active_version": self.version}
        if problems:
            extra["problems"] = [
                {"path": p.path, "line": p.line, "col": p.col, "message": p.message}
                for p in problems
            ]
        self.engine.recorder.emit(
            ev.TRIGGER_ERROR, None, pipeline=self.pipeline.name, message=message, **extra
        )

    # -- commits -------------------------------------------------------------------------
    async def handle(self, change: RefChange) -> Execution | None:
        """Judge one moved ref by the trigger; start an execution or record why not."""
        await self._reload_if_changed()  # an edit saved just before the commit counts
        pipeline = self.pipeline
        if pipeline is None:
            return None
        root = self.engine.repo
        try:
            if change.kind == "tag":
                tag: str | None = change.name
                branch = await asyncio.to_thread(self._branch_of, change.new_sha)
                files: list[str] = []
            else:
                tag, branch = None, change.name
                paths = pipeline.trigger.file_paths if pipeline.trigger else None
                files = (
                    await asyncio.to_thread(
                        changed_files_between, root, change.old_sha, change.new_sha
                    )
                    if paths is not None and (paths.includes or paths.excludes)
                    else []
                )
            commit = await asyncio.to_thread(commit_info, root, change.new_sha, branch or "")
        except GitError as exc:
            self._trigger_error(change, f"cannot read {change.describe()}: {exc}")
            return None
        ok, reason = match_trigger(
            pipeline.trigger,
            branch=None if tag else branch,
            tag=tag,
            changed_files=files,
            source_branch=self.source_branch if trigger_is_empty(pipeline.trigger) else None,
        )
        if not ok:
            self.engine.recorder.emit(
                ev.TRIGGER_SKIPPED,
                None,
                pipeline=pipeline.name,
                commit=change.new_sha,
                branch=branch or "",
                ref=change.ref,
                reason=reason,
                coalesced=list(change.skipped),
            )
            return None
        if tag:
            detail = f"tag {tag} on commit {change.new_sha[:8]}"
        else:
            detail = f"commit {change.new_sha[:8]} on {branch}"
        if change.skipped:
            n = len(change.skipped)
            detail += (
                f" (the newest of {n + 1} commits the ref pointed at since the last look; "
                f"{n} earlier one{'s' if n > 1 else ''} not run)"
            )
        trigger = {
            "type": "Webhook",
            "ref": change.ref,
            "detail": detail,
            "by": commit.get("email", ""),
            "old": change.old_sha,
            "coalesced": list(change.skipped),
        }
        return await self._start(pipeline, change.new_sha, branch or "", trigger, change)

    async def _handle_safely(self, change: RefChange) -> None:
        """A bug in judging one commit must not stop the watching: record it and go on."""
        try:
            await self.handle(change)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            if self.pipeline is not None:
                self._trigger_error(change, f"{type(exc).__name__}: {exc}")

    async def start_now(self, rev: str = "HEAD") -> Execution:
        """The board's "run HEAD now": a manual execution of `rev` with the active version."""
        await self._reload_if_changed()
        if self.pipeline is None:
            raise ControlError("no valid pipeline is loaded")
        branch = await asyncio.to_thread(current_branch, self.engine.repo)
        trigger = {
            "type": "StartPipelineExecution",
            "by": self.engine.user,
            "detail": f"{rev} started by hand",
            "via": "bakery watch",
        }
        ex = await self.engine.start_execution(
            self.pipeline, version=self.version, rev=rev, branch=branch, trigger=trigger
        )
        self.started.append(ex.run_id)
        return ex

    async def _start(
        self,
        pipeline: Pipeline,
        sha: str,
        branch: str,
        trigger: dict[str, Any],
        change: RefChange,
    ) -> Execution | None:
        try:
            ex = await self.engine.start_execution(
                pipeline, version=self.version, rev=sha, branch=branch, trigger=trigger
            )
        except ControlError as exc:
            self._trigger_error(change, f"cannot start an execution for {change.describe()}: {exc}")
            return None
        self.started.append(ex.run_id)
        return ex

    def _trigger_error(self, change: RefChange, message: str) -> None:
        assert self.pipeline is not None
        self.engine.recorder.emit(
            ev.TRIGGER_ERROR,
            None,
            pipeline=self.pipeline.name,
            message=message,
            commit=change.new_sha,
            ref=change.ref,
        )

    def _branch_of(self, sha: str) -> str:
        """The branch a tagged commit belongs to: a tip first, else a branch containing it;
        the source branch and the current branch win ties."""
        preferred = [b for b in (self.source_branch, self._start_branch) if b]
        refs = self.watcher.refs or {}
        tips = sorted(r[len(HEADS) :] for r, s in refs.items() if r.startswith(HEADS) and s == sha)
        if not tips:
            proc = _git(
                self.engine.repo,
                "for-each-ref",
                "--contains",
                sha,
                "--format=%(refname)",
                "refs/heads",
            )
            if proc.returncode == 0:
                lines = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
                tips = sorted(r[len(HEADS) :] for r in lines if r.startswith(HEADS))
        for name in preferred:
            if name in tips:
                return name
        return tips[0] if tips else ""
