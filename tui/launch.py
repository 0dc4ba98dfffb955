"""Entry points the CLI calls: `bakery watch`, `bakery demo`, `bakery run` in a terminal.

Each builds an engine on its own thread (EngineHost), folds what the store already knows,
opens the board, and on the way out stops what still runs (TERM, grace, KILL) before the
thread ends. Each returns an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from engine import events as ev

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _header(repo: Path, pipeline: Any, version: int, note: str = "") -> Any:
    from engine.gitinfo import current_branch
    from tui.widgets.header import HeaderInfo

    try:
        branch = current_branch(repo) or ""
    except Exception:  # noqa: BLE001 - the header must not stop the board
        branch = ""
    return HeaderInfo(
        repo=repo.name,
        branch=branch,
        pipeline=pipeline.name if pipeline is not None else "",
        version=version,
        mode=pipeline.execution_mode.value if pipeline is not None else "",
        note=note,
    )


def _start_host(repo: Path, state_dir: Path, grace: float) -> Any:
    from engine.core import Engine
    from engine.host import EngineHost

    host = EngineHost(lambda: Engine(repo, state_dir, grace=grace))
    host.start()
    return host


def _open_watch(repo: Path, path: Path, state_dir: Path, grace: float) -> tuple[Any, Any, list[str]]:
    """Engine + WatchSession, opened; raises UsageError for an invalid pipeline."""
    from engine.cli import UsageError
    from engine.loader import PipelineError
    from engine.watch import WatchSession
    from tui.controller import Controller

    host = _start_host(repo, state_dir, grace)
    assert host.engine is not None
    session = WatchSession(host.engine, path)
    try:
        notes = host.call(session.open).result(60)
    except PipelineError as exc:
        host.stop(grace)
        raise UsageError(str(exc)) from exc
    except BaseException:
        host.stop(grace)
        raise
    host.call(session.run_forever)
    return host, Controller(host, session), list(notes or [])


def _board(host: Any, controller: Any, repo: Path, grace: float, **kwargs: Any) -> Any:
    from tui.app import BakeryApp
    from tui.model import BoardModel
    from tui.source import HostSource

    engine = host.engine
    pipeline = controller.pipeline
    model = BoardModel(pipeline.name if pipeline else None, engine.store)
    model.load_recent()
    return BakeryApp(
        HostSource(host, engine.store),
        model=model,
        controller=controller,
        header=_header(repo, pipeline, controller.version),
        repo=repo,
        grace=grace,
        **kwargs,
    )


def _run_app(app: Any, controller: Any, grace: float) -> None:
    try:
        app.run()
    finally:
        controller.close(grace + 1.8)


def watch(args: argparse.Namespace) -> int:
    from engine.cli import _pipeline_path, _repo, _state_dir

    repo = _repo(args)
    path = _pipeline_path(args, repo)
    grace = float(getattr(args, "grace", 5.0))
    host, controller, notes = _open_watch(repo, path, _state_dir(args, repo), grace)
    app = _board(host, controller, repo, grace)
    for note in notes:
        app.call_later(app.notify, note, title="recovered")
    _run_app(app, controller, grace)
    return EXIT_OK


def demo(args: argparse.Namespace) -> int:
    from tui.demo import create_demo_repo, make_change

    root = Path(tempfile.mkdtemp(prefix="bakery-demo-"))
    try:
        repo = create_demo_repo(root)
        grace = 3.0
        host, controller, _notes = _open_watch(repo, repo / "bakery.yaml", repo / ".git" / "bakery", grace)

        def first_commit(app: Any) -> None:
            time.sleep(0.6)  # let the board draw first: the user sees the run appear
            make_change(repo)
            app.call_from_thread(
                app.notify,
                "A commit just landed: watch it run, fan out and wait for you at the approval "
                "(a approves, r rejects, ? shows every key).",
                title="Bakery demo",
                timeout=10,
            )

        app = _board(host, controller, repo, grace, on_ready=first_commit)
        _run_app(app, controller, grace)
    finally:
        if getattr(args, "keep", False):
            print(f"the demo repository is kept in {root / 'bakeshop'}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return EXIT_OK


def run_board(args: argparse.Namespace) -> int:
    """`bakery run` in a terminal: the board for this one execution; exit 0 if it Succeeded."""
    from engine.cli import UsageError, _load, _parse_vars, _pipeline_path, _repo, _state_dir
    from engine.core import ControlError
    from tui.controller import Controller

    repo = _repo(args)
    path = _pipeline_path(args, repo)
    pipeline = _load(path)
    variables = _parse_vars(args.var or [])
    grace = float(args.grace)
    host = _start_host(repo, _state_dir(args, repo), grace)
    engine = host.engine
    try:
        version = host.call_sync(engine.register, pipeline, path).result(30)
        host.call(engine.recover, pipeline).result(60)
        if args.approve or args.reject:
            result = ev.APPROVED if args.approve else ev.REJECTED
            comment = args.comment or "answered by --approve/--reject"
            host.call_sync(engine.recorder.subscribe, _auto_answer(engine, result, comment)).result(10)
        ex = host.call(
            engine.start_execution,
            pipeline,
            version=version,
            rev=args.rev,
            variables=variables,
            trigger={"type": "StartPipelineExecution", "by": engine.user, "via": "bakery run"},
        ).result(60)
    except ControlError as exc:
        host.stop(grace)
        raise UsageError(str(exc)) from exc
    except BaseException:
        host.stop(grace)
        raise
    controller = Controller(host, None, pipeline, version)
    app = _board(host, controller, repo, grace, focus_run=ex.run_id)
    _run_app(app, controller, grace)
    state = engine.store.load_run(ex.run_id)
    if state is not None and not sys.stdout.isatty():
        print(f"execution #{state.number}: {state.status}")
    return EXIT_OK if state is not None and state.status == ev.SUCCEEDED else EXIT_FAILED


def _auto_answer(engine: Any, result: str, comment: str) -> Any:
    """--approve / --reject with the board: answer each approval as it is requested."""
    import asyncio

    from engine.core import ControlError

    def decide(event: ev.Event) -> None:
        with contextlib.suppress(ControlError):
            engine.decide(
                str(event.run_id), event.data["stage"], event.data["action"], result,
                comment=comment, token=event.data["token"],
            )

    def on_item(item: Any) -> None:
        if isinstance(item, ev.Event) and item.type == ev.APPROVAL_REQUESTED:
            asyncio.get_running_loop().call_soon(decide, item)

    return on_item


def replay(args: argparse.Namespace) -> int:
    """`bakery replay RUN|FILE`: a stored execution (or an export file) on the board."""
    from engine.cli import UsageError
    from engine.replay import ReplayError, load_timeline
    from tui.screens.replay import ReplayApp
    from tui.widgets.header import HeaderInfo

    try:
        timeline = load_timeline(args.run, repo=args.repo, state_dir=getattr(args, "state_dir", None))
    except ReplayError as exc:
        raise UsageError(str(exc)) from exc
    try:
        repo: Path | None = None
        if not Path(args.run).is_file():  # an export file replays without any repository
            with contextlib.suppress(Exception):
                from engine.gitinfo import repo_root

                repo = repo_root(args.repo)
        app = ReplayApp(
            timeline,
            at=getattr(args, "at", None),
            header=HeaderInfo(repo=repo.name if repo else Path(args.run).name),
            repo=repo,
            animate=False,
        )
        app.run()
    finally:
        timeline.close()
    return EXIT_OK
