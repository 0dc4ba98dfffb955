"""Commands from a person, sent to the engine on its own thread.

Every method returns an awaitable that resolves to the engine's user-facing answer, or raises
`engine.core.ControlError` with the refusal. The result comes back to the board as events
(approval.decided, run.stop_requested...), so nothing here touches the board's state.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from engine import events as ev

if TYPE_CHECKING:
    from engine.core import Engine
    from engine.host import EngineHost
    from engine.model import Pipeline


class Controller:
    """The board's handle on a live engine (absent when the board replays a stored run)."""

    def __init__(self, host: EngineHost, session: Any = None, pipeline: Pipeline | None = None,
                 version: int = 0) -> None:
        self.host = host
        self.session = session  # engine.watch.WatchSession when watching
        self._pipeline = pipeline
        self._version = version
        self.closed = False

    @property
    def engine(self) -> Engine:
        assert self.host.engine is not None
        return self.host.engine

    @property
    def pipeline(self) -> Pipeline | None:
        if self.session is not None and getattr(self.session, "pipeline", None) is not None:
            return self.session.pipeline
        return self._pipeline

    @property
    def version(self) -> int:
        if self.session is not None and getattr(self.session, "version", None):
            return int(self.session.version)
        return self._version

    @property
    def pipeline_error(self) -> str | None:
        if self.session is None:
            return None
        error = getattr(self.session, "error", None)
        return str(error) if error else None

    async def _await(self, future: Any) -> Any:
        return await asyncio.wrap_future(future)

    async def decide(self, run_id: str, stage: str, action: str, approve: bool,
                     comment: str = "") -> str:
        result = ev.APPROVED if approve else ev.REJECTED
        return await self._await(
            self.host.call_sync(self.engine.decide, run_id, stage, action, result, comment=comment)
        )

    async def stop(self, run_id: str, mode: str, comment: str = "") -> str:
        return await self._await(self.host.call(self.engine.stop, run_id, mode=mode, comment=comment))

    async def retry(self, run_id: str, stage: str, mode: str) -> str:
        await self._await(self.host.call(self.engine.retry, run_id, stage, mode=mode))
        return f"retrying {stage} ({'failed actions' if mode == 'FAILED_ACTIONS' else 'all actions'})"

    async def set_transition(self, pipeline: str, stage: str, enabled: bool, reason: str = "") -> str:
        return await self._await(
            self.host.call(self.engine.set_transition, pipeline, stage, enabled=enabled, reason=reason)
        )

    async def start_now(self, rev: str = "HEAD") -> str:
        """Start an execution on HEAD (through the watch session when there is one)."""
        if self.session is not None and hasattr(self.session, "start_now"):
            await self._await(self.host.call(self.session.start_now, rev))
            return f"started an execution on {rev}"
        pipeline = self.pipeline
        if pipeline is None:
            from engine.core import ControlError

            raise ControlError("no valid pipeline is loaded")
        engine = self.engine
        await self._await(
            self.host.call(
                engine.start_execution,
                pipeline,
                version=self.version,
                rev=rev,
                trigger={"type": "StartPipelineExecution", "by": engine.user, "via": "bakery board"},
            )
        )
        return f"started an execution on {rev}"

    def close(self, timeout: float) -> None:
        """Stop what runs (TERM, grace, KILL) and end the engine thread. Blocking; idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.session is not None and hasattr(self.session, "close"):
            with contextlib.suppress(Exception):  # closing must go on regardless
                self.host.call(self.session.close).result(2.0)
        self.host.stop(timeout)
