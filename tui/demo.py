"""`bakery demo`: a sample repository that shows the board at work within seconds.

A tiny Python app whose pipeline lints and unit-tests in parallel, builds, waits for an
approval, deploys into a local `releases/` directory next to the repository and calls a
notifier. Actions sleep a little so a new user sees them run, fan out and stop at the gate.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PIPELINE = """\
# The Bakery demo: lint and unit tests in parallel, a build, an approval, then a deploy
# into the local releases directory and a notifier (an invoke action).
name: greeter
execution_mode: superseded
variables:
  - {name: RELEASES, default: "__RELEASES__", description: where deploys go}
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, namespace: Src, outputs: [source]}
  - name: Test
    actions:
      - {name: Lint, category: test, inputs: [source], run: python tools/lint.py}
      - {name: Unit, category: test, inputs: [source], run: python tools/unit.py}
  - name: Build
    actions:
      - name: Package
        category: build
        namespace: Build
        inputs: [source]
        run: python tools/build.py
        outputs: [{name: dist, paths: ["dist/**"]}]
  - name: Release
    actions:
      - name: Approve
        category: approval
        message: "Ship greeter #{Build.VERSION} (#{Src.CommitMessage}) to the releases directory?"
        link: "file://__RELEASES__"
  - name: Deploy
    actions:
      - name: Install
        category: deploy
        inputs: [dist]
        run: 'echo "installing #{Build.VERSION}"; sleep 1; mkdir -p "$RELEASES_DIR"; cp -r dist/* "$RELEASES_DIR"/; ls -l "$RELEASES_DIR"'
        env: {RELEASES_DIR: "#{variables.RELEASES}"}
      - name: Notify
        category: invoke
        run_order: 2
        inputs: [source]
        function: tools/notify.py:notify
        params: {version: "#{Build.VERSION}"}
"""

APP = '''\
"""greeter: the demo's application."""


def greet(name: str) -> str:
    return f"Hello, {name}!"


if __name__ == "__main__":
    print(greet("world"))
'''

LINT = '''\
"""A pretend linter with coloured output (Bakery renders ANSI colours in its log pane)."""
import pathlib
import time

GREEN, YELLOW, DIM, RESET = "\\033[32m", "\\033[33m", "\\033[2m", "\\033[0m"
files = sorted(pathlib.Path(".").rglob("*.py"))
for i, path in enumerate(files * 3):
    print(f"{DIM}checking{RESET} {path} ({len(path.read_text().splitlines())} lines)", flush=True)
    time.sleep(0.12)
print(f"{YELLOW}warning{RESET}: tools/build.py:1: consider a longer docstring", flush=True)
print(f"{GREEN}lint ok{RESET}: {len(files)} files, 0 errors, 1 warning")
'''

UNIT = '''\
"""Unit tests, slowed down a little so they are seen running beside the linter."""
import sys
import time
import unittest

sys.path.insert(0, "src")
from greeter import greet  # noqa: E402


class GreetTest(unittest.TestCase):
    def setUp(self):
        time.sleep(0.25)

    def test_hello(self):
        self.assertEqual(greet("world"), "Hello, world!")

    def test_name(self):
        self.assertIn("Ada", greet("Ada"))

    def test_punctuation(self):
        self.assertTrue(greet("x").endswith("!"))

    def test_unicode(self):
        self.assertIn("Zoë", greet("Zoë"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
'''

BUILD = '''\
"""Build: a versioned bundle in dist/, and the version as an output variable."""
import os
import pathlib
import shutil
import time

version = "1.0." + os.environ.get("BAKERY_COMMIT", "0")[:7]
dist = pathlib.Path("dist")
dist.mkdir(exist_ok=True)
for step in ("resolving", "compiling", "bundling", "compressing"):
    print(f"\\033[36m{step}\\033[0m …", flush=True)
    time.sleep(0.35)
shutil.copy("src/greeter.py", dist / "greeter.py")
(dist / "VERSION").write_text(version + "\\n")
print(f"built greeter {version}")
with open(os.environ["BAKERY_OUTPUT"], "a") as out:
    out.write(f"VERSION={version}\\n")
'''

NOTIFY = '''\
"""The demo's notifier: an invoke action (a Python function run in a child process)."""
import time


def notify(params, context):
    time.sleep(0.5)
    print(f"released greeter {params.get('version')} from commit {context['commit']['id'][:8]}")
    return {"notified": "yes"}
'''


def _git(repo: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Demo Baker",
        "GIT_AUTHOR_EMAIL": "demo@bakery.local",
        "GIT_COMMITTER_NAME": "Demo Baker",
        "GIT_COMMITTER_EMAIL": "demo@bakery.local",
    }
    subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def create_demo_repo(root: Path) -> Path:
    """Write the sample app and pipeline into `root/greeter` with one commit; return it."""
    repo = root / "greeter"
    releases = root / "releases"
    files = {
        "bakery.yaml": PIPELINE.replace("__RELEASES__", str(releases)),
        "src/greeter.py": APP,
        "tools/lint.py": LINT,
        "tools/unit.py": UNIT,
        "tools/build.py": BUILD,
        "tools/notify.py": NOTIFY,
        "README.md": "# greeter\n\nThe Bakery demo app.\n",
    }
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "demo@bakery.local")
    _git(repo, "config", "user.name", "Demo Baker")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Start the greeter app")
    return repo


def make_change(repo: Path) -> None:
    """The commit that sets the demo going (the watcher picks it up like any other)."""
    path = repo / "src" / "greeter.py"
    path.write_text(APP.replace('f"Hello, {name}!"', 'f"Hello, {name}!"  # friendlier'), encoding="utf-8")
    _git(repo, "commit", "-q", "-am", "Make the greeting friendlier")
