"""Runnable sample pipelines. Each folder is a small repository with a `bakery.yaml`."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path


def names() -> list[str]:
    root = resources.files(__name__)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "bakery.yaml").is_file())


def create_repo(name: str, dest: Path, *, message: str = "Bake the first cake") -> Path:
    """Copy sample `name` into `dest`, make it a git repository with one commit."""
    if name not in names():
        raise KeyError(f"no sample {name!r}; samples: {', '.join(names())}")
    with resources.as_file(resources.files(__name__) / name) as src:
        shutil.copytree(src, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-C", str(dest)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "config", "user.name", "Bakery Demo"], check=True)
    subprocess.run([*git, "config", "user.email", "demo@bakery.local"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", message], check=True)
    return dest
