"""Push filters: CodePipeline glob syntax and includes/excludes semantics, as a table."""

from __future__ import annotations

import pytest

from engine.filters import glob_match, match_trigger
from engine.model import GlobFilter, Trigger


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("main", "main", True),
        ("main", "main2", False),
        ("feature/*", "feature/x", True),
        ("feature/*", "feature/x/y", False),  # * stays inside one segment
        ("feature/**", "feature/x/y", True),  # ** crosses segments
        ("feature/**", "feature", False),
        ("**", "a/b/c.txt", True),
        ("src/**", "src/a/b.py", True),
        ("src/**", "docs/src/a.py", False),
        ("src/*", "src/a/b.py", False),
        ("**/*.py", "setup.py", True),  # **/ may match zero directories
        ("**/*.py", "a/b/c.py", True),
        ("**/*.py", "a/b/c.pyc", False),
        ("*.md", "docs/readme.md", False),
        ("docs/**/*.md", "docs/readme.md", True),
        ("docs/**/*.md", "docs/a/b/readme.md", True),
        ("release-?", "release-1", True),
        ("release-?", "release-10", False),
        ("release-?", "release-/", False),
        ("v[0-9].*", "v1.2", True),
        ("v[0-9].*", "vx.2", False),
        ("v[!0-9]*", "vx", True),
        ("v[!0-9]*", "v1", False),
        ("[-a]b", "-b", True),
        ("a[*]", "a*", True),
        ("a[*]", "ab", False),
        ("*.{py,md}", "x.md", True),
        ("*.{py,md}", "x.txt", False),
        ("{src,lib}/**", "lib/x/y", True),
        (r"a\*b", "a*b", True),
        (r"a\*b", "axb", False),
        ("a[b", "a[b", True),  # an unclosed bracket is a literal
        ("Main", "main", False),  # case matters, as in git
    ],
)
def test_glob(pattern: str, value: str, expected: bool) -> None:
    assert glob_match(pattern, value) is expected


def _trig(**kw: dict[str, list[str]]) -> Trigger:
    return Trigger(**{k: GlobFilter(**v) for k, v in kw.items()})


T = _trig  # short alias for the table


@pytest.mark.parametrize(
    ("trigger", "push", "expected", "reason_has"),
    [
        # branches
        (T(branches={"includes": ["main"]}), {"branch": "main"}, True, ""),
        (
            T(branches={"includes": ["main"]}),
            {"branch": "feature/x"},
            False,
            "branch 'feature/x' is not in branches.includes [main]",
        ),
        (T(branches={"includes": ["feature/**"]}), {"branch": "feature/a/b"}, True, ""),
        (T(branches={"includes": ["refs/heads/main"]}), {"branch": "main"}, True, ""),  # full ref
        (
            T(branches={"includes": ["**"], "excludes": ["wip/*"]}),
            {"branch": "wip/x"},
            False,
            "branch 'wip/x' matches branches.excludes [wip/*]",
        ),
        (
            T(branches={"includes": ["wip/*"], "excludes": ["wip/*"]}),  # excludes win
            {"branch": "wip/x"},
            False,
            "branches.excludes",
        ),
        (T(branches={"excludes": ["wip/*"]}), {"branch": "main"}, True, ""),
        # file paths
        (
            T(branches={"includes": ["main"]}, file_paths={"includes": ["src/**"]}),
            {"branch": "main", "files": ["README.md", "src/app.py"]},
            True,
            "",
        ),
        (
            T(branches={"includes": ["main"]}, file_paths={"includes": ["src/**"]}),
            {"branch": "main", "files": ["README.md"]},
            False,
            "no changed file matches file_paths.includes [src/**]",
        ),
        (
            T(branches={"includes": ["main"]}, file_paths={"excludes": ["docs/**", "*.md"]}),
            {"branch": "main", "files": ["docs/a.txt", "README.md"]},
            False,
            "every changed file matches file_paths.excludes [docs/**, *.md]",
        ),
        (
            T(branches={"includes": ["main"]}, file_paths={"excludes": ["docs/**"]}),
            {"branch": "main", "files": ["docs/a.txt", "src/b.py"]},
            True,
            "",
        ),
        (
            T(file_paths={"includes": ["src/**"], "excludes": ["src/gen/**"]}),
            {"branch": "any", "files": ["src/gen/x.py"]},
            False,
            "every changed file matching file_paths.includes [src/**] matches file_paths.excludes",
        ),
        (
            T(branches={"includes": ["main"]}, file_paths={"includes": ["src/**"]}),
            {"branch": "main", "files": []},
            False,
            "changed no file",
        ),
        (
            T(branches={"includes": ["dev"]}, file_paths={"includes": ["src/**"]}),
            {"branch": "main", "files": ["src/a.py"]},
            False,
            "branches.includes [dev]",  # the branch filter speaks first
        ),
        # tags
        (T(tags={"includes": ["v*"]}), {"tag": "v1.0"}, True, ""),
        (
            T(tags={"includes": ["v*"], "excludes": ["v*-rc*"]}),
            {"tag": "v1.0-rc1"},
            False,
            "tag 'v1.0-rc1' matches tags.excludes [v*-rc*]",
        ),
        (
            T(tags={"includes": ["release/*"]}),
            {"tag": "v1"},
            False,
            "tag 'v1' is not in tags.includes [release/*]",
        ),
        (
            T(branches={"includes": ["main"]}),
            {"tag": "v1"},
            False,
            "declares no tags filter",
        ),
        (
            T(tags={"includes": ["v*"]}),
            {"branch": "main"},
            False,
            "only declares a tags filter",
        ),
        (  # a tag push ignores file_paths and branches
            T(
                branches={"includes": ["main"]},
                tags={"includes": ["v*"]},
                file_paths={"includes": ["src/**"]},
            ),
            {"tag": "v2", "files": []},
            True,
            "",
        ),
    ],
)
def test_match_trigger(trigger: Trigger, push: dict, expected: bool, reason_has: str) -> None:
    ok, reason = match_trigger(
        trigger,
        branch=push.get("branch"),
        tag=push.get("tag"),
        changed_files=push.get("files", ["x"]),
    )
    assert ok is expected, reason
    if expected:
        assert reason == ""
    else:
        assert reason_has in reason


@pytest.mark.parametrize("trigger", [None, Trigger()])
def test_no_trigger_runs_only_the_source_branch(trigger: Trigger | None) -> None:
    assert match_trigger(
        trigger, branch="main", tag=None, changed_files=[], source_branch="main"
    ) == (
        True,
        "",
    )
    ok, reason = match_trigger(
        trigger, branch="feature/x", tag=None, changed_files=["a"], source_branch="main"
    )
    assert not ok
    assert "branch 'feature/x' is not the source branch 'main'" in reason
    ok, reason = match_trigger(
        trigger, branch=None, tag="v1", changed_files=[], source_branch="main"
    )
    assert not ok and "tag 'v1'" in reason
    # an unknown source branch (detached HEAD at start) lets every branch run
    assert match_trigger(trigger, branch="x", tag=None, changed_files=[])[0]
