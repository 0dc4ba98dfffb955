"""Class changes that restyle only the widgets whose look they change.

Textual re-applies CSS to a widget *and every descendant* when one of its classes changes
(any descendant rule might name the class). A stage column holds its cards, a log pane its
log view (with its component classes) and scrollbars: re-styling all of that on every
selection move cost a key press more than drawing it. The classes set here are read only by
rules for the widget itself and the widgets passed as `also` (app.tcss says which), so the
cascade is skipped. `tests/tui/test_board_moves.py` checks the result equals a full
restyle, so a descendant rule added to app.tcss without listing it here fails a test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from textual.dom import DOMNode


def set_classes(node: DOMNode, classes: Mapping[str, bool], also: Iterable[DOMNode] = ()) -> bool:
    """Add (True) or remove (False) classes on `node`; restyle `node` and `also` if any changed."""
    before = node.classes
    node.update_classes(classes, update=False)
    if node.classes == before:
        return False
    if node.is_attached:
        node.app.stylesheet.update_nodes([node, *also], animate=False)
    return True
