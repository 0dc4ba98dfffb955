"""Pipeline definition: the typed shape of a `bakery.yaml` file.

The models only describe fields and their types; the structural rules that span several
fields (source only in the first stage, artifacts produced before they are consumed...) live
in `engine.validation`, so each rule can point at the exact YAML node that breaks it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt


class Category(StrEnum):
    SOURCE = "source"
    BUILD = "build"
    TEST = "test"
    DEPLOY = "deploy"
    APPROVAL = "approval"
    INVOKE = "invoke"

    @property
    def is_shell(self) -> bool:
        return self in (Category.BUILD, Category.TEST, Category.DEPLOY)


class ExecutionMode(StrEnum):
    SUPERSEDED = "superseded"
    QUEUED = "queued"
    PARALLEL = "parallel"


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Turn `90`, `"90s"`, `"10m"`, `"1h30m"` or `"7d"` into seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 10m, 2h or 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text.isdigit():
            seconds = float(text)
        else:
            pos, seconds = 0, 0.0
            for match in _DURATION_PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ValueError(
                    f"expected a duration such as 30s, 10m, 2h or 7d, got {value!r}"
                )
    else:
        raise ValueError("expected a duration such as 30s, 10m, 2h or 7d")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,99}$"
IDENT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Ident = Annotated[str, Field(pattern=IDENT_PATTERN)]


class _Strict(BaseModel):
    """Unknown keys are errors (with a "did you mean"), and nothing is coerced silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class GlobFilter(_Strict):
    includes: list[str] = Field(default_factory=list)
    excludes: list[str] = Field(default_factory=list)


class Trigger(_Strict):
    branches: GlobFilter = Field(default_factory=GlobFilter)
    file_paths: GlobFilter = Field(default_factory=GlobFilter)
    tags: GlobFilter = Field(default_factory=GlobFilter)


class Variable(_Strict):
    name: Ident
    default: str = ""
    description: str = ""


class Secret(_Strict):
    name: Ident
    env: str


def _artifact_shorthand(value: Any) -> Any:
    """`outputs: [source]` is shorthand for `outputs: [{name: source}]`."""
    if isinstance(value, str):
        return {"name": value}
    return value


class OutputArtifact(_Strict):
    name: Ident
    # Globs relative to the action's workspace; empty means the whole workspace.
    paths: list[str] = Field(default_factory=list)


class Action(_Strict):
    name: Name
    category: Category
    run_order: StrictInt = Field(default=1, ge=1, le=999)
    inputs: list[Ident] = Field(default_factory=list)
    outputs: list[Annotated[OutputArtifact, BeforeValidator(_artifact_shorthand)]] = Field(
        default_factory=list
    )
    namespace: Ident | None = None
    timeout: Duration | None = None
    # shell actions (build, test, deploy)
    run: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    # approval
    message: str | None = None
    link: str | None = None
    approvers: list[str] = Field(default_factory=list)
    prevent_self_approval: StrictBool = False
    # invoke
    function: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    # source
    branch: str | None = None

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]


class Stage(_Strict):
    name: Name
    actions: list[Action] = Field(min_length=1, max_length=500)

    def groups(self) -> list[tuple[int, list[Action]]]:
        """Actions grouped by run_order, in the order the groups run."""
        orders = sorted({a.run_order for a in self.actions})
        return [(o, [a for a in self.actions if a.run_order == o]) for o in orders]

    def action(self, name: str) -> Action:
        for a in self.actions:
            if a.name == name:
                return a
        raise KeyError(name)


class Pipeline(_Strict):
    name: Name
    execution_mode: ExecutionMode = ExecutionMode.SUPERSEDED
    trigger: Trigger | None = None
    variables: list[Variable] = Field(default_factory=list)
    secrets: list[Secret] = Field(default_factory=list)
    stages: list[Stage] = Field(min_length=1, max_length=50)

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def stage_index(self, name: str) -> int:
        for i, s in enumerate(self.stages):
            if s.name == name:
                return i
        raise KeyError(name)
