"""The runtime definition classes (engine.model) against the schema models (engine.schema).

The engine runs on plain classes and validates with pydantic models; both must agree on
every field, default and dump, and `definition_hash` must not move (a new hash gives every
stored pipeline a new version).
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import pydantic
import pytest

from engine import model, schema
from engine.loader import definition_hash, load_pipeline, load_pipeline_text
from engine.model import Category, ExecutionMode, Pipeline
from engine.yamlsafe import load_yaml
from tests.engine._definition_samples import MINIMAL, PINNED, RICH, fields_set_tree

ROOT = Path(__file__).resolve().parents[2]

CLASSES = [
    "GlobFilter", "Trigger", "Variable", "Secret", "OutputArtifact", "Action", "Stage", "Pipeline",
]  # fmt: skip


def samples() -> list[str]:
    texts = [RICH, MINIMAL]
    texts += [p.read_text() for p in sorted((ROOT / "sample_pipelines").glob("*/bakery.yaml"))]
    return texts


def validated(text: str) -> schema.Pipeline:
    data, _ = load_yaml(text, "p.yaml")
    return schema.Pipeline.model_validate(data)


@pytest.mark.parametrize("which", sorted(PINNED))
def test_definition_hash_is_pinned(which: str) -> None:
    text, expected = PINNED[which]
    assert definition_hash(load_pipeline_text(text)) == expected


@pytest.mark.parametrize("index", range(len(samples())))
def test_runtime_dump_is_the_schema_dump(index: int) -> None:
    text = samples()[index]
    runtime, checked = load_pipeline_text(text), validated(text)
    for mode in ("python", "json"):
        for exclude_unset in (False, True):
            assert runtime.model_dump(mode=mode, exclude_unset=exclude_unset) == checked.model_dump(
                mode=mode, exclude_unset=exclude_unset
            )
    assert fields_set_tree(runtime) == fields_set_tree(checked)
    assert repr(runtime) == repr(checked)


def plain(value: Any) -> Any:
    return (
        value.model_dump() if isinstance(value, model._Definition | pydantic.BaseModel) else value
    )


@pytest.mark.parametrize("name", CLASSES)
def test_fields_and_defaults_agree_with_the_schema(name: str) -> None:
    runtime_cls, schema_cls = getattr(model, name), getattr(schema, name)
    assert list(runtime_cls.model_fields) == list(schema_cls.model_fields)
    for field, info in schema_cls.model_fields.items():
        default = runtime_cls.model_fields[field]
        if info.is_required():
            assert default is model._REQUIRED, field
            continue
        made = default.make() if isinstance(default, model._Fresh) else default
        assert plain(made) == plain(info.get_default(call_default_factory=True)), field


def test_values_keep_their_types() -> None:
    pipeline = load_pipeline_text(RICH)
    assert pipeline.execution_mode is ExecutionMode.PARALLEL
    compile_, tests = pipeline.stage("Build").actions
    assert compile_.category is Category.BUILD and compile_.category.is_shell
    assert tests.timeout == 5400.0 and isinstance(tests.timeout, float)
    assert compile_.env["PORT"] == "8080"
    assert [o.name for o in compile_.outputs] == compile_.output_names == ["dist", "logs"]
    assert [(order, [a.name for a in group]) for order, group in pipeline.stages[1].groups()] == [
        (1, ["Compile"]),
        (2, ["Unit Tests"]),
    ]
    assert pipeline.stage_index("Release") == 2
    assert pipeline.stage("Release").action("Gate").approvers == ["ada", "bob"]
    assert pipeline.trigger is not None and pipeline.trigger.tags == model.GlobFilter()


def test_objects_are_frozen_and_built_from_known_fields() -> None:
    action = model.Action(name="a", category=Category.BUILD, run="true")
    assert action.model_fields_set == {"name", "category", "run"}
    assert (
        action.inputs == []
        and action.inputs is not model.Action(name="b", category=Category.TEST).inputs
    )
    with pytest.raises(AttributeError):
        action.name = "b"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del action.run
    with pytest.raises(TypeError, match="no field 'runs'"):
        model.Action(name="a", category=Category.BUILD, runs="x")
    with pytest.raises(TypeError, match="'category'"):
        model.Action(name="a")
    with pytest.raises(TypeError):  # like a frozen pydantic model with list fields
        hash(action)
    assert hash(model.Variable(name="X")) == hash(model.Variable(name="X"))


def test_copies_and_pickles_are_equal_with_the_same_fields_set() -> None:
    pipeline = load_pipeline_text(RICH)
    for twin in (copy.deepcopy(pipeline), pickle.loads(pickle.dumps(pipeline))):
        assert twin == pipeline and twin is not pipeline
        assert fields_set_tree(twin) == fields_set_tree(pipeline)
        assert definition_hash(twin) == definition_hash(pipeline)


def test_model_validate_checks_with_the_schema() -> None:
    pipeline = load_pipeline_text(RICH)
    again = Pipeline.model_validate(pipeline.model_dump(mode="json"))
    assert isinstance(again, Pipeline) and again == pipeline
    broken = pipeline.model_dump(mode="json")
    broken["stages"][1]["actions"][0]["category"] = "bild"
    with pytest.raises(pydantic.ValidationError):
        Pipeline.model_validate(broken)


def test_loaded_files_are_runtime_objects(tmp_path: Path) -> None:
    path = tmp_path / "bakery.yaml"
    path.write_text(RICH)
    for cache in (False, True, True):
        pipeline = load_pipeline(path, cache=cache)
        assert type(pipeline) is Pipeline and type(pipeline.stages[0]) is model.Stage
        assert definition_hash(pipeline) == PINNED["rich"][1]
