"""Guarantee 14: a secret never reaches the store's files, an export, `logs` or the screen.

The action tries every way of printing it that CI systems have been caught out by; then
the test greps the raw bytes of every place bakery writes text to.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from engine import events as ev
from tests.reliability._support import action_of, bakery, show, state_dir

pytestmark = pytest.mark.timeout(120)

TOKEN = "Tk9-s3cr3t-Zq9xV7wLp2mN"
KEY_LINES = [
    "-----BEGIN BAKERY KEY-----",
    "MIIEvQIBADANBgkqhkiG9w0BAQEF",
    "-----END BAKERY KEY-----",
]
KEY = "\n".join(KEY_LINES)

PIPELINE = """
name: secrets
secrets:
  - {name: TOKEN, env: BAKERY_TEST_TOKEN}
  - {name: KEY, env: BAKERY_TEST_KEY}
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source, outputs: [source]}
  - name: Leak
    actions:
      - name: Shell
        category: build
        env: {T: "#{secrets.TOKEN}", K: "#{secrets.KEY}"}
        run: |
          echo "plain $T"
          echo "stderr $T" >&2
          printf '%s' "$T" | base64
          echo "$T" | base64
          printf 'user:%s' "$T" | base64
          printf 'x-access-token:%s\\n' "$T" | base64
          printf 'split %s' "${T:0:7}"; sleep 0.3; printf '%s end\\n' "${T:7}"
          printf 'bad utf8 \\377 %s\\n' "$T"
          echo "$K" | sed -n 2p
          echo "$K"
          echo "json {\\"t\\": \\"$T\\"}"
          echo "T=$T" >> "$BAKERY_OUTPUT"
      - name: Python
        category: invoke
        inputs: [source]
        env: {T: "#{secrets.TOKEN}"}
        function: "fns.py:leak"
"""

FUNCTIONS = """
import os, sys
def leak(params):
    token = os.environ["T"]
    print("from python", token)
    print("to stderr", token, file=sys.stderr)
    raise RuntimeError("refused token " + token)
"""


def forms() -> dict[str, bytes]:
    """Every rendering of the secrets that must never be found."""
    out = {
        "token": TOKEN.encode(),
        **{f"key line {i}": k.encode() for i, k in enumerate(KEY_LINES)},
    }
    for label, text in {
        "b64": TOKEN,
        "b64 newline": TOKEN + "\n",
        "b64 user:": "user:" + TOKEN,
        "b64 x-access-token:": "x-access-token:" + TOKEN + "\n",
    }.items():
        out[label] = base64.b64encode(text.encode()).rstrip(b"=")
    return out


def assert_clean(label: str, data: bytes) -> None:
    for name, form in forms().items():
        assert form not in data, f"{name} of the secret found in {label}"


def test_secrets_are_masked_everywhere_bakery_writes(make_repo: Callable[..., Any]) -> None:
    repo = make_repo(PIPELINE, **{"fns.py": FUNCTIONS})
    env = {"BAKERY_TEST_TOKEN": TOKEN, "BAKERY_TEST_KEY": KEY}
    run = bakery("run", "--plain", cwd=repo.path, env=env)
    assert run.returncode == 1, run.stdout + run.stderr  # the Python action raises on purpose
    screen = (run.stdout + run.stderr).encode()
    assert_clean("bakery run --plain", screen)
    assert screen.count(b"***") >= 12  # every attempt above was masked, not dropped
    assert b"split *** end" in screen and b"dXNlcjp***" in screen

    doc = show(repo.path, 1)
    assert action_of(doc, "Leak", "Shell")["output_variables"] == {"T": "***"}
    python = action_of(doc, "Leak", "Python")
    assert python["error"]["message"] == "RuntimeError: refused token ***"
    assert_clean("bakery show --json", json.dumps(doc).encode())

    logs = bakery("logs", "1", cwd=repo.path, env=env)
    assert logs.returncode == 0
    assert_clean("bakery logs", logs.stdout.encode())
    assert "from python ***" in logs.stdout and "plain ***" in logs.stdout

    export = bakery("export", "1", cwd=repo.path, env=env)
    assert export.returncode == 0, export.stderr
    assert_clean("bakery export", export.stdout.encode())
    records = [json.loads(line) for line in export.stdout.splitlines()]
    raws = [base64.b64decode(r["raw"]) for r in records if r.get("raw")]
    assert raws, "the invalid UTF-8 line should be exported with its raw bytes"
    assert_clean("bakery export (raw bytes of lines)", b"\n".join(raws))

    search = bakery("search", "plain", cwd=repo.path, env=env)  # fills the FTS index too
    assert search.returncode == 0
    files = sorted(state_dir(repo.path).glob("bakery.db*"))
    assert files
    for path in files:  # the database, its WAL and shared memory, byte for byte
        assert_clean(path.name, path.read_bytes())


@pytest.mark.parametrize("value", ["short", "1234567", "       x"])
def test_secrets_shorter_than_eight_characters_are_refused_at_run_start(
    value: str, make_repo: Callable[..., Any]
) -> None:
    repo = make_repo(PIPELINE, **{"fns.py": FUNCTIONS})
    run = bakery(
        "run", "--plain", cwd=repo.path, env={"BAKERY_TEST_TOKEN": value, "BAKERY_TEST_KEY": KEY}
    )
    assert run.returncode == 1
    assert "#1 execution Failed — ConfigurationError" in run.stdout, run.stdout
    assert "8 characters" in run.stdout
    doc = show(repo.path, 1)
    assert doc["status"] == ev.FAILED and doc["error"]["type"] == ev.CONFIGURATION_ERROR
    assert all(a["status"] is None for s in doc["stages"] for a in s["actions"])  # nothing ran
