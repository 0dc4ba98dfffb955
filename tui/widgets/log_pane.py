"""The log of one action: a Line-API view that renders only the lines on screen.

Lines live in a compact `LogBuffer`; a line is made terminal-safe and parsed for ANSI colour
(rich `Text.from_ansi`) only when it is drawn, with a small cache. Follow mode sticks to the
end while the reader is there; once they scroll up, new lines are counted ("N new lines")
until they press End (or scroll back down). In a pane, the view also draws the pane's title
row and status row (`framed`), each repainted alone when it changes.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.cache import LRUCache
from textual.containers import Vertical
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.strip import Strip

from engine.sanitize import terminal_safe
from tui.logbuffer import LogBuffer
from tui.widgets.log_scrollbar import log_scrollbar
from tui.widgets.restyle import set_classes

if TYPE_CHECKING:
    from tui.model import LogKey

TS_WIDTH = 13  # "HH:MM:SS.mmm "


class LogView(ScrollView, can_focus=True):
    """Virtualised log lines with follow mode, timestamps and search highlights."""

    COMPONENT_CLASSES = {
        "logview--timestamp",
        "logview--match",
        "logview--current",
        "logview--stderr",
        "logview--system",
        "logview--lineno",
        "logview--title",
        "logview--title-active",
        "logview--status",
        "logview--status-unseen",
    }

    BINDINGS = [
        Binding("end", "follow", "Follow", show=False),
        Binding("home", "scroll_home", "Top", show=False),
    ]

    class Scrolled(Message):
        """The reader moved (the pane updates its 'N new lines' note)."""

    def __init__(self, buffer: LogBuffer | None = None, *, timestamps: bool = False,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.buffer = buffer or LogBuffer()
        self.timestamps = timestamps
        self.following = True
        self.unseen = 0
        self.pattern: re.Pattern[str] | None = None
        self.query_text = ""
        self.current: int | None = None
        self._cache: LRUCache[tuple[int, bool], Strip] = LRUCache(512)
        self._known = 0
        self._paint: tuple[Style, int] | None = None  # set while render_lines runs
        # the title and status rows, drawn in the view's top and bottom padding (see `framed`)
        self.framed = False
        self.title = ""
        self.status = ""
        self.active = False
        self.unseen_status = False
        self._rows: dict[str, tuple[tuple[object, ...], Strip]] = {}

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        return log_scrollbar(self, vertical=True)  # drawn again only when its thumb moves

    @property
    def horizontal_scrollbar(self) -> ScrollBar:
        return log_scrollbar(self, vertical=False)

    # -- content --------------------------------------------------------------------------
    def set_buffer(self, buffer: LogBuffer) -> None:
        """Show `buffer` from its end (the drawn lines are kept when it is the same log)."""
        if buffer is not self.buffer:
            self.buffer = buffer
            self._cache.clear()
            self._known = 0
        self.following = True
        self.unseen = 0
        self.current = None
        self.lines_added()

    def _gutter(self) -> int:
        return TS_WIDTH if self.timestamps else 0

    def _update_virtual_size(self) -> None:
        size = Size(min(self.buffer.width, 4000) + self._gutter() + 1, len(self.buffer))
        if size == self.virtual_size:
            return
        if not self.is_mounted or not self.container_size:
            self.virtual_size = size
            return
        # Setting `virtual_size` asks for a layout of the whole screen (it is a layout
        # reactive), which a flood would do on every drain; a pane's own size never depends
        # on its lines, so only its scrollbars and offsets are updated (a scrollbar that
        # appears still lays the screen out: show_*_scrollbar are layout reactives).
        self.set_reactive(LogView.virtual_size, size)
        self._scroll_update(size)
        self.refresh()

    def lines_added(self) -> None:
        """Called once per drain when the buffer grew (never per line)."""
        total = len(self.buffer)
        new = max(0, total - self._known)
        if total < self._known:  # lines dropped from the head: positions moved
            self._cache.clear()
        self._known = total
        at_end = self.following
        self._update_virtual_size()
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
            self.refresh()
        else:
            self.unseen += new
            self.post_message(self.Scrolled())
        if new and at_end:
            self.refresh()

    def set_timestamps(self, on: bool) -> None:
        self.timestamps = on
        self._cache.clear()
        self._update_virtual_size()
        self.refresh()

    def clear_caches(self) -> None:
        self._cache.clear()
        self._rows.clear()
        self.refresh()

    # -- title and status rows ----------------------------------------------------------------
    def set_title(self, title: str) -> None:
        if title != self.title:
            self.title = title
            self._refresh_row(0)

    def set_active(self, active: bool) -> None:
        if active != self.active:
            self.active = active
            self._refresh_row(0)

    def set_status(self, status: str, unseen: bool) -> None:
        if status != self.status or unseen != self.unseen_status:
            self.status = status
            self.unseen_status = unseen
            self._refresh_row(-1)

    def _refresh_row(self, row: int) -> None:
        """Repaint one frame row (not the log under it, nor the layout: one row, always)."""
        if not self.framed or not self.is_mounted:
            return
        width, height = self.outer_size
        if width and height:
            offset = self.content_offset  # refresh takes regions relative to the content
            self.refresh(Region(-offset.x, row % height - offset.y, width, 1))

    # -- scrolling --------------------------------------------------------------------------
    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        at_end = new >= self.max_scroll_y - 0.5
        if at_end and not self.following:
            self.following = True
            self.unseen = 0
            self.post_message(self.Scrolled())
        elif not at_end and self.following and new < old:
            self.following = False
            self.post_message(self.Scrolled())

    def on_resize(self) -> None:
        if self.following:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def action_follow(self) -> None:
        self.following = True
        self.unseen = 0
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.post_message(self.Scrolled())

    def go_to(self, index: int) -> None:
        """Show line `index` near the top third and stop following."""
        self.following = index >= len(self.buffer) - 1
        target = max(0, index - max(1, self.size.height // 3))
        self.scroll_to(y=target, animate=False, immediate=True)
        self.refresh()
        self.post_message(self.Scrolled())

    # -- search -----------------------------------------------------------------------------
    def set_search(self, query: str) -> re.Pattern[str] | None:
        self.pattern = re.compile(re.escape(query), re.IGNORECASE) if query else None
        self.query_text = query
        self.current = None
        self._cache.clear()
        self.refresh()
        return self.pattern

    def search(self, backwards: bool = False) -> int | None:
        """Move to the next (or previous) matching line; wraps around once."""
        if self.pattern is None or not len(self.buffer):
            return None
        if self.current is None:
            start = int(self.scroll_y) if backwards is False else int(self.scroll_y + self.size.height)
        else:
            start = self.current + (-1 if backwards else 1)
        found = self.buffer.find(self.pattern, start, backwards=backwards)
        if found is None:
            wrap = len(self.buffer) - 1 if backwards else 0
            found = self.buffer.find(self.pattern, wrap, backwards=backwards)
        if found is not None:
            self.current = found
            self._cache.clear()
            self.go_to(found)
        return found

    def first_error(self) -> int | None:
        found = self.buffer.first_error()
        if found is not None:
            self.current = found
            self._cache.clear()
            self.go_to(found)
        return found

    # -- drawing ----------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()
        self._rows.clear()

    def render_lines(self, crop: Region) -> list[Strip]:
        # the style and width every line needs, once per paint: `rich_style` walks the
        # ancestors and `size` asks the compositor, and a flood repaints the panes ~25 times a second
        self._paint = (self.rich_style, self.size.width)
        try:
            strips = super().render_lines(crop)
        finally:
            self._paint = None
        if self.framed:
            height = self.outer_size.height
            for row in {0, height - 1}:
                if crop.y <= row < crop.bottom:
                    strips[row - crop.y] = self._frame_row(row == 0).crop(crop.x, crop.right)
        return strips

    def _frame_row(self, top: bool) -> Strip:
        """The title (top) or status (bottom) row, as wide as the view; kept while unchanged."""
        if top:
            name = "logview--title-active" if self.active else "logview--title"
            text = self.title
        else:
            name = "logview--status-unseen" if self.unseen_status else "logview--status"
            text = self.status
        width = self.outer_size.width
        key = (name, text, width)
        kept = self._rows.get("top" if top else "bottom")
        if kept is not None and kept[0] == key:
            return kept[1]
        style = self.get_component_rich_style(name)
        line = Text(text, no_wrap=True, overflow="ellipsis", end="")
        line.truncate(width, overflow="ellipsis", pad=True)
        strip = Strip(line.render(self.app.console), width).simplify().apply_style(style)
        background = self.background_colors[1]
        for line_filter in self.get_line_filters():  # as Textual filters the rows it draws
            strip = strip.apply_filter(line_filter, background)
        self._rows["top" if top else "bottom"] = (key, strip)
        return strip

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        base, width = self._paint or (self.rich_style, self.size.width)
        if index >= len(self.buffer):
            return Strip.blank(width, base)
        key = (index, index == self.current)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._build(index, base)
            self._cache[key] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, base).apply_offsets(scroll_x, index)

    def _build(self, index: int, base: Style) -> Strip:
        raw = self.buffer.line(index)
        if (raw and self.pattern is None and not self.timestamps and raw.isascii()
                and raw.isprintable() and self.buffer.stream(index) == "stdout"):
            # most lines of a flood: one plain segment, a cell a character (rich's render of
            # the same Text gives this strip, at several times the cost)
            return Strip([Segment(raw, base)], len(raw))
        safe = terminal_safe(raw, keep_colour=True).expandtabs()
        text = Text.from_ansi(safe, no_wrap=True, end="") if "\x1b" in safe else Text(safe, no_wrap=True, end="")
        stream = self.buffer.stream(index)
        if stream == "stderr" and not text.spans:
            text.stylize(self.get_component_rich_style("logview--stderr", partial=True))
        elif stream == "system":
            text.stylize(self.get_component_rich_style("logview--system", partial=True))
        if self.pattern is not None:
            match_style = self.get_component_rich_style(
                "logview--current" if index == self.current else "logview--match", partial=True
            )
            for m in self.pattern.finditer(text.plain):
                text.stylize(match_style, m.start(), m.end())
        if self.timestamps:
            ts = self.buffer.ts(index)
            stamp = time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int((ts % 1) * 1000):03d} "
            text = Text.assemble(
                (stamp, self.get_component_rich_style("logview--timestamp", partial=True)), text
            )
        segments = [
            Segment(s.text, base + s.style if s.style else base)
            for s in text.render(self.app.console)
        ]
        return Strip(segments, text.cell_len)


class LogPane(Vertical):
    """A LogView with its action's title above the log and a status line under it (follow
    state, new lines, search). The view draws both rows itself, in its top and bottom
    padding: two widgets a pane to lay out and paint (the pane and its view), not four.

    After a layout Textual gives every resized widget its new `virtual_size`, a reactive that
    asks for another layout of the whole screen; a pane never scrolls, so its size is stored
    without asking (as Textual itself does after a scroll): a move between one log pane and
    several lays the screen out once.
    """

    ALLOW_MAXIMIZE = True

    class Chosen(Message):
        def __init__(self, pane: LogPane) -> None:
            super().__init__()
            self.pane = pane

    def __init__(self, key: LogKey | None, buffer: LogBuffer, *, title: str = "",
                 timestamps: bool = False, **kwargs: object) -> None:
        super().__init__(classes="log-pane", **kwargs)  # type: ignore[arg-type]
        self.key = key
        self._buffer = buffer
        self._timestamps = timestamps
        self.note = ""
        self.view = LogView(buffer, timestamps=timestamps, classes="log-view")
        self.view.framed = True
        self.view.title = title

    def compose(self) -> ComposeResult:
        yield self.view

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size,
                      layout: bool = True) -> bool:
        return super()._size_updated(size, virtual_size, container_size, layout=False)

    def on_mount(self) -> None:
        self.view.lines_added()
        self.update_status()

    @property
    def title(self) -> str:
        return self.view.title

    @property
    def status_text(self) -> str:
        return self.view.status

    def set_title(self, title: str) -> None:
        self.view.set_title(title)

    def set_active(self, active: bool) -> None:
        """The pane the keys act on, among several: its top border and title row (not its log)."""
        set_classes(self, {"-active": active})
        self.view.set_active(active)

    def bind(self, key: LogKey | None, buffer: LogBuffer, title: str) -> None:
        self.key = key
        self._buffer = buffer
        self.set_title(title)
        self.view.set_buffer(buffer)
        self.update_status()

    def lines_added(self) -> None:
        self.view.lines_added()
        self.update_status()

    def update_status(self) -> None:
        view = self.view
        parts: list[str] = []
        if view.buffer.loading:
            parts.append("loading…")
        total = len(view.buffer)
        if view.buffer.dropped:
            parts.append(f"{view.buffer.dropped:,} early lines not kept (bakery logs has them)")
        if view.following:
            parts.append(f"{_lines(total)} · following")
        elif view.unseen:
            parts.append(f"↓ {_lines(view.unseen).replace(' line', ' new line')} (End to follow)")
        else:
            parts.append(f"{_lines(total)} · paused (End to follow)")
        if view.pattern is not None:
            where = f"line {view.current + 1 + view.buffer.dropped:,}" if view.current is not None else "no match"
            parts.append(f"/{view.query_text} · {where}")
        if self.note:
            parts.append(self.note)
        # once per drain while a flood runs: the view repaints the row only when it changed
        view.set_status("  ·  ".join(parts), bool(view.unseen) and not view.following)

    def on_log_view_scrolled(self, message: LogView.Scrolled) -> None:
        message.stop()
        self.update_status()

    def on_click(self) -> None:
        self.post_message(self.Chosen(self))


def _lines(count: int) -> str:
    return f"{count:,} line" if count == 1 else f"{count:,} lines"
