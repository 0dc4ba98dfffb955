"""`gitinfo.prefetch`: git processes started ahead give the answers fresh ones would.

Checked in a fresh interpreter: once GitPython is imported (other tests do), the readers
use it and prefetching is off.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Repo

SCRIPT = r"""
import json, sys
from pathlib import Path
from engine import gitinfo

path, rev = sys.argv[1], sys.argv[2]

def facts():
    gitinfo._toplevel.cache_clear()
    root = gitinfo.repo_root(path)
    return {
        "root": str(root),
        "email": gitinfo.git_user_email(root),
        "commit": gitinfo.commit_info(root, rev, None),
    }

fresh = facts()
gitinfo._toplevel.cache_clear()
gitinfo.prefetch(path, rev)
gitinfo._prefetch_started()
started = len(gitinfo._prefetched)
ahead = facts()
left = len(gitinfo._prefetched)
print(json.dumps({"fresh": fresh, "ahead": ahead, "started": started, "left": left,
                  "git_loaded": "git" in sys.modules}), flush=True)
sys.stdin.readline()  # the test commits again meanwhile
print(json.dumps(facts()))
"""


def _facts(repo: Repo, path: Path, rev: str) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(path), rev],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    first = proc.stdout.readline()  # asked fresh, then prefetched
    repo.commit("moved on")
    out, err = proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0, err
    return {**json.loads(first), "again": json.loads(out)}


@pytest.mark.parametrize("where", [".", "sub/dir"])
def test_prefetched_answers_are_the_fresh_ones(make_repo: Any, where: str) -> None:
    repo = make_repo("name: x\n", **{"sub/dir/f": "f"})
    repo.commit("second")
    facts = _facts(repo, repo.path / where, "HEAD~1")
    assert not facts["git_loaded"]
    assert facts["started"] == 4  # root, email, commit, branch
    assert facts["ahead"] == facts["fresh"]
    assert facts["left"] == 0  # every answer was a prefetched one (a subdirectory's too)
    assert facts["fresh"]["email"] == "ada@bakery.test"
    assert facts["fresh"]["commit"]["message"] == "first commit"


def test_an_answer_is_read_once(make_repo: Any) -> None:
    repo = make_repo("name: x\n")
    facts = _facts(repo, repo.path, "HEAD")
    assert facts["ahead"]["commit"]["message"] == "first commit"
    assert facts["again"]["commit"]["message"] == "moved on"  # asked again: git again


def test_not_a_repository_and_discard(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom engine import gitinfo\n"
        "gitinfo.prefetch(sys.argv[1])\n"
        "try:\n    gitinfo.repo_root(sys.argv[1])\n"
        "except gitinfo.GitError as exc:\n    print(exc)\n"
        "procs = list(gitinfo._prefetched.values())\n"
        "gitinfo.discard_prefetched()\n"
        "print(len(procs), len(gitinfo._prefetched), all(p.returncode is not None for p in procs))\n"
    )
    plain = tmp_path / "plain"
    plain.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", script, str(plain)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    message, counts = proc.stdout.strip().splitlines()
    assert message == f"{plain} is not a git repository"
    assert counts == "3 0 True"  # the three unasked processes ended and reaped
