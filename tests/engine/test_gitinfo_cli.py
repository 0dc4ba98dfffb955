"""The `git`-process path of engine.gitinfo (used when GitPython is not loaded) gives the
same answers as the GitPython path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import gitinfo


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, **(env or {})})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    _git(r, "init", "-q", "-b", "main")
    _git(r, "config", "user.name", "Ünïcode Name")
    _git(r, "config", "user.email", "who@example.test")
    (r / "a").write_text("a")
    _git(r, "add", "a")
    _git(r, "commit", "-q", "-m", "subject\n\nbody line\n",
         env={"GIT_AUTHOR_DATE": "2024-03-01T10:00:00+05:30"})
    _git(r, "checkout", "-q", "-b", "topic")
    (r / "b").write_text("b")
    _git(r, "add", "b")
    _git(r, "commit", "-q", "-m", "utc", env={"GIT_AUTHOR_DATE": "2024-03-01T10:00:00+00:00"})
    _git(r, "checkout", "-q", "main")
    (r / "c").write_text("c")
    _git(r, "add", "c")
    _git(r, "commit", "-q", "-m", "c")
    _git(r, "merge", "-q", "--no-edit", "topic")
    return r


def test_cli_commit_info_matches_gitpython(repo: Path) -> None:
    for rev in ("HEAD", "HEAD~1", "main~2", "topic"):
        cli = gitinfo._commit_info_cli(repo, rev, None)
        gitinfo.open_repo.cache_clear()
        assert cli == gitinfo.commit_info(repo, rev, None)  # GitPython (imported by now)
    assert len(gitinfo._commit_info_cli(repo, "HEAD", None)["parents"]) == 2


def test_cli_paths(repo: Path, tmp_path: Path) -> None:
    gitinfo._toplevel.cache_clear()
    assert gitinfo._toplevel(str(repo / ".git" / "..")) == repo
    with pytest.raises(gitinfo.GitError, match="not a git repository"):
        gitinfo._toplevel(str(tmp_path))
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    with pytest.raises(gitinfo.GitError, match="bare repository"):
        gitinfo._toplevel(str(bare))
    with pytest.raises(gitinfo.GitError, match="no commit"):
        gitinfo._commit_info_cli(repo, "--output=/tmp/x", None)
    with pytest.raises(gitinfo.GitError, match="no commit"):
        gitinfo._commit_info_cli(repo, "nope", None)


def test_run_path_does_not_import_gitpython(repo: Path) -> None:
    code = (
        "import sys\nfrom engine.gitinfo import repo_root, commit_info, current_branch, git_user_email\n"
        f"r = repo_root({str(repo)!r})\ncommit_info(r)\ncurrent_branch(r)\ngit_user_email(r)\n"
        "print('git' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
