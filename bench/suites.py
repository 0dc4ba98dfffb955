"""The benchmarks. Each returns table rows: a figure, its same-run baseline, the target.

Whole-process figures (overhead, startup, logs, history) time `bakery` as a user runs it.
In-process figures (trigger, replay, board) run in `bench/worker.py`, in a fresh interpreter
of their own, so one benchmark's memory or threads never colour another's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import (
    BAKERY,
    ROOT,
    Row,
    Scratch,
    bench_env,
    interleave,
    make_repo,
    median,
    percentile,
    pipeline_yaml,
    run_timed,
    store_counts,
)


class Config:
    def __init__(self, quick: bool, rounds: int | None) -> None:
        self.quick = quick
        self.rounds = rounds or (3 if quick else 5)


def _worker(name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 900) -> Any:
    """Run one in-process benchmark in bench/worker.py; it prints one JSON object."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "worker.py"), name, *args],
        cwd=ROOT,
        env=env or bench_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{proc.stderr.decode('utf-8', 'replace')[-3000:]}")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


# -- overhead ----------------------------------------------------------------------------------
def _baseline_script(repo: Path, work: Path, stages: list[list[tuple[str, str, int]]]) -> str:
    """The same commands as one `bash -c` per action, same order and parallelism.

    The source action's counterpart is the `git archive | tar -x` it runs; each action's
    output goes to a file (Bakery stores every line).
    """
    lines = [
        "set -e",
        f"mkdir -p {work}/src {work}/out",
        f"git -C {repo} archive --format=tar HEAD | tar -x -C {work}/src",
    ]
    for s, actions in enumerate(stages):
        for order in sorted({o for _, _, o in actions}):
            for name, command, o in actions:
                if o == order:
                    quoted = command.replace("'", "'\\''")
                    lines.append(f"bash -c '{quoted}' > {work}/out/{s}-{name}.log 2>&1 &")
            lines.append("wait")
    return "\n".join(lines) + "\n"


def _overhead_case(
    cfg: Config, label: str, stages: list[list[tuple[str, str, int]]], slug: str
) -> list[Row]:
    n_actions = 1 + sum(len(s) for s in stages)  # the Source action counts as one
    with Scratch("overhead") as tmp:
        repo = make_repo(tmp.path / "repo", pipeline_yaml(f"overhead-{slug}", stages))
        state = tmp.path / "state"
        env = bench_env(state)
        script = tmp.path / "baseline.sh"
        script.write_text(_baseline_script(repo, tmp.path / "work", stages))

        def bakery() -> float:
            return run_timed([*BAKERY, "run", "--plain", "-C", str(repo)], env=env).wall

        def baseline() -> float:
            return run_timed(["bash", str(script)], env=env).wall

        bakery()  # warm the page cache and the .pyc files; not counted
        b, base = interleave(cfg.rounds, bakery, baseline)
        counts = store_counts(state / "bakery.db")
    mb, mbase = median(b), median(base)
    per_action_ms = (mb - mbase) / n_actions * 1000
    persisted = counts["runs"] == cfg.rounds + 1 and counts["log_lines"] >= (cfg.rounds + 1) * n_actions
    return [
        Row(
            "overhead",
            f"{label}: overhead per action",
            per_action_ms,
            "ms",
            None,
            f"bash -c per action: {mbase * 1000:.0f} ms total",
            "<= 3 ms",
            per_action_ms <= 3.0 and persisted,
            note=f"bakery run {mb * 1000:.0f} ms for {n_actions} actions; "
            f"ratio {mb / mbase:.1f}x; persisted: {counts['runs']} runs, {counts['events']} events, "
            f"{counts['log_lines']} lines{'' if persisted else ' (MISSING DATA)'}",
            extra={"bakery_s": b, "baseline_s": base, "actions": n_actions, "store": counts},
        )
    ]


def overhead(cfg: Config) -> list[Row]:
    wide = [[(f"A{j}", f"echo stage {i} action {j}", 1) for j in range(10)] for i in range(5)]
    small = [
        [("Compile", "echo compiled", 1)],
        [(f"Test{j}", f"echo test {j} ok", 1) for j in range(4)],
        [("Deploy", "echo deployed", 1), ("Verify", "echo verified", 2)],
    ]
    rows = _overhead_case(cfg, "50 actions (5x10 parallel)", wide, "wide") + _overhead_case(
        cfg, "7 actions", small, "small"
    )
    # the cost of one more action, without the fixed start-up both runs pay
    a, b = rows[0].extra, rows[1].extra
    extra_actions = a["actions"] - b["actions"]
    marginal = (
        (median(a["bakery_s"]) - median(b["bakery_s"]))
        - (median(a["baseline_s"]) - median(b["baseline_s"]))
    ) / extra_actions * 1000
    rows.append(Row("overhead", "marginal overhead of one more action (50 vs 7)", marginal, "ms",
                    None, "difference of the two runs minus that of their baselines", "<= 3 ms",
                    marginal <= 3.0, note="start-up excluded: see the startup rows"))
    return rows


# -- startup -------------------------------------------------------------------------------------
_TEXTUAL_PROBE = (
    "import sys\nfrom engine.cli import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    "sys.stderr.write('\\nTEXTUAL-LOADED=%s\\n' % ('textual' in sys.modules))\n"
)


def _loads_textual(argv: list[str], env: dict[str, str], cwd: Path) -> bool:
    proc = subprocess.run(
        [sys.executable, "-c", _TEXTUAL_PROBE, *argv],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
    )
    return b"TEXTUAL-LOADED=True" in proc.stderr


def startup(cfg: Config) -> list[Row]:
    rounds = max(cfg.rounds, 5)
    with Scratch("startup") as tmp:
        repo = make_repo(
            tmp.path / "repo", pipeline_yaml("startup", [[("Hello", "echo hello", 1)]])
        )
        env = bench_env(tmp.path / "state")

        def timed(argv: list[str]) -> Any:
            return lambda: run_timed(argv, env=env, cwd=repo).wall

        run_timed([*BAKERY, "run", "--plain"], env=env, cwd=repo)  # warm-up
        pipeline_file = repo / "bakery.yaml"
        original = pipeline_file.read_text()
        edits = iter(range(10**6))

        def edited_run() -> float:
            """The first run after `bakery.yaml` changed: the definition is checked again."""
            pipeline_file.write_text(original + f"# edit {next(edits)}\n")
            return run_timed([*BAKERY, "run", "--plain"], env=env, cwd=repo).wall

        py, run, edited, helpt, imp, core = interleave(
            rounds,
            timed([sys.executable, "-c", "pass"]),
            timed([*BAKERY, "run", "--plain"]),
            edited_run,
            timed([*BAKERY, "--help"]),
            timed([sys.executable, "-c", "import engine"]),
            timed([sys.executable, "-c", "import engine.core"]),
        )
        pipeline_file.write_text(original)
        run_timed([*BAKERY, "run", "--plain"], env=env, cwd=repo)  # the unchanged file cached again
        nocache_env = bench_env(tmp.path / "state", bytecode=False)
        nocache = [
            run_timed([*BAKERY, "run", "--plain"], env=nocache_env, cwd=repo).wall
            for _ in range(3)
        ]
        textual = {
            "run --plain": _loads_textual(["run", "--plain"], env, repo),
            "--help": _loads_textual(["--help"], env, repo),
            "history --json": _loads_textual(["history", "--json"], env, repo),
        }
    base = median(py)
    label = "python -c pass"
    loaded = [k for k, v in textual.items() if v]
    return [
        Row("startup", "run of a two-action pipeline", median(run), "s", base, label, "< 0.4 s",
            median(run) < 0.4, note=f"{median(run) - base:.3f} s above bare python",
            extra={"samples": run, "baseline": py}),
        Row("startup", "same, first run after bakery.yaml changed", median(edited), "s", base,
            label, "", None, note="the definition is validated (pydantic) and cached again",
            extra={"samples": edited}),
        Row("startup", "bakery --help", median(helpt), "s", base, label, "",
            None, extra={"samples": helpt}),
        Row("startup", 'python -c "import engine"', median(imp), "s", base, label, "",
            None, extra={"samples": imp}),
        Row("startup", "import engine.core (what run needs)", median(core), "s", base, label, "",
            None, extra={"samples": core}),
        Row("startup", "run of a two-action pipeline, no bytecode cache", median(nocache), "s",
            base, label, "", None,
            note="PYTHONDONTWRITEBYTECODE=1 (as in this sandbox): every module compiled each start",
            extra={"samples": nocache}),
        Row("startup", "headless commands import textual", float(len(loaded)), "commands",
            None, "", "0", not loaded,
            note="none of: " + ", ".join(textual) if not loaded else "loaded by: " + ", ".join(loaded),
            extra=textual),
    ]


# -- logs ----------------------------------------------------------------------------------------
def _flood_case(
    cfg: Config, label: str, command: str, count: int, nbytes: int, rounds: int
) -> list[Row]:
    with Scratch("logs") as tmp:
        repo = make_repo(
            tmp.path / "repo",
            pipeline_yaml("logs", [[("Flood", command, 1)]]),
        )
        trivial = make_repo(tmp.path / "trivial", pipeline_yaml("logs", [[("Flood", "echo 1", 1)]]))
        state = tmp.path / "state"
        env = bench_env(state, BAKERY_LOG_LIMIT="4G")
        tenv = bench_env(tmp.path / "state-trivial")
        out_file = tmp.path / "baseline.out"
        flood_rss: list[int] = []
        search_s: list[float] = []

        def flood() -> float:
            t = run_timed([*BAKERY, "run", "--plain", "-C", str(repo)], env=env)
            flood_rss.append(t.maxrss_kb)
            # searchable: the first search indexes what the run stored (the background indexer
            # may have done part of it before the process ended)
            s = run_timed([*BAKERY, "search", "-C", str(repo), "--limit", "1", "zzznotthere"], env=env)
            search_s.append(s.wall)
            return t.wall

        def fixed() -> float:
            return run_timed([*BAKERY, "run", "--plain", "-C", str(trivial)], env=tenv).wall

        def baseline() -> float:
            return run_timed(["bash", "-c", f"{command} > {out_file}"], env=env).wall

        f, z, b = interleave(rounds, flood, fixed, baseline)
        again = run_timed([*BAKERY, "search", "-C", str(repo), "--limit", "1", "zzznotthere"], env=env).wall
        counts = store_counts(state / "bakery.db")
        trivial_rss = run_timed([*BAKERY, "run", "--plain", "-C", str(trivial)], env=tenv).maxrss_kb
    stored_us = (median(f) - median(z)) / count * 1e6
    index_us = max(0.0, median(search_s) - again) / count * 1e6
    base_us = median(b) / count * 1e6
    complete = counts["log_lines"] >= rounds * count
    total_us = stored_us + index_us
    peak_mb = max(flood_rss) / 1024
    return [
        Row("logs", f"{label}: per line stored, masked, searchable", total_us, "us", base_us,
            "seq > file, per line", "<= 2 us", total_us <= 2.0 and complete,
            note=f"store+mask {stored_us:.2f} us, search index {index_us:.2f} us; "
            f"run {median(f):.2f} s vs trivial run {median(z):.2f} s; "
            f"{counts['log_lines']} lines stored{'' if complete else ' (LINES MISSING)'}",
            extra={"flood_s": f, "trivial_s": z, "baseline_s": b, "search_s": search_s,
                   "search_again_s": again, "lines": count, "bytes": nbytes}),
        Row("logs", f"{label}: peak RSS of bakery run", peak_mb, "MB", trivial_rss / 1024,
            "same run printing one line", "bounded", None,
            note=f"{nbytes / 2**20:.0f} MiB of output", extra={"rss_kb": flood_rss}),
    ]


def logs(cfg: Config) -> list[Row]:
    n = 200_000 if cfg.quick else 1_000_000
    rounds = 1 if cfg.quick else 3
    long_lines = 10_000 if cfg.quick else 50_000  # 4,000-byte lines: 40 MB / 200 MB
    seq_bytes = sum(len(str(i)) + 1 for i in range(1, n + 1))
    # awk, not `yes | head`: under bash's pipefail the SIGPIPE of `yes` would fail the action
    long_cmd = (
        'awk "BEGIN { s = sprintf(\\"%3999s\\", \\"\\"); gsub(/ /, \\"x\\", s); '
        f'for (i = 0; i < {long_lines}; i++) print s }}"'
    )
    return _flood_case(cfg, f"seq {n:,} lines", f"seq 1 {n}", n, seq_bytes, rounds) + _flood_case(
        cfg, f"{long_lines * 4000 / 1e6:.0f} MB of 4 kB lines", long_cmd, long_lines,
        long_lines * 4000, rounds,
    )


# -- trigger -------------------------------------------------------------------------------------
def trigger(cfg: Config) -> list[Row]:
    commits = 10 if cfg.quick else 20
    r = _worker("trigger", str(commits))
    return [
        Row("trigger", "commit -> execution InProgress in the store, p50", r["engine_p50"] * 1000,
            "ms", r["bare_p50"] * 1000, "bare watchfiles watcher sees the ref, p50",
            "<= 30 ms", r["engine_p50"] <= 0.030, extra=r),
        Row("trigger", "commit -> execution InProgress in the store, p95", r["engine_p95"] * 1000,
            "ms", r["bare_p95"] * 1000, "bare watchfiles watcher, p95", "<= 100 ms",
            r["engine_p95"] <= 0.100, note=f"{commits} commits"),
    ]


# -- board ---------------------------------------------------------------------------------------
def board(cfg: Config) -> list[Row]:
    """Keys on the live board while 3 actions flood it, one fresh process a round.

    A round's flood holds a few dozen keys, one of them landing while the execution is being
    created, so the key samples of all rounds are pooled: the p95 is then a percentile, not
    the slowest key of one round. The baseline pools the same keys on the same boards once
    their floods are over.
    """
    try:
        import tui.app  # noqa: F401
        from tui.model import BoardModel  # noqa: F401
    except ImportError as exc:
        return [Row("board", "board", None, "", note=f"n/a (not built yet: {exc})")]
    lines = 200_000 if cfg.quick else 1_000_000
    rounds = [_worker("board", str(lines), timeout=900) for _ in range(max(1, cfg.rounds))]
    busy = [x for r in rounds for x in r["busy_samples"]]
    idle = [x for r in rounds for x in r["idle_samples"]]
    busy_pilot = [x for r in rounds for x in r["busy_pilot_samples"]]
    idle_pilot = [x for r in rounds for x in r["idle_pilot_samples"]]
    busy_p95 = percentile(busy, 95)
    handled = [x for r in rounds for x in r["busy_handled_samples"]]
    idle_handled = [x for r in rounds for x in r["idle_handled_samples"]]
    handled_p95 = percentile(handled, 95)
    per_round = {
        "busy_p50": [r["busy_p50"] for r in rounds], "busy_p95": [r["busy_p95"] for r in rounds],
        "idle_p50": [r["idle_p50"] for r in rounds], "idle_p95": [r["idle_p95"] for r in rounds],
        "keys": [r["keys"] for r in rounds], "lines_per_s": [r["lines_per_s"] for r in rounds],
        "rss_mb": [r["rss_mb"] for r in rounds],
    }
    seen = sum(r["lines_seen"] for r in rounds)
    flood_s = sum(r["flood_s"] for r in rounds)
    return [
        Row("board", "key press -> handled (action done) while 3 actions flood, p50",
            median(handled) * 1000, "ms", median(idle_handled) * 1000,
            "same keys on the same board after the flood, p50", "", None,
            extra={"busy_samples": handled, "idle_samples": idle_handled}),
        Row("board", "key press -> handled (action done) while 3 actions flood, p95",
            handled_p95 * 1000, "ms", percentile(idle_handled, 95) * 1000,
            "same keys on the same board after the flood, p95", "<= 100 ms",
            handled_p95 <= 0.100, note="the key's own repaint not included: see the next rows"),
        Row("board", "key press -> handled and drawn while 3 actions flood, p50",
            median(busy) * 1000, "ms", median(idle) * 1000,
            "same keys on the same board after the flood, p50", "", None,
            extra={"busy_samples": busy, "idle_samples": idle, "rounds": per_round}),
        Row("board", "key press -> handled and drawn while 3 actions flood, p95",
            busy_p95 * 1000, "ms", percentile(idle, 95) * 1000,
            "same keys on the same board after the flood, p95", "<= 100 ms",
            busy_p95 <= 0.100,
            note=f"{len(busy)} keys in {len(rounds)} rounds, 3 x {lines:,} lines each"),
        Row("board", "pilot.press while flooding, p50 (waits for an idle *process*)",
            (median(busy_pilot) if busy_pilot else 0) * 1000, "ms", median(idle_pilot) * 1000,
            "pilot.press after the flood, p50", "", None,
            note="not a key latency: wait_for_idle needs the whole process idle (1 s cap, twice)"),
        Row("board", "lines per second taken in by the board", seen / flood_s if flood_s else 0.0,
            "lines/s", None, "", "", None,
            note=f"{seen:,} lines in {flood_s:.1f} s ({len(rounds)} rounds)"),
        Row("board", "peak RSS (board + engine, one process)", median(per_round["rss_mb"]), "MB",
            median([r["idle_rss_mb"] for r in rounds]), "RSS with the idle board", "<= 300 MB",
            max(per_round["rss_mb"]) <= 300),
    ]


# -- replay --------------------------------------------------------------------------------------
def replay(cfg: Config) -> list[Row]:
    try:
        import engine.replay  # noqa: F401
    except ImportError:
        return [Row("replay", "replay", None, "", note="n/a (not built yet)")]
    lines = 200_000 if cfg.quick else 1_000_000
    r = _worker("replay", str(lines))
    return [
        Row("replay", f"open a stored execution of {r['lines']:,} lines", r["open_s"], "s",
            r["open_sql_s"], "its events with one SQL query", "<= 0.5 s", r["open_s"] <= 0.5),
        Row("replay", "seek to a random instant (state + visible log tail), max of 10", r["seek_max_s"],
            "s", r["seek_sql_max_s"], "the same rows with one SQL query, max", "<= 0.2 s",
            r["seek_max_s"] <= 0.2, note=f"median {r['seek_med_s'] * 1000:.1f} ms"),
    ]


# -- history -------------------------------------------------------------------------------------
def history(cfg: Config) -> list[Row]:
    runs = 10_000
    with Scratch("history") as tmp:
        repo = make_repo(tmp.path / "repo", pipeline_yaml("history", [[("Hello", "echo hi", 1)]]))
        state = tmp.path / "state"
        env = bench_env(state)
        _worker("make-history", str(state), str(runs), env=env)
        db = state / "bakery.db"
        count_sql = f"import sqlite3; sqlite3.connect({str(db)!r}).execute('SELECT COUNT(*) FROM runs').fetchone()"
        rounds = max(cfg.rounds, 5)
        h50, hall, base = interleave(
            rounds,
            lambda: run_timed([*BAKERY, "history", "--json", "-C", str(repo)], env=env).wall,
            lambda: run_timed(
                [*BAKERY, "history", "--json", "--limit", str(runs), "-C", str(repo)], env=env
            ).wall,
            lambda: run_timed([sys.executable, "-c", count_sql], env=env).wall,
        )
        screen = _worker("history-screen", str(state), str(rounds), env=env)
    rows = [
        Row("history", f"bakery history --json ({runs:,} stored, default 50 shown)", median(h50),
            "s", median(base), "one SQL count (python process)", "<= 0.3 s", median(h50) <= 0.3),
        Row("history", f"bakery history --json --limit {runs}", median(hall), "s", median(base),
            "one SQL count (python process)", "<= 0.3 s", median(hall) <= 0.3),
    ]
    opened, whole, count = (median(screen[k]) for k in ("open_s", "all_s", "count_s"))
    rows += [
        Row("history", "history screen opening: newest rows drawn", opened, "s", count,
            "one SQL count in the same process", "<= 0.3 s", opened <= 0.3,
            extra={"open_s": screen["open_s"], "count_s": screen["count_s"]}),
        Row("history", f"history screen: all {screen['rows']:,} rows loaded and drawn", whole, "s",
            count, "one SQL count in the same process", note="scrollable to the end",
            extra={"all_s": screen["all_s"]}),
    ]
    return rows


ALL = {
    "overhead": overhead,
    "startup": startup,
    "logs": logs,
    "trigger": trigger,
    "board": board,
    "replay": replay,
    "history": history,
}
