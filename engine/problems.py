"""What can be wrong with a definition file: its limits, `Problem` and `PipelineError`.

Kept apart from the YAML and schema code so that reading a file, reporting a problem (a
missing file, say) or catching `PipelineError` costs no import of PyYAML or pydantic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import NamedTuple

__all__ = ["MAX_BYTES", "MAX_PROBLEMS", "PipelineError", "Problem", "sort_problems"]

MAX_BYTES = 1 << 20
"""Larger definitions are refused: a pipeline file is never that big, a mistake often is."""

MAX_PROBLEMS = 100
"""At most this many problems are listed; the rest are counted."""


@cache
def _control() -> re.Pattern[str]:
    """Compiled on the first problem (~1 ms): a run of a valid definition never needs it."""
    return re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class _Position(NamedTuple):
    path: str
    line: int
    col: int
    message: str


class Problem(_Position):
    """One thing wrong with a definition, printed the way compilers and editors expect.

    A tuple rather than a dataclass: defining one costs ~1 ms at import, which every
    `bakery run` pays."""

    __slots__ = ()

    def __new__(cls, path: str, line: int, col: int, message: str) -> Problem:
        # One problem per line, and no terminal escapes smuggled in through a key name.
        if not message.isprintable() and _control().search(message):
            message = _control().sub(lambda m: ascii(m.group())[1:-1], message)
        return super().__new__(cls, path, line, col, message)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Order by position and drop exact repeats (an aliased node can fail several times).

    Past MAX_PROBLEMS the rest is summed up in one last problem: nobody reads more, and a
    generated file can produce hundreds of thousands.
    """
    ordered = sorted(dict.fromkeys(problems), key=lambda p: (p.line, p.col))
    if len(ordered) <= MAX_PROBLEMS:
        return ordered
    rest = ordered[MAX_PROBLEMS]
    more = len(ordered) - MAX_PROBLEMS
    summary = f"... and {more} more problem{'s' if more > 1 else ''} not shown"
    return [*ordered[:MAX_PROBLEMS], Problem(rest.path, rest.line, rest.col, summary)]


class PipelineError(Exception):
    """The definition cannot be used; `problems` lists all that is wrong, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sort_problems(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
