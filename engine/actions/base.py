"""What every kind of action receives and returns."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.masking import Masker
from engine.model import Action
from engine.record import factory, record
from engine.recorder import Recorder

if TYPE_CHECKING:
    from engine.process import OutputLine


@record
class ActionContext:
    run_id: str
    stage: str
    action: Action
    attempt: int
    repo: Path
    run_dir: Path
    workspace: Path
    inputs: dict[str, Path]
    scope: Mapping[str, Mapping[str, str]]
    secrets: dict[str, str]
    masker: Masker
    recorder: Recorder
    commit: dict[str, Any]
    env_cookies: dict[str, str]
    grace: float
    # approval actions wait through this (set by the engine)
    wait_for_approval: Callable[[ActionContext, dict[str, Any]], Awaitable[Outcome]] | None = None

    def log(self, text: str) -> None:
        self.recorder.system_line(self.run_id, self.stage, self.action.name, self.attempt, text)

    def on_output(self, lines: list[OutputLine]) -> None:
        self.recorder.log_output(self.run_id, self.stage, self.action.name, self.attempt, lines)

    def on_chunk(self, ts: float, stream: str, text: str, count: int) -> None:
        self.recorder.log_chunk(
            self.run_id, self.stage, self.action.name, self.attempt, ts, stream, text, count
        )

    @property
    def artifacts_dir(self) -> Path:
        return self.run_dir / "artifacts"


@record
class Outcome:
    status: str
    error: dict[str, str] | None = None
    output_variables: dict[str, str] = factory(dict)
    exit_code: int | None = None
    signal: str | None = None

    @classmethod
    def ok(cls, variables: dict[str, str] | None = None, **kw: Any) -> Outcome:
        return cls(ev.SUCCEEDED, None, dict(variables or {}), **kw)

    @classmethod
    def fail(cls, type_: str, message: str, **kw: Any) -> Outcome:
        return cls(ev.FAILED, {"type": type_, "message": message}, **kw)


def now() -> float:
    return time.time()
