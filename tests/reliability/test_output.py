"""Guarantees 9 and 10: floods keep bakery's memory flat; hostile bytes are kept, never obeyed.

Both run `bakery run --plain` as a subprocess: memory is the peak RSS of that process
(VmHWM from /proc), output is the bytes a terminal would receive.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import events as ev
from tests.reliability._support import BAKERY, action_of, db_path, reader, runs, show

pytestmark = pytest.mark.timeout(150)

LOG_LIMIT = "512K"


class PeakRss:
    """Polls a process's VmHWM (its peak resident set) until it exits."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while True:
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            if "State:\tZ" in status:
                return
            time.sleep(0.02)

    def join(self) -> int:
        self._thread.join(10)
        return self.peak_kb


def bakery_bytes(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """A bakery command whose output we keep as bytes: exactly what a terminal receives."""
    return subprocess.run(
        [*BAKERY, *args], cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL, timeout=90
    )


def run_measured(repo_path: Path, env: dict[str, str] | None = None) -> tuple[int, bytes, int]:
    """`bakery run --plain` to its end: (exit code, stdout+stderr bytes, peak RSS in KiB)."""
    proc = subprocess.Popen(
        [*BAKERY, "run", "--plain"],
        cwd=repo_path,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    meter = PeakRss(proc.pid)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out, meter.join()


# -- 9. floods ---------------------------------------------------------------------------------

FLOOD = """
name: flood
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source}
  - name: Flood
    actions:
      - name: Yes
        category: build
        run: |
          set +o pipefail   # `yes` dies of SIGPIPE when head is done; that is not our point
          yes | head -c 200M
          echo after-the-flood >&2
          exit 3
      - name: LongLine
        category: build
        run: head -c 100000000 /dev/zero | tr '\\0' x; exit 4
"""

TRIVIAL = """
name: trivial
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source}
  - name: Work
    actions:
      - {name: Hello, category: build, run: "echo hello"}
"""


@pytest.mark.slow
def test_output_floods_keep_memory_flat_and_the_log_capped_while_the_action_runs_to_its_end(
    make_repo: Callable[..., Any], record_property: Callable[[str, object], None]
) -> None:
    """200 MB of `yes` and a 100 MB line with no newline (both at once), with the stored log
    capped at 512 KiB through BAKERY_LOG_LIMIT (the default is 64 MiB, which would only make
    the test store and print more lines): bakery's peak RSS stays within a fixed bound, each
    stored log ends with the truncation marker, and each action reports its real exit code."""
    quiet = make_repo(TRIVIAL, name="quiet")
    code, _, baseline_kb = run_measured(quiet.path)
    assert code == 0

    repo = make_repo(FLOOD)
    code, out, peak_kb = run_measured(repo.path, env={"BAKERY_LOG_LIMIT": LOG_LIMIT})
    record_property("bakery_peak_rss_kib_trivial_run", baseline_kb)
    record_property("bakery_peak_rss_kib_300mb_flood", peak_kb)
    print(f"peak RSS: trivial run {baseline_kb} KiB, 300 MB flood {peak_kb} KiB")
    assert code == 1, out[-2000:]
    assert peak_kb < baseline_kb + 100 * 1024, (baseline_kb, peak_kb)  # flat, not 300 MB
    assert len(out) < 16 * 2**20  # the screen got the capped log, not the flood

    doc = show(repo.path, 1)
    yes, long = action_of(doc, "Flood", "Yes"), action_of(doc, "Flood", "LongLine")
    assert (yes["status"], yes["exit_code"]) == (ev.FAILED, 3)  # ran to its real end
    assert (long["status"], long["exit_code"]) == (ev.FAILED, 4)
    ((run_id, _, _),) = runs(db_path(repo.path))
    with reader(db_path(repo.path)) as store:
        for action in ("Yes", "LongLine"):
            lines = [ln for ln in store.logs(run_id, "Flood", action) if ln.stream != "system"]
            *kept, marker = lines
            assert sum(len(ln.text) + 1 for ln in kept) <= 512 * 1024
            assert marker.stream == "stderr"
            assert marker.text.startswith("[bakery] log truncated after 0.5 MiB"), marker
            assert "after-the-flood" not in {ln.text for ln in kept}
            assert max(len(ln.text) for ln in kept) <= 16 * 1024  # long lines in pieces
    assert b"log truncated after 0.5 MiB" in out


# -- 10. hostile bytes -------------------------------------------------------------------------

HOSTILE_LINES: list[bytes] = [
    b"bad utf8 \xff\xfe\xc3 end",
    b"nul \x00 byte",
    b"title \x1b]0;pwned-title\x07 after",
    b"clear \x1b[2J\x1b[H screen \x1b[?1049h alt",
    b"link \x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\ end",
    b"c1 csi \xc2\x9b31m and osc \xc2\x9d0;t\xc2\x9c",
    b"bell \x07 backspace \x08 delete \x7f",
    b"colour \x1b[31mred\x1b[0m",
    b"clipboard \x1b]52;c;cHduZWQ=\x07 done",
]
FORBIDDEN = [b"\x1b", b"\x07", b"\x00", b"\x08", b"\x7f", b"\xc2\x9b", b"\xc2\x9d", b"\r"]


def _printf_script() -> str:
    """A shell script that writes HOSTILE_LINES byte for byte (octal escapes)."""
    lines = []
    for line in HOSTILE_LINES:
        body = "".join(f"\\{b:03o}" for b in line)
        lines.append(f"printf '{body}\\n'")
    lines.append("printf '\\033]0;stderr-title\\007 on stderr\\n' >&2")
    return "\n".join(lines) + "\n"


def test_hostile_bytes_are_stored_as_they_came_and_shown_harmlessly(
    make_repo: Callable[..., Any],
) -> None:
    repo = make_repo(
        """
name: hostile
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Build
    actions:
      - {name: Hostile, category: build, inputs: [source], run: bash hostile.sh}
""",
        **{"hostile.sh": _printf_script()},
    )
    repo.commit("subject \x1b]0;commit-title\x07 \x1b[2J with escapes")
    proc = bakery_bytes("run", "--plain", cwd=repo.path)
    run_output = proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr

    ((run_id, _, _),) = runs(db_path(repo.path))
    with reader(db_path(repo.path)) as store:
        stored = store.logs(run_id, "Build", "Hostile")
    came = [
        ln.raw if ln.raw is not None else ln.text.encode() for ln in stored if ln.stream == "stdout"
    ]
    assert came == HOSTILE_LINES  # as they came, byte for byte
    assert [ln.text for ln in stored if ln.stream == "stderr"] == [
        "\x1b]0;stderr-title\x07 on stderr"
    ]

    logs = bakery_bytes("logs", "1", cwd=repo.path)
    assert logs.returncode == 0
    for shown in (logs.stdout, run_output):
        for needle in FORBIDDEN:
            assert needle not in shown, (needle, shown)
        text = shown.decode("utf-8", "replace")
        for visible in ("bad utf8", "nul", "after", "screen", "click", "red", "on stderr", "done"):
            assert visible in text, visible
        assert "pwned-title" not in text and "evil.example" not in text
    assert b"subject" in run_output and b"commit-title" not in run_output
