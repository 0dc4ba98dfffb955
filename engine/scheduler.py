"""Stage gates: when overlapping executions may enter a stage (CodePipeline's execution modes).

- SUPERSEDED: a stage holds one execution at a time. At most one execution waits in front of
  a stage; a newer one arriving there supersedes the older waiter. Overtaking happens only
  between stages, never inside one.
- QUEUED: the same stage locks, but waiters enter one by one in arrival order.
- PARALLEL: no locks.
A disabled inbound transition holds every execution in front of the stage (they can still
be superseded); when it is enabled, the waiting execution enters.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from engine.model import ExecutionMode
from engine.state import PipelineState


class Gated(Protocol):
    run_id: str
    number: int
    halted: bool  # superseded or stopped: give up waiting

    def supersede(self, by: Gated) -> None: ...

    def announce_wait(self, stage: str, reason: str) -> None: ...


class StageGates:
    """The locks and waiting lines of one pipeline's stages."""

    def __init__(self, mode: ExecutionMode, pipeline: PipelineState) -> None:
        self.mode = mode
        self.pipeline = pipeline
        self.holders: dict[str, str] = {}  # stage -> run_id inside it
        self.waiting: dict[str, list[Gated]] = {}
        self._changed = asyncio.Condition()

    def blocked_reason(self, ex: Gated, stage: str) -> str | None:
        if stage in self.pipeline.disabled:
            reason = self.pipeline.disabled[stage].get("reason") or ""
            return "transition disabled" + (f": {reason}" if reason else "")
        if self.mode == ExecutionMode.PARALLEL:
            return None
        holder = self.holders.get(stage)
        if holder is not None and holder != ex.run_id:
            return "stage locked by another execution"
        line = self.waiting.get(stage, [])
        if self.mode == ExecutionMode.QUEUED and line and line[0] is not ex:
            return "queued behind an earlier execution"
        return None

    async def enter(self, ex: Gated, stage: str) -> bool:
        """Wait until `ex` may enter `stage`; False if it was superseded or stopped first."""
        async with self._changed:
            line = self.waiting.setdefault(stage, [])
            line.append(ex)
            if self.mode == ExecutionMode.SUPERSEDED:
                newest = max(line, key=lambda e: e.number)
                for other in list(line):
                    if other is not newest:
                        line.remove(other)
                        other.supersede(newest)
                self._changed.notify_all()
            announced: str | None = None
            try:
                while True:
                    if ex.halted:
                        return False
                    reason = self.blocked_reason(ex, stage)
                    if reason is None:
                        if self.mode != ExecutionMode.PARALLEL:
                            self.holders[stage] = ex.run_id
                        return True
                    if reason != announced:
                        ex.announce_wait(stage, reason)
                        announced = reason
                    await self._changed.wait()
            finally:
                if ex in line:
                    line.remove(ex)
                self._changed.notify_all()

    async def leave(self, ex: Gated, stage: str) -> None:
        async with self._changed:
            if self.holders.get(stage) == ex.run_id:
                del self.holders[stage]
            self._changed.notify_all()

    async def poke(self) -> None:
        """Something changed (a transition, a stop): let every waiter look again."""
        async with self._changed:
            self._changed.notify_all()

    def holder(self, stage: str) -> str | None:
        return self.holders.get(stage)
