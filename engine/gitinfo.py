"""What Bakery needs from git: commit facts and a clean copy of a commit's tree.

GitPython is used for reading in long-lived processes (a `Repo` is cached per path: a new
one costs ~4 ms, reusing it ~0.4 ms). Importing GitPython costs 80-230 ms here, more than a
whole `bakery run` of a small pipeline should take, so it is imported only when a `Repo` is
really wanted (watch mode, compare, the board): one-shot commands get the same facts from a
few `git` processes (~2-5 ms each). The tree is exported with `git archive`, which never
touches the user's index or working tree.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tarfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import git


class GitError(Exception):
    """The repository or revision cannot be read."""


@lru_cache(maxsize=16)
def open_repo(path: str) -> git.Repo:
    import git  # costly: only where a Repo is wanted (see the module docstring)

    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise GitError(f"{path} is not a git repository") from exc


def _spawn(cwd: str, args: tuple[str, ...]) -> subprocess.Popen[bytes]:
    """Start `git -C cwd args...` quietly (no pager, no prompt, stdin closed)."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "LC_ALL": "C"}
    return subprocess.Popen(
        ["git", "-C", cwd, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def _git(cwd: str | Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run `git -C cwd args...` quietly; a process started by `prefetch` answers if there is one."""
    _prefetch_started()
    proc = _prefetched.pop((str(cwd), args), None)
    try:
        if proc is None:
            proc = _spawn(str(cwd), args)
    except OSError as exc:
        raise GitError(f"cannot run git: {exc}") from exc
    out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


_prefetched: dict[tuple[str, tuple[str, ...]], subprocess.Popen[bytes]] = {}
"""git processes started ahead by `prefetch`, by (directory, arguments); each answers once."""
_prefetchers: list[threading.Thread] = []

_TOPLEVEL = ("rev-parse", "--is-bare-repository", "--show-toplevel")
_BRANCH = ("symbolic-ref", "-q", "HEAD")
_USER_EMAIL = ("config", "--get", "user.email")


def _log_args(rev: str) -> tuple[str, ...]:
    return (
        "log", "-1", "--no-show-signature", "--no-color", "--no-decorate",
        f"--format={_LOG_FORMAT}", "--end-of-options", rev, "--",
    )


def prefetch(path: str | Path, rev: str = "HEAD") -> None:
    """Start at once, side by side, the git processes a run of `rev` will ask.

    A one-shot `bakery run` asks git for the repository root, the user's email, the commit
    and the branch, ~5 ms a process one after the other; started here before the engine is
    imported, they have answered by the time they are asked. They are started from a thread:
    a fork/exec holds its caller ~4 ms until the exec is done. An answer is read once, by the
    `_git` call with the same directory and arguments; `discard_prefetched` ends the rest.
    """
    if _gitpython_loaded():
        return  # the readers below use GitPython then
    resolved = str(Path(path).resolve())
    if not os.path.isdir(resolved):
        return
    thread = threading.Thread(
        target=_spawn_ahead, args=(resolved, rev), name="bakery-git-prefetch", daemon=True
    )
    thread.start()
    _prefetchers.append(thread)


def _spawn_ahead(cwd: str, rev: str) -> None:
    for args in (_TOPLEVEL, _USER_EMAIL, _log_args(rev), _BRANCH):
        if (cwd, args) in _prefetched:
            continue  # one answer a question (prefetched twice before being asked)
        try:
            _prefetched[(cwd, args)] = _spawn(cwd, args)
        except OSError:
            return  # `_git` reports it when it is asked


def _prefetch_started() -> None:
    """Wait until the prefetched processes are started (at once when they are)."""
    while _prefetchers:
        _prefetchers.pop().join()


def discard_prefetched() -> None:
    """End and reap the prefetched processes nobody asked (a run refused before its commit)."""
    _prefetch_started()
    while _prefetched:
        _, proc = _prefetched.popitem()
        with contextlib.suppress(OSError):
            proc.kill()
        proc.communicate()


def _adopt_prefetched(asked: str, root: str) -> None:
    """Answers prefetched from a subdirectory are the repository's: file them under its root."""
    if asked != root:
        for key in [k for k in _prefetched if k[0] == asked and (root, k[1]) not in _prefetched]:
            _prefetched[(root, key[1])] = _prefetched.pop(key)


def _gitpython_loaded() -> bool:
    """Whether GitPython is imported already (then a cached Repo is the cheaper reader)."""
    return "git" in sys.modules


@lru_cache(maxsize=16)
def _toplevel(path: str) -> Path:
    if not os.path.isdir(path):
        raise GitError(f"{path} is not a git repository")
    proc = _git(path, *_TOPLEVEL)
    out = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
    if out[:1] == ["true"]:
        raise GitError(f"{path} is a bare repository; Bakery needs a working tree")
    if proc.returncode != 0 or len(out) < 2:
        err = proc.stderr.decode("utf-8", "replace")
        if "must be run in a work tree" in err or "bare" in err:
            raise GitError(f"{path} is a bare repository; Bakery needs a working tree")
        raise GitError(f"{path} is not a git repository")
    _adopt_prefetched(path, out[1])
    return Path(out[1])


def repo_root(path: str | Path) -> Path:
    resolved = str(Path(path).resolve())
    if _gitpython_loaded():
        repo = open_repo(resolved)
        if repo.working_tree_dir is None:
            raise GitError(f"{path} is a bare repository; Bakery needs a working tree")
        return Path(repo.working_tree_dir)
    try:
        return _toplevel(resolved)
    except GitError as exc:
        raise GitError(str(exc).replace(resolved, str(path), 1)) from None


def current_branch(path: str | Path) -> str | None:
    if not _gitpython_loaded():
        proc = _git(repo_root(path), *_BRANCH)
        ref = proc.stdout.decode("utf-8", "surrogateescape").strip()
        if proc.returncode != 0 or not ref.startswith("refs/heads/"):
            return None  # detached HEAD
        return ref.removeprefix("refs/heads/")
    repo = open_repo(str(Path(path).resolve()))
    try:
        return repo.active_branch.name
    except (TypeError, ValueError):
        return None  # detached HEAD


_LOG_FORMAT = "%H%x00%P%x00%an%x00%ae%x00%aI%x00%B"


def _commit_info_cli(path: str | Path, rev: str, branch: str | None) -> dict[str, Any]:
    """commit_info through one `git log` (no GitPython import); same result."""
    root = repo_root(path)
    proc = _git(root, *_log_args(rev))
    if proc.returncode != 0 or not proc.stdout:
        raise GitError(f"no commit {rev!r} in {path}")
    sha, parents, name, email, date, message = proc.stdout.decode("utf-8", "replace").split(
        "\0", 5
    )
    if branch is None:
        branch = current_branch(root) or ""
    return {
        "id": sha,
        "short": sha[:8],
        "branch": branch,
        "message": message.strip(),
        "author": name,
        "email": email,
        "date": date.replace("Z", "+00:00"),
        "repository": root.name,
        "parents": parents.split(),
    }


def commit_info(path: str | Path, rev: str = "HEAD", branch: str | None = None) -> dict[str, Any]:
    """The facts a Source action exposes as output variables."""
    if not _gitpython_loaded():
        return _commit_info_cli(path, rev, branch)
    import git

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
    with tarfile.open(fileobj=io.BytesIO(proc.stdout), mode="r:") as tar:  # plain tar: no gzip
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
    if not _gitpython_loaded():
        try:
            proc = _git(repo_root(path), *_USER_EMAIL)
        except GitError:
            return None
        return proc.stdout.decode("utf-8", "replace").strip() or None
    try:
        repo = open_repo(str(Path(path).resolve()))
        value = repo.config_reader().get_value("user", "email", default="")
        return str(value) or None
    except (GitError, Exception):  # noqa: BLE001 - any config problem means "unknown"
        return None
