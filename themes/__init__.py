"""Bakery's bundled themes: one YAML file a theme (read with importlib.resources)."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def theme_files() -> list[Traversable]:
    """The bundled theme files, reachable from an installed copy as well as a checkout."""
    root = resources.files(__name__)
    return sorted(
        (f for f in root.iterdir() if f.name.endswith((".yaml", ".yml"))), key=lambda f: f.name
    )
