"""The schema of a `bakery.yaml` file: the pydantic models that validate a definition.

They are used only to validate (the loader on a cache miss, `bakery validate`, a stored
definition read back by a retry) and to give the JSON Schema; the engine runs on the plain
classes of `engine.model`, built from these by `to_runtime`, so a run whose definition is
in the cache never imports pydantic. Each model has the name, fields and defaults of its
runtime class (tests/engine/test_definition_runtime.py checks they agree).

The models only describe fields and their types; the structural rules that span several
fields (source only in the first stage, artifacts produced before they are consumed...) live
in `engine.validation`, so each rule can point at the exact YAML node that breaks it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt

from engine import model
from engine.model import IDENT_PATTERN, NAME_PATTERN, Category, ExecutionMode, parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]

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


class Stage(_Strict):
    name: Name
    actions: list[Action] = Field(min_length=1, max_length=500)


class Pipeline(_Strict):
    name: Name
    execution_mode: ExecutionMode = ExecutionMode.SUPERSEDED
    trigger: Trigger | None = None
    variables: list[Variable] = Field(default_factory=list)
    secrets: list[Secret] = Field(default_factory=list)
    stages: list[Stage] = Field(min_length=1, max_length=50)


def to_runtime(validated: Pipeline) -> model.Pipeline:
    """The runtime form of a validated definition, with the same values and fields set."""
    return model.Pipeline.from_dump(validated.model_dump(exclude_unset=True))


def json_schema() -> dict[str, Any]:
    """JSON Schema for editors (yaml-language-server), matching what the loader accepts."""
    schema = Pipeline.model_json_schema()
    action = schema.get("$defs", {}).get("Action", {}).get("properties", {})
    if "timeout" in action:  # durations are written "10m", "7d" or seconds
        action["timeout"] = {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*[smhd]\s*)+$|^\d+$"},
                {"type": "null"},
            ],
            "default": None,
            "title": "Timeout",
            "description": "Seconds, or a duration such as 30s, 10m, 1h30m or 7d.",
        }
    outputs = action.get("outputs", {})
    if "items" in outputs:  # `outputs: [name]` is shorthand for `[{name: name}]`
        outputs["items"] = {"anyOf": [outputs["items"], {"type": "string"}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Bakery pipeline",
        "description": "A Bakery pipeline definition (bakery.yaml).",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }
