"""Which pids a child's process tree can hold, so a sweep reads only those.

A sweep finds escaped processes by reading /proc/PID/environ, and reading every process of a
developer's machine (500 or more with a browser open) costs milliseconds on each action's
exit. Linux hands out pids cyclically, so every process of a tree started after a mark was
taken got a pid in the window (mark, newest] - unless so many processes were created since
that the counter went all the way round, which the fork counter of /proc/stat tells. Where
any of this cannot be read, the window is None and the sweep reads every process.
"""

from __future__ import annotations

import os
from functools import cache
from typing import NamedTuple

__all__ = ["PidMark", "PidWindow", "pid_mark", "pid_window"]

SMALL_WINDOW = 2048
"""Up to this many pids, a sweep tries each one rather than listing /proc."""


class PidMark(NamedTuple):
    """Where pid allocation stood: the newest pid given out, and forks since boot.

    (Tuples rather than dataclasses here and in engine.process: a dataclass costs ~1 ms
    to create at import, which every `bakery run` pays.)"""

    last_pid: int
    forks: int


class PidWindow(NamedTuple):
    """The pids given out after a mark: (after, upto], going round past pid_max."""

    after: int
    upto: int

    def __contains__(self, pid: int) -> bool:
        if self.after <= self.upto:
            return self.after < pid <= self.upto
        return pid > self.after or pid <= self.upto  # the counter went round once

    def few(self, limit: int = SMALL_WINDOW) -> range | None:
        """The pids themselves when they are few (cheaper to try than listing /proc)."""
        if self.after <= self.upto and self.upto - self.after <= limit:
            return range(self.after + 1, self.upto + 1)
        return None


@cache
def _pid_max() -> int | None:
    try:
        with open("/proc/sys/kernel/pid_max", "rb") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None


@cache
def _proc_is_ours() -> bool:
    """/proc shows our own pid namespace (the one /proc/loadavg's newest pid counts in)."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


def _forks() -> int:
    with open("/proc/stat", "rb") as handle:
        text = handle.read()
    at = text.index(b"\nprocesses ") + 11
    return int(text[at : text.index(b"\n", at)])


def pid_mark() -> PidMark | None:
    """The current mark, or None where /proc cannot tell (not Linux, another namespace)."""
    if _pid_max() is None or not _proc_is_ours():
        return None
    try:
        with open("/proc/loadavg", "rb") as handle:
            last_pid = int(handle.read().split()[4])  # "0.52 0.58 0.59 2/96 11929"
        return PidMark(last_pid, _forks())
    except (OSError, ValueError, IndexError):
        return None


def pid_window(since: PidMark | None) -> PidWindow | None:
    """The pids given out since `since`, or None when every pid must be looked at."""
    if since is None:
        return None
    now = pid_mark()
    pid_max = _pid_max()
    if now is None or pid_max is None or now.forks - since.forks >= pid_max // 2:
        return None
    return PidWindow(since.last_pid, now.last_pid)
