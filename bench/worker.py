"""In-process benchmarks, each run in a fresh interpreter: `python bench/worker.py NAME ARGS`.

Prints one JSON object on its last line of standard output.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    BAKERY,
    bench_env,
    git,
    make_repo,
    median,
    percentile,
    pipeline_yaml,
    run_timed,
)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- trigger -------------------------------------------------------------------------------------
async def _bare_watch_latencies(repo: Path, commits: int) -> list[float]:
    """A bare watchfiles watcher on .git/refs/heads (debounce 50, step 10): time to see main."""
    from watchfiles import awatch

    stop = asyncio.Event()
    seen: asyncio.Queue[float] = asyncio.Queue()

    async def watch() -> None:
        async for changes in awatch(
            repo / ".git" / "refs" / "heads", watch_filter=None, debounce=50, step=10,
            stop_event=stop, yield_on_timeout=False,
        ):
            if any(path.endswith("/refs/heads/main") for _, path in changes):
                seen.put_nowait(time.perf_counter())

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.5)
    out = []
    for i in range(commits):
        t0 = await asyncio.to_thread(_commit, repo, f"bare {i}")
        t1 = await asyncio.wait_for(seen.get(), 10)
        out.append(t1 - t0)
        await asyncio.sleep(0.1)
        while not seen.empty():
            seen.get_nowait()
    stop.set()
    await task
    return out


def _commit(repo: Path, message: str) -> float:
    (repo / "change.txt").write_text(message)
    git(repo, "add", "change.txt")
    git(repo, "commit", "-q", "-m", message)
    return time.perf_counter()


async def _engine_latencies(repo: Path, state: Path, commits: int) -> list[float]:
    from engine import events as ev
    from engine.core import Engine
    from engine.watch import WatchSession

    engine = Engine(repo, state, grace=1.0)
    await engine.start()
    session = WatchSession(engine, repo / "bakery.yaml")
    await session.open()
    in_progress: asyncio.Queue[tuple[float, str]] = asyncio.Queue()

    def on_item(item: Any) -> None:
        # called right after the event is committed to the store (persist, then publish)
        if isinstance(item, ev.Event) and item.type == ev.RUN_STATUS and item.data.get("status") == ev.IN_PROGRESS:
            in_progress.put_nowait((time.perf_counter(), str(item.run_id)))

    engine.recorder.subscribe(on_item)
    task = asyncio.create_task(session.run_forever())
    await asyncio.wait_for(session.watcher.ready.wait(), 10)
    await asyncio.sleep(0.3)
    out = []
    try:
        for i in range(commits):
            t0 = await asyncio.to_thread(_commit, repo, f"engine {i}")
            t1, run_id = await asyncio.wait_for(in_progress.get(), 20)
            out.append(t1 - t0)
            await engine.wait(run_id)
            await asyncio.sleep(0.1)
    finally:
        await session.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.close()
    return out


def trigger(commits: str) -> dict[str, Any]:
    n = int(commits)
    with tempfile.TemporaryDirectory(prefix="bakery-bench-trigger-") as tmp:
        yaml = pipeline_yaml("trigger", [[("Quick", "true", 1)]], secret=False)
        yaml = yaml.replace("stages:", "execution_mode: parallel\nstages:", 1)
        repo = make_repo(Path(tmp) / "repo", yaml)
        bare = asyncio.run(_bare_watch_latencies(repo, n))
        eng = asyncio.run(_engine_latencies(repo, Path(tmp) / "state", n))
    return {
        "engine_p50": median(eng), "engine_p95": percentile(eng, 95),
        "bare_p50": median(bare), "bare_p95": percentile(bare, 95),
        "engine_samples": eng, "bare_samples": bare,
    }


# -- replay --------------------------------------------------------------------------------------
def replay(lines: str) -> dict[str, Any]:
    from engine.replay import load_timeline

    n = int(lines)
    step = n // 100
    command = f"for i in $(seq 0 99); do seq $((i*{step}+1)) $(((i+1)*{step})); sleep 0.02; done"
    with tempfile.TemporaryDirectory(prefix="bakery-bench-replay-") as tmp:
        repo = make_repo(Path(tmp) / "repo", pipeline_yaml("replay", [[("Flood", command, 1)]]))
        state = Path(tmp) / "state"
        env = bench_env(state)
        build = run_timed([*BAKERY, "run", "--plain", "-C", str(repo)], env=env)
        db = state / "bakery.db"

        opens, sql_opens = [], []
        timeline = None
        for _ in range(3):
            if timeline is not None:
                timeline.close()
            t0 = time.perf_counter()
            timeline = load_timeline("1", repo=repo, state_dir=state)
            sources = timeline.sources()
            timeline.state_at(timeline.duration)
            opens.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            conn = sqlite3.connect(db)
            conn.execute("SELECT seq, ts, type, data FROM events WHERE run_id = ?",
                         (timeline.run_id,)).fetchall()
            sql_opens.append(time.perf_counter() - t0)
            conn.close()
        assert timeline is not None
        stored = sum(s.lines for s in sources)
        rng = random.Random(7)
        instants = [rng.uniform(0, timeline.duration) for _ in range(10)]
        seeks, sql_seeks = [], []
        conn = sqlite3.connect(db)
        for t in instants:
            t0 = time.perf_counter()
            timeline.state_at(t)
            for s in sources:
                timeline.tail_at(t, s.stage, s.action, 50, attempt=s.attempt)
            seeks.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for s in sources:
                conn.execute(  # the chunk holding the last line read by then
                    "SELECT id, first_line, last_line, ts, stream, text, raw FROM log_chunks"
                    " WHERE source = ? AND ts <= ? ORDER BY ts DESC, last_line DESC LIMIT 1",
                    (s.id, timeline.ts_of(t)),
                ).fetchall()
            sql_seeks.append(time.perf_counter() - t0)
        conn.close()
        timeline.close()
    return {
        "lines": stored, "build_s": build.wall,
        "open_s": median(opens), "open_sql_s": median(sql_opens),
        "seek_max_s": max(seeks), "seek_med_s": median(seeks), "seek_sql_max_s": max(sql_seeks),
        "seeks": seeks, "sql_seeks": sql_seeks,
    }


# -- history -------------------------------------------------------------------------------------
def make_history(state_dir: str, runs: str) -> dict[str, Any]:
    """Store `runs` finished executions straight through the store (events + projection)."""
    from engine import events as ev
    from engine.store import Store

    store = Store(Path(state_dir) / "bakery.db")
    base = time.time() - int(runs) * 60
    stages = [{"name": "Source", "actions": [{"name": "Checkout", "category": "source", "run_order": 1}]},
              {"name": "S1", "actions": [{"name": "Hello", "category": "build", "run_order": 1}]}]
    with store.transaction() as conn:
        for i in range(int(runs)):
            run_id = f"bench-{i:06d}"
            ts = base + i * 60
            commit = {"id": f"{i:040x}", "short": f"{i:08x}", "branch": "main",
                      "message": f"commit {i}", "author": "Bench", "email": "bench@bakery.local"}
            store._append(conn, ev.Event(ev.RUN_CREATED, run_id, ts, {
                "number": i + 1, "pipeline": "history", "pipeline_version": 1,
                "execution_mode": "superseded", "trigger": {"type": "StartPipelineExecution"},
                "commit": commit, "variables": {}, "stages": stages, "owner": {}}))
            store._append(conn, ev.Event(ev.RUN_STATUS, run_id, ts + 1, {"status": ev.IN_PROGRESS}))
            status = ev.SUCCEEDED if i % 7 else ev.FAILED
            store._append(conn, ev.Event(ev.RUN_STATUS, run_id, ts + 30, {"status": status}))
    store.close()
    return {"runs": int(runs)}


async def _history_screen(state_dir: str, rounds: int) -> dict[str, Any]:
    from engine.store import Store
    from tui.app import BakeryApp
    from tui.model import BoardModel
    from tui.screens.history import HistoryScreen, RunTable
    from tui.source import ListSource
    from tui.widgets.header import HeaderInfo

    store = Store(Path(state_dir) / "bakery.db")
    app = BakeryApp(
        ListSource(store=store), model=BoardModel("history", store),
        header=HeaderInfo("history", "main", "history", 1, "superseded"),
        settings_dir=Path(state_dir) / "config", desktop_notify=False, animate=False,
    )
    opens: list[float] = []  # the newest rows drawn
    alls: list[float] = []  # every row loaded and drawn
    counts: list[float] = []
    rows = 0
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.2)
        for _ in range(rounds):
            t0 = time.perf_counter()
            store._read("SELECT COUNT(*) FROM runs", [])
            counts.append(time.perf_counter() - t0)
            loop = asyncio.get_running_loop()
            t0 = time.perf_counter()
            app.action_history()  # what `H` runs
            screen = app.screen
            assert isinstance(screen, HistoryScreen)
            for flag, times in (("shown", opens), ("loaded", alls)):
                while not getattr(screen, flag):
                    await asyncio.sleep(0.001)
                drawn: asyncio.Future[float] = loop.create_future()
                screen.call_after_refresh(lambda f=drawn: f.done() or f.set_result(time.perf_counter()))
                times.append(await asyncio.wait_for(drawn, 60) - t0)
            rows = len(screen.query_one(RunTable).rows)
            screen.dismiss()
            await pilot.pause(0.2)
    store.close()
    return {"open_s": opens, "all_s": alls, "count_s": counts, "rows": rows}


def history_screen(state_dir: str, rounds: str) -> dict[str, Any]:
    """The history screen (`H`) over the stored executions: from the key's action to the
    newest rows drawn, and to every row loaded and drawn; the baseline is one SQL count in
    the same process."""
    return asyncio.run(_history_screen(state_dir, int(rounds)))


# -- board ---------------------------------------------------------------------------------------
BOARD_KEYS = ["j", "k", "l", "h", "right", "left", "down", "up"]


class _KeyTimer:
    """Key press -> handled and drawn, timed directly.

    `pilot.press` returns only once `wait_for_idle` sees the *process* idle (CPU time under
    1 ms per 20 ms), capped at 1 s and done twice: while the engine thread stores a flood in
    the same process that is never true, so it measures ~2 s whatever the board does. Here the
    key event is sent the way the pilot sends it, and the clock stops when the board's
    `action_move` has run and the screen has been repainted after it (`call_after_refresh`).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.waiting: list[asyncio.Future[tuple[float, float]]] = []
        self.handled: list[float] = []  # key sent -> action_move done, one per `press`
        screen = app.board
        move = screen.action_move

        async def timed_move(dx: int, dy: int) -> None:
            await move(dx, dy)
            if self.waiting:
                fut = self.waiting.pop(0)
                handled = time.perf_counter()
                screen.call_after_refresh(
                    lambda: fut.done() or fut.set_result((handled, time.perf_counter()))
                )

        screen.action_move = timed_move

    def send(self, key: str) -> None:
        """Send a key as `pilot.press` does, without waiting for anything."""
        from textual import events

        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(self.app)
        self.app._driver.send_message(event)

    async def press(self, key: str) -> float:
        """A movement key; seconds until it was handled and the screen repainted (the time
        until it was handled alone goes to `self.handled`)."""
        fut: asyncio.Future[tuple[float, float]] = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        t0 = time.perf_counter()
        self.send(key)
        handled, drawn = await asyncio.wait_for(fut, 60)
        self.handled.append(handled - t0)
        return drawn - t0


async def _board(lines: int) -> dict[str, Any]:
    from engine import events as ev
    from engine.core import Engine
    from engine.host import EngineHost
    from engine.loader import load_pipeline
    from tui.app import BakeryApp
    from tui.controller import Controller
    from tui.model import BoardModel
    from tui.source import HostSource
    from tui.widgets.header import HeaderInfo

    tmp = Path(tempfile.mkdtemp(prefix="bakery-bench-board-"))
    stages = [[(f"Flood{j}", f"seq 1 {lines}", 1) for j in range(3)]]
    repo = make_repo(tmp / "repo", pipeline_yaml("board", stages, secret=False))
    path = repo / "bakery.yaml"
    pipeline = load_pipeline(path)
    host = EngineHost(lambda: Engine(repo, tmp / "state", grace=1.0))
    host.start()
    assert host.engine is not None
    version = host.call_sync(host.engine.register, pipeline, path).result(10)
    controller = Controller(host, None, pipeline, version)
    model = BoardModel(pipeline.name, host.engine.store)
    seen = {"lines": 0, "last": 0.0}
    ingest = model.ingest

    def counting_ingest(items: Any) -> Any:
        items = list(items)
        for item in items:
            if isinstance(item, ev.LogBatch):
                seen["lines"] += len(item.lines)
                seen["last"] = time.perf_counter()
        return ingest(items)

    model.ingest = counting_ingest  # type: ignore[method-assign]
    app = BakeryApp(
        HostSource(host, host.engine.store), model=model, controller=controller,
        header=HeaderInfo(repo.name, "main", pipeline.name, version, "superseded"),
        repo=repo, grace=1.0, settings_dir=tmp / "config", desktop_notify=False, animate=False,
    )
    idle: list[float] = []
    idle_pilot: list[float] = []
    busy: list[float] = []
    busy_pilot: list[float] = []
    total = 3 * lines

    def flood_over() -> bool:
        if seen["lines"] >= total:
            return True
        run = model.newest()  # lines lost by the engine must not keep the loop going
        return run is not None and run.finished and time.perf_counter() - seen["last"] > 3

    try:
        async with app.run_test(size=(160, 45)) as pilot:
            await pilot.pause(0.3)
            keys = _KeyTimer(app)
            idle_rss = _rss_mb()
            t_start = time.perf_counter()
            keys.send("x")  # run HEAD: the flood starts
            i = 0
            deadline = time.monotonic() + 600
            while not flood_over() and time.monotonic() < deadline:
                key = BOARD_KEYS[i % len(BOARD_KEYS)]
                if i % 8 == 7:  # now and then the pilot's own figure, for comparison
                    t0 = time.perf_counter()
                    await pilot.press(key)
                    busy_pilot.append(time.perf_counter() - t0)
                else:
                    busy.append(await keys.press(key))
                i += 1
                await asyncio.sleep(0.05)
            busy_handled = list(keys.handled)
            flood_s = (seen["last"] or time.perf_counter()) - t_start
            rss = _rss_mb()
            # the same keys on the same board once the flood is over (the run finished,
            # its lines all taken in): the baseline
            while not (model.newest() and model.newest().finished) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await pilot.pause(0.5)
            keys.handled.clear()
            for i in range(24):
                idle.append(await keys.press(BOARD_KEYS[i % len(BOARD_KEYS)]))
                await asyncio.sleep(0.05)
                if i % 3 == 2:
                    t0 = time.perf_counter()
                    await pilot.press(BOARD_KEYS[i % len(BOARD_KEYS)])
                    idle_pilot.append(time.perf_counter() - t0)
            idle_handled = list(keys.handled)
            run = model.newest()
            status = run.status if run is not None else None
    finally:
        await asyncio.to_thread(controller.close, 2.8)
        shutil.rmtree(tmp, ignore_errors=True)  # a 1M-line round leaves ~10 MB
    return {
        "idle_p50": median(idle), "idle_p95": percentile(idle, 95),
        "busy_p50": median(busy), "busy_p95": percentile(busy, 95), "keys": len(busy),
        "idle_pilot_p50": median(idle_pilot),
        "busy_pilot_p50": median(busy_pilot) if busy_pilot else None,
        "lines_seen": seen["lines"], "lines_expected": total, "run_status": status,
        "flood_s": flood_s,
        "lines_per_s": seen["lines"] / flood_s if flood_s > 0 else 0.0,
        "rss_mb": rss, "idle_rss_mb": idle_rss, "busy_samples": busy, "idle_samples": idle,
        "busy_pilot_samples": busy_pilot, "idle_pilot_samples": idle_pilot,
        "busy_handled_samples": busy_handled, "idle_handled_samples": idle_handled,
    }


def board(lines: str) -> dict[str, Any]:
    return asyncio.run(_board(int(lines)))


WORKERS = {
    "trigger": trigger,
    "replay": replay,
    "make-history": make_history,
    "history-screen": history_screen,
    "board": board,
}

if __name__ == "__main__":
    result = WORKERS[sys.argv[1]](*sys.argv[2:])
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # daemon threads (the engine host, the indexer) must not hold the exit
