"""Pipeline definition: the typed shape of a `bakery.yaml` file, as the engine runs it.

Plain frozen classes, so that a run whose definition is cached (`engine.definition_cache`)
starts without importing pydantic, PyYAML or the validation rules: importing pydantic and
building its models was half of `bakery run`'s start-up. The pydantic models that validate a file live in
`engine.schema`, with the same names, fields and defaults; `engine.loader` validates with
them and hands out these classes. `model_dump`, `model_fields_set`, `model_fields` and
`model_validate` behave as pydantic's do where the engine uses them, and the dump, which the
store keeps and `definition_hash` hashes, is the same to the byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum, StrEnum
from typing import Any, ClassVar, Self

__all__ = [
    "IDENT_PATTERN",
    "NAME_PATTERN",
    "Action",
    "Category",
    "ExecutionMode",
    "GlobFilter",
    "OutputArtifact",
    "Pipeline",
    "Secret",
    "Stage",
    "Trigger",
    "Variable",
    "parse_duration",
]


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
                raise ValueError(f"expected a duration such as 30s, 10m, 2h or 7d, got {value!r}")
    else:
        raise ValueError("expected a duration such as 30s, 10m, 2h or 7d")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,99}$"
IDENT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"


_REQUIRED: Any = object()


class _Fresh:
    """A mutable default (a list, a dict, a nested definition), made anew for each object."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def _fresh(make: Callable[[], Any]) -> Any:
    return _Fresh(make)


class _Definition:
    """Base of the definition classes: frozen, built from keywords, and remembering which
    fields it was given (`model_fields_set`), as a pydantic model does (the validation
    rules tell a key written in the file from a default by it).

    A subclass declares its fields as annotated class attributes, the value being the
    default (`_fresh(list)` for a mutable one). No code is generated per class (as
    dataclasses do): importing this module is on every run's start-up path.
    """

    model_fields: ClassVar[dict[str, Any]] = {}
    """Field name -> default, in declaration order (`_REQUIRED` when there is none)."""
    model_fields_set: frozenset[str]
    _nested: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    """How `from_dump` rebuilds a field that is not plain data (enums, nested definitions)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: dict[str, Any] = {}
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():
            if name.startswith("_") or str(annotation).startswith("ClassVar"):
                continue
            fields[name] = cls.__dict__.get(name, _REQUIRED)
            if name in cls.__dict__:
                delattr(cls, name)  # a missing attribute must not read the class default
        cls.model_fields = fields

    def __init__(self, **values: Any) -> None:
        fields = self.model_fields
        for name in values:
            if name not in fields:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
        attrs = self.__dict__
        for name, default in fields.items():
            if name in values:
                attrs[name] = values[name]
            elif default is _REQUIRED:
                raise TypeError(f"{type(self).__name__} needs the field {name!r}")
            else:
                attrs[name] = default.make() if isinstance(default, _Fresh) else default
        attrs["model_fields_set"] = frozenset(values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(self.__dict__[name] for name in self.model_fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Definition)
        return self._values() == other._values()

    def __hash__(self) -> int:  # like a frozen pydantic model: fails on list/dict fields
        return hash((type(self), *self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={self.__dict__[name]!r}" for name in self.model_fields)
        return f"{type(self).__name__}({shown})"

    def model_dump(self, *, mode: str = "python", exclude_unset: bool = False) -> dict[str, Any]:
        """The fields as plain data, as pydantic's `model_dump` gives them: mode "json" turns
        enums into their values; `exclude_unset` keeps only the fields given."""
        as_json = mode == "json"
        return {
            name: _dump(self.__dict__[name], as_json, exclude_unset)
            for name in self.model_fields
            if not exclude_unset or name in self.model_fields_set
        }

    @classmethod
    def from_dump(cls, data: dict[str, Any]) -> Self:
        """Rebuild from a `model_dump` of a validated definition (of either mode, with or
        without `exclude_unset`). It does not validate: give it nothing else."""
        nested = cls._nested
        return cls(**{k: nested[k](v) if k in nested else v for k, v in data.items()})

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        """Validate plain data with the schema models (imports pydantic; raises its
        ValidationError), e.g. a stored definition read back for a retry."""
        from engine import schema

        validated = getattr(schema, cls.__name__).model_validate(data)
        return cls.from_dump(validated.model_dump(exclude_unset=True))


def _dump(value: Any, as_json: bool, exclude_unset: bool) -> Any:
    if isinstance(value, _Definition):
        return value.model_dump(mode="json" if as_json else "python", exclude_unset=exclude_unset)
    if isinstance(value, list):
        return [_dump(item, as_json, exclude_unset) for item in value]
    if isinstance(value, dict):
        return {key: _dump(item, as_json, exclude_unset) for key, item in value.items()}
    if as_json and isinstance(value, Enum):
        return value.value
    return value


def _each(build: Callable[[Any], Any]) -> Callable[[list[Any]], list[Any]]:
    return lambda items: [build(item) for item in items]


def _optional(build: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else build(value)


class GlobFilter(_Definition):
    includes: list[str] = _fresh(list)
    excludes: list[str] = _fresh(list)


class Trigger(_Definition):
    branches: GlobFilter = _fresh(GlobFilter)
    file_paths: GlobFilter = _fresh(GlobFilter)
    tags: GlobFilter = _fresh(GlobFilter)

    _nested = dict.fromkeys(("branches", "file_paths", "tags"), GlobFilter.from_dump)


class Variable(_Definition):
    name: str
    default: str = ""
    description: str = ""


class Secret(_Definition):
    name: str
    env: str


class OutputArtifact(_Definition):
    name: str
    # Globs relative to the action's workspace; empty means the whole workspace.
    paths: list[str] = _fresh(list)


class Action(_Definition):
    name: str
    category: Category
    run_order: int = 1
    inputs: list[str] = _fresh(list)
    outputs: list[OutputArtifact] = _fresh(list)
    namespace: str | None = None
    timeout: float | None = None  # seconds
    # shell actions (build, test, deploy)
    run: str | None = None
    env: dict[str, str] = _fresh(dict)
    # approval
    message: str | None = None
    link: str | None = None
    approvers: list[str] = _fresh(list)
    prevent_self_approval: bool = False
    # invoke
    function: str | None = None
    params: dict[str, str] = _fresh(dict)
    # source
    branch: str | None = None

    _nested = {"category": Category, "outputs": _each(OutputArtifact.from_dump)}

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]


class Stage(_Definition):
    name: str
    actions: list[Action]

    _nested = {"actions": _each(Action.from_dump)}

    def groups(self) -> list[tuple[int, list[Action]]]:
        """Actions grouped by run_order, in the order the groups run."""
        orders = sorted({a.run_order for a in self.actions})
        return [(o, [a for a in self.actions if a.run_order == o]) for o in orders]

    def action(self, name: str) -> Action:
        for a in self.actions:
            if a.name == name:
                return a
        raise KeyError(name)


class Pipeline(_Definition):
    name: str
    execution_mode: ExecutionMode = ExecutionMode.SUPERSEDED
    trigger: Trigger | None = None
    variables: list[Variable] = _fresh(list)
    secrets: list[Secret] = _fresh(list)
    stages: list[Stage]

    _nested = {
        "execution_mode": ExecutionMode,
        "trigger": _optional(Trigger.from_dump),
        "variables": _each(Variable.from_dump),
        "secrets": _each(Secret.from_dump),
        "stages": _each(Stage.from_dump),
    }

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
