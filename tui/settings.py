"""Small user settings (the chosen theme...) remembered between sessions.

Stored as JSON in the user's config directory: $BAKERY_CONFIG_DIR (tests), else
$XDG_CONFIG_HOME/bakery, else ~/.config/bakery. A damaged file is ignored, never fatal.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

FILE_NAME = "settings.json"


def config_dir() -> Path:
    env = os.environ.get("BAKERY_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "bakery"


@dataclass
class Settings:
    theme: str = "bakery-dark"
    timestamps: bool = False

    @classmethod
    def load(cls, directory: Path | None = None) -> Settings:
        path = (directory or config_dir()) / FILE_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        settings = cls()
        if isinstance(data.get("theme"), str):
            settings.theme = data["theme"]
        if isinstance(data.get("timestamps"), bool):
            settings.timestamps = data["timestamps"]
        return settings

    def save(self, directory: Path | None = None) -> None:
        """Write atomically (temp file + rename) so a crash never leaves half a file."""
        folder = directory or config_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / (FILE_NAME + ".tmp")
            tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
            tmp.replace(folder / FILE_NAME)
        except OSError:
            pass  # settings are a convenience; a read-only home must not break the board
