"""Themes as data: YAML files turned into Textual `Theme` objects.

Bundled themes come from the `themes` package (importlib.resources, so an installed copy
finds them); a user adds their own as `<config dir>/themes/*.yaml`. Status colours are theme
variables; `VARIABLE_DEFAULTS` gives every custom variable a value so the TCSS always parses
even when a user theme leaves some out.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from textual.theme import Theme

from tui.settings import config_dir

DEFAULT_THEME = "bakery-dark"

VARIABLE_DEFAULTS: dict[str, str] = {
    "status-succeeded": "#6cc070",
    "status-failed": "#ef5d60",
    "status-inprogress": "#5aa9e6",
    "status-stopped": "#e9c46a",
    "status-superseded": "#6b7280",
    "status-waiting": "#c792ea",
    "status-pending": "#8a93a3",
    "log-timestamp": "#6b7280",
    "log-match": "#6b5b1e",
    "log-current-match": "#b8860b",
    "log-stderr": "#f0a6a0",
}

_FIELDS = (
    "primary",
    "secondary",
    "accent",
    "warning",
    "error",
    "success",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)


class ThemeError(Exception):
    """A theme file that cannot be used (the message names the file)."""


def theme_from_data(data: Any, origin: str) -> Theme:
    if not isinstance(data, dict):
        raise ThemeError(f"{origin}: a theme file is a mapping (name, primary, variables...)")
    name = data.get("name")
    primary = data.get("primary")
    if not isinstance(name, str) or not name:
        raise ThemeError(f"{origin}: 'name' is required")
    if not isinstance(primary, str):
        raise ThemeError(f"{origin}: 'primary' is required (a colour such as '#5aa9e6')")
    kwargs: dict[str, Any] = {k: str(data[k]) for k in _FIELDS if data.get(k) is not None}
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise ThemeError(f"{origin}: 'variables' is a mapping of name: colour")
    kwargs["variables"] = {str(k): str(v) for k, v in variables.items()}
    kwargs["dark"] = bool(data.get("dark", True))
    return Theme(name=name, **kwargs)


def load_theme_file(path: Path | Any) -> Theme:
    """Read one theme file (a Path or an importlib Traversable)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ThemeError(f"{path}: {exc}") from exc
    return theme_from_data(data, str(path))


def bundled_themes() -> list[Theme]:
    from themes import theme_files

    return [load_theme_file(f) for f in theme_files()]


def user_themes(directory: Path | None = None) -> tuple[list[Theme], list[str]]:
    """Themes in the user's config dir, and a problem message for each file that failed."""
    folder = (directory or config_dir()) / "themes"
    found: list[Theme] = []
    problems: list[str] = []
    if not folder.is_dir():
        return found, problems
    for path in sorted(folder.glob("*.y*ml")):
        try:
            found.append(load_theme_file(path))
        except ThemeError as exc:
            problems.append(str(exc))
    return found, problems


def all_themes(directory: Path | None = None) -> tuple[list[Theme], list[str]]:
    user, problems = user_themes(directory)
    return [*bundled_themes(), *user], problems


def bakery_theme_names(themes: Iterable[Theme]) -> list[str]:
    return [t.name for t in themes]
