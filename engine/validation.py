"""Structural rules of a pipeline that span several fields (CodePipeline's own rules).

The pydantic models only check each field's type; whether an input artifact is produced
before it is consumed, or a `#{ns.key}` reference can be resolved, needs the whole
pipeline. Each rule reports a `Problem` at the YAML node that breaks it.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from engine.model import Action, Category, Pipeline
from engine.output_paths import output_path_problem
from engine.yamlsafe import MAX_PROBLEMS, Loc, LocateKind, Marks, Problem, sort_problems

__all__ = [
    "CODEPIPELINE_KEYS",
    "MAX_PARALLEL_ACTIONS",
    "RESERVED_NAMESPACES",
    "VAR_REF",
    "validate",
]

VAR_REF = re.compile(r"#\{([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\}")
"""A variable reference `#{namespace.key}`; `engine` substitutes with the same pattern."""

RESERVED_NAMESPACES = frozenset({"variables", "secrets", "codepipeline"})
CODEPIPELINE_KEYS = frozenset(
    {"PipelineExecutionId", "PipelineName", "PipelineVersion", "ExecutionNumber"}
)
MAX_PARALLEL_ACTIONS = 50

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PY_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FUNCTION = re.compile(rf"(?:[^:\s]+\.py|{_PY_NAME}(?:\.{_PY_NAME})*):{_PY_NAME}")
_BAD_BRANCH = re.compile(r"\s|\.\.|[~^:?*\[\\]|^[-/]|/$|\.lock$|^@$|@\{")

_COMMON_KEYS = frozenset(
    {"name", "category", "run_order", "inputs", "outputs", "namespace", "timeout"}
)
_SHELL_KEYS = _COMMON_KEYS | {"run", "env"}
CATEGORY_KEYS: dict[Category, frozenset[str]] = {
    Category.SOURCE: (_COMMON_KEYS - {"inputs"}) | {"branch"},
    Category.BUILD: _SHELL_KEYS,
    Category.TEST: _SHELL_KEYS,
    Category.DEPLOY: _SHELL_KEYS,
    Category.APPROVAL: (_COMMON_KEYS - {"inputs", "outputs"})
    | {"message", "link", "approvers", "prevent_self_approval"},
    Category.INVOKE: _COMMON_KEYS | {"function", "params", "env"},
}
"""The keys each category accepts; any other key given explicitly is an error."""

_REQUIRED_KEY: dict[Category, str] = {
    Category.BUILD: "run",
    Category.TEST: "run",
    Category.DEPLOY: "run",
    Category.INVOKE: "function",
}


@dataclass(frozen=True)
class _Slot:
    """Where an action sits in the run order of the pipeline."""

    stage: int
    index: int
    action: Action
    stage_name: str

    @property
    def loc(self) -> Loc:
        return ("stages", self.stage, "actions", self.index)

    @property
    def label(self) -> str:
        return f"action '{self.action.name}'"

    def runs_before(self, other: _Slot) -> bool:
        """Strictly earlier: an earlier stage, or the same stage at a lower run_order."""
        if self.stage != other.stage:
            return self.stage < other.stage
        return self.action.run_order < other.action.run_order

    def why_not_before(self, other: _Slot) -> str:
        """Why `self` (a producer) is not guaranteed to finish before `other` starts."""
        if self is other:
            return "it is the same action"
        if self.stage > other.stage:
            return f"stage '{self.stage_name}' comes after stage '{other.stage_name}'"
        if self.action.run_order == other.action.run_order:
            return f"both have run_order {other.action.run_order}, so they run in parallel"
        return f"its run_order {self.action.run_order} is higher than {other.action.run_order}"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _and_list(words: Iterable[str]) -> str:
    items = list(words)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class _Checker:
    """Runs every rule over one pipeline, collecting Problems."""

    def __init__(self, pipeline: Pipeline, marks: Marks, path: str) -> None:
        self.pipeline = pipeline
        self.marks = marks
        self.path = path
        self.problems: list[Problem] = []
        self.slots = [
            _Slot(i, j, action, stage.name)
            for i, stage in enumerate(pipeline.stages)
            for j, action in enumerate(stage.actions)
        ]
        self.namespaces: dict[str, _Slot] = {}

    def add(self, loc: Loc, message: str, kind: LocateKind = "value") -> None:
        line, col = self.marks.locate(loc, kind)
        self.problems.append(Problem(self.path, line, col, message))

    def line_of(self, loc: Loc) -> int:
        return self.marks.locate(loc)[0]

    def run(self) -> list[Problem]:
        self.check_stages()
        self.check_placement()
        self.check_parallel_groups()
        for slot in self.slots:
            self.check_category_keys(slot)
        self.check_artifacts()
        self.check_namespaces()
        self.check_declarations()
        self.check_trigger()
        for slot in self.slots:
            self.check_references(slot)
        return sort_problems(self.problems)

    # -- stages and actions --------------------------------------------------------------

    def check_stages(self) -> None:
        stages = self.pipeline.stages
        if len(stages) < 2:
            self.add(
                ("stages",),
                "a pipeline needs at least two stages (a source stage and one more), "
                f"got {len(stages)}",
            )
        self._unique(((("stages", i, "name"), s.name) for i, s in enumerate(stages)), "stage name")
        for i, stage in enumerate(stages):
            names = (
                (("stages", i, "actions", j, "name"), a.name) for j, a in enumerate(stage.actions)
            )
            self._unique(names, "action name", f" in stage '{stage.name}'")

    def _unique(self, items: Iterable[tuple[Loc, str]], what: str, scope: str = "") -> None:
        """Report every repeat of a name, naming the line of its first use."""
        first: dict[str, Loc] = {}
        for loc, name in items:
            if name in first:
                line = self.line_of(first[name])
                self.add(loc, f"duplicate {what} '{name}'{scope} (first at line {line})")
            else:
                first[name] = loc

    def check_placement(self) -> None:
        """Source actions only, and at least one, in the first stage; none elsewhere."""
        first_stage = self.pipeline.stages[0]
        if not any(a.category is Category.SOURCE for a in first_stage.actions):
            self.add(
                ("stages", 0, "actions"),
                f"the first stage '{first_stage.name}' must hold at least one source action",
            )
        for slot in self.slots:
            category = slot.action.category
            loc = (*slot.loc, "category")
            if slot.stage == 0 and category is Category.APPROVAL:
                self.add(loc, f"approval {slot.label} is not allowed in the first stage")
            elif slot.stage == 0 and category is not Category.SOURCE:
                self.add(
                    loc,
                    f"the first stage may only hold source actions; {slot.label} is {category}",
                )
            elif slot.stage > 0 and category is Category.SOURCE:
                self.add(
                    loc,
                    f"source {slot.label} must be in the first stage, "
                    f"not in stage '{slot.stage_name}'",
                )

    def check_parallel_groups(self) -> None:
        for i, stage in enumerate(self.pipeline.stages):
            for order, group in stage.groups():
                if len(group) <= MAX_PARALLEL_ACTIONS:
                    continue
                extra = group[MAX_PARALLEL_ACTIONS]
                j = next(k for k, a in enumerate(stage.actions) if a is extra)
                self.add(
                    ("stages", i, "actions", j),
                    f"stage '{stage.name}' has {len(group)} actions with run_order {order}; "
                    f"at most {MAX_PARALLEL_ACTIONS} may run in parallel",
                )

    def check_category_keys(self, slot: _Slot) -> None:
        """Keys that belong to another category are errors; required ones must be there."""
        action, category = slot.action, slot.action.category
        allowed = CATEGORY_KEYS[category]
        for key in sorted(action.model_fields_set - allowed):
            self.add((*slot.loc, key), self._misplaced_key(key, slot), "key")
        required = _REQUIRED_KEY.get(category)
        if required and getattr(action, required) is None:
            self.add(
                (*slot.loc, required),
                f"{category} {slot.label} is missing required key '{required}'",
                "missing",
            )
        if category.is_shell and action.run is not None and not action.run.strip():
            self.add((*slot.loc, "run"), f"run of {slot.label} must not be empty")
        if category is Category.INVOKE and action.function is not None:
            self._check_function(slot, action.function)
        if category is Category.SOURCE:
            self._check_branch(slot)

    def _check_branch(self, slot: _Slot) -> None:
        """A source branch, when given, must be something git accepts as a branch name."""
        branch = slot.action.branch
        if branch is not None and (not branch or _BAD_BRANCH.search(branch)):
            self.add(
                (*slot.loc, "branch"),
                f"branch {branch!r} of {slot.label} is not a valid branch name",
            )

    def _misplaced_key(self, key: str, slot: _Slot) -> str:
        category = slot.action.category
        if category is Category.SOURCE and key == "inputs":
            return f"source {slot.label} takes no inputs: a source action only produces artifacts"
        owners = [str(c) for c in Category if key in CATEGORY_KEYS[c]]
        where = f"; it belongs to {_and_list(owners)} actions" if owners else ""
        return f"'{key}' is not allowed in {category} {slot.label}{where}"

    def _check_function(self, slot: _Slot, function: str) -> None:
        loc = (*slot.loc, "function")
        if not _FUNCTION.fullmatch(function):
            self.add(
                loc,
                "function must look like 'path/to/file.py:func' or 'package.module:func', "
                f"got {function!r}",
            )
            return
        file_part = function.rpartition(":")[0]
        if file_part.endswith(".py") and (
            file_part.startswith("/") or ".." in file_part.split("/")
        ):
            self.add(loc, f"function file must be inside the repository, got {file_part!r}")

    # -- artifacts ---------------------------------------------------------------------

    def check_artifacts(self) -> None:
        producers: dict[str, tuple[_Slot, Loc]] = {}
        for slot in self.slots:
            for k, output in enumerate(slot.action.outputs):
                loc = (*slot.loc, "outputs", k, "name")
                if output.name in producers:
                    first_slot, first_loc = producers[output.name]
                    self.add(
                        loc,
                        f"duplicate output artifact '{output.name}' (first declared by "
                        f"{first_slot.label} at line {self.line_of(first_loc)})",
                    )
                else:
                    producers[output.name] = (slot, loc)
                for j, pattern in enumerate(output.paths):
                    problem = output_path_problem(pattern)
                    if problem is not None:
                        self.add((*slot.loc, "outputs", k, "paths", j), problem)
        for slot in self.slots:
            self._check_inputs(slot, {name: s for name, (s, _) in producers.items()})

    def _check_inputs(self, slot: _Slot, producers: dict[str, _Slot]) -> None:
        seen: set[str] = set()
        for k, name in enumerate(slot.action.inputs):
            loc = (*slot.loc, "inputs", k)
            if name in seen:
                self.add(loc, f"input artifact '{name}' is listed twice in {slot.label}")
                continue
            seen.add(name)
            producer = producers.get(name)
            if producer is None:
                self.add(
                    loc,
                    f"input artifact '{name}' of {slot.label} is not an output of any action"
                    + _suggest(name, producers),
                )
            elif not producer.runs_before(slot):
                available = [n for n, s in producers.items() if s.runs_before(slot)]
                self.add(
                    loc,
                    f"input artifact '{name}' of {slot.label} is produced by "
                    f"{producer.label} in stage '{producer.stage_name}', which does not run "
                    f"before it ({producer.why_not_before(slot)})" + _suggest(name, available),
                )

    # -- namespaces, variables, secrets, trigger ---------------------------------------

    def check_namespaces(self) -> None:
        for slot in self.slots:
            namespace = slot.action.namespace
            if namespace is None:
                continue
            loc = (*slot.loc, "namespace")
            if namespace.lower() in RESERVED_NAMESPACES:
                self.add(loc, f"namespace '{namespace}' is reserved; choose another name")
            elif namespace in self.namespaces:
                first = self.namespaces[namespace]
                line = self.line_of((*first.loc, "namespace"))
                self.add(
                    loc,
                    f"duplicate namespace '{namespace}' (first used by {first.label} "
                    f"at line {line})",
                )
            else:
                self.namespaces[namespace] = slot

    def check_declarations(self) -> None:
        pipeline = self.pipeline
        self._unique(
            ((("variables", i, "name"), v.name) for i, v in enumerate(pipeline.variables)),
            "variable",
        )
        self._unique(
            ((("secrets", i, "name"), s.name) for i, s in enumerate(pipeline.secrets)), "secret"
        )
        for i, secret in enumerate(pipeline.secrets):
            if not _ENV_NAME.fullmatch(secret.env):
                self.add(
                    ("secrets", i, "env"),
                    f"env {secret.env!r} of secret '{secret.name}' is not a valid "
                    "environment variable name (letters, digits and '_', not starting "
                    "with a digit)",
                )
        for slot in self.slots:
            for key in slot.action.env:
                if not _ENV_NAME.fullmatch(key):
                    self.add(
                        (*slot.loc, "env", key),
                        f"env name {key!r} of {slot.label} is not a valid environment "
                        "variable name (letters, digits and '_', not starting with a digit)",
                        "key",
                    )

    def check_trigger(self) -> None:
        trigger = self.pipeline.trigger
        if trigger is None:
            return
        for kind in ("branches", "file_paths", "tags"):
            glob_filter = getattr(trigger, kind)
            for side in ("includes", "excludes"):
                for k, glob in enumerate(getattr(glob_filter, side)):
                    if not glob.strip():
                        self.add(
                            ("trigger", kind, side, k),
                            f"trigger.{kind}.{side}[{k}]: a glob must not be empty",
                        )

    # -- variable references -----------------------------------------------------------

    def check_references(self, slot: _Slot) -> None:
        for loc, text, field in _texts(slot):
            if len(self.problems) > MAX_PROBLEMS:
                return  # the rest would not be shown; don't spend time wording it
            for bad in itertools.islice(_malformed(text), MAX_PROBLEMS):
                self.add(
                    loc,
                    f"malformed variable reference '{bad}' in {slot.label}; "
                    "write #{namespace.key}",
                )
            for match in itertools.islice(VAR_REF.finditer(text), MAX_PROBLEMS * 10):
                message = self._reference_problem(slot, match, field)
                if message:
                    self.add(loc, message)

    def _reference_problem(self, slot: _Slot, match: re.Match[str], field: str) -> str | None:
        """Why `#{ns.key}` cannot be resolved for this action, or None when it can."""
        ref, namespace, key = match.group(0), match.group(1), match.group(2)
        if namespace == "variables":
            names = [v.name for v in self.pipeline.variables]
            if key not in names:
                return f"{ref}: unknown pipeline variable '{key}'" + _suggest(key, names)
            return None
        if namespace == "secrets":
            names = [s.name for s in self.pipeline.secrets]
            if key not in names:
                return f"{ref}: unknown secret '{key}'" + _suggest(key, names)
            if field != "env":
                return (
                    f"{ref}: secrets may only be used in env values; in {field} it "
                    "would be visible in the command line and logs"
                )
            return None
        if namespace == "codepipeline":
            if key not in CODEPIPELINE_KEYS:
                return f"{ref}: unknown codepipeline variable '{key}'" + _suggest(
                    key, CODEPIPELINE_KEYS
                )
            return None
        return self._namespace_problem(slot, ref, namespace)

    def _namespace_problem(self, slot: _Slot, ref: str, namespace: str) -> str | None:
        producer = self.namespaces.get(namespace)
        if producer is None:
            choices = [*self.namespaces, *sorted(RESERVED_NAMESPACES)]
            return f"{ref}: unknown namespace '{namespace}'" + _suggest(namespace, choices)
        if producer is slot:
            return f"{ref}: {slot.label} cannot use its own namespace '{namespace}'"
        if not producer.runs_before(slot):
            return (
                f"{ref}: namespace '{namespace}' belongs to {producer.label} in stage "
                f"'{producer.stage_name}', which does not run before {slot.label} "
                f"({producer.why_not_before(slot)})"
            )
        return None


def _texts(slot: _Slot) -> Iterator[tuple[Loc, str, str]]:
    """Every text of an action where `#{...}` is substituted: (loc, text, field)."""
    action = slot.action
    for key in ("run", "message", "link"):
        text = getattr(action, key)
        if text is not None:
            yield (*slot.loc, key), text, key
    for name, value in action.env.items():
        yield (*slot.loc, "env", name), value, "env"
    for name, value in action.params.items():
        yield (*slot.loc, "params", name), value, "params"


def _malformed(text: str) -> Iterator[str]:
    """Each `#{` that does not start a well-formed `#{namespace.key}`."""
    start = text.find("#{")
    while start != -1:
        match = VAR_REF.match(text, start)
        if match:
            start = text.find("#{", match.end())
            continue
        end = text.find("}", start, start + 60)
        snippet = text[start : end + 1] if end != -1 else text[start : start + 20]
        yield snippet.replace("\n", "\\n")
        start = text.find("#{", start + 2)


def validate(pipeline: Pipeline, marks: Marks | None, path: str) -> list[Problem]:
    """All structural problems of a pipeline whose shape is already valid, in file order.

    Without marks (a Pipeline built in code) every problem is reported at 1:1.
    """
    return _Checker(pipeline, marks or Marks(), path).run()
