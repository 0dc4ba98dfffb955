"""Guarantee 15: commit messages, author and branch names reach actions as data, never code.

Generated text full of shell syntax is substituted into real bash scripts, in every quoting
context a pipeline author may write (bare, "...", '...', "$(...)", a heredoc, a comment),
and run; then whole pipelines run on commits and branches named that way.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import events as ev
from engine.actions.shell import BASH
from engine.variables import resolve_shell_env
from tests.conftest import GIT_ENV, git
from tests.reliability._support import run_to_end

pytestmark = pytest.mark.timeout(150)

MARKER_DIR = Path(tempfile.mkdtemp(prefix="bakery-pwned-"))
atexit.register(shutil.rmtree, MARKER_DIR, True)
MARKER = MARKER_DIR / "pwned"
M = str(MARKER)

PAYLOADS = [
    f"$(touch {M})",
    f"`touch {M}`",
    f'"; touch {M}; #',
    f"'; touch {M}; #",
    f'"$(touch {M})"\'',
    f"${{IFS}}touch${{IFS}}{M}",
    f"x;touch${{IFS}}{M}",
    f"\ntouch {M}\n",
    f"\nEOF\ntouch {M}\n",
    f"'\ntouch {M} '",
    f"\\$(touch {M})",
    f"$'\\x41' $(touch {M}) \\",
    "&& || ; | > < * ? [ ] { } ~ ! # %",
]

texts = st.lists(
    st.one_of(
        st.sampled_from(PAYLOADS),
        st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
        ),
    ),
    max_size=5,
).map("".join)

# (template, what the output file must then hold for value v)
CONTEXTS: dict[str, tuple[str, Callable[[str], str]]] = {
    "bare": ("printf '%s' #{Src.CommitMessage} > bare", lambda v: v),
    "double": ("printf '%s' \"<#{Src.CommitMessage}>\" > double", lambda v: f"<{v}>"),
    "single": ("printf '%s' '<#{Src.CommitMessage}>' > single", lambda v: f"<{v}>"),
    "assign": ("v=#{Src.CommitMessage}; printf '%s' \"$v\" > assign", lambda v: v),
    "subst": (
        "printf '%s' \"$(printf '%s' #{Src.CommitMessage})\" > subst",
        lambda v: v.rstrip("\n"),
    ),
    "backticks": (
        "printf '%s' \"`printf '%s' #{Src.CommitMessage}`\" > backticks",
        lambda v: v.rstrip("\n"),
    ),
    "heredoc": ("cat > heredoc <<EOF\n#{Src.CommitMessage}\nEOF", lambda v: v + "\n"),
    "heredoc-tabs": (
        "cat > heredoc-tabs <<-EOF\n\t#{Src.CommitMessage}\n\tEOF",
        lambda v: v + "\n",
    ),
    "heredoc-quoted": (
        "cat > heredoc-quoted <<'EOF'\n#{Src.CommitMessage}\nEOF",
        lambda v: "#{Src.CommitMessage}\n",  # the author asked for no expansion
    ),
    "comment": (
        "true # don't #{Src.CommitMessage}\nprintf '%s' '#{Src.CommitMessage}' > comment",
        lambda v: v,
    ),
}


def run_script(template: str, value: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script, env = resolve_shell_env(template, {"Src": {"CommitMessage": value}})
    return subprocess.run(
        [*BASH, script],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=texts, context=st.sampled_from(sorted(CONTEXTS)))
def test_substituted_text_is_data_in_every_quoting_context(value: str, context: str) -> None:
    template, expected = CONTEXTS[context]
    with tempfile.TemporaryDirectory() as work:
        proc = run_script(template, value, Path(work))
        assert not MARKER.exists(), f"{context}: {value!r} ran as code"
        assert proc.returncode == 0, (context, value, proc.stderr)
        out = (Path(work) / context).read_bytes().decode("utf-8", "surrogateescape")
        assert out == expected(value), (context, value)


def test_the_classic_injections_from_the_issue_never_execute(tmp_path: Path) -> None:
    for value in PAYLOADS:
        for context, (template, expected) in CONTEXTS.items():
            proc = run_script(template, value, tmp_path)
            assert not MARKER.exists(), f"{context}: {value!r} ran as code"
            assert proc.returncode == 0, (context, value, proc.stderr)
            assert (tmp_path / context).read_bytes().decode() == expected(value), (context, value)


# -- whole pipelines on hostile commits and branches -------------------------------------------


def pipeline(out: Path) -> str:
    return f"""
name: data
stages:
  - name: Source
    actions:
      - {{name: Checkout, category: source, namespace: Src}}
  - name: Echo
    actions:
      - name: Values
        category: build
        run: |
          printf '%s' #{{Src.CommitMessage}} > {out}/message-bare
          printf '%s' "#{{Src.CommitMessage}}" > {out}/message-double
          printf '%s' '#{{Src.AuthorName}}' > {out}/author-single
          printf '%s' "$(printf '%s' #{{Src.BranchName}})" > {out}/branch-subst
          printf '%s' "$BAKERY_BRANCH" > {out}/branch-env
          cat > {out}/message-heredoc <<EOF
          #{{Src.CommitMessage}}
          EOF
"""


def commit_as(repo: Path, message: str, author: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "commit",
            "-q",
            "--allow-empty",
            "--allow-empty-message",
            "--cleanup=verbatim",
            "-F",
            "-",
        ],
        input=message.encode(),
        check=True,
        capture_output=True,
        env={**os.environ, **GIT_ENV, "GIT_AUTHOR_NAME": author},
    )


def stored(repo: Path, fmt: str) -> str:
    """What git recorded (git normalises author names; messages are kept verbatim)."""
    return (
        subprocess.run(
            ["git", "-C", str(repo), "log", "-1", f"--format={fmt}"],
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .removesuffix("\n")
    )


def check_outputs(out: Path, message: str, author: str, branch: str) -> None:
    def read(name: str) -> str:
        return (out / name).read_bytes().decode()  # read_text() would turn "\r" into "\n"

    assert not MARKER.exists(), "a commit field ran as code"
    assert read("message-bare") == message
    assert read("message-double") == message
    assert read("message-heredoc") == message + "\n"
    assert read("author-single") == author
    assert read("branch-subst") == branch
    assert read("branch-env") == branch


authors = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="<>"), max_size=15
).map(lambda a: f"A{a}z")  # git refuses an empty name and trims "crud" at the ends


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(message=texts, author=authors)
def test_hostile_commit_messages_and_authors_stay_data_through_a_real_pipeline(
    message: str, author: str, make_repo: Callable[..., Any]
) -> None:
    repo = make_repo(name=f"r{abs(hash((message, author)))}")
    out = repo.path.parent / f"{repo.path.name}-out"
    out.mkdir(exist_ok=True)
    repo.write("bakery.yaml", pipeline(out))
    git(repo.path, "add", "-A")
    commit_as(repo.path, message, author)
    _, state = asyncio.run(run_to_end(repo.path))
    assert state.status == ev.SUCCEEDED, state.to_json()
    # the engine strips surrounding whitespace of the message (as the Source action shows it)
    check_outputs(out, stored(repo.path, "%B").strip(), stored(repo.path, "%an"), "main")


@pytest.mark.parametrize(
    "branch",
    [
        f"feature/$(touch${{IFS}}{M})",
        f"fix/`touch${{IFS}}{M}`",
        f'x";touch${{IFS}}{M};#',
        f"y';touch${{IFS}}{M};#",
        "release/${HOME}$$",
    ],
)
def test_hostile_branch_names_stay_data(
    branch: str, make_repo: Callable[..., Any], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    repo = make_repo(pipeline(out))
    git(repo.path, "checkout", "-q", "-b", branch)
    commit_as(repo.path, "on a hostile branch", "Ada Baker")
    _, state = asyncio.run(run_to_end(repo.path))
    assert state.status == ev.SUCCEEDED, state.to_json()
    assert state.commit["branch"] == branch
    check_outputs(out, "on a hostile branch", "Ada Baker", branch)
