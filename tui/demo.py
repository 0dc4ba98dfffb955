"""`bakery demo`: the board at work on a sample repository within seconds.

The repository is a copy of `sample_pipelines/python-app` (lint and unit tests in parallel,
a package, an approval, a deploy into a local releases directory and a notifier), so the
demo and the documented sample can never drift apart.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import sample_pipelines

SAMPLE = "python-app"
PACKAGE = Path("src") / "bakeshop" / "__init__.py"


def create_demo_repo(root: Path) -> Path:
    """Copy the sample into `root/bakeshop` as a git repository with one commit; return it."""
    return sample_pipelines.create_repo(SAMPLE, root / "bakeshop", message="Open the bakeshop")


def make_change(repo: Path) -> None:
    """The commit that sets the demo going (the watcher picks it up like any other)."""
    path = repo / PACKAGE
    path.write_text(
        path.read_text(encoding="utf-8").replace('"sponge": 12.5', '"sponge": 13.0'),
        encoding="utf-8",
    )
    test = repo / "tests" / "test_price.py"
    test.write_text(
        test.read_text(encoding="utf-8").replace('price("sponge"), 12.5', 'price("sponge"), 13.0'),
        encoding="utf-8",
    )
    subprocess.run(
        ["git", "-C", str(repo), "commit", "-q", "-am", "Raise the price of sponge cake"],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "Demo Baker",
            "GIT_AUTHOR_EMAIL": "demo@bakery.local",
            "GIT_COMMITTER_NAME": "Demo Baker",
            "GIT_COMMITTER_EMAIL": "demo@bakery.local",
        },
    )
