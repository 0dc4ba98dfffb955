"""CodePipeline V2 push filters: does a branch push or a tag push start the pipeline?

A trigger holds `branches`, `tags` and `file_paths`, each with `includes` and `excludes`
glob lists. A branch push is judged by `branches` (and `file_paths`), a tag push by `tags`.
Excludes win over includes. Globs follow CodePipeline's (Java NIO) syntax: `*` and `?` stay
inside one path segment, `**` crosses segments, `[...]` / `[!...]` match one character,
`{a,b}` matches either sub-pattern, and `\\` escapes. One local convenience: `**/` also
matches zero directories, so `**/*.py` matches `setup.py` (what people mean by it).

Every "no" comes with a reason naming the filter that said it, because a skipped commit is
recorded as a `trigger.skipped` event and the user must be able to see why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from engine.model import GlobFilter, Trigger

__all__ = ["glob_match", "glob_to_regex", "match_trigger", "trigger_is_empty"]

_REF_PREFIXES = ("refs/heads/", "refs/tags/")


@lru_cache(maxsize=512)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a CodePipeline glob to a regex that must match the whole string."""
    return re.compile(r"(?s:" + _translate(pattern, in_group=False) + r")\Z")


def glob_match(pattern: str, value: str) -> bool:
    return glob_to_regex(pattern).match(value) is not None


def _translate(pattern: str, *, in_group: bool) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 < n:
                out.append(re.escape(pattern[i + 1]))
                i += 2
            else:
                out.append(re.escape("\\"))
                i += 1
        elif c == "*":
            if pattern.startswith("**", i):
                if pattern.startswith("**/", i):
                    out.append(r"(?:.*/)?")  # zero or more whole directories
                    i += 3
                else:
                    out.append(r".*")
                    i += 2
            else:
                out.append(r"[^/]*")
                i += 1
        elif c == "?":
            out.append(r"[^/]")
            i += 1
        elif c == "[":
            end, cls = _bracket(pattern, i)
            if cls is None:
                out.append(re.escape("["))
                i += 1
            else:
                out.append(cls)
                i = end
        elif c == "{" and not in_group:
            close = pattern.find("}", i + 1)
            if close == -1:
                out.append(re.escape("{"))
                i += 1
            else:
                parts = _split_group(pattern[i + 1 : close])
                out.append("(?:" + "|".join(_translate(p, in_group=True) for p in parts) + ")")
                i = close + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _split_group(body: str) -> list[str]:
    """Split `{a,b\\,c}` contents on unescaped commas (groups do not nest)."""
    parts, current, i = [], [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            current.append(body[i : i + 2])
            i += 2
            continue
        if body[i] == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(body[i])
        i += 1
    parts.append("".join(current))
    return parts


def _bracket(pattern: str, start: int) -> tuple[int, str | None]:
    """Translate `[...]` at `start`; (index after it, regex class) or (start, None) if unclosed.

    Inside brackets `*`, `?` and `\\` are literal, a leading `!` (or `^`) negates, and a `-`
    first (after the negation) is literal. A class never matches `/`.
    """
    i = start + 1
    negate = False
    if i < len(pattern) and pattern[i] in "!^":
        negate = True
        i += 1
    body: list[str] = []
    first = True
    while i < len(pattern):
        c = pattern[i]
        if c == "]" and not first:
            inner = "".join(body)
            return i + 1, (f"[^/{inner}]" if negate else f"(?!/)[{inner}]")
        if c == "-" and not first and i + 1 < len(pattern) and pattern[i + 1] != "]":
            body.append("-")
        else:
            body.append(re.escape(c))
        first = False
        i += 1
    return start, None


def _strip_ref(pattern: str) -> str:
    for prefix in _REF_PREFIXES:
        if pattern.startswith(prefix):
            return pattern[len(prefix) :]
    return pattern


def _first_match(patterns: Iterable[str], value: str) -> str | None:
    for p in patterns:
        if glob_match(_strip_ref(p), value):
            return p
    return None


def _shown(patterns: Sequence[str]) -> str:
    return "[" + ", ".join(patterns) + "]"


def _has(flt: GlobFilter) -> bool:
    return bool(flt.includes or flt.excludes)


def trigger_is_empty(trigger: Trigger | None) -> bool:
    """A trigger without a single pattern behaves as no trigger at all."""
    return trigger is None or not (
        _has(trigger.branches) or _has(trigger.tags) or _has(trigger.file_paths)
    )


def _name_filter(what: str, field: str, value: str, flt: GlobFilter) -> str | None:
    """None when `value` passes `flt`, else the reason it does not (excludes first)."""
    hit = _first_match(flt.excludes, value)
    if hit is not None:
        return f"{what} '{value}' matches {field}.excludes {_shown(flt.excludes)}"
    if flt.includes and _first_match(flt.includes, value) is None:
        return f"{what} '{value}' is not in {field}.includes {_shown(flt.includes)}"
    return None


def _paths_filter(flt: GlobFilter, changed_files: Sequence[str]) -> str | None:
    """A push passes when at least one changed file is included and not excluded."""
    if not changed_files:
        return "the push changed no file, and the trigger has a file_paths filter"
    included = [
        f for f in changed_files if not flt.includes or _first_match(flt.includes, f) is not None
    ]
    if not included:
        return f"no changed file matches file_paths.includes {_shown(flt.includes)}"
    kept = [f for f in included if _first_match(flt.excludes, f) is None]
    if not kept:
        if flt.includes:
            return (
                f"every changed file matching file_paths.includes {_shown(flt.includes)} "
                f"matches file_paths.excludes {_shown(flt.excludes)}"
            )
        return f"every changed file matches file_paths.excludes {_shown(flt.excludes)}"
    return None


def match_trigger(
    trigger: Trigger | None,
    *,
    branch: str | None,
    tag: str | None,
    changed_files: list[str],
    source_branch: str | None = None,
) -> tuple[bool, str]:
    """Whether a push starts the pipeline: (True, "") or (False, reason).

    `tag` set means a tag push (judged by `tags`); otherwise a push to `branch` (judged by
    `branches` and `file_paths`). Without a trigger (or with one that holds no pattern)
    every change on `source_branch` runs; `source_branch` None means any branch.
    """
    if trigger_is_empty(trigger):
        if tag is not None:
            return False, f"tag '{tag}' pushed, but only a trigger with a tags filter runs on tags"
        if branch is None:
            return False, "the change is on no branch"
        if source_branch is not None and branch != source_branch:
            return False, (
                f"branch '{branch}' is not the source branch '{source_branch}' "
                "(no trigger declared: only the source branch runs)"
            )
        return True, ""
    assert trigger is not None
    if tag is not None:
        if not _has(trigger.tags):
            return False, f"tag '{tag}' pushed, but the trigger declares no tags filter"
        reason = _name_filter("tag", "tags", tag, trigger.tags)
        return (False, reason) if reason else (True, "")
    if branch is None:
        return False, "the change is on no branch"
    if not _has(trigger.branches) and not _has(trigger.file_paths):
        return False, f"branch '{branch}' pushed, but the trigger only declares a tags filter"
    reason = _name_filter("branch", "branches", branch, trigger.branches)
    if reason is None and _has(trigger.file_paths):
        reason = _paths_filter(trigger.file_paths, changed_files)
    return (False, reason) if reason else (True, "")
