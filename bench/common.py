"""Helpers shared by the benchmarks: scratch repositories, timed subprocesses, statistics.

Every figure is measured beside a baseline in the same run, rounds interleaved (subject,
baseline, subject, baseline...) so both see the same load; the median of the rounds is kept.
"""

from __future__ import annotations

import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BAKERY = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())"]
"""What the `bakery` console script runs, without depending on PATH."""

SECRET_ENV = "BENCH_TOKEN"
SECRET_VALUE = "s3cr3t-bench-token-0123456789"
"""A declared secret that never appears in the output: the masker is active on every batch."""


@dataclass
class Timed:
    wall: float
    """Seconds from spawn to exit."""
    rc: int
    maxrss_kb: int
    """Peak resident set of the child (ru_maxrss from wait4), in KiB."""
    stdout: bytes = b""


def run_timed(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    stdout: Any = subprocess.DEVNULL,
    check: bool = True,
) -> Timed:
    """Run argv to its end; wall time and the child's own peak RSS (wait4, not the tree max)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
    )
    out = b""
    err = b""
    if stdout is subprocess.PIPE:
        out, err = proc.communicate()
        _, status, usage = os.wait4(proc.pid, 0) if proc.returncode is None else (0, 0, None)
    else:
        err = proc.stderr.read() if proc.stderr else b""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    rss = usage.ru_maxrss if usage is not None else 0
    if check and proc.returncode not in (0, None):
        tail = err.decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"{' '.join(map(str, argv))[:200]} exited {proc.returncode}:\n{tail}")
    return Timed(wall, proc.returncode or 0, rss, out)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def interleave(rounds: int, *fns: Callable[[], float]) -> list[list[float]]:
    """Call each fn once per round, in turn; returns one list of results per fn."""
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            out[i].append(fn())
    return out


PYCACHE = Path(tempfile.gettempdir()) / "bakery-bench-pycache"
"""Bytecode cache for the measured processes. An installed Bakery has its .pyc files; a
sandbox with PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module on every start
(the startup benchmark reports that case separately)."""


def bench_env(
    state_dir: Path | None = None, *, bytecode: bool = True, **extra: str
) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("BAKERY_HOME", None)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    if state_dir is not None:
        env["BAKERY_HOME"] = str(state_dir)
        env["BAKERY_CONFIG_DIR"] = str(state_dir.parent / "config")  # settings, definition cache
    env[SECRET_ENV] = SECRET_VALUE
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


class Scratch:
    """A temporary directory for one benchmark; removed at exit unless BENCH_KEEP is set."""

    def __init__(self, name: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"bakery-bench-{name}-"))

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.path, ignore_errors=True)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_repo(path: Path, pipeline_yaml: str) -> Path:
    """A git repository with one commit holding `bakery.yaml`."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Bench")
    git(path, "config", "user.email", "bench@bakery.local")
    git(path, "config", "commit.gpgsign", "false")
    (path / "bakery.yaml").write_text(pipeline_yaml)
    (path / "README").write_text("bench\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "bench")
    return path


def pipeline_yaml(name: str, stages: list[list[tuple[str, str, int]]], *, secret: bool = True) -> str:
    """Source stage + the given stages; each action is (name, shell command, run_order)."""
    lines = [f"name: {name}"]
    if secret:
        lines += ["secrets:", f"  - {{name: TOKEN, env: {SECRET_ENV}}}"]
    lines += [
        "stages:",
        "  - name: Source",
        "    actions:",
        "      - {name: Checkout, category: source, outputs: [source]}",
    ]
    for i, actions in enumerate(stages, 1):
        lines += [f"  - name: S{i}", "    actions:"]
        for action, command, order in actions:
            quoted = command.replace("'", "''")
            lines.append(
                f"      - {{name: {action}, category: build, run_order: {order}, run: '{quoted}'}}"
            )
    return "\n".join(lines) + "\n"


def store_counts(db: Path) -> dict[str, int]:
    """What an execution left in the store: runs, events, log lines (persisted check)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        runs = conn.execute("SELECT COUNT(*) FROM runs WHERE finished_at IS NOT NULL").fetchone()[0]
        events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        lines = conn.execute(
            "SELECT COALESCE(SUM(last_line - first_line + 1), 0) FROM log_chunks"
        ).fetchone()[0]
    finally:
        conn.close()
    return {"runs": runs, "events": events, "log_lines": lines}


def self_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Row:
    """One line of the table: a figure, its same-run baseline, the target and a verdict."""

    bench: str
    metric: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    ok: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        ratio = (
            self.value / self.baseline
            if self.value is not None and self.baseline not in (None, 0)
            else None
        )
        return {
            "bench": self.bench,
            "metric": self.metric,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_label": self.baseline_label,
            "ratio": ratio,
            "target": self.target,
            "ok": self.ok,
            "note": self.note,
            **({"extra": self.extra} if self.extra else {}),
        }


def na(bench: str, metric: str, why: str = "n/a (not built yet)") -> Row:
    return Row(bench, metric, None, "", note=why)
