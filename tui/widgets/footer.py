"""The board's Footer: rebuilt only when the keys it shows change, not when one turns on or off.

Textual's Footer recomposes (unmounts and mounts every key, restyles and lays them out) on
each `refresh_bindings`. On the board a key press often only flips whether a shown key
applies (`check_action` returning None shows it greyed out): here that is one class on one
`FooterKey`, and the Footer is recomposed only when a key appears, disappears or is renamed.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from textual.widgets import Footer
from textual.widgets._footer import FooterKey

if TYPE_CHECKING:
    from textual.screen import Screen


class BoardFooter(Footer):
    """A Footer that updates a key's enabled state in place."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._layout_shown: Hashable = None  # what the keys were composed from
        self.recomposed = 0  # how many times the keys were rebuilt (tests read it)

    def _shown(self, screen: Screen[object]) -> tuple[Hashable, dict[str, bool]]:
        """The shown keys as Footer.compose groups them (one per action), and which are enabled."""
        layout: list[Hashable] = []
        enabled: dict[str, bool] = {}
        app = self.app
        for key, (_, binding, on, _tip) in screen.active_bindings.items():
            palette = (
                key == app.COMMAND_PALETTE_BINDING
                and self.show_command_palette
                and app.ENABLE_COMMAND_PALETTE
            )
            if not binding.show and not palette:
                continue
            if binding.action in enabled:
                continue  # Footer.compose shows the first binding of an action only
            enabled[binding.action] = on
            layout.append(
                (binding.key, binding.action, binding.description, binding.group, palette)
            )
        return (tuple(layout), self.compact), enabled

    def bindings_changed(self, screen: Screen[object]) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            # a key turning on or off is drawn with what changed it (one repaint); only new
            # or gone keys wait for the next refresh, to be composed again
            layout, enabled = self._shown(screen)
            if layout == self._layout_shown:
                self._set_enabled(enabled)
            else:
                self.call_after_refresh(self._sync, screen)

    async def _sync(self, screen: Screen[object]) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        layout, enabled = self._shown(screen)
        if layout != self._layout_shown:
            self._layout_shown = layout
            self.recomposed += 1
            await self.recompose()
            return
        self._set_enabled(enabled)

    def _set_enabled(self, enabled: dict[str, bool]) -> None:
        for key in self.query(FooterKey):
            on = enabled.get(key.action)
            if on is not None and key._disabled == on:
                # FooterKey (Textual 8) keeps this in `_disabled` (read on a click: a bell
                # instead of the key) and shows it with the -disabled class
                key._disabled = not on
                key.set_class(not on, "-disabled")
