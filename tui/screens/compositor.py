"""A compositor whose full layout map stays valid after a layout.

Textual keeps the map of every widget's place (`full_map`) and rebuilds it lazily when it is
marked stale: a scroll (`reflow_visible`, every drain of a flood follows its log to the end)
or a repaint of a widget off the screen (a hidden log pane) marks it so. A full layout
(`reflow`) builds that very map again but leaves the mark, so the first widget that asks for
its size afterwards (a log view and its scrollbars do, while the layout hands out their new
sizes) arranges the whole screen a second time: a move between one log pane and several
paid for two arrangements. Here a layout clears the mark it made true.
"""

from __future__ import annotations

from textual._compositor import Compositor, ReflowResult
from textual.geometry import Size
from textual.widget import Widget


class LayoutCompositor(Compositor):
    """A Compositor that knows its full map is current once it has laid the screen out."""

    def reflow(self, parent: Widget, size: Size) -> ReflowResult:
        result = super().reflow(parent, size)
        # `reflow` arranged every widget (visible_only=False), as `full_map` would
        self._full_map_invalidated = False
        return result
