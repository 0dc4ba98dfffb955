"""`bakery`: the command line. Headless commands never import the UI.

Exit codes: 0 success, 1 an execution Failed or was Stopped (or a request was refused),
2 a usage or pipeline-definition error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from engine import events as ev

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad arguments or a bad pipeline: exit 2 with the message."""


class Board(Protocol):
    """The commands that open the board. The UI package plugs them in (tui/main.py): the
    engine never imports it, so headless commands stay free of Textual."""

    def run(self, args: argparse.Namespace) -> int: ...

    def watch(self, args: argparse.Namespace) -> int: ...

    def demo(self, args: argparse.Namespace) -> int: ...

    def replay(self, args: argparse.Namespace) -> int: ...


_board: Board | None = None


def _need_board(what: str, hint: str = "") -> Board:
    if _board is None:
        raise UsageError(
            f"{what} opens the board: run it as `bakery`, not `python -m engine.cli`{hint}"
        )
    return _board


# -- shared helpers --------------------------------------------------------------------------
def _repo(args: argparse.Namespace) -> Path:
    from engine.gitinfo import GitError, repo_root

    try:
        return repo_root(args.repo)
    except GitError as exc:
        raise UsageError(str(exc)) from exc


def _state_dir(args: argparse.Namespace, repo: Path) -> Path:
    from engine.store import default_state_dir

    return Path(args.state_dir) if args.state_dir else default_state_dir(repo)


def _pipeline_path(args: argparse.Namespace, repo: Path) -> Path:
    path = Path(args.pipeline) if args.pipeline else repo / "bakery.yaml"
    if not path.is_absolute() and args.pipeline:
        cwd_path = Path.cwd() / path
        path = cwd_path if cwd_path.exists() else repo / path
    return path


def _load(path: Path) -> Any:
    """The definition to run; an unchanged valid file comes from the cache (no pydantic)."""
    from engine.loader import PipelineError, load_pipeline

    try:
        return load_pipeline(path, cache=True)
    except PipelineError as exc:
        raise UsageError(str(exc)) from exc


def _open_store(args: argparse.Namespace) -> Any:
    from engine.store import Store, StoreError

    repo = _repo(args)
    db = _state_dir(args, repo) / "bakery.db"
    if not db.exists():
        raise UsageError(f"no executions recorded for {repo} yet (looked in {db})")
    try:
        return Store(db)
    except StoreError as exc:
        raise UsageError(str(exc)) from exc


def _resolve(store: Any, ref: str) -> str:
    from engine.store import StoreError

    try:
        return str(store.resolve_run(ref))
    except StoreError as exc:
        raise UsageError(str(exc)) from exc


def _parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--var takes NAME=VALUE, got {pair!r}")
        out[name] = value
    return out


def _split_target(target: str) -> tuple[str, str]:
    stage, sep, action = target.partition("/")
    if not sep or not stage or not action:
        raise UsageError(f"name the action as STAGE/ACTION, got {target!r}")
    return stage, action


def _print_json(obj: Any) -> None:
    """Indented for a person at a terminal, one compact line for a pipe (as `gh --json` does):
    indenting runs json's pure-Python encoder, 2.5x slower on 10,000 history rows."""
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


# -- commands --------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    from engine.loader import PipelineError, load_pipeline

    path = Path(args.path or "bakery.yaml")
    try:
        pipeline = load_pipeline(path)
    except PipelineError as exc:
        sys.stderr.write(str(exc) + "\n")
        return EXIT_USAGE
    actions = sum(len(s.actions) for s in pipeline.stages)
    print(f"{path}: ok — pipeline {pipeline.name!r}, {len(pipeline.stages)} stages, {actions} actions")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from engine.loader import pipeline_json_schema

    _print_json(pipeline_json_schema())
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    in_terminal = sys.stdout.isatty() and sys.stdin.isatty()
    if _board is not None and in_terminal and not args.plain and not args.json:
        return int(_board.run(args))
    from engine.gitinfo import discard_prefetched, prefetch

    _freeze_at_exit()  # the store is closed by _run_headless
    prefetch(args.repo, args.rev)  # git answers while the engine is being imported
    try:
        import asyncio  # here: the commands that only read the store start faster without it

        return asyncio.run(_run_headless(args))
    finally:
        discard_prefetched()


async def _run_headless(args: argparse.Namespace) -> int:
    import asyncio

    from engine.core import ControlError, Engine
    from engine.printer import LinePrinter
    from engine.store import StoreError

    repo = _repo(args)
    path = _pipeline_path(args, repo)
    pipeline = _load(path)
    variables = _parse_vars(args.var or [])
    try:
        # no background indexing: this process ends with its run; `bakery search` indexes it
        engine = Engine(repo, _state_dir(args, repo), grace=args.grace, index_logs=False)
    except StoreError as exc:
        raise UsageError(str(exc)) from exc
    for notice in engine.notices:
        sys.stderr.write(f"bakery: {notice}\n")
    printer = LinePrinter(sys.stderr if args.json else sys.stdout)
    run_ids: set[str] = set()

    def show(item: Any) -> None:
        if getattr(item, "run_id", None) in run_ids or item.run_id is None:
            printer(item)
        if (
            isinstance(item, ev.Event)
            and item.type == ev.APPROVAL_REQUESTED
            and item.run_id in run_ids
            and (args.approve or args.reject)
        ):
            result = ev.APPROVED if args.approve else ev.REJECTED
            asyncio.get_running_loop().call_soon(
                _answer, engine, item, result, args.comment or "answered by --approve/--reject"
            )

    await engine.start()
    version = engine.register(pipeline, path)
    for note in await engine.recover(pipeline):
        sys.stderr.write(f"bakery: {note}\n")
    engine.recorder.subscribe(show)
    stop_requests = 0

    def on_signal() -> None:
        nonlocal stop_requests
        stop_requests += 1
        for rid in run_ids:
            asyncio.get_running_loop().create_task(
                _quiet(engine.stop(rid, mode="abandon", comment="interrupted (Ctrl+C)"))
            )

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        try:
            ex = await engine.start_execution(
                pipeline,
                version=version,
                rev=args.rev,
                variables=variables,
                trigger={"type": "StartPipelineExecution", "by": engine.user, "via": "bakery run"},
            )
        except ControlError as exc:
            raise UsageError(str(exc)) from exc
        run_ids.add(ex.run_id)
        # events published before we knew the id (run.created, or the refusal of a secret
        # that is too short): print them now
        for event in engine.store.events(ex.run_id):
            printer.event(event)
        state = await engine.wait(ex.run_id)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await engine.close(keep_approvals=True)  # a resumed approval still waits afterwards
        engine.store.close()  # now, not at exit: see _freeze_at_exit
    if args.json:
        _print_json(state.to_json())
    return EXIT_OK if state.status == ev.SUCCEEDED else EXIT_FAILED


async def _quiet(coro: Any) -> None:
    """Await a stop whose refusal (the run already ended) is not worth reporting."""
    with contextlib.suppress(Exception):
        await coro


def _answer(engine: Any, event: ev.Event, result: str, comment: str) -> None:
    from engine.core import ControlError

    try:
        engine.decide(
            str(event.run_id),
            event.data["stage"],
            event.data["action"],
            result,
            comment=comment,
            token=event.data["token"],
        )
    except ControlError as exc:
        sys.stderr.write(f"bakery: {exc}\n")


def cmd_history(args: argparse.Namespace) -> int:
    store = _open_store(args)
    if args.json:
        from engine.history_json import history_json_parts

        indent = 2 if sys.stdout.isatty() else None  # as _print_json
        parts = history_json_parts(
            store, status=args.status, branch=args.branch, limit=args.limit, indent=indent
        )
        for i in range(0, len(parts), 200):  # ~75 kB at a time
            sys.stdout.write("".join(parts[i : i + 200]))
        sys.stdout.write("\n")
        return EXIT_OK
    from engine.printer import human_duration

    runs = store.runs(status=args.status, branch=args.branch, limit=args.limit)
    if not runs:
        print("no executions yet")
        return EXIT_OK
    print(f"{'#':>5}  {'status':<11} {'trigger':<24} {'commit':<9} {'branch':<14} {'started':<16} {'took':>8}  subject")
    for r in runs:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started_at or r.created_at))
        print(
            f"{r.number:>5}  {r.status or 'Created':<11} {(r.trigger_type or '')[:24]:<24} "
            f"{(r.commit_id or '')[:8]:<9} {(r.branch or '')[:14]:<14} {started:<16} "
            f"{human_duration(r.duration):>8}  {(r.subject or '')[:60]}"
        )
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from engine.printer import human_duration

    store = _open_store(args)
    state = store.load_run(_resolve(store, args.run))
    if state is None:
        raise UsageError(f"execution {args.run} has no events")
    if args.json:
        _print_json(state.to_json())
        return EXIT_OK
    c = state.commit
    print(f"#{state.number} {state.pipeline} v{state.pipeline_version}: {state.status}")
    print(f"  commit  {str(c.get('id', ''))[:8]} {c.get('branch', '')}  {c.get('author', '')}")
    subject = str(c.get("message", "")).splitlines()[0] if c.get("message") else ""
    print(f"          {subject}")
    if state.error:
        print(f"  error   {state.error['type']}: {state.error['message']}")
    now = time.time()
    for s in state.stages:
        print(f"  {s.name:<20} {s.status or '-'}")
        for a in s.actions:
            line = f"    {a.run_order}. {a.name:<22} {a.category:<9} {a.status or '-':<11} {human_duration(a.duration(now))}"
            if a.error:
                line += f"  {a.error['type']}: {a.error['message']}"
            if a.approval and a.approval.result:
                line += f"  {a.approval.result} by {a.approval.by}"
            print(line)
    _print_critical_path(store, state)  # history tools
    return EXIT_OK


def _print_critical_path(store: Any, state: Any) -> None:
    """The chain of actions (and waits) that decided how long the execution took."""
    from engine.insight import critical_path
    from engine.printer import human_duration

    path = critical_path(state, store.events(state.id))
    if not path.steps:
        return
    chain = " -> ".join(
        f"{s.stage}/{s.action} {human_duration(s.duration)}"
        if s.kind == "action"
        else f"(wait{' ' + s.reason if s.reason else ''} {human_duration(s.duration)})"
        for s in path.steps
    )
    print(f"  critical path  {chain}")


def cmd_logs(args: argparse.Namespace) -> int:
    from engine.printer import clock
    from engine.sanitize import terminal_safe

    store = _open_store(args)
    run_id = _resolve(store, args.run)
    stage = action = None
    if args.target:
        stage, action = _split_target(args.target)
    colour = sys.stdout.isatty()
    last = 0
    while True:
        lines = store.logs(run_id, stage, action, after_id=last)
        for line in lines:
            prefix = "" if action else f"[{line.stage}/{line.action}] "
            text = terminal_safe(line.text, keep_colour=colour)
            stamp = f"{clock(line.ts)} " if args.timestamps else ""
            sys.stdout.write(f"{stamp}{prefix}{text}\n")
            last = line.id
        sys.stdout.flush()
        if not args.follow:
            return EXIT_OK
        state = store.load_run(run_id)
        finished = state is None or state.finished
        if finished and not store.logs(run_id, stage, action, after_id=last, limit=1):
            return EXIT_OK
        time.sleep(0.2)


def _send(args: argparse.Namespace, kind: str, payload: dict[str, Any]) -> int:
    from engine.core import owner_alive, whoami

    store = _open_store(args)
    run_id = _resolve(store, args.run)
    state = store.load_run(run_id)
    if state is None:
        raise UsageError(f"execution {args.run} has no events")
    if state.finished:
        print(f"execution #{state.number} is {state.status}; nothing to {kind}", file=sys.stderr)
        return EXIT_FAILED
    payload = {**payload, "by": whoami(_repo(args))}
    command = store.post_command(run_id, kind, payload)
    if not owner_alive(state.owner):
        print(
            f"no running bakery drives execution #{state.number} now; the request was queued "
            "and applies when bakery next starts on this repository"
        )
        return EXIT_OK
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        taken, result = store.command_result(command)
        if result is not None:
            print(result.removeprefix("ok: "))
            return EXIT_OK if result.startswith("ok") else EXIT_FAILED
        time.sleep(0.05)
    print(f"bakery (pid {state.owner.get('pid') if state.owner else '?'}) did not answer in time", file=sys.stderr)
    return EXIT_FAILED


def cmd_approve(args: argparse.Namespace) -> int:
    stage, action = _split_target(args.target)
    kind = "approve" if args.command == "approve" else "reject"
    return _send(args, kind, {"stage": stage, "action": action, "comment": args.comment or ""})


def cmd_stop(args: argparse.Namespace) -> int:
    mode = "abandon" if args.abandon else "wait"
    return _send(args, "stop", {"mode": mode, "comment": args.comment or ""})


def cmd_retry(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_retry(args))


async def _retry(args: argparse.Namespace) -> int:
    from engine.core import ControlError, Engine
    from engine.printer import LinePrinter
    from engine.runner import ALL_ACTIONS, FAILED_ACTIONS

    repo = _repo(args)
    engine = Engine(repo, _state_dir(args, repo), grace=args.grace, index_logs=False)
    run_id = _resolve(engine.store, args.run)
    printer = LinePrinter()
    engine.recorder.subscribe(lambda item: printer(item) if item.run_id == run_id else None)
    await engine.start()
    try:
        state = engine.store.load_run(run_id)
        if state is not None:
            engine.pipeline_state(state.pipeline)
        try:
            await engine.retry(run_id, args.stage, mode=ALL_ACTIONS if args.all else FAILED_ACTIONS)
        except ControlError as exc:
            print(f"bakery: {exc}", file=sys.stderr)
            return EXIT_FAILED
        final = await engine.wait(run_id)
    finally:
        await engine.close()
        engine.store.close()
    return EXIT_OK if final.status == ev.SUCCEEDED else EXIT_FAILED


def cmd_transition(args: argparse.Namespace) -> int:
    from engine.core import whoami

    repo = _repo(args)
    pipeline = _load(_pipeline_path(args, repo))
    try:
        pipeline.stage(args.stage)
    except KeyError:
        names = ", ".join(s.name for s in pipeline.stages)
        raise UsageError(f"pipeline {pipeline.name} has no stage {args.stage!r} (stages: {names})") from None
    if args.stage == pipeline.stages[0].name:
        raise UsageError("the first stage has no inbound transition")
    from engine.state import PipelineState
    from engine.store import open_store

    store, _ = open_store(_state_dir(args, repo))
    pstate = PipelineState(pipeline.name)
    for event in store.events(pipeline_level=True):
        pstate.apply(event)
    enabled = args.action == "enable"
    if enabled == (args.stage not in pstate.disabled):
        print(f"the transition into {args.stage} is already {args.action}d")
        return EXIT_OK
    store.append(
        ev.Event(
            ev.TRANSITION_CHANGED,
            None,
            time.time(),
            {
                "pipeline": pipeline.name,
                "stage": args.stage,
                "enabled": enabled,
                "reason": args.reason or "",
                "by": whoami(repo),
            },
        )
    )
    print(f"transition into {args.stage} {args.action}d")
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    return int(_need_board("`bakery watch`").watch(args))


def cmd_demo(args: argparse.Namespace) -> int:
    return int(_need_board("`bakery demo`").demo(args))


# -- history tools: replay, export, diff, search, prune (engine/replay.py ... engine/prune.py) --
def cmd_replay(args: argparse.Namespace) -> int:
    if not args.json:
        hint = "; for the state as JSON use `bakery replay RUN --json [--at SECONDS]`"
        return int(_need_board("`bakery replay` without --json", hint).replay(args))
    from engine.replay import ReplayError, load_timeline

    try:
        timeline = load_timeline(args.run, repo=args.repo, state_dir=args.state_dir)
    except ReplayError as exc:
        raise UsageError(str(exc)) from exc
    try:
        at = timeline.duration if args.at is None else args.at
        _print_json(timeline.state_at(at).to_json())
    finally:
        timeline.close()
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from engine.export import ExportError, write_export

    store = _open_store(args)
    run_id = _resolve(store, args.run)
    try:
        if args.output:
            with open(args.output, "w", encoding="utf-8") as out:
                count = write_export(store, run_id, out)
            print(f"wrote {count} events and log lines to {args.output}", file=sys.stderr)
        else:
            write_export(store, run_id, sys.stdout)
    except ExportError as exc:
        raise UsageError(str(exc)) from exc
    return EXIT_OK


def _change_text(c: Any) -> str:
    from engine.compare import FASTER, SLOWER

    if c.change in (SLOWER, FASTER) and c.delta is not None and c.a and c.a.duration:
        return f"{c.change} {c.delta:+.1f}s ({c.delta / c.a.duration:+.0%})"
    return c.change or ""


def cmd_diff(args: argparse.Namespace) -> int:
    from engine.compare import CompareError, compare, last_green_before
    from engine.printer import human_duration

    store = _open_store(args)
    if args.b is None:
        b = _resolve(store, args.a)
        a = last_green_before(store, b)
        if a is None:
            raise UsageError(f"no execution succeeded before {args.a}; name two executions")
    else:
        a, b = _resolve(store, args.a), _resolve(store, args.b)
    target = _split_target(args.action) if args.action else None
    try:
        cmp = compare(store, a, b, repo=_repo(args), action=target)
    except CompareError as exc:
        raise UsageError(str(exc)) from exc
    if args.json:
        _print_json(cmp.to_json())
        return EXIT_OK
    ra, rb = cmp.a, cmp.b
    na, nb = f"#{ra.number}", f"#{rb.number}"
    print(
        f"{na} {ra.status} {str(ra.commit.get('id', ''))[:8]}  ->  "
        f"{nb} {rb.status} {str(rb.commit.get('id', ''))[:8]}"
    )
    print(f"  {'stage/action':<30} {na:<20} {nb:<20} change")
    for row in cmp.rows:
        name = row.stage if row.action is None else f"  {row.action}"
        sides = [
            f"{(s.status or '-') if s else 'absent':<10} {human_duration(s.duration) if s else '':>8}"
            for s in (row.a, row.b)
        ]
        print(f"  {name[:30]:<30} {sides[0]:<20} {sides[1]:<20} {_change_text(row)}")
    if cmp.commits is not None and cmp.commits:
        print(f"commits {na}..{nb} ({len(cmp.commits)}):")
        for commit in cmp.commits:
            print(f"  {commit.id[:8]}  {commit.author[:20]:<20} {commit.subject[:70]}")
    if cmp.commits_note:
        print(f"commits: {cmp.commits_note}")
    if cmp.variables:
        print("variables:")
        for key, (va, vb) in cmp.variables.items():
            print(f"  {key}: {va!r} -> {vb!r}")
    if cmp.log_target is not None:
        stage, action = cmp.log_target
        if cmp.log_diff:
            print(f"log diff {stage}/{action} (timestamps, temporary paths, ids and durations ignored):")
            for line in cmp.log_diff:
                print(f"  {line}")
        else:
            print(f"log of {stage}/{action}: no difference (timestamps, paths, ids, durations ignored)")
        if cmp.log_note:
            print(f"  ({cmp.log_note})")
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    from engine.sanitize import terminal_safe
    from engine.search import SearchError, pending_lines, search
    from engine.state import iso

    store = _open_store(args)
    run_id = _resolve(store, args.run) if args.run else None
    text = " ".join(args.text)
    if pending_lines(store) > 100_000:
        print("bakery: indexing new log lines for search (only once)...", file=sys.stderr)
    try:
        result = search(store, text, limit=args.limit, raw=args.raw, run_id=run_id)
    except SearchError as exc:
        raise UsageError(str(exc)) from exc
    if args.json:
        _print_json(result.to_json())
        return EXIT_OK
    for h in reversed(result.hits):  # oldest of the shown hits first, the newest last
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h.ts))
        print(f"#{h.number:<5} {h.stage}/{h.action}:{h.line_no}  {stamp}  {terminal_safe(h.text)}")
    total = f"{result.total}{'+' if result.capped else ''}"
    if not result.hits:
        print(f"no log line matches {text!r}")
        return EXIT_OK
    print(
        f"{total} matching lines in {result.executions} execution(s); "
        f"showing the newest {len(result.hits)}"
    )
    first = result.first_seen
    if first is not None:
        subject = f" {terminal_safe(first.subject)!r}" if first.subject else ""
        print(
            f"first seen in #{first.number} ({first.stage}/{first.action}:{first.line_no}, "
            f"{iso(first.ts)}) on commit {(first.commit_id or '?')[:8]}{subject}"
        )
    return EXIT_OK


def cmd_prune(args: argparse.Namespace) -> int:
    from engine.prune import PruneError, prune

    store = _open_store(args)
    try:
        report = prune(
            store,
            keep=args.keep,
            older_than_days=args.older_than,
            state_dir=_state_dir(args, _repo(args)),
            dry_run=args.dry_run,
            vacuum=args.vacuum,
        )
    except PruneError as exc:
        raise UsageError(str(exc)) from exc
    verb = "would remove" if report.dry_run else "removed"
    for r in report.runs:
        day = time.strftime("%Y-%m-%d", time.localtime(r.created_at))
        print(f"{verb} #{r.number} {r.pipeline} ({r.status}, {day})")
    if report.dry_run:
        print(f"{len(report.runs)} execution(s) would be removed (dry run)")
    else:
        print(
            f"removed {len(report.runs)} execution(s): {report.events} events, "
            f"{report.lines} log lines, {report.dirs} run directories"
            + (" (database vacuumed)" if report.vacuumed else "")
        )
    return EXIT_OK


def _add_history_tools(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("replay", cmd_replay, "replay an execution (or an export file) on the board, or as JSON")
    _common(p)
    p.add_argument("run", metavar="RUN", help="execution number or id, or a file from `bakery export`")
    p.add_argument("--at", type=float, metavar="SECONDS", help="seconds since the execution was created")
    p.add_argument("--json", action="store_true", help="print the state at --at (default: the end) as `show --json` does")

    p = add("export", cmd_export, "write an execution's events and log lines as JSON lines")
    _common(p)
    p.add_argument("run")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")

    p = add("diff", cmd_diff, "compare two executions (one: with the last that succeeded before it)")
    _common(p)
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B", nargs="?")
    p.add_argument("--action", metavar="STAGE/ACTION", help="also diff this action's log")
    p.add_argument("--json", action="store_true")

    p = add("search", cmd_search, "search every stored log line (whole words, as one phrase)")
    _common(p)
    p.add_argument("text", nargs="+", help="text to find, matched as a phrase")
    p.add_argument("--raw", action="store_true", help='TEXT is an FTS5 query: error AND NOT warn, "a b" c, modu*, NEAR(a b)')
    p.add_argument("--run", help="only this execution")
    p.add_argument("--limit", type=int, default=50, help="at most this many lines (default 50)")
    p.add_argument("--json", action="store_true")

    p = add("prune", cmd_prune, "delete old finished executions, their logs and run directories")
    _common(p)
    p.add_argument("--keep", type=int, metavar="N", help="keep the newest N executions of each pipeline")
    p.add_argument("--older-than", type=float, metavar="DAYS", help="only executions created more than DAYS ago")
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    p.add_argument("--vacuum", action="store_true", help="compact the database file afterwards")


# -- end of history tools --------------------------------------------------------------------


# -- parser ----------------------------------------------------------------------------------
def _common(p: argparse.ArgumentParser, *, pipeline: bool = False) -> None:
    p.add_argument("-C", "--repo", default=".", help="the git repository (default: .)")
    p.add_argument("--state-dir", help="where executions are stored (default: $BAKERY_HOME or <git dir>/bakery)")
    if pipeline:
        p.add_argument("-p", "--pipeline", help="pipeline file (default: bakery.yaml in the repo)")


class _Unused(argparse.ArgumentParser):
    """Stands in for the parser of a subcommand that is not being run: what is added to it
    is dropped (the arguments of all ~20 subcommands took ~10 ms to build at each start)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        return None

    def add_mutually_exclusive_group(self, **kwargs: Any) -> Any:
        return self


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only` (a command name), that command alone.

    The other commands are then not registered at all, which only suits a command line
    that starts with that name (see `main`); its help and errors read the same. A name
    that is no command gets the whole parser.
    """
    parser = argparse.ArgumentParser(
        prog="bakery",
        description="A local AWS CodePipeline for the terminal.",
        epilog="Exit codes: 0 success, 1 execution failed/stopped or request refused, 2 usage or pipeline error.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    unused = _Unused(add_help=False) if only is not None else None
    built: list[str] = []

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        if unused is not None and name != only:
            return unused
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=fn)
        built.append(name)
        return p

    p = add("validate", cmd_validate, "check a pipeline file; problems as PATH:LINE:COL")
    p.add_argument("path", nargs="?", help="pipeline file (default: bakery.yaml)")
    add("schema", cmd_schema, "print the JSON Schema of pipeline files, for editors")

    p = add("run", cmd_run, "run the pipeline once on a commit (HEAD by default)")
    _common(p, pipeline=True)
    p.add_argument("--rev", default="HEAD", help="commit to run (default: HEAD)")
    p.add_argument("--var", action="append", metavar="NAME=VALUE", help="override a pipeline variable")
    answer = p.add_mutually_exclusive_group()
    answer.add_argument("--approve", action="store_true", help="approve every approval automatically")
    answer.add_argument("--reject", action="store_true", help="reject every approval automatically")
    p.add_argument("--comment", help="comment for automatic approval answers")
    p.add_argument("--json", action="store_true", help="print the final state as JSON (progress goes to stderr)")
    p.add_argument("--plain", action="store_true", help="line output even in a terminal")
    p.add_argument("--grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL on stop")

    p = add("history", cmd_history, "list executions, newest first")
    _common(p)
    p.add_argument("--status", help="only executions with this status (e.g. Failed)")
    p.add_argument("--branch", help="only executions of this branch")
    p.add_argument("--limit", type=int, default=50, help="at most this many, newest first (default 50; 0: all)")
    p.add_argument("--json", action="store_true")

    p = add("show", cmd_show, "show one execution (number or id)")
    _common(p)
    p.add_argument("run")
    p.add_argument("--json", action="store_true")

    p = add("logs", cmd_logs, "print the stored log of an execution or one action")
    _common(p)
    p.add_argument("run")
    p.add_argument("target", nargs="?", metavar="STAGE/ACTION")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the execution ends")
    p.add_argument("-t", "--timestamps", action="store_true")

    for name in ("approve", "reject"):
        p = add(name, cmd_approve, f"{name} a waiting approval from any terminal")
        _common(p)
        p.add_argument("run")
        p.add_argument("target", metavar="STAGE/ACTION")
        p.add_argument("-m", "--comment")
        p.add_argument("--wait", type=float, default=10.0, help=argparse.SUPPRESS)

    p = add("stop", cmd_stop, "stop an execution (running actions finish, or --abandon them)")
    _common(p)
    p.add_argument("run")
    p.add_argument("--abandon", action="store_true", help="end running actions now")
    p.add_argument("-m", "--comment")
    p.add_argument("--wait", type=float, default=10.0, help=argparse.SUPPRESS)

    p = add("retry", cmd_retry, "retry a failed stage (failed actions, or --all)")
    _common(p)
    p.add_argument("run")
    p.add_argument("stage")
    p.add_argument("--all", action="store_true", help="rerun every action of the stage")
    p.add_argument("--grace", type=float, default=5.0, help=argparse.SUPPRESS)

    p = add("transition", cmd_transition, "disable or enable a stage's inbound transition")
    _common(p, pipeline=True)
    p.add_argument("action", choices=["disable", "enable"])
    p.add_argument("stage")
    p.add_argument("--reason", default="")

    p = add("watch", cmd_watch, "open the live board and run the pipeline on every new commit")
    _common(p, pipeline=True)
    p.add_argument("--grace", type=float, default=5.0, help=argparse.SUPPRESS)

    p = add("demo", cmd_demo, "open the board on a sample repository in a temporary directory")
    p.add_argument("--keep", action="store_true", help="keep the demo repository afterwards")
    _add_history_tools(add)  # replay, export, diff, search, prune
    if only is not None and not built:
        return build_parser()  # not a command: the whole parser says so
    return parser


def _freeze_at_exit() -> None:
    """Let the interpreter's exit skip its garbage collections.

    Tearing down the modules of a run (asyncio, the engine) ran several full collections,
    50-70 ms here, longer than the run of a small pipeline. Frozen objects are not
    collected, so a command may use this only if it closes what must be closed (its
    store: a connection left in a reference cycle would never be closed, nor its WAL
    checkpointed) before it returns; stdout is flushed and `atexit` hooks run as before.
    The board's commands keep the ordinary exit. Registered once per process.
    """
    global _exit_hook_set
    if not _exit_hook_set:
        import atexit
        import gc

        atexit.register(gc.freeze)
        _exit_hook_set = True


_exit_hook_set = False

_MAY_OPEN_THE_BOARD = frozenset({"run", "watch", "demo", "replay"})
"""Commands that may end with an engine's store still open (`run` decides for itself)."""


def main(argv: Sequence[str] | None = None, *, board: Board | None = None) -> int:
    """Run one command; `board` supplies the commands that open the board."""
    global _board
    _board = board
    words = list(sys.argv[1:] if argv is None else argv)
    if not (words and words[0] in _MAY_OPEN_THE_BOARD):
        _freeze_at_exit()
    parser = build_parser(words[0] if words and not words[0].startswith("-") else None)
    args = parser.parse_args(words)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except UsageError as exc:
        sys.stderr.write(f"bakery: {exc}\n" if "\n" not in str(exc) else f"{exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except sqlite3.Error as exc:  # a damaged store, a full disk: say so, no traceback
        hint = (
            ""
            if isinstance(exc, sqlite3.OperationalError)
            else "; `bakery run` moves a damaged store aside and starts a new one"
        )
        sys.stderr.write(f"bakery: the store could not be used ({exc}){hint}\n")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
