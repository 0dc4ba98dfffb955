"""Check a definition's text: YAML, then the schema, then the structural rules.

This is the slow half of loading (it imports PyYAML and pydantic and builds the schema
models), so `engine.loader` reaches it only when a definition is not in the cache, and for
`bakery validate`. Every problem becomes a `Problem` at the YAML node it is about: YAML
errors, schema errors (pydantic's, worded here) and structural errors (`engine.validation`).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from engine import model, schema
from engine.model import IDENT_PATTERN, NAME_PATTERN
from engine.problems import MAX_PROBLEMS, PipelineError, Problem
from engine.schema import Pipeline
from engine.validation import validate
from engine.yamlsafe import Loc, Marks, YamlError, load_yaml

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

__all__ = ["check_text"]


def check_text(text: str, path: str) -> model.Pipeline:
    """The runtime definition of a valid text; raises PipelineError listing every problem."""
    try:
        data, marks = load_yaml(text, path)
    except YamlError as exc:
        raise PipelineError(exc.problems) from None
    if not isinstance(data, dict):
        raise PipelineError([_not_a_mapping(data, marks, path)])
    try:
        validated = Pipeline.model_validate(data)
    except ValidationError as exc:
        raise PipelineError(_schema_problems(exc, data, marks, path)) from None
    pipeline = schema.to_runtime(validated)
    problems = validate(pipeline, marks, path)
    if problems:
        raise PipelineError(problems)
    return pipeline


# --------------------------------------------------------------------------- shape errors


def _not_a_mapping(data: Any, marks: Marks, path: str) -> Problem:
    line, col = marks.locate(())
    if data is None:
        message = "the file is empty; a pipeline needs at least 'name' and 'stages'"
    else:
        message = (
            "a pipeline definition must be a mapping with 'name' and 'stages', "
            f"got {_describe(data)}"
        )
    return Problem(path, line, col, message)


_NOUNS: dict[str, str] = {
    "Pipeline": "pipeline",
    "Stage": "stage",
    "Action": "action",
    "Variable": "variable",
    "Secret": "secret",
    "OutputArtifact": "output artifact",
    "Trigger": "trigger",
    "GlobFilter": "filter",
}


class _Where:
    """What a pydantic error location points into: the innermost model and its field."""

    def __init__(self, loc: Loc) -> None:
        self.model: type[BaseModel] = Pipeline
        self.model_loc: Loc = ()
        self.field: str | None = None
        self.field_loc: Loc = ()
        self.annotation: Any = None
        annotation: Any = Pipeline
        for i, seg in enumerate(loc):
            annotation = _unwrap(annotation)
            if _is_model(annotation):
                self.model, self.model_loc = annotation, loc[:i]
                if not (isinstance(seg, str) and seg in annotation.model_fields):
                    self.field, self.field_loc = None, loc[: i + 1]
                    return
                self.field, self.field_loc = seg, loc[: i + 1]
                annotation = self.annotation = annotation.model_fields[seg].annotation
            else:
                annotation = _item_type(annotation)
                if annotation is None:
                    return


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] to reach the type that matters."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            arms = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(arms) == 1:
                annotation = arms[0]
                continue
        return annotation


def _item_type(annotation: Any) -> Any:
    """The element type of list[X] / dict[str, X], or None for anything else."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is list and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _object_label(model: type[BaseModel], model_loc: Loc, data: Any) -> str:
    """ "action 'Compile'", "stage 'Build'", "the pipeline", "trigger.branches"..."""
    if model is Pipeline:
        return "the pipeline"
    if model.__name__ in ("Trigger", "GlobFilter"):
        return ".".join(str(seg) for seg in model_loc)
    noun = _NOUNS.get(model.__name__, model.__name__.lower())
    node = _get(data, model_loc)
    name = node.get("name") if isinstance(node, dict) else None
    if isinstance(name, str) and name:
        return f"{noun} '{_clip(name)}'"
    return noun


def _field_label(loc: Loc, where: _Where) -> str:
    """'run_order', 'env.DEBUG', 'inputs[0]', 'stages[2]', 'output artifact name'..."""
    if where.field == "name" and where.model is not Pipeline and len(loc) == len(where.field_loc):
        return f"{_NOUNS.get(where.model.__name__, 'item')} name"
    start = max(len(where.field_loc) - 1, 0)
    if where.model.__name__ in ("Trigger", "GlobFilter"):  # unnamed: spell the whole path
        start = 0
    text = ""
    for seg in loc[start:]:
        text += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if text else str(seg))
    return text or "value"


def _get(data: Any, loc: Loc) -> Any:
    for seg in loc:
        try:
            data = data[seg]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(value: Any) -> str:
    """A short, type-naming description of a YAML value for messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        digits = str(value)
        return f"integer {digits if len(digits) <= 20 else digits[:19] + '…'}"
    if isinstance(value, str):
        return f"string {_quote(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _quote(value: Any) -> str:
    text = _clip(str(value))
    return "'" + text.replace("\n", "\\n") + "'"


def _suggest(word: Any, choices: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _enum_values(where: _Where) -> list[str] | None:
    annotation = _unwrap(where.annotation)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [str(m.value) for m in annotation]
    return None


def _schema_problems(exc: ValidationError, data: Any, marks: Marks, path: str) -> list[Problem]:
    """Word the first MAX_PROBLEMS errors in file order; only count the others."""
    errors = sorted(exc.errors(), key=lambda err: marks.locate(err["loc"]))
    problems = [_safe_schema_problem(err, data, marks, path) for err in errors[:MAX_PROBLEMS]]
    for err in errors[MAX_PROBLEMS:]:  # placeholders: sort_problems only counts them
        line, col = marks.locate(err["loc"])
        problems.append(Problem(path, line, col, f"{err['type']} at {err['loc']}"))
    return problems


def _safe_schema_problem(err: ErrorDetails, data: Any, marks: Marks, path: str) -> Problem:
    """Never let the wording of a message turn a user's mistake into a traceback."""
    try:
        return _schema_problem(err, data, marks, path)
    except Exception:  # pragma: no cover - a bug here must still report the error
        line, col = marks.locate(marks.closest(tuple(err["loc"])))
        where = ".".join(str(seg) for seg in err["loc"]) or "pipeline"
        return Problem(path, line, col, f"{where}: {err['msg']}")


def _schema_problem(err: ErrorDetails, data: Any, marks: Marks, path: str) -> Problem:
    """Translate one pydantic error into a Problem at the right node."""
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    where = _Where(loc)
    if kind == "extra_forbidden":
        line, col = marks.locate(loc, "key")
        key = _clip(str(loc[-1])) if loc else "?"
        fields = list(where.model.model_fields)
        owner = _object_label(where.model, where.model_loc, data)
        message = f"unknown key '{key}' in {owner}{_suggest(key, fields)}"
        return Problem(path, line, col, message)
    if kind == "missing":
        line, col = marks.locate(loc, "missing")
        owner = _object_label(where.model, where.model_loc, data)
        message = f"{owner} is missing required key '{loc[-1] if loc else '?'}'"
        return Problem(path, line, col, message)
    line, col = marks.locate(loc, "value")
    return Problem(path, line, col, _value_message(err, where, loc, data))


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "float_type": "a number",
    "float_parsing": "a number",
}


def _value_message(err: ErrorDetails, where: _Where, loc: Loc, data: Any) -> str:
    """Message for a value that has the wrong type, form or size."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    label = _field_label(loc, where)
    if kind == "enum":
        choices = _enum_values(where) or []
        listed = ", ".join(choices) or str(ctx.get("expected", ""))
        got = _quote(value) if isinstance(value, str) else _describe(value)
        return f"{label} must be one of {listed}, got {got}{_suggest(value, choices)}"
    if kind in _EXPECTED:
        hint = ""
        if kind == "string_type" and value is None:
            hint = ' (write "" for empty text)'
        elif kind == "string_type" and isinstance(value, bool):
            hint = " (put it in quotes if you mean text)"
        if kind == "model_type" and where.field == "outputs":
            return f"{label} must be an artifact name or a mapping, got {_describe(value)}"
        return f"{label} must be {_EXPECTED[kind]}, got {_describe(value)}{hint}"
    if kind == "string_pattern_mismatch":
        return f"{label} {_quote(value)} is not valid: {_pattern_rule(ctx.get('pattern'))}"
    if kind in ("too_short", "too_long"):
        owner = _object_label(where.model, where.model_loc, data)
        label = label if where.model is Pipeline else f"{label} of {owner}"
        return _length_message(label, kind, ctx)
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return _bound_message(label, kind, ctx, value)
    if kind == "value_error":
        reason = str(ctx.get("error", err["msg"])).removeprefix("Value error, ")
        return f"{label}: {reason}"
    return f"{label}: {err['msg']}"


def _pattern_rule(pattern: Any) -> str:
    if pattern == NAME_PATTERN:
        return (
            "use letters, digits, spaces, '_', '.' or '-', starting with a letter or digit "
            "(at most 100 characters)"
        )
    if pattern == IDENT_PATTERN:
        return "use letters, digits and '_', not starting with a digit (at most 100 characters)"
    return f"it must match {pattern}"


def _length_message(label: str, kind: str, ctx: dict[str, Any]) -> str:
    actual = ctx.get("actual_length")
    if kind == "too_short":
        least = ctx.get("min_length")
        return f"{label} must have at least {least} item{'s' if least != 1 else ''}, got {actual}"
    most = ctx.get("max_length")
    return f"{label} may have at most {most} items, got {actual}"


def _bound_message(label: str, kind: str, ctx: dict[str, Any], value: Any) -> str:
    words = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("greater than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    phrase, key = words[kind]
    return f"{label} must be {phrase} {ctx.get(key)}, got {_describe(value)}"
