"""The live board: stages and cards of the execution in focus, its logs, the run list.

It draws only from `app.model` and redraws once per drain (`apply`). Keys act on what is
selected; `check_action` hides the keys that do not apply now, so the Footer always tells
the truth (no `a`/`r` unless an approval waits). Keys that stop applying with the selection
or between executions (`t` on the first stage, `s` with nothing running, zoom and search
without a log) are shown greyed out instead: moving the selection or starting an execution
then never rebuilds the Footer (see `BoardFooter`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Static

from engine import events as ev
from engine.core import ControlError
from engine.state import ActionState, RunState
from tui import look
from tui.logbuffer import LogBuffer
from tui.screens.approval import Answer, approve_modal, retry_modal, stop_modal, transition_modal
from tui.screens.compositor import LayoutCompositor
from tui.widgets.action_card import ActionCard
from tui.widgets.approval_panel import ApprovalPanel
from tui.widgets.footer import BoardFooter
from tui.widgets.header import BoardHeader, RunBanner
from tui.widgets.log_pane import LogPane, LogView
from tui.widgets.restyle import set_classes
from tui.widgets.run_list import RunList
from tui.widgets.stage_column import NO_RUN_HINT, StageBoard, StageColumn, outline

if TYPE_CHECKING:
    from engine.model import Pipeline
    from tui.app import BakeryApp
    from tui.model import Changes, LogKey

MAX_PANES = 4


def _running(a: ActionState) -> bool:
    return a.status == ev.IN_PROGRESS and a.approval is None


class BoardScreen(Screen[None]):
    AUTO_FOCUS = ""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve"),
        Binding("r", "reject", "Reject"),
        Binding("s", "stop", "Stop"),
        Binding("R", "retry", "Retry"),
        Binding("t", "toggle_transition", "Transition"),
        Binding("x", "run_now", "Run HEAD"),
        Binding("enter,z", "zoom", "Zoom log"),
        Binding("escape", "unzoom", "Back"),
        Binding("slash", "search", "Search"),
        Binding("n", "search_next", "Next"),
        Binding("N", "search_prev", "Prev"),
        Binding("e", "first_error", "Error"),
        Binding("T", "timestamps", "Timestamps", show=False),
        Binding("f", "follow", "Follow", show=False),
        Binding("left,h", "move(-1, 0)", "Left", show=False),
        Binding("right,l", "move(1, 0)", "Right", show=False),
        Binding("up,k", "move(0, -1)", "Up", show=False),
        Binding("down,j", "move(0, 1)", "Down", show=False),
        Binding("left_square_bracket", "prev_run", "Prev run", show=False),
        Binding("right_square_bracket", "next_run", "Next run", show=False),
        Binding("pageup", "log_page(-1)", show=False),
        Binding("pagedown", "log_page(1)", show=False),
        Binding("home", "log_home", show=False),
        Binding("end,G", "log_end", show=False),
    ]

    def __init__(self, *, screen_id: str = "board") -> None:  # replays pushed over it need another id
        super().__init__(id=screen_id)
        self._compositor = LayoutCompositor()  # one arrangement a layout (tui/screens/compositor.py)
        self.focused_run: str | None = None
        self.follow_run = True
        self.selected: tuple[str, str] | None = None
        self.follow_action = True
        self._panes: list[LogPane] = []
        self._pool: list[LogPane] = []  # every pane mounted; _panes: those shown
        self._no_log: Static | None = None
        self._arrange_lock = asyncio.Lock()
        self._empty_buffer = LogBuffer()
        self._binding_state: tuple[Any, ...] = ()
        self._approval_token: str | None = None
        self._approval_contexts: dict[str, Any] = {}
        self._outline_of: Pipeline | None = None
        self._outline_run: RunState | None = None
        self.ready = False  # set once composed; the app's timers may fire before that

    @property
    def bapp(self) -> BakeryApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield BoardHeader(id="header")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield RunBanner(id="banner")
                yield StageBoard(id="stages")
                yield ApprovalPanel(id="approval")
                yield Horizontal(id="logs")
            with Vertical(id="side"):
                yield Static("Executions", id="side-title")
                yield RunList(id="runs")
        yield Input(placeholder="search the log (Enter: find, Esc: cancel)", id="search")
        yield BoardFooter()

    async def on_mount(self) -> None:
        self.query_one("#runs", RunList).can_focus = False
        self.query_one("#search", Input).display = False
        self.query_one(ApprovalPanel).display = False
        self.query_one(BoardHeader).set_info(self.bapp.header_info)
        if self.bapp.initial_run:
            self.focused_run = self.bapp.initial_run
            self.follow_run = False
        self.ready = True
        await self.redraw()

    # -- model -> widgets -----------------------------------------------------------------
    @property
    def run(self) -> RunState | None:
        model = self.bapp.model
        if self.focused_run in model.runs:
            return model.runs[self.focused_run]
        return None

    async def apply(self, changes: Changes) -> None:
        """One drain's worth of changes: redraw what they touched, once."""
        if not self.ready:
            return
        model = self.bapp.model
        if changes.created and self.follow_run:
            self.focused_run = changes.created[-1]
            self.selected = None
            self.follow_action = True
        if changes.runs or changes.pipeline or changes.created:
            await self.redraw()
        for key in changes.logs:
            self.log_grew(key)
        del model

    async def redraw(self) -> None:
        app = self.bapp
        if self.focused_run is None or self.focused_run not in app.model.runs:
            newest = app.model.newest()
            self.focused_run = newest.id if newest else None
        run = self.run
        self.query_one(BoardHeader).refresh()
        shown = run if run is not None else self._outline()
        self.query_one(RunBanner).show(run, NO_RUN_HINT if shown is not None else "")
        await self.query_one(StageBoard).show(shown, app.model.pipeline.disabled)
        self.query_one(RunList).show(app.model.recent(30), self.focused_run)
        self._auto_select()
        self._mark_selection()
        self._show_approval()
        await self._arrange_logs()
        self._refresh_bindings_if_changed()

    def _outline(self) -> RunState | None:
        """The pipeline's stages before its first execution (the columns that execution
        reuses: built while the board opens, not while the execution starts)."""
        controller = self.bapp.controller
        pipeline = controller.pipeline if controller is not None else None
        if pipeline is None:
            return None
        if self._outline_of is not pipeline:
            self._outline_of = pipeline
            self._outline_run = outline(pipeline)
        return self._outline_run

    def redraw_all(self) -> None:
        """Theme changed: styles computed from theme variables must be rebuilt."""
        if not self.ready:
            return
        for view in self.query(LogView):
            view.clear_caches()
        for widget in self.query("ActionCard, TransitionArrow, StageColumn, RunBanner, BoardHeader, ApprovalPanel"):
            widget.refresh()
        runs = self.query_one(RunList)
        runs._signature = ()
        runs.show(self.bapp.model.recent(30), self.focused_run)
        self.call_later(self.redraw)

    def tick(self) -> None:
        """Spinners and elapsed times (cheap: only cards in progress are redrawn)."""
        if not self.ready:
            return
        run = self.run
        self.query_one(BoardHeader).refresh()
        if run is None or run.finished:
            return
        for card in self.query_one(StageBoard).cards():
            if card.state.status == ev.IN_PROGRESS:
                card.refresh()
        for pane in self._panes:
            if pane.key is not None:
                with contextlib.suppress(KeyError):
                    pane.set_title(self._title(run.action(pane.key[1], pane.key[2])))
        self.query_one(RunBanner).refresh()
        self.query_one(RunList).show(self.bapp.model.recent(30), self.focused_run)
        panel = self.query_one(ApprovalPanel)
        if panel.display:
            panel.refresh()

    # -- selection --------------------------------------------------------------------------
    def _auto_select(self) -> None:
        run = self.run
        if run is None:
            self.selected = None
            return
        if self.selected is not None:
            try:
                run.action(*self.selected)
            except KeyError:
                self.selected = None
        if not self.follow_action and self.selected is not None:
            return
        pick: ActionState | None = None
        pending = run.pending_approvals()
        running = [a for a in run.actions() if _running(a)]
        if self.selected is not None:
            current = run.action(*self.selected)
            if _running(current) and not pending:
                return  # keep following the action the reader is on while it runs
        if pending:
            pick = pending[0]
        elif running:
            pick = running[0]
        else:
            failed = [a for a in run.actions() if a.status == ev.FAILED]
            started = [a for a in run.actions() if a.status is not None]
            if failed:
                pick = failed[0]
            elif started:
                pick = started[-1]
            elif run.stages and run.stages[0].actions:
                pick = run.stages[0].actions[0]
        if pick is not None:
            self.selected = (pick.stage, pick.name)

    def _mark_selection(self) -> None:
        for card in self.query_one(StageBoard).cards():
            card.set_class((card.stage_name, card.action_name) == self.selected, "-selected")
        for column in self.query_one(StageBoard).columns.values():
            # the column's own border only: its cards are not restyled (tui/widgets/restyle.py)
            selected = self.selected is not None and column.stage.name == self.selected[0]
            set_classes(column, {"-selected": selected})
        if self.selected is not None:
            card = self.query_one(StageBoard).card(*self.selected)
            if card is not None:
                self.query_one(StageBoard).scroll_to_widget(card, animate=False)

    def selected_action(self) -> ActionState | None:
        run = self.run
        if run is None or self.selected is None:
            return None
        try:
            return run.action(*self.selected)
        except KeyError:
            return None

    def _ordered(self, run: RunState) -> list[list[ActionState]]:
        return [[a for _, group in s.groups() for a in group] for s in run.stages]

    async def action_move(self, dx: int, dy: int) -> None:
        run = self.run
        if run is None or not run.stages:
            return
        columns = self._ordered(run)
        si, ai = 0, 0
        if self.selected is not None:
            for i, col in enumerate(columns):
                for j, a in enumerate(col):
                    if (a.stage, a.name) == self.selected:
                        si, ai = i, j
        si = max(0, min(len(columns) - 1, si + dx))
        col = columns[si]
        ai = max(0, min(len(col) - 1, ai + dy))
        self.selected = (col[ai].stage, col[ai].name)
        self.follow_action = False
        self._mark_selection()
        self._show_approval()
        await self._arrange_logs()
        self._refresh_bindings_if_changed()

    async def on_action_card_selected(self, message: ActionCard.Selected) -> None:
        message.stop()
        self.selected = (message.stage, message.action)
        self.follow_action = False
        self._mark_selection()
        await self._arrange_logs()
        self._refresh_bindings_if_changed()

    def on_stage_column_selected(self, message: StageColumn.Selected) -> None:
        message.stop()

    async def on_run_list_focused(self, message: RunList.Focused) -> None:
        message.stop()
        await self.focus_run(message.run_id)

    async def focus_run(self, run_id: str) -> None:
        self.focused_run = run_id
        newest = self.bapp.model.newest()
        self.follow_run = newest is not None and newest.id == run_id
        self.follow_action = True
        self.selected = None
        await self.redraw()

    async def _step_run(self, delta: int) -> None:
        runs = self.bapp.model.recent(30)
        ids = [r.id for r in runs]
        if not ids:
            return
        i = ids.index(self.focused_run) if self.focused_run in ids else 0
        i = max(0, min(len(ids) - 1, i + delta))
        await self.focus_run(ids[i])

    async def action_prev_run(self) -> None:
        await self._step_run(1)  # older

    async def action_next_run(self) -> None:
        await self._step_run(-1)  # newer

    async def action_follow(self) -> None:
        self.follow_run = True
        self.follow_action = True
        newest = self.bapp.model.newest()
        self.focused_run = newest.id if newest else None
        await self.redraw()

    # -- approvals --------------------------------------------------------------------------
    def _target_approval(self) -> ActionState | None:
        run = self.run
        if run is None:
            return None
        pending = run.pending_approvals()
        chosen = self.selected_action()
        if chosen is not None and chosen in pending:
            return chosen
        return pending[0] if pending else None

    def _show_approval(self) -> None:
        panel = self.query_one(ApprovalPanel)
        run = self.run
        target = self._target_approval()
        others = len(run.pending_approvals()) - 1 if run and target else 0
        panel.show(run, target, others)
        if target is None or target.approval is None or run is None:
            self._approval_token = None
            return
        token = target.approval.token
        if token != self._approval_token:
            self._approval_token = token
            panel.set_context(self._approval_contexts.get(token))
            if token not in self._approval_contexts:
                self._load_approval_context(run, target)

    def _load_approval_context(self, run: RunState, action: ActionState) -> None:
        app = self.bapp
        repo = app.repo
        commit = str(run.commit.get("id") or "")
        assert action.approval is not None
        token = action.approval.token
        if repo is None or not commit:
            return

        def work() -> None:
            from tui.approval_info import approval_context

            ctx = approval_context(repo, app.source.store, run.pipeline, run.number, action.stage, action.name, commit)
            app.call_from_thread(self._approval_context_ready, token, ctx)

        self.run_worker(work, thread=True, exit_on_error=False, group="approval")

    def _approval_context_ready(self, token: str, ctx: Any) -> None:
        self._approval_contexts[token] = ctx
        if token == self._approval_token:
            self.query_one(ApprovalPanel).set_context(ctx)

    def _answer(self, approve: bool) -> None:
        target = self._target_approval()
        run = self.run
        controller = self.bapp.controller
        if target is None or run is None or controller is None:
            self.notify("no approval waits", severity="warning")
            return
        run_id, stage, action = run.id, target.stage, target.name

        def answered(answer: Answer | None) -> None:
            if answer is None:
                return
            self._control(controller.decide(run_id, stage, action, approve, answer.comment))

        self.app.push_screen(approve_modal(approve, f"{stage} / {action} of #{run.number}"), answered)

    def action_approve(self) -> None:
        self._answer(True)

    def action_reject(self) -> None:
        self._answer(False)

    # -- control ----------------------------------------------------------------------------
    def _control(self, coro: Any) -> None:
        """Run a controller call; tell the user the engine's answer or its refusal."""

        async def go() -> None:
            try:
                message = await coro
            except ControlError as exc:
                self.notify(str(exc), title="refused", severity="error", timeout=6)
                return
            except Exception as exc:  # noqa: BLE001 - shown, never fatal to the board
                self.notify(f"{type(exc).__name__}: {exc}", title="error", severity="error", timeout=8)
                return
            if message:
                self.notify(str(message), timeout=4)

        self.run_worker(go(), exit_on_error=False, group="control")

    def action_stop(self) -> None:
        run = self.run
        controller = self.bapp.controller
        if run is None or controller is None or run.finished:
            self.notify("nothing to stop", severity="warning")
            return
        running = sum(1 for a in run.actions() if a.status == ev.IN_PROGRESS)
        run_id = run.id

        def answered(answer: Answer | None) -> None:
            if answer is not None:
                self._control(controller.stop(run_id, answer.value, answer.comment))

        self.app.push_screen(stop_modal(run.number, running), answered)

    def _retry_stage(self) -> str | None:
        run = self.run
        if run is None or run.status not in (ev.FAILED, ev.STOPPED):
            return None
        if self.selected is not None:
            stage = run.stage(self.selected[0])
            if stage.status in (ev.FAILED, ev.STOPPED):
                return stage.name
        for stage in run.stages:
            if stage.status in (ev.FAILED, ev.STOPPED):
                return stage.name
        return None

    def action_retry(self) -> None:
        run = self.run
        stage = self._retry_stage()
        controller = self.bapp.controller
        if run is None or stage is None or controller is None:
            self.notify("nothing to retry: only a Failed or Stopped stage can be retried", severity="warning")
            return
        run_id = run.id
        self.follow_action = True

        def answered(answer: Answer | None) -> None:
            if answer is not None:
                self._control(controller.retry(run_id, stage, answer.value))

        self.app.push_screen(retry_modal(run.number, stage), answered)

    def _transition_stage(self) -> str | None:
        run = self.run
        if run is None or self.selected is None:
            return None
        names = [s.name for s in run.stages]
        return self.selected[0] if names.index(self.selected[0]) > 0 else None

    def action_toggle_transition(self) -> None:
        run = self.run
        stage = self._transition_stage()
        controller = self.bapp.controller
        if run is None or stage is None or controller is None:
            self.notify("select an action of a stage after the first (its inbound transition)", severity="warning")
            return
        pipeline = run.pipeline
        if stage in self.bapp.model.pipeline.disabled:
            self._control(controller.set_transition(pipeline, stage, True))
            return

        def answered(answer: Answer | None) -> None:
            if answer is not None:
                self._control(controller.set_transition(pipeline, stage, False, answer.comment))

        self.app.push_screen(transition_modal(stage), answered)

    def action_run_now(self) -> None:
        controller = self.bapp.controller
        if controller is None:
            self.notify("no engine attached", severity="warning")
            return
        self.follow_run = True
        self.follow_action = True
        self._control(controller.start_now("HEAD"))

    # -- logs -------------------------------------------------------------------------------
    def _wanted_panes(self) -> list[tuple[LogKey | None, ActionState]]:
        run = self.run
        chosen = self.selected_action()
        if run is None or chosen is None:
            return []
        stage = run.stage(chosen.stage)
        group = [a for a in stage.actions if a.run_order == chosen.run_order]
        running = [a for a in group if _running(a)]
        shown = [chosen]
        if len(running) > 1 and (chosen in running or self.follow_action):
            shown = running[:MAX_PANES]
            if chosen not in shown:
                shown = [chosen, *running[: MAX_PANES - 1]]
        out: list[tuple[LogKey | None, ActionState]] = []
        for a in shown:
            key = (run.id, a.stage, a.name, a.attempt) if a.attempt else None
            out.append((key, a))
        return out

    def _title(self, a: ActionState) -> str:
        app = self.bapp
        status = a.status or ("Didn't Run" if self.run and self.run.finished else "not started")
        attempt = f" · attempt {a.attempt}" if a.attempt > 1 else ""
        took = look.duration(a.duration(app.now()))
        took = f" · {took}" if took else ""
        return f" {look.symbol(a.status)} {a.stage} / {a.name}  ·  {a.category}{attempt}  ·  {status}{took}"

    def _buffer(self, key: LogKey | None) -> LogBuffer:
        if key is None:
            return self._empty_buffer
        buffer, needs_load = self.bapp.model.log_buffer(key)
        if needs_load:
            buffer.begin_load()
            self.bapp.load_history(key)
        return buffer

    async def _arrange_logs(self) -> None:
        # A key and a drain may both arrange the panes; while one awaits a mount the other
        # must not see half-replaced panes (zip(strict=True) would fail): one at a time.
        async with self._arrange_lock:
            await self._arrange_logs_now()

    async def _arrange_logs_now(self) -> None:
        wanted = self._wanted_panes()
        container = self.query_one("#logs", Horizontal)
        keys = [k for k, _ in wanted]
        current = [p.key for p in self._panes]
        timestamps = self.bapp.settings.timestamps
        if not self._pool:
            # MAX_PANES panes are mounted once and then shown, hidden and re-bound: mounting
            # panes on every move between a parallel group and a single action cost a key
            # press ~70 ms on an idle board, several times that during a flood.
            await container.remove_children()
            self._pool = [
                LogPane(None, self._empty_buffer, timestamps=timestamps) for _ in range(MAX_PANES)
            ]
            for pane in self._pool:
                pane.display = False
            self._no_log = Static("Select an action to see its log.", classes="empty")
            await container.mount_all([*self._pool, self._no_log])
        if len(wanted) != len(self._panes) and self.maximized is not None:
            self.minimize()
        for i, pane in enumerate(self._pool):
            if pane.view.timestamps != timestamps:
                pane.view.set_timestamps(timestamps)
            if i < len(wanted):
                key, a = wanted[i]
                if not pane.display or key != pane.key or (key is None and keys != current):
                    pane.bind(key, self._buffer(key), self._title(a))
                else:
                    pane.set_title(self._title(a))
                pane.display = True
            else:
                # a hidden pane keeps its log (shown again for it, it needs no re-binding),
                # but lets go of another execution's
                if pane.key is not None and (self.run is None or pane.key[0] != self.run.id):
                    pane.bind(None, self._empty_buffer, "")
                pane.display = False
        if self._no_log is not None:
            self._no_log.display = not wanted
        self._panes = self._pool[: len(wanted)]
        for pane, (_, a) in zip(self._panes, wanted, strict=True):
            pane.set_active((a.stage, a.name) == self.selected and len(self._panes) > 1)

    def active_pane(self) -> LogPane | None:
        if not self._panes:
            return None
        for pane in self._panes:
            if pane.key is not None and self.selected is not None and pane.key[1:3] == self.selected:
                return pane
        return self._panes[0]

    def log_grew(self, key: LogKey) -> None:
        if not self.ready:
            return
        for pane in self._panes:
            if pane.key == key:
                pane.lines_added()

    async def on_log_pane_chosen(self, message: LogPane.Chosen) -> None:
        message.stop()
        key = message.pane.key
        if self.maximized is None:
            self.set_focus(None)
        if key is not None and self.selected != key[1:3]:
            self.selected = (key[1], key[2])
            self.follow_action = False
            self._mark_selection()
            await self._arrange_logs()

    def action_zoom(self) -> None:
        pane = self.active_pane()
        if pane is None:
            return
        if self.maximized is not None:
            self.action_unzoom()
            return
        self.maximize(pane, container=False)
        pane.view.focus()
        self._refresh_bindings_if_changed(force=True)

    def action_unzoom(self) -> None:
        search = self.query_one("#search", Input)
        if search.display:
            search.display = False
            self.set_focus(None)
        elif self.maximized is not None:
            self.minimize()
            self.set_focus(None)
        self._refresh_bindings_if_changed(force=True)

    def action_search(self) -> None:
        if self.active_pane() is None:
            return
        search = self.query_one("#search", Input)
        search.display = True
        search.value = self.active_pane().view.query_text if self.active_pane() else ""
        search.focus()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        if message.input.id != "search":
            return
        message.stop()
        message.input.display = False
        pane = self.active_pane()
        if self.maximized is not None and pane is not None:
            pane.view.focus()
        else:
            self.set_focus(None)
        if pane is None:
            return
        pane.view.set_search(message.value)
        if message.value:
            found = pane.view.search()
            if found is None:
                self.notify(f"no line matches {message.value!r}", severity="warning", timeout=3)
        pane.update_status()
        self._refresh_bindings_if_changed(force=True)

    def _search_step(self, backwards: bool) -> None:
        pane = self.active_pane()
        if pane is None or pane.view.pattern is None:
            return
        if pane.view.search(backwards=backwards) is None:
            self.notify("no match", severity="warning", timeout=2)
        pane.update_status()

    def action_search_next(self) -> None:
        self._search_step(False)

    def action_search_prev(self) -> None:
        self._search_step(True)

    def action_first_error(self) -> None:
        pane = self.active_pane()
        if pane is None:
            return
        if pane.view.first_error() is None:
            self.notify("no error line in this log", timeout=2)
        pane.update_status()

    def action_timestamps(self) -> None:
        settings = self.bapp.settings
        settings.timestamps = not settings.timestamps
        settings.save(self.bapp.settings_dir)
        for pane in self._panes:
            pane.view.set_timestamps(settings.timestamps)

    def action_log_page(self, direction: int) -> None:
        pane = self.active_pane()
        if pane is not None:
            view = pane.view
            view.scroll_to(y=view.scroll_y + direction * max(1, view.size.height - 1), animate=False)

    def action_log_home(self) -> None:
        pane = self.active_pane()
        if pane is not None:
            pane.view.scroll_home(animate=False)

    def action_log_end(self) -> None:
        pane = self.active_pane()
        if pane is not None:
            pane.view.action_follow()

    # -- which keys apply now -----------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """True: the key applies now. None: shown greyed out, for keys that stop applying
        with the selection or between executions (the Footer keeps its keys, and a move is not
        a Footer rebuild). False: hidden (no live engine, no approval waiting, nothing failed,
        no search)."""
        app = self.bapp
        run = self.run
        live = app.controller is not None
        if action in ("approve", "reject"):
            return live and self._target_approval() is not None
        if action == "stop":
            if not live:
                return False
            return True if run is not None and not run.finished and run.id in app.model.live_runs else None
        if action == "retry":
            return live and self._retry_stage() is not None
        if action == "toggle_transition":
            if not live:
                return False
            return True if self._transition_stage() is not None else None  # not on the first stage
        if action == "run_now":
            return live
        if action in ("search_next", "search_prev"):
            pane = self.active_pane()
            return pane is not None and pane.view.pattern is not None
        if action == "unzoom":
            return self.maximized is not None or self.query_one("#search", Input).display
        if action in ("zoom", "search", "first_error"):
            return True if self.active_pane() is not None else None
        return True

    # the actions whose check_action answer changes while the board runs (the rest are fixed)
    DYNAMIC_ACTIONS: ClassVar[tuple[str, ...]] = (
        "approve", "reject", "stop", "retry", "toggle_transition", "run_now",
        "search_next", "search_prev", "unzoom", "zoom", "search", "first_error",
    )

    def _refresh_bindings_if_changed(self, force: bool = False) -> None:
        """Tell the Footer only when what it shows changed (a refresh costs a Footer update)."""
        state = tuple(self.check_action(action, ()) for action in self.DYNAMIC_ACTIONS)
        if force or state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()
