"""Property tests: whatever the input, the loader returns a Pipeline or raises PipelineError.

A loaded pipeline must also satisfy the structural rules, checked here by a small
independent oracle, so a rule that silently lets a bad definition through is caught.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.loader import PipelineError, definition_hash, load_pipeline, load_pipeline_text
from engine.model import Category, Pipeline
from engine.validation import VAR_REF

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TOKENS = [
    "name", "stages", "actions", "category", "source", "build", "approval", "invoke",
    "run_order", "inputs", "outputs", "namespace", "run", "env", "function", "trigger",
    ": ", ":", "- ", "-", "\n", "\n  ", "\n    ", "  ", "[", "]", "{", "}", ", ", "'", '"',
    "#", "&a ", "*a", "&b ", "*b", "<<: ", "!!python/object:os.system ", "!!str ", "!foo ",
    "? ", "|", ">", "---", "...", "%YAML 1.2\n", "\t", "1", "-1", "1e3", "NO", "on", "~",
    "#{variables.X}", "#{", "}", "\x00", "é", "\ufeff", "\r\n",
]  # fmt: skip

FIELDS = [
    "name", "category", "run_order", "inputs", "outputs", "namespace", "timeout", "run",
    "env", "message", "link", "approvers", "function", "params", "branch", "actions",
    "stages", "variables", "secrets", "trigger", "includes", "paths", "default",
]  # fmt: skip


def dump(value: Any, **options: Any) -> str:
    """YAML text of `value` (libyaml's emitter when there is one: it is much faster)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(value, Dumper=dumper, **options)


def check(text: str) -> Pipeline | None:
    """The property itself: a Pipeline, or a PipelineError with well-formed problems."""
    try:
        pipeline = load_pipeline_text(text, "fuzz.yaml")
    except PipelineError as exc:
        assert exc.problems, "a PipelineError must carry at least one problem"
        for problem in exc.problems:
            assert problem.path == "fuzz.yaml"
            assert problem.line >= 1 and problem.col >= 1
            assert problem.message and "Traceback" not in problem.message
        positions = [(p.line, p.col) for p in exc.problems]
        assert positions == sorted(positions)
        assert str(exc).count("\n") == len(exc.problems) - 1
        return None
    assert isinstance(pipeline, Pipeline)
    assert len(definition_hash(pipeline)) == 64
    return pipeline


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    check(text)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map("".join))
def test_yaml_token_soup(text: str) -> None:
    check(text)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(["source", "build", "approval", "NO", "3.10", "10m", "#{variables.X}"])
)
keys = st.sampled_from(FIELDS) | st.text(max_size=8)
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=40,
)


@settings(FUZZ, max_examples=60)
@given(nested)
def test_random_structures(value: Any) -> None:
    check(dump(value, allow_unicode=True))


@settings(FUZZ, max_examples=50)
@given(st.fixed_dictionaries({"name": scalars, "stages": nested}, optional={"trigger": nested}))
def test_random_structures_under_pipeline_keys(value: dict[str, Any]) -> None:
    check(dump(value, allow_unicode=True))


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_in_a_file(data: bytes) -> None:
    fd, name = tempfile.mkstemp(suffix=".yaml")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            assert isinstance(load_pipeline(name), Pipeline)
        except PipelineError as exc:
            assert exc.problems and all(p.path == name for p in exc.problems)
    finally:
        os.unlink(name)


# --------------------------------------------------------------------------- near-valid pipelines

ARTIFACTS = ["src", "bin", "docs"]
NAMESPACES = ["Src", "Build", "variables"]
REFS = [
    "#{variables.V}", "#{variables.W}", "#{secrets.S}", "#{codepipeline.PipelineName}",
    "#{codepipeline.Nope}", "#{Src.CommitId}", "#{Build.Out}", "#{Nope.x}", "#{broken",
]  # fmt: skip


@st.composite
def actions(draw: st.DrawFn) -> dict[str, Any]:
    category = draw(st.sampled_from([c.value for c in Category]))
    action: dict[str, Any] = {
        "name": draw(st.sampled_from(["A", "B", "C"])),
        "category": category,
    }
    if draw(st.booleans()):
        action["run_order"] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        action["inputs"] = draw(st.lists(st.sampled_from(ARTIFACTS), max_size=2))
    if draw(st.booleans()):
        action["outputs"] = draw(st.lists(st.sampled_from(ARTIFACTS), max_size=2))
    if draw(st.booleans()):
        action["namespace"] = draw(st.sampled_from(NAMESPACES))
    text = " ".join(draw(st.lists(st.sampled_from(REFS), max_size=2)))
    if category in ("build", "test", "deploy") or draw(st.booleans()):
        action["run"] = f"echo {text}"
    if draw(st.booleans()):
        action["env"] = {"E": draw(st.sampled_from(REFS))}
    if category == "invoke" or draw(st.booleans()):
        action["function"] = draw(st.sampled_from(["ci/n.py:main", "mod:f", "bad"]))
    if category == "approval" and draw(st.booleans()):
        action["message"] = f"ok? {text}"
    return action


pipelines = st.fixed_dictionaries(
    {
        "name": st.just("fuzz"),
        "variables": st.just([{"name": "V"}]),
        "secrets": st.just([{"name": "S", "env": "S_ENV"}]),
        "stages": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["One", "Two", "Three"]),
                    "actions": st.lists(actions(), min_size=1, max_size=3),
                }
            ),
            min_size=1,
            max_size=4,
        ),
    }
)


def assert_structurally_valid(pipeline: Pipeline) -> None:
    """An independent restatement of the rules a loaded pipeline must satisfy."""
    stages = pipeline.stages
    assert len(stages) >= 2
    assert len({s.name for s in stages}) == len(stages)
    slots = [(i, a) for i, s in enumerate(stages) for a in s.actions]
    for stage in stages:
        assert len({a.name for a in stage.actions}) == len(stage.actions)
    assert any(a.category is Category.SOURCE for a in stages[0].actions)

    def before(p: tuple[int, Any], q: tuple[int, Any]) -> bool:
        return p[0] < q[0] or (p[0] == q[0] and p[1].run_order < q[1].run_order)

    producers = {o: (i, a) for i, a in slots for o in a.output_names}
    namespaces = {a.namespace: (i, a) for i, a in slots if a.namespace}
    assert sum(len(a.outputs) for _, a in slots) == len(producers)
    for i, action in slots:
        assert (action.category is Category.SOURCE) == (i == 0)
        if action.category.is_shell:
            assert action.run and action.function is None
        if action.category is Category.INVOKE:
            assert action.function in ("ci/n.py:main", "mod:f") and action.run is None
        for name in action.inputs:
            assert before(producers[name], (i, action))
        texts = [action.run or "", action.message or "", *action.params.values()]
        for text in [*texts, *action.env.values()]:
            assert "#{" not in VAR_REF.sub("", text)
            for ns, key in VAR_REF.findall(text):
                if ns == "variables":
                    assert key == "V"
                elif ns == "secrets":
                    assert key == "S" and text in action.env.values()
                elif ns != "codepipeline":
                    assert before(namespaces[ns], (i, action))
                else:
                    assert key == "PipelineName"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines)
def test_near_valid_pipelines_obey_the_rules_when_they_load(value: dict[str, Any]) -> None:
    pipeline = check(dump(value, sort_keys=False))
    if pipeline is not None:
        assert_structurally_valid(pipeline)


def test_the_near_valid_generator_can_produce_a_valid_pipeline() -> None:
    """Guard against an oracle that is never exercised."""
    value = {
        "name": "fuzz",
        "variables": [{"name": "V"}],
        "secrets": [{"name": "S", "env": "S_ENV"}],
        "stages": [
            {"name": "One", "actions": [{"name": "A", "category": "source", "outputs": ["src"]}]},
            {
                "name": "Two",
                "actions": [
                    {
                        "name": "A",
                        "category": "build",
                        "inputs": ["src"],
                        "run": "echo #{variables.V}",
                    }
                ],
            },
        ],
    }
    pipeline = check(dump(value, sort_keys=False))
    assert pipeline is not None
    assert_structurally_valid(pipeline)
