"""Running one child process safely and turning its output into masked lines.

The rules (see shared/DESIGN.md and shared/reference/reliability.md):

* The child gets its own session (so its whole tree is one process group we can signal),
  stdin=/dev/null, and an env cookie so processes that escape the group (`setsid`) can still
  be found through /proc/PID/environ and killed, as GitHub and Jenkins do.
* Completion is the child's *exit*, not the end of its pipes. On Python 3.11/3.12
  `Process.wait()` stays blocked while a grandchild holds a pipe (CPython gh-119710), so we
  take the exit from the child itself (a pidfd, engine/spawn.py), then kill what is left of
  the group and give the readers a short bounded drain.
* Output is read in 64 KiB chunks by one task per pipe, split into lines, decoded and masked
  line by line (never raw chunks: a secret split across two writes is still whole on its line)
  and delivered in one batch per chunk.
* After `max_log_bytes` lines stop being delivered but the pipes keep being drained, so the
  child never blocks on a full pipe (GitLab's practice); memory stays bounded throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from engine.lines import LineSplitter
from engine.masking import Masker
from engine.pids import PidMark, pid_mark, pid_window
from engine.spawn import Spawned

__all__ = [
    "ChildProcess",
    "OutputLine",
    "ProcessError",
    "ProcessResult",
    "sweep",
]

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
"""Bytes asked for per read: cheap per line, and bounds what one batch can hold."""

DISCARD_CHUNK = 1024 * 1024
"""Bytes asked for per read once the log cap is reached: fewer loop turns to drain a flood."""

DRAIN_SECONDS = 0.3
DRAIN_LIMIT = 30.0
"""After the exit, the most time given to a pipe that keeps receiving bytes from a holder."""
"""How long readers may keep reading after the child exited and its group was killed."""

THROTTLE_PAUSE = 0.005
"""How often a paused reader asks `throttle` again."""

SWEEP_ROUNDS = 10
SWEEP_PAUSE = 0.02
"""A sweep is repeated (at most SWEEP_ROUNDS times, SWEEP_PAUSE apart) until it finds nobody."""

MAX_LINE = 16 * 1024
"""Longest line delivered in one piece; longer lines arrive in several pieces."""

STDOUT = "stdout"
STDERR = "stderr"


class ProcessError(RuntimeError):
    """The child could not be started (missing cwd, unknown program, bad argument)."""


class OutputLine(NamedTuple):
    """One line of a child's output, already masked.

    A tuple: cheaper to make than a frozen dataclass (a million lines), and to define (a
    dataclass costs ~1 ms at import, which every `bakery run` pays)."""

    ts: float
    """time.time() when the chunk holding the line was read."""
    stream: str
    """"stdout" or "stderr"."""
    text: str
    """UTF-8 decoded with errors="replace", masked."""
    raw: bytes | None
    """The original bytes (masked) when they were not valid UTF-8 or held NUL; else None."""


class ProcessResult(NamedTuple):
    """How a child process ended."""

    exit_code: int | None
    """The exit status, or None when the process died of a signal."""
    signal: str | None
    """The signal the process died of ("SIGKILL"), or None when it exited."""
    end_reason: str
    """"exited" (on its own), "timeout" (wait's timeout ran out) or "stopped" (stop/kill_now)."""
    killed_with: str | None
    """The last signal of the stop/timeout escalation ("SIGTERM"/"SIGKILL"), None if none.

    The SIGKILL sent to the group's leftovers after a normal exit does not count."""
    truncated: bool
    """The log cap was reached; the process still ran to its real end."""
    duration: float
    """Seconds from spawn to the child's exit."""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def _check_spawn_args(argv: Sequence[str], cwd: str | Path, cookie: tuple[str, str]) -> None:
    """Turn the common mistakes into clear messages before fork/exec hides them."""
    if isinstance(argv, str | bytes) or not argv:
        raise ProcessError("cannot start a process: argv must be a non-empty list of strings")
    if not all(isinstance(arg, str) for arg in argv):
        raise ProcessError(f"cannot start {argv!r}: every argument must be a string")
    name, value = cookie
    if not name or "=" in name or "\0" in name or "\0" in value:
        raise ProcessError(f"invalid env cookie {cookie!r}")
    path = Path(cwd)
    if not path.exists():
        raise ProcessError(
            f"cannot start {argv[0]!r}: working directory {str(cwd)!r} does not exist"
        )
    if not path.is_dir():
        raise ProcessError(
            f"cannot start {argv[0]!r}: working directory {str(cwd)!r} is not a directory"
        )


class ChildProcess:
    """A running child process, its readers and its supervision.

    Supervision starts at `spawn` and cleans up (group killed, readers drained, pipes closed)
    when the child exits, whether or not anyone awaits `wait()`. Cancelling a `wait()` does
    not stop the child: call `stop()` or `kill_now()` for that. If the supervision task itself
    is cancelled (the event loop shutting down), the whole tree is killed: nobody would be
    left to stop it later.
    """

    pid: int
    _throttle: Callable[[], bool] | None = None
    _last_read: float = 0.0  # monotonic time of the last bytes read from either pipe
    _on_chunk: Callable[[float, str, str, int], None] | None = None

    def __init__(self) -> None:  # use spawn()
        raise TypeError("use `await ChildProcess.spawn(...)`")

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        *,
        cwd: str | Path,
        env: Mapping[str, str],
        cookie: tuple[str, str],
        on_output: Callable[[list[OutputLine]], None],
        masker: Masker | None = None,
        max_log_bytes: int = 64 * 2**20,
        grace: float = 5.0,
        sweep_on_exit: bool = True,
        throttle: Callable[[], bool] | None = None,
        on_chunk: Callable[[float, str, str, int], None] | None = None,
    ) -> ChildProcess:
        """Start `argv` in its own session and begin reading and supervising it.

        `env` is the complete environment (plus the cookie variable); `on_output` gets one
        batch of lines per chunk read and must not block. With `sweep_on_exit`, processes
        still carrying the cookie when the child exits are killed, as GitHub does at job end.
        `throttle`, when given, is asked after each batch whether the consumer is full; while
        it says so (and the child still runs) the reader pauses, so a flood waits in the pipe
        (the child blocks on write) instead of in memory: the recorder's back-pressure.
        `on_chunk(ts, stream, text, count)`, when given, gets the common batch instead of
        `on_output`: `count` lines (valid UTF-8, no NUL), masked and joined by "\n" in `text`,
        with no object per line; batches with other bytes still go to `on_output`.
        Raises ProcessError when the child cannot be started.
        """
        _check_spawn_args(argv, cwd, cookie)
        loop = asyncio.get_running_loop()
        full_env = {**env, cookie[0]: cookie[1]}
        mark = pid_mark()  # before the fork: the tree's pids all come after it
        started = time.monotonic()
        try:
            child = await Spawned.start(argv, cwd=cwd, env=full_env, limit=CHUNK)
        except FileNotFoundError as exc:
            raise ProcessError(f"cannot start {argv[0]!r}: no such program") from exc
        except PermissionError as exc:
            raise ProcessError(f"cannot start {argv[0]!r}: permission denied") from exc
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise ProcessError(f"cannot start {argv[0]!r}: {reason}") from exc
        except (ValueError, TypeError) as exc:
            raise ProcessError(f"cannot start {argv[0]!r}: {exc}") from exc

        self = cls.__new__(cls)
        self._setup(
            loop,
            child,
            cookie,
            on_output,
            masker,
            max_log_bytes,
            grace,
            sweep_on_exit,
        )
        self._started = started
        self._pid_mark = mark
        self._throttle = throttle
        self._on_chunk = on_chunk
        return self

    def _setup(
        self,
        loop: asyncio.AbstractEventLoop,
        child: Spawned,
        cookie: tuple[str, str],
        on_output: Callable[[list[OutputLine]], None],
        masker: Masker | None,
        max_log_bytes: int,
        grace: float,
        sweep_on_exit: bool,
    ) -> None:
        self.pid = child.pid
        self._loop = loop
        self._child = child
        self._cookie = cookie
        self._on_output = on_output
        self._masker = masker if masker is not None and masker.active else None
        self._max_log_bytes = max_log_bytes
        self._grace = grace
        self._sweep_on_exit = sweep_on_exit
        self._started = time.monotonic()  # spawn() puts the time before the fork here
        self._pid_mark: PidMark | None = None  # spawn() puts the mark before the fork here
        self._exited_at: float | None = None
        self._end_reason: str | None = None
        self._killed_with: str | None = None
        self._truncated = False
        self._logged_bytes = 0
        self._callback_failed = False
        self._terminating: asyncio.Task[None] | None = None
        self._killed_now = False
        self._splitters = {STDOUT: LineSplitter(MAX_LINE), STDERR: LineSplitter(MAX_LINE)}
        self._readers = [
            loop.create_task(self._read(STDOUT, child.stdout), name=f"bakery-read-{self.pid}-out"),
            loop.create_task(self._read(STDERR, child.stderr), name=f"bakery-read-{self.pid}-err"),
        ]
        self._supervisor = loop.create_task(self._supervise(), name=f"bakery-supervise-{self.pid}")

    def __repr__(self) -> str:
        return f"<ChildProcess pid={self.pid} cookie={self._cookie[0]}={self._cookie[1]}>"

    # -- public API -------------------------------------------------------------------------

    async def wait(self, timeout: float | None = None) -> ProcessResult:
        """Wait for the child to end and its output to be delivered.

        When `timeout` seconds (counted from this call) pass first, the child is terminated
        (SIGTERM to the group, `grace`, SIGKILL, sweep of the cookie) and the result says
        end_reason="timeout". Safe to call several times; every call gets the same result.
        """
        if timeout is not None and not self._child.exited.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._child.exited), timeout)
            except TimeoutError:
                await self._terminate("timeout", self._grace)
        return await asyncio.shield(self._supervisor)

    async def stop(self, grace: float | None = None) -> None:
        """Ask the child to end: SIGTERM to the group, SIGKILL after `grace`, then sweep.

        Returns once the child is dead; `wait()` then reports end_reason="stopped". Does
        nothing when the child has already exited.
        """
        await self._terminate("stopped", self._grace if grace is None else grace)

    def kill_now(self) -> None:
        """SIGKILL the group and sweep the cookie at once, without waiting (for abandoning).

        The supervisor still cleans up (readers, pipes, a second sweep) once the child is
        reaped, so `wait()` afterwards returns promptly with end_reason="stopped".
        """
        if self._child.is_closing():
            return
        if not self._child.exited.done():
            if self._end_reason is None:
                self._end_reason = "stopped"
            self._killed_with = "SIGKILL"
        self._signal_group(signal.SIGKILL)
        sweep(self._cookie, signal.SIGKILL, since=self._pid_mark)
        self._killed_now = True  # the supervisor sweeps again once the child is gone

    @property
    def returncode(self) -> int | None:
        """The raw return code (negative for a signal) once the child exited, else None."""
        return self._child.returncode

    # -- termination ------------------------------------------------------------------------

    def _signal_group(self, sig: int) -> None:
        """Signal the child's process group (its pid, since it leads its own session)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def _terminate(self, reason: str, grace: float) -> None:
        """Start (or join) the TERM / grace / KILL / sweep escalation; first reason wins."""
        if self._terminating is None:
            if self._child.exited.done():
                return
            self._end_reason = self._end_reason or reason
            self._terminating = self._loop.create_task(
                self._escalate(grace), name=f"bakery-terminate-{self.pid}"
            )
        await asyncio.shield(self._terminating)

    async def _escalate(self, grace: float) -> None:
        exited = self._child.exited
        self._killed_with = "SIGTERM"
        self._signal_group(signal.SIGTERM)
        # Escaped daemons (setsid) get the same polite request; the group already has it.
        sweep(self._cookie, signal.SIGTERM, exclude_pgid=self.pid, since=self._pid_mark)
        try:
            await asyncio.wait_for(asyncio.shield(exited), grace)
        except TimeoutError:
            self._killed_with = "SIGKILL"
            self._signal_group(signal.SIGKILL)
            await asyncio.shield(exited)
        await self._sweep_until_quiet()

    async def _sweep_until_quiet(self) -> None:
        """Sweep the cookie until a pass finds nobody (bounded).

        One pass reads a snapshot of /proc: a process forked by a victim while the pass runs
        is not in it, so we look again until a pass comes back empty - and sure: a process in
        the middle of an exec shows no environment yet.
        """
        for _ in range(SWEEP_ROUNDS):
            unsure: list[int] = []
            killed = sweep(self._cookie, signal.SIGKILL, since=self._pid_mark, unsure=unsure)
            if not killed and not unsure:
                return
            await asyncio.sleep(SWEEP_PAUSE)  # look again once their exec has finished

    # -- supervision ------------------------------------------------------------------------

    async def _supervise(self) -> ProcessResult:
        """Wait for the exit, clean up the tree, drain the readers briefly, close the pipes."""
        try:
            await asyncio.shield(self._child.exited)  # cancelling us must not cancel it
            self._exited_at = time.monotonic()
            # Leftovers in the group (`sleep 30 & exit 0`) would hold the pipes open.
            self._signal_group(signal.SIGKILL)
            if self._terminating is not None:
                await asyncio.shield(self._terminating)
            elif self._sweep_on_exit or self._killed_now:
                await self._sweep_until_quiet()
            pending = await self._drain()
            for task in pending:
                task.cancel()
            outcomes = await asyncio.gather(*self._readers, return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, Exception):
                    log.error("reading the output of pid %s failed", self.pid, exc_info=outcome)
            for name in (STDOUT, STDERR):  # a reader cut short leaves an unfinished line
                self._deliver(name, self._splitters[name].flush(), time.time())
        finally:
            if self._child.returncode is None:
                # Supervision itself was cancelled (the loop is shutting down): leave no
                # orphans behind, nobody will be around to stop them later.
                self.kill_now()
            for task in self._readers:
                task.cancel()
            self._child.close()
        returncode = self._child.returncode
        assert returncode is not None and self._exited_at is not None
        return ProcessResult(
            exit_code=returncode if returncode >= 0 else None,
            signal=_signal_name(-returncode) if returncode < 0 else None,
            end_reason=self._end_reason or "exited",
            killed_with=self._killed_with,
            truncated=self._truncated,
            duration=self._exited_at - self._started,
        )

    async def _drain(self) -> set[asyncio.Task[None]]:
        """Let the readers finish what the pipes still hold; return those still blocked.

        What the child wrote before it exited is read to the end however long that takes
        while bytes keep coming (a busy machine may need seconds); only a pipe that stays
        silent for DRAIN_SECONDS (held open by a process we could not end) is given up,
        and DRAIN_LIMIT bounds a holder that keeps writing.
        """
        started = time.monotonic()
        pending: set[asyncio.Task[None]] = set(self._readers)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=DRAIN_SECONDS)
            now = time.monotonic()
            if now - self._last_read >= DRAIN_SECONDS or now - started >= DRAIN_LIMIT:
                break
        return pending

    # -- output -----------------------------------------------------------------------------

    async def _read(self, name: str, reader: asyncio.StreamReader) -> None:
        """Read one pipe to its end; once truncated, keep reading and drop the bytes."""
        splitter = self._splitters[name]
        read = reader.read
        while chunk := await read(CHUNK):
            self._last_read = time.monotonic()
            if self._truncated:
                while await read(DISCARD_CHUNK):
                    pass
                break
            self._deliver(name, splitter.feed(chunk), time.time())
            throttle = self._throttle
            # once the child exited only the pipe's last bytes are left: drain them at once
            while throttle is not None and throttle() and not self._child.exited.done():
                await asyncio.sleep(THROTTLE_PAUSE)
        self._deliver(name, splitter.flush(), time.time())

    def _deliver(self, stream: str, lines: list[bytes], ts: float) -> None:
        """Decode, mask and hand one batch of lines to on_output, honouring the log cap."""
        if not lines or self._truncated:
            return
        size = sum(map(len, lines)) + len(lines)
        room = self._max_log_bytes - self._logged_bytes
        if size <= room:
            self._logged_bytes += size
            if self._on_chunk is not None and self._emit_chunk(stream, lines, ts):
                return
            batch = self._convert_batch(stream, lines, ts)
        else:
            kept: list[bytes] = []
            for data in lines:
                room -= len(data) + 1
                if room < 0:
                    break
                kept.append(data)
            batch = self._convert_batch(stream, kept, ts) if kept else []
            self._truncate(batch, ts)
        if batch:
            self._emit(batch)

    def _convert_batch(self, stream: str, lines: list[bytes], ts: float) -> list[OutputLine]:
        """Bytes lines to masked OutputLines.

        The common case (valid UTF-8, no NUL) decodes and masks the whole batch in one C-level
        call each: lines hold no line breaks and masks never span one, so this is the same as
        doing it line by line, at a fraction of the cost.
        """
        masker = self._masker
        try:
            text = b"\n".join(lines).decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if "\0" not in text:
                if masker is not None:
                    text = masker.mask(text)
                return [OutputLine(ts, stream, part, None) for part in text.split("\n")]
        batch: list[OutputLine] = []
        for data in lines:
            try:
                text = data.decode("utf-8")
                raw = data if "\0" in text else None
            except UnicodeDecodeError:
                text = data.decode("utf-8", "replace")
                raw = data
            if masker is not None:
                text = masker.mask(text)
                if raw is not None:
                    raw = masker.mask_bytes(raw)
            batch.append(OutputLine(ts, stream, text, raw))
        return batch

    def _emit_chunk(self, stream: str, lines: list[bytes], ts: float) -> bool:
        """The batch as one masked text to on_chunk; False (nothing sent) when it holds
        invalid UTF-8 or NUL, which need an OutputLine with raw bytes per line."""
        try:
            text = b"\n".join(lines).decode("utf-8")
        except UnicodeDecodeError:
            return False
        if "\0" in text:
            return False
        if self._masker is not None:
            text = self._masker.mask(text)
        assert self._on_chunk is not None
        try:
            self._on_chunk(ts, stream, text, len(lines))
        except Exception:
            if not self._callback_failed:
                self._callback_failed = True
                log.exception("on_chunk failed for pid %s; output keeps being drained", self.pid)
        return True

    def _truncate(self, batch: list[OutputLine], ts: float) -> None:
        """Add the truncation marker and stop collecting (the splitters' buffers are freed)."""
        self._truncated = True
        self._logged_bytes = self._max_log_bytes
        size = self._max_log_bytes / 2**20
        batch.append(
            OutputLine(
                ts,
                STDERR,
                f"[bakery] log truncated after {size:.1f} MiB; the action keeps running, "
                "further output is discarded",
                None,
            )
        )
        for splitter in self._splitters.values():
            splitter.flush()

    def _emit(self, batch: list[OutputLine]) -> None:
        """Call on_output; a failing callback must not stop the draining of the pipes."""
        try:
            self._on_output(batch)
        except Exception:
            if not self._callback_failed:
                self._callback_failed = True
                log.exception("on_output failed for pid %s; output keeps being drained", self.pid)


def sweep(
    cookie: tuple[str, str],
    sig: int = signal.SIGKILL,
    *,
    exclude_pgid: int | None = None,
    since: PidMark | None = None,
    unsure: list[int] | None = None,
) -> list[int]:
    """Signal every process whose environment holds NAME=VALUE; returns the pids signalled.

    This finds what escaped the process group (`setsid`, double forks). Our own pid is
    skipped, and so is process group `exclude_pgid` when given. Processes we may not read or
    signal (other users) are skipped. A process that cleared its environment (`env -i`)
    cannot be found this way. With `sig=0` nothing is signalled: it only lists the pids.
    With `since` (taken before the tree's first fork) only pids given out after it are read.
    `unsure`, when given, gets the live processes whose environment was empty: one caught in
    the middle of an exec (the kernel fills it in last) or one started with `env -i`.
    """
    name, value = cookie
    needle = b"\0" + f"{name}={value}".encode() + b"\0"
    me = os.getpid()
    window = pid_window(since)
    signalled: list[int] = []
    candidates = window.few() if window is not None else None
    if candidates is None:
        try:
            listed = os.listdir("/proc")
        except OSError:
            return signalled
        candidates = [int(entry) for entry in listed if entry.isdigit()]
    for pid in candidates:
        if pid == me or (window is not None and pid not in window):
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if not environ:
            if unsure is not None and _user_process(pid):
                unsure.append(pid)
            continue
        if needle not in b"\0" + environ + b"\0":
            continue
        try:
            if exclude_pgid is not None and os.getpgid(pid) == exclude_pgid:
                continue
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue
        signalled.append(pid)
    return signalled


def _user_process(pid: int) -> bool:
    """Alive and not a kernel thread (those have no environment either)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return False
    fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) "
    state, ppid = fields[0], int(fields[1])
    return state not in (b"Z", b"X") and ppid != 2 and pid != 2
