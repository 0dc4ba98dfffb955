"""ChildProcess with real processes: completion, termination, sweeping, caps, leaks, masking.

Timing is only used as a generous hang guard ("within 5 s"), never as a performance claim.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from engine.masking import MASK, Masker
from engine.process import ChildProcess, OutputLine, ProcessError, ProcessResult, sweep
from tests.conftest import own_threads

HANG_GUARD = 5.0
COOKIE_NAME = "BAKERY_JOB_ID"


def new_cookie() -> tuple[str, str]:
    return (COOKIE_NAME, f"test-{uuid.uuid4().hex}")


class Collector:
    """on_output target that remembers every batch."""

    def __init__(self) -> None:
        self.batches: list[list[OutputLine]] = []

    def __call__(self, batch: list[OutputLine]) -> None:
        assert isinstance(batch, list) and batch
        self.batches.append(batch)

    @property
    def lines(self) -> list[OutputLine]:
        return [line for batch in self.batches for line in batch]

    def texts(self, stream: str | None = None) -> list[str]:
        return [line.text for line in self.lines if stream is None or line.stream == stream]


async def spawn(
    script: str, out: Collector | None = None, *, cookie: tuple[str, str] | None = None, **kwargs
) -> ChildProcess:
    return await ChildProcess.spawn(
        ["bash", "-c", script],
        cwd=kwargs.pop("cwd", "/tmp"),
        env=kwargs.pop("env", {"PATH": os.environ["PATH"]}),
        cookie=cookie or new_cookie(),
        on_output=out if out is not None else Collector(),
        **kwargs,
    )


async def run(script: str, **kwargs) -> tuple[ProcessResult, Collector]:
    out = Collector()
    timeout = kwargs.pop("timeout", None)
    proc = await spawn(script, out, **kwargs)
    result = await asyncio.wait_for(proc.wait(timeout), HANG_GUARD * 2)
    return result, out


async def run_when_ready(
    script: str, ready: int, timeout: float, **kwargs
) -> tuple[ProcessResult, Collector]:
    """Spawn, wait for `ready` lines (traps set, pids printed), then wait(timeout).

    Starting the timeout only once the script is in place keeps a loaded machine from
    turning a slow bash start-up into a different outcome.
    """
    out = Collector()
    proc = await spawn(script, out, **kwargs)
    deadline = time.monotonic() + HANG_GUARD
    while len(out.lines) < ready and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    result = await asyncio.wait_for(proc.wait(timeout), HANG_GUARD * 2)
    return result, out


def is_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (pid 1 here never reaps orphans)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


async def wait_dead(pid: int) -> bool:
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        await asyncio.sleep(0.02)
    return False


async def nothing_carries(cookie: tuple[str, str]) -> bool:
    """Poll (signal 0 only lists) until no live process carries the cookie."""
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        if not [pid for pid in sweep(cookie, 0) if is_alive(pid)]:
            return True
        await asyncio.sleep(0.02)
    return False


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def my_zombies() -> list[int]:
    me = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] == "Z" and fields[1] == me:
            found.append(int(entry))
    return found


# -- basics -------------------------------------------------------------------------------


async def test_stdout_and_stderr_are_separate_streams() -> None:
    result, out = await run("echo out; echo err >&2; exit 3")
    assert result.exit_code == 3 and result.signal is None
    assert result.end_reason == "exited" and result.killed_with is None
    assert not result.truncated and result.duration >= 0
    assert out.texts("stdout") == ["out"]
    assert out.texts("stderr") == ["err"]
    assert all(isinstance(line.ts, float) and line.raw is None for line in out.lines)


async def test_output_arrives_in_batches_not_line_by_line() -> None:
    result, out = await run("seq 1 5000")
    assert result.exit_code == 0
    assert out.texts() == [str(i) for i in range(1, 5001)]
    assert len(out.batches) < 5000


async def test_last_line_without_newline_is_delivered() -> None:
    _, out = await run("printf 'one\\ntwo'")
    assert out.texts() == ["one", "two"]


async def test_progress_bars_become_lines() -> None:
    _, out = await run("printf '10%%\\r50%%\\r100%%\\r\\ndone\\r\\n'")
    assert out.texts() == ["10%", "50%", "100%", "done"]


async def test_cookie_and_env_reach_the_child(tmp_path: Path) -> None:
    cookie = new_cookie()
    _, out = await run(
        'echo "$BAKERY_JOB_ID|$BAKERY_RUN_ID|$PWD"',
        cookie=cookie,
        env={"PATH": os.environ["PATH"], "BAKERY_RUN_ID": "run-7"},
        cwd=tmp_path,
    )
    assert out.texts() == [f"{cookie[1]}|run-7|{tmp_path}"]


async def test_child_runs_in_its_own_session() -> None:
    _, out = await run("ps -o sid= -p $$; echo $$")
    sid, pid = (text.strip() for text in out.texts())
    assert sid == pid


async def test_stdin_is_dev_null() -> None:
    result, out = await run("cat; echo after-cat; readlink /proc/self/fd/0")
    assert result.exit_code == 0
    assert out.texts() == ["after-cat", "/dev/null"]


async def test_killed_by_own_signal_reports_the_signal() -> None:
    result, _ = await run("kill -KILL $$")
    assert result.exit_code is None and result.signal == "SIGKILL"
    assert result.end_reason == "exited" and result.killed_with is None


async def test_wait_can_be_called_twice() -> None:
    proc = await spawn("echo x")
    first = await proc.wait()
    assert await proc.wait() == first
    assert proc.returncode == 0


# -- start failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "cwd", "message"),
    [
        (["true"], "/nonexistent/dir", "does not exist"),
        (["true"], "/etc/hostname", "not a directory"),
        (["/no/such/program"], "/tmp", "no such program"),
        ([], "/tmp", "non-empty"),
        (["echo", "nul\0byte"], "/tmp", "cannot start"),
    ],
)
async def test_start_failures_raise_process_error(argv: list[str], cwd: str, message: str) -> None:
    tasks_before = len(asyncio.all_tasks())
    with pytest.raises(ProcessError, match=message):
        await ChildProcess.spawn(
            argv,
            cwd=cwd,
            env={"PATH": os.environ["PATH"]},
            cookie=new_cookie(),
            on_output=Collector(),
        )
    assert len(asyncio.all_tasks()) == tasks_before


async def test_program_without_exec_permission_raises_process_error(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    with pytest.raises(ProcessError, match="permission denied"):
        await ChildProcess.spawn(
            [str(script)], cwd=tmp_path, env={}, cookie=new_cookie(), on_output=Collector()
        )


# -- completion is the exit, not the end of the pipes (gh-119710) ------------------------


async def test_grandchild_holding_the_pipe_does_not_delay_completion() -> None:
    started = time.monotonic()
    result, out = await run("echo hi; sleep 30 & exit 0")
    assert time.monotonic() - started < HANG_GUARD
    assert result.exit_code == 0 and result.end_reason == "exited"
    assert out.texts() == ["hi"]


async def test_grandchild_left_in_the_group_is_killed_after_exit() -> None:
    _, out = await run("sleep 30 & echo $!; exit 0")
    assert await wait_dead(int(out.texts()[0]))


# -- timeout, stop, kill_now --------------------------------------------------------------


async def test_timeout_terminates_a_cooperative_child_with_sigterm() -> None:
    result, out = await run_when_ready("echo started; sleep 30", 1, timeout=0.1, grace=HANG_GUARD)
    assert result.end_reason == "timeout"
    assert result.killed_with == "SIGTERM"
    assert result.signal == "SIGTERM" and result.exit_code is None
    assert out.texts() == ["started"]


async def test_timeout_kills_a_child_that_ignores_sigterm() -> None:
    started = time.monotonic()
    result, out = await run_when_ready(
        "trap '' TERM; echo ignoring; sleep 30; echo survived", 1, timeout=0.1, grace=0.3
    )
    assert time.monotonic() - started < HANG_GUARD
    assert result.end_reason == "timeout"
    assert result.killed_with == "SIGKILL"
    assert result.signal == "SIGKILL"
    assert out.texts() == ["ignoring"]


async def test_child_that_traps_term_can_clean_up_within_grace() -> None:
    result, out = await run_when_ready(
        "trap 'echo cleaning; exit 7' TERM; echo ready; sleep 30 & wait",
        1,
        timeout=0.1,
        grace=HANG_GUARD,
    )
    assert result.end_reason == "timeout" and result.killed_with == "SIGTERM"
    assert result.exit_code == 7
    assert out.texts() == ["ready", "cleaning"]


async def test_stop_ends_the_child_and_reports_stopped() -> None:
    out = Collector()
    proc = await spawn("trap '' TERM; echo up; sleep 30", out, grace=HANG_GUARD)
    while not out.lines:
        await asyncio.sleep(0.01)
    await asyncio.wait_for(proc.stop(grace=0.2), HANG_GUARD)
    assert not is_alive(proc.pid)
    result = await asyncio.wait_for(proc.wait(), HANG_GUARD)
    assert result.end_reason == "stopped"
    assert result.killed_with == "SIGKILL" and result.signal == "SIGKILL"


async def test_stop_after_exit_changes_nothing() -> None:
    proc = await spawn("exit 4")
    result = await proc.wait()
    await proc.stop()
    proc.kill_now()
    assert await proc.wait() == result
    assert result.end_reason == "exited" and result.exit_code == 4


async def test_kill_now_kills_at_once_and_cleans_up_without_waiting() -> None:
    proc = await spawn("sleep 30")
    proc.kill_now()
    result = await asyncio.wait_for(proc.wait(), HANG_GUARD)
    assert result.end_reason == "stopped"
    assert result.killed_with == "SIGKILL" and result.signal == "SIGKILL"


async def test_timeout_while_stop_in_progress_keeps_first_reason() -> None:
    proc = await spawn("trap '' TERM; sleep 30", grace=0.3)
    stopping = asyncio.create_task(proc.stop())
    await asyncio.sleep(0.05)
    result = await asyncio.wait_for(proc.wait(timeout=0.01), HANG_GUARD)
    await stopping
    assert result.end_reason == "stopped"


# -- escaped daemons and the env cookie ---------------------------------------------------

# Starts a daemon in its own session and exits only once setsid() has happened, so the group
# kill after exit cannot reach it: only the cookie sweep can.
DAEMON_THEN_EXIT = (
    "setsid sleep 300 </dev/null >/dev/null 2>&1 & pid=$!;"
    " for i in $(seq 500); do [ $(ps -o sid= -p $pid) = $pid ] && break; sleep 0.01; done;"
    " echo $pid"
)


async def test_setsid_and_nohup_daemons_are_swept_on_timeout() -> None:
    cookie = new_cookie()
    result, out = await run_when_ready(
        "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!;"
        " nohup sleep 300 </dev/null >/dev/null 2>&1 & echo $!;"
        " (setsid bash -c 'trap \"\" TERM; sleep 300' </dev/null >/dev/null 2>&1 &);"
        " sleep 30",
        2,
        timeout=0.2,
        grace=0.3,
        cookie=cookie,
    )
    assert result.end_reason == "timeout"
    pids = [int(text) for text in out.texts()]
    assert len(pids) == 2
    for pid in pids:
        assert await wait_dead(pid), f"pid {pid} survived"
    assert await nothing_carries(cookie)


async def test_setsid_daemon_is_swept_after_a_normal_exit() -> None:
    cookie = new_cookie()
    result, out = await run(DAEMON_THEN_EXIT, cookie=cookie)
    assert result.exit_code == 0
    assert await wait_dead(int(out.texts()[0]))


async def test_sweep_on_exit_can_be_turned_off() -> None:
    cookie = new_cookie()
    result, out = await run(DAEMON_THEN_EXIT, cookie=cookie, sweep_on_exit=False)
    pid = int(out.texts()[0])
    try:
        assert is_alive(pid)
    finally:
        assert sweep(cookie) == [pid]
    assert await wait_dead(pid)


def test_sweep_matches_the_exact_variable_and_skips_ourselves() -> None:
    value = uuid.uuid4().hex
    env = {"PATH": os.environ["PATH"]}
    target = subprocess.Popen(["sleep", "30"], env={**env, COOKIE_NAME: value})
    longer = subprocess.Popen(["sleep", "30"], env={**env, COOKIE_NAME: value + "x"})
    try:
        os.environ[COOKIE_NAME] = value  # our own environ is not /proc/self/environ, but be sure
        assert sweep((COOKIE_NAME, value)) == [target.pid]
        assert target.wait(HANG_GUARD) == -9
        assert longer.poll() is None
    finally:
        os.environ.pop(COOKIE_NAME, None)
        longer.kill()
        longer.wait()
        target.kill()
        target.wait()


# -- masking ------------------------------------------------------------------------------


async def test_secret_split_across_two_writes_is_masked() -> None:
    masker = Masker(["abcdefghijkl"])
    _, out = await run("printf 'key=abc'; sleep 0.1; printf 'defghijkl end\\n'", masker=masker)
    assert out.texts() == [f"key={MASK} end"]


async def test_base64_of_secret_from_a_real_pipeline_is_masked() -> None:
    secret = "s3cr3t-t0ken-value"
    masker = Masker([secret])
    _, out = await run(
        'echo "$S"; echo "$S" | base64; printf "user:%s" "$S" | base64; printf %s "$S" | base64',
        masker=masker,
        env={"PATH": os.environ["PATH"], "S": secret},
    )
    texts = out.texts()
    assert texts[0] == MASK and texts[1] == MASK and texts[3] == MASK
    # only the chars that also depend on "user:" or on the end of the stream survive
    assert texts[2].startswith("dXNlcjp") and MASK in texts[2]
    assert len(texts[2]) <= len("dXNlcjp") + len(MASK) + 3


async def test_masked_raw_bytes_for_invalid_utf8() -> None:
    masker = Masker(["abcdefghijkl"])
    _, out = await run("printf '\\xff abcdefghijkl\\n'", masker=masker)
    (line,) = out.lines
    assert line.raw == b"\xff " + MASK.encode()
    assert line.text == f"\ufffd {MASK}"


# -- hostile bytes ------------------------------------------------------------------------


async def test_invalid_utf8_nul_and_escapes_are_delivered_as_they_came() -> None:
    _, out = await run(
        "printf '\\xff\\xfeok\\n'; printf 'a\\x00b\\n'; printf '\\033[31mred\\033[0m\\n'; echo fine"
    )
    invalid, nul, esc, fine = out.lines
    assert invalid.raw == b"\xff\xfeok" and invalid.text == "\ufffd\ufffdok"
    assert nul.raw == b"a\x00b" and nul.text == "a\x00b"
    assert esc.raw is None and esc.text == "\x1b[31mred\x1b[0m"
    assert fine.raw is None and fine.text == "fine"


# -- log cap and memory -------------------------------------------------------------------


async def test_log_cap_stops_delivery_but_the_child_runs_to_its_end() -> None:
    result, out = await run(
        "seq 1 100000; head -c 5000000 /dev/zero; echo never-seen; exit 5", max_log_bytes=1000
    )
    assert result.truncated
    assert result.exit_code == 5 and result.end_reason == "exited"
    *lines, marker = out.lines
    assert sum(len(line.text) + 1 for line in lines) <= 1000
    assert [line.text for line in lines] == [str(i) for i in range(1, len(lines) + 1)]
    assert marker.stream == "stderr"
    assert marker.text.startswith("[bakery] log truncated after")
    assert "keeps running" in marker.text
    assert "never-seen" not in out.texts()


async def test_log_cap_marker_names_the_size_in_mib() -> None:
    result, out = await run("head -c 3000000 /dev/zero | tr '\\0' 'x'", max_log_bytes=2**20)
    assert result.truncated
    assert "1.0 MiB" in out.lines[-1].text


async def test_output_flood_keeps_memory_bounded() -> None:
    """`yes | head -c 1G` and a 100 MB line with no newline: RSS stays flat (a memory bound)."""
    counted = [0]

    def count(batch: list[OutputLine]) -> None:
        counted[0] += len(batch)

    before = rss_mb()
    proc = await ChildProcess.spawn(
        ["bash", "-c", "yes | head -c 1G"],
        cwd="/tmp",
        env={"PATH": os.environ["PATH"]},
        cookie=new_cookie(),
        on_output=count,
        max_log_bytes=2**20,  # past the cap it is pure draining; 1G of "y" lines would be slow
    )
    result = await asyncio.wait_for(proc.wait(), 60)
    assert result.exit_code == 0 and result.truncated
    proc = await ChildProcess.spawn(
        ["bash", "-c", "head -c 100000000 /dev/zero | tr '\\0' x"],
        cwd="/tmp",
        env={"PATH": os.environ["PATH"]},
        cookie=new_cookie(),
        on_output=count,
    )
    result = await asyncio.wait_for(proc.wait(), 60)
    assert result.exit_code == 0 and result.truncated
    assert rss_mb() - before < 100
    assert counted[0] > 0


async def test_long_line_arrives_in_capped_pieces() -> None:
    _, out = await run("head -c 40000 /dev/zero | tr '\\0' y; echo; echo next")
    pieces = out.texts()
    assert pieces[-1] == "next"
    assert "".join(pieces[:-1]) == "y" * 40000
    assert max(len(p) for p in pieces) <= 16384


# -- robustness ---------------------------------------------------------------------------


async def test_failing_on_output_does_not_block_the_child() -> None:
    def explode(batch: list[OutputLine]) -> None:
        raise RuntimeError("consumer bug")

    proc = await ChildProcess.spawn(
        ["bash", "-c", "head -c 2000000 /dev/zero; exit 0"],
        cwd="/tmp",
        env={"PATH": os.environ["PATH"]},
        cookie=new_cookie(),
        on_output=explode,
    )
    result = await asyncio.wait_for(proc.wait(), HANG_GUARD)
    assert result.exit_code == 0


async def test_cancelling_wait_does_not_lose_the_process() -> None:
    proc = await spawn("sleep 0.3; echo done")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(proc.wait(), 0.05)
    result = await asyncio.wait_for(proc.wait(), HANG_GUARD)
    assert result.exit_code == 0 and result.end_reason == "exited"


async def test_loop_shutdown_kills_the_tree() -> None:
    """Cancelling supervision (what asyncio.run does to pending tasks) leaves no orphans."""
    cookie = new_cookie()
    out = Collector()
    proc = await spawn("sleep 30 & echo $!; echo $$; sleep 30", out, cookie=cookie)
    deadline = time.monotonic() + HANG_GUARD
    while len(out.lines) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    proc._supervisor.cancel()
    with pytest.raises(asyncio.CancelledError):
        await proc.wait()
    for pid in (int(text) for text in out.texts()):
        assert await wait_dead(pid)
    assert await nothing_carries(cookie)


async def test_many_processes_leave_no_fds_threads_tasks_or_zombies() -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def settle(measure, baseline: int) -> int:
        deadline = time.monotonic() + HANG_GUARD
        while measure() > baseline and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return measure()

    # warm up once so lazily created loop machinery is part of the baseline
    await run("true")
    base_fds, base_threads = fds(), own_threads()
    base_tasks = len(asyncio.all_tasks())
    semaphore = asyncio.Semaphore(20)
    scripts = ["echo a; echo b >&2", "exit 1", "sleep 5 & echo bg", "printf x", "kill -9 $$"]

    async def one(i: int) -> ProcessResult:
        async with semaphore:
            result, _ = await run(scripts[i % len(scripts)])
            return result

    started = time.monotonic()
    results = await asyncio.gather(*(one(i) for i in range(200)))
    assert time.monotonic() - started < 30
    assert len(results) == 200
    assert await settle(fds, base_fds) == base_fds
    assert await settle(own_threads, base_threads) == base_threads
    assert await settle(lambda: len(asyncio.all_tasks()), base_tasks) == base_tasks
    assert my_zombies() == []


def test_engine_process_module_does_not_import_ui_libraries() -> None:
    code = "import sys, engine.process, engine.masking, engine.lines; print('textual' in sys.modules or 'rich' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "False"
