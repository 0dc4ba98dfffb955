"""What Bakery needs from git: commit facts and a clean copy of a commit's tree.

GitPython is used for reading (a `Repo` is cached per path: a new one costs ~4 ms). The tree
is exported with `git archive`, which never touches the user's index or working tree.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import git


class GitError(Exception):
    """The repository or revision cannot be read."""


@lru_cache(maxsize=16)
def open_repo(path: str) -> git.Repo:
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise GitError(f"{path} is not a git repository") from exc


def repo_root(path: str | Path) -> Path:
    repo = open_repo(str(Path(path).resolve()))
    if repo.working_tree_dir is None:
        raise GitError(f"{path} is a bare repository; Bakery needs a working tree")
    return Path(repo.working_tree_dir)


def current_branch(path: str | Path) -> str | None:
    repo = open_repo(str(Path(path).resolve()))
    try:
        return repo.active_branch.name
    except (TypeError, ValueError):
        return None  # detached HEAD


def commit_info(path: str | Path, rev: str = "HEAD", branch: str | None = None) -> dict[str, Any]:
    """The facts a Source action exposes as output variables."""
    repo = open_repo(str(Path(path).resolve()))
    try:
        commit = repo.commit(rev)
    except (git.BadName, ValueError) as exc:
        raise GitError(f"no commit {rev!r} in {path}") from exc
    if branch is None:
        branch = current_branch(path) or ""
    return {
        "id": commit.hexsha,
        "short": commit.hexsha[:8],
        "branch": branch,
        "message": commit.message.strip() if isinstance(commit.message, str) else "",
        "author": str(commit.author.name or ""),
        "email": str(commit.author.email or ""),
        "date": commit.authored_datetime.isoformat(),
        "repository": Path(repo.working_tree_dir or repo.git_dir).name,
        "parents": [p.hexsha for p in commit.parents],
    }


def export_tree(path: str | Path, commit: str, dest: Path) -> int:
    """Write the commit's files into `dest` (created); return the number of files."""
    root = repo_root(path)
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", commit],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise GitError(proc.stderr.decode("utf-8", "replace").strip() or "git archive failed")
    count = 0
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        members = [m for m in tar.getmembers() if m.isfile() or m.isdir() or m.issym()]
        tar.extractall(dest, members=members, filter="data")
        count = sum(1 for m in members if m.isfile())
    return count


def changed_files(path: str | Path, old: str | None, new: str) -> list[str]:
    """Paths changed between two commits (all files of `new` when `old` is None)."""
    repo = open_repo(str(Path(path).resolve()))
    if old is None:
        return [str(item.path) for item in repo.commit(new).tree.traverse() if item.type == "blob"]
    out = repo.git.diff("--name-only", old, new)
    return [line for line in out.splitlines() if line]


def git_user_email(path: str | Path) -> str | None:
    try:
        repo = open_repo(str(Path(path).resolve()))
        value = repo.config_reader().get_value("user", "email", default="")
        return str(value) or None
    except (GitError, Exception):  # noqa: BLE001 - any config problem means "unknown"
        return None
