"""A child started off the event loop: its pipes read on the loop, its exit seen through a pidfd.

asyncio's `subprocess_exec` forks on the loop thread and waits there until the exec has
succeeded: about 4 ms a child on a busy machine, during which nothing else runs, so ten
parallel actions start one after the other. Here the fork/exec runs in a worker thread
(several children start at once, and the loop keeps reading the pipes of those already
running), and the exit is seen through a pidfd watched by the loop (Linux 5.3+) rather
than by a waitpid thread per child; elsewhere a thread waits, as asyncio's own watcher does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["Spawned"]

log = logging.getLogger(__name__)


def _kill_unwanted(future: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    """A start whose caller was cancelled still forked: end that child's whole group."""
    if future.cancelled() or future.exception() is not None:
        return
    popen = future.result()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)
    threading.Thread(target=popen.communicate, name="bakery-reap", daemon=True).start()


class Spawned:
    """A running child in its own session: `stdout`/`stderr` readers, `exited`, `returncode`."""

    pid: int
    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader
    exited: asyncio.Future[None]
    returncode: int | None

    @classmethod
    async def start(
        cls, argv: Sequence[str], *, cwd: str | Path, env: Mapping[str, str], limit: int
    ) -> Spawned:
        """Fork/exec `argv` (stdin /dev/null, stdout and stderr piped, a new session)."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            None,
            functools.partial(
                subprocess.Popen,
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=str(cwd),
                env=dict(env),
                start_new_session=True,
            ),
        )
        try:
            popen = await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_kill_unwanted)
            raise
        self = cls.__new__(cls)
        self._loop = loop
        self._popen = popen
        self.pid = popen.pid
        self.returncode = None
        self.exited = loop.create_future()
        self._closing = False
        self._pidfd: int | None = None
        self._pipes: list[asyncio.BaseTransport] = []
        try:
            self.stdout = await self._reader(popen.stdout, limit)
            self.stderr = await self._reader(popen.stderr, limit)
        except BaseException:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
            self._watch_exit()
            self.close()
            raise
        self._watch_exit()
        return self

    async def _reader(self, pipe: object, limit: int) -> asyncio.StreamReader:
        reader = asyncio.StreamReader(limit=limit, loop=self._loop)
        transport, _ = await self._loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader, loop=self._loop), pipe
        )
        self._pipes.append(transport)
        return reader

    # -- the exit ----------------------------------------------------------------------------

    def _watch_exit(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # not Linux, or a kernel before 5.3
            threading.Thread(
                target=self._wait_in_thread, name=f"bakery-wait-{self.pid}", daemon=True
            ).start()
            return
        self._loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        """The pidfd is readable: the child has exited; collect its status."""
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else (SIGCHLD ignored): status lost
            log.warning("the exit status of pid %s was collected elsewhere", self.pid)
            pid, status = self.pid, 255 << 8
        if pid == 0:
            return
        self._forget_pidfd()
        self._exited(os.waitstatus_to_exitcode(status))

    def _wait_in_thread(self) -> None:
        code = self._popen.wait()
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(self._exited, code)

    def _exited(self, code: int) -> None:
        self.returncode = code
        self._popen.returncode = code  # Popen must never wait for it again
        if not self.exited.done():
            self.exited.set_result(None)

    def _forget_pidfd(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    # -- the end -----------------------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Close the pipes and stop watching; a child still running is left to the caller."""
        self._closing = True
        for transport in self._pipes:
            transport.close()
        if self.returncode is None and self._pidfd is not None:
            # nobody will watch it any more: let a thread collect the status once it ends
            self._forget_pidfd()
            threading.Thread(target=self._popen.wait, name="bakery-reap", daemon=True).start()
