"""A log pane's scrollbar, redrawn only when what it shows changes.

Textual redraws a scrollbar whole (through the CSS line cache, a rich render and a strip per
row) every time its window or position is set, and sets them on every layout pass of the
scrolled widget: a move between one log pane and several lays the screen out twice, and a
flood sets the position on every drain. Most of those redraws paint the same thumb (a
million-line log moves its thumb by one eighth of a cell every few thousand lines), yet
they were the largest single cost of such a key press. This scrollbar keeps the rows it
drew and hands them out again while its size, colours and thumb (in the eighths of a cell
Textual draws) are unchanged, and asks for no repaint then; anything else goes through
Textual's own drawing.
"""

from __future__ import annotations

from math import ceil
from typing import Any, Self

from textual.geometry import Region, Size
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.strip import Strip
from textual.widget import Widget

GLYPHS = 8  # ScrollBarRender draws a thumb's ends in eighths of a cell


def thumb(size: int, virtual: int, window: int, position: float) -> tuple[int, int] | None:
    """Where `ScrollBarRender.render_bar` puts the thumb, in eighths of a cell (None: no thumb)."""
    if not (window and size and virtual and size != virtual):
        return None
    thumb_size = max(1, window / (virtual / size))
    start = int((size - thumb_size) * (position / (virtual - window)) * GLYPHS)
    return start, start + ceil(thumb_size * GLYPHS)


class LogScrollBar(ScrollBar):
    """A ScrollBar that draws again only when its picture would differ."""

    def __init__(self, vertical: bool = True, name: str | None = None, *, thickness: int = 1) -> None:
        super().__init__(vertical, name, thickness=thickness)
        self._drawn: tuple[Any, ...] | None = None
        self._strips: list[Strip] = []
        self.draws = 0  # how many times Textual drew it (tests read it)

    def _picture(self, crop: Region) -> tuple[Any, ...] | None:
        """Everything the drawn rows depend on, or None when it cannot be told cheaply."""
        bar = self.render()
        if not isinstance(bar, ScrollBarRender):
            return None
        # the size of the last layout (a scrollbar has no gutter): `self.size` asks the
        # compositor, which during a layout (when the log view refreshes its scrollbars)
        # arranges the whole screen a second time
        size = self.outer_size
        length = size.height if self.vertical else size.width
        where = thumb(length, bar.virtual_size, bar.window_size, bar.position)
        return (size, crop, bar.style, bar.vertical, bar.thickness, where, self.visual_style,
                tuple(self.get_line_filters()))

    def render_lines(self, crop: Region) -> list[Strip]:
        picture = self._picture(crop)
        if picture is None or picture != self._drawn:
            self._strips = super().render_lines(crop)
            self._drawn = picture
            self.draws += 1
        return list(self._strips)

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False,
                recompose: bool = False) -> Self:
        # Its log view asks for a repaint on every layout pass and every new position (each
        # drain of a flood): nothing to repaint when the picture is the one on screen.
        unchanged = (
            not (regions or layout or recompose)
            and self._drawn is not None
            and self.is_mounted
            and self._picture(self._drawn[1]) == self._drawn
        )
        if unchanged:
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size,
                      layout: bool = True) -> bool:
        # a scrollbar shown with its pane needs no second layout of the screen (its
        # `virtual_size` is a layout reactive nothing reads): stored as after a scroll
        return super()._size_updated(size, virtual_size, container_size, layout=False)


def log_scrollbar(widget: Widget, *, vertical: bool) -> ScrollBar:
    """What `Widget.vertical_scrollbar` / `horizontal_scrollbar` do, with a LogScrollBar."""
    attr = "_vertical_scrollbar" if vertical else "_horizontal_scrollbar"
    bar: ScrollBar | None = getattr(widget, attr)
    if bar is None:
        thickness = widget.scrollbar_size_vertical if vertical else widget.scrollbar_size_horizontal
        bar = LogScrollBar(vertical=vertical, name="vertical" if vertical else "horizontal", thickness=thickness)
        bar.display = False
        setattr(widget, attr, bar)
        widget.app._start_widget(widget, bar)
    return bar
