"""The pid window a sweep reads: every process started after the mark, nothing before it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.pids import PidMark, PidWindow, pid_mark, pid_window
from engine.process import sweep

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_a_window_holds_the_pids_given_out_after_the_mark() -> None:
    mark = pid_mark()
    assert mark is not None
    child = subprocess.Popen(["sleep", "5"])
    try:
        window = pid_window(mark)
        assert window is not None
        assert child.pid in window
        assert os.getpid() not in window and 1 not in window
    finally:
        child.kill()
        child.wait()


def test_a_window_goes_round_past_pid_max() -> None:
    window = PidWindow(after=4_194_000, upto=5)
    assert 4_194_100 in window and 3 in window and 5 in window
    assert 4_194_000 not in window and 100 not in window
    assert 7 not in PidWindow(after=7, upto=7)  # nothing given out since


def test_a_small_window_lists_its_pids_and_a_large_or_wrapped_one_does_not() -> None:
    assert list(PidWindow(after=100, upto=103).few() or []) == [101, 102, 103]
    assert PidWindow(after=7, upto=7).few() == range(8, 8)
    assert PidWindow(after=100, upto=100_000).few() is None  # listing /proc is cheaper
    assert PidWindow(after=4_194_000, upto=5).few() is None


def test_no_window_without_a_mark_or_after_the_counter_may_have_gone_round() -> None:
    assert pid_window(None) is None
    now = pid_mark()
    assert now is not None
    assert pid_window(PidMark(now.last_pid, now.forks - 10_000_000)) is None


def _cookie_sleeper(cookie: str) -> subprocess.Popen[bytes]:
    """A process carrying the cookie, once its environment can be read: Popen returns when
    the exec has begun, and /proc/PID/environ stays empty until the kernel has set it up."""
    env = {**os.environ, "BAKERY_JOB_ID": cookie}
    proc = subprocess.Popen(["sleep", "30"], env=env, start_new_session=True)
    deadline = time.monotonic() + 10
    while cookie.encode() not in Path(f"/proc/{proc.pid}/environ").read_bytes():
        assert time.monotonic() < deadline, "the environment never showed up"
        time.sleep(0.001)
    return proc


def test_a_sweep_since_a_mark_kills_what_started_after_it_and_leaves_older_processes() -> None:
    cookie = f"pids-{os.getpid()}-{time.monotonic_ns()}"
    older = _cookie_sleeper(cookie)  # same cookie, but started before the mark
    mark = pid_mark()
    newer = _cookie_sleeper(cookie)
    try:
        assert newer.poll() is None and older.poll() is None
        window = pid_window(mark)
        killed = sweep(("BAKERY_JOB_ID", cookie), signal.SIGKILL, since=mark)
        assert killed == [newer.pid], (mark, window, older.pid, newer.pid, newer.poll())
        assert newer.wait(5) == -signal.SIGKILL
        assert older.poll() is None
        assert sweep(("BAKERY_JOB_ID", cookie), signal.SIGKILL) == [older.pid]  # no mark: all
        assert older.wait(5) == -signal.SIGKILL
    finally:
        for proc in (older, newer):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_process_without_an_environment_is_reported_as_unsure() -> None:
    """A process in the middle of an exec shows no environment yet (nor does one started
    with `env -i`): the sweep cannot tell whose it is and says so, so it is looked at again."""
    mark = pid_mark()
    bare = subprocess.Popen(["env", "-i", "sleep", "30"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{bare.pid}/cmdline").read_bytes() != b"sleep\x0030\x00":
            assert time.monotonic() < deadline, "sleep never started"
            time.sleep(0.001)
        unsure: list[int] = []
        assert sweep(("BAKERY_JOB_ID", "nobody"), 0, since=mark, unsure=unsure) == []
        assert bare.pid in unsure
    finally:
        bare.kill()
        bare.wait()
    unsure = []
    sweep(("BAKERY_JOB_ID", "nobody"), 0, since=mark, unsure=unsure)
    assert bare.pid not in unsure  # gone once reaped; zombies and kernel threads never count
