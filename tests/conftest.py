"""Shared fixtures: real git repositories in tmp_path, and an isolated Bakery home."""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada Baker",
    "GIT_AUTHOR_EMAIL": "ada@bakery.test",
    "GIT_COMMITTER_NAME": "Ada Baker",
    "GIT_COMMITTER_EMAIL": "ada@bakery.test",
}


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    )
    return proc.stdout.strip()


class Repo:
    """A real git repository for a test, with helpers to write files and commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "-q", "-b", "main")
        git(path, "config", "user.name", "Ada Baker")
        git(path, "config", "user.email", "ada@bakery.test")

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
        return target

    def commit(self, message: str = "change", **files: str) -> str:
        for name, text in files.items():
            self.write(name, text)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.path, "rev-parse", "HEAD")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep every test's settings and git identity away from the developer's own."""
    monkeypatch.setenv("BAKERY_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("BAKERY_HOME", raising=False)
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    yield


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Repo]:
    counter = iter(range(1000))

    def make(pipeline: str | None = None, name: str | None = None, **files: str) -> Repo:
        repo = Repo(tmp_path / (name or f"repo{next(counter)}"))
        if pipeline is not None:
            repo.write("bakery.yaml", pipeline)
        for fname, text in files.items():
            repo.write(fname, text)
        repo.commit("first commit")
        return repo

    return make


class EngineKit:
    """A started engine on a test repository, with its pipeline registered."""

    def __init__(self, repo: Repo, grace: float, state_dir: str = "bakery-test") -> None:
        from engine.core import Engine
        from engine.loader import load_pipeline

        self.engine = Engine(repo.path, repo.path / ".git" / state_dir, grace=grace)
        self.pipeline = load_pipeline(repo.path / "bakery.yaml")
        self.version = 0

    async def start(self) -> EngineKit:
        await self.engine.start()
        self.version = self.engine.register(self.pipeline, "bakery.yaml")
        return self

    async def execution(self, **kw: object) -> object:
        return await self.engine.start_execution(self.pipeline, version=self.version, **kw)


async def eventually(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    """Wait until `predicate()` is true (a hang guard, not a timing assertion)."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture
def engine_kit() -> Callable[..., object]:
    """`await engine_kit(repo, grace=...)`: a started engine with the repo's pipeline."""

    async def make(repo: Repo, grace: float = 5.0) -> EngineKit:
        return await EngineKit(repo, grace).start()

    return make


async def run_to_end(repo: Repo, **kw: object) -> tuple[object, str]:
    """One whole execution in the repository's default store (where the CLI looks);
    returns the closed engine and the execution's id."""
    kit = await EngineKit(repo, 5.0, state_dir="bakery").start()
    ex = await kit.execution(**kw)
    await kit.engine.wait(ex.run_id)  # type: ignore[attr-defined]
    await kit.engine.close()
    return kit.engine, ex.run_id  # type: ignore[attr-defined]


@pytest.fixture
def until() -> Callable[..., object]:
    return eventually


def own_threads() -> int:
    """Threads other than the loop's default executor, a bounded pool (min(32, cpus + 4))
    that grows on demand and is reused (children are started from it): its size says how
    busy a run was, not a leak."""
    import threading

    return sum(1 for t in threading.enumerate() if not t.name.startswith("asyncio_"))
