"""Loading YAML into a Pipeline: safe YAML, positions, and human messages."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from engine.loader import (
    PipelineError,
    Problem,
    definition_hash,
    load_pipeline,
    load_pipeline_text,
    pipeline_json_schema,
)
from engine.model import Category, ExecutionMode, Pipeline
from engine.yamlsafe import MAX_ALIAS_NODES, MAX_BYTES, MAX_PROBLEMS, YamlError, load_yaml

EXAMPLE = textwrap.dedent(
    """\
    name: bakeshop
    execution_mode: superseded
    trigger:
      branches:   {includes: [main], excludes: []}
      file_paths: {includes: ["src/**"], excludes: []}
      tags:       {includes: [], excludes: []}
    variables:
      - {name: GREETING, default: hello, description: shown in help}
    secrets:
      - {name: API_TOKEN, env: API_TOKEN}
    stages:
      - name: Source
        actions:
          - {name: Checkout, category: source, namespace: SourceVariables, outputs: [source]}
      - name: Build
        actions:
          - name: Compile
            category: build
            run_order: 1
            inputs: [source]
            run: ./build.sh "#{SourceVariables.CommitId}"
            env: {GREETING: "#{variables.GREETING}", TOKEN: "#{secrets.API_TOKEN}"}
            outputs: [{name: dist, paths: ["dist/**"]}]
            namespace: BuildVariables
            timeout: 10m
      - name: Release
        actions:
          - {name: Gate, category: approval, message: "Ship #{SourceVariables.CommitId}?", timeout: 7d}
      - name: Deploy
        actions:
          - {name: Publish, category: deploy, inputs: [dist], run: ./deploy.sh}
          - name: Notify
            category: invoke
            inputs: [source]
            function: ci/notify.py:main
            params: {channel: "#{variables.GREETING}"}
            namespace: NotifyVariables
    """
)


def pos(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based line/column of the n-th occurrence of `needle` in `text`."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col


def problems(text: str) -> list[Problem]:
    with pytest.raises(PipelineError) as info:
        load_pipeline_text(text, "p.yaml")
    return info.value.problems


def only(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def at(problem: Problem) -> tuple[int, int]:
    return problem.line, problem.col


# --------------------------------------------------------------------------- valid input


def test_example_loads() -> None:
    pipeline = load_pipeline_text(EXAMPLE, "bakery.yaml")
    assert isinstance(pipeline, Pipeline)
    assert pipeline.name == "bakeshop"
    assert pipeline.execution_mode is ExecutionMode.SUPERSEDED
    assert [s.name for s in pipeline.stages] == ["Source", "Build", "Release", "Deploy"]
    compile_ = pipeline.stage("Build").action("Compile")
    assert compile_.category is Category.BUILD
    assert compile_.timeout == 600
    assert compile_.env["TOKEN"] == "#{secrets.API_TOKEN}"
    assert pipeline.stage("Source").action("Checkout").output_names == ["source"]
    assert pipeline.stage("Release").action("Gate").timeout == 7 * 86400
    assert pipeline.trigger is not None
    assert pipeline.trigger.file_paths.includes == ["src/**"]


def test_load_pipeline_reads_file(tmp_path: Path) -> None:
    path = tmp_path / "bakery.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert load_pipeline(path).name == "bakeshop"
    assert load_pipeline(str(path)).name == "bakeshop"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bakery.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + EXAMPLE.encode())
    assert load_pipeline(path).name == "bakeshop"


def test_anchors_and_merge_keys_are_allowed() -> None:
    text = textwrap.dedent(
        """\
        name: demo
        stages:
          - name: Source
            actions:
              - {name: Checkout, category: source, outputs: [src]}
          - name: Build
            actions:
              - &compile
                name: Compile
                category: build
                inputs: [src]
                run: make
                env: &env {MODE: fast}
              - <<: *compile
                name: Test
                category: test
                env: *env
        """
    )
    pipeline = load_pipeline_text(text)
    test = pipeline.stage("Build").action("Test")
    assert (test.category, test.run, test.env) == (Category.TEST, "make", {"MODE": "fast"})


# --------------------------------------------------------------------------- scalars


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NO", "NO"),
        ("no", "no"),
        ("yes", "yes"),
        ("on", "on"),
        ("Off", "Off"),
        ("3.10", "3.10"),
        ("1e3", "1e3"),
        ("0o17", "0o17"),
        ("0x1F", "0x1F"),
        ("007", "007"),
        ("2024-01-02", "2024-01-02"),
        ("12:30", "12:30"),
        (".inf", ".inf"),
        ("true", True),
        ("True", True),
        ("false", False),
        ("False", False),
        ("42", 42),
        ("-7", -7),
        ("0", 0),
        ("null", None),
        ("~", None),
        ("", None),
        ("'true'", "true"),
        ('"42"', "42"),
        ("!!str 42", "42"),
        ("!!int 42", 42),
    ],
)
def test_scalar_resolution(text: str, expected: object) -> None:
    data, _ = load_yaml(f"key: {text}\n", "f.yaml")
    assert data == {"key": expected}
    assert type(data["key"]) is type(expected)


def test_keys_are_always_text() -> None:
    data, _ = load_yaml("on: 1\nNO: 2\n3.10: 3\ntrue: 4\n", "f.yaml")
    assert data == {"on": 1, "NO": 2, "3.10": 3, "true": 4}


@pytest.mark.parametrize("default", ["NO", "3.10", "on", "yes", "1e3", "0o17", "2024-01-02"])
def test_variable_default_keeps_the_text_as_written(default: str) -> None:
    text = EXAMPLE.replace("default: hello", f"default: {default}")
    pipeline = load_pipeline_text(text)
    assert pipeline.variables[0].default == default


def test_integer_where_a_string_is_expected_becomes_that_string() -> None:
    text = EXAMPLE.replace("default: hello", "default: 42")
    assert load_pipeline_text(text).variables[0].default == "42"


def test_boolean_where_a_string_is_expected_asks_for_quotes() -> None:
    text = EXAMPLE.replace("default: hello", "default: true")
    problem = only(text)
    assert at(problem) == pos(text, "true, description")
    assert problem.message == (
        "default must be a string, got boolean true (put it in quotes if you mean text)"
    )


# --------------------------------------------------------------------------- YAML safety


def test_duplicate_keys_name_both_lines() -> None:
    text = EXAMPLE.replace("  - name: Build\n", "  - name: Build\n    name: Build2\n")
    problem = only(text)
    assert at(problem) == pos(text, "name: Build2")
    first_line = pos(text, "- name: Build")[0]
    assert problem.message == f"duplicate key 'name' (first at line {first_line})"


def test_duplicate_keys_are_all_reported() -> None:
    text = "name: a\nname: b\nstages: []\nstages: []\n"
    found = problems(text)
    assert [(p.line, p.col, p.message) for p in found] == [
        (2, 1, "duplicate key 'name' (first at line 1)"),
        (4, 1, "duplicate key 'stages' (first at line 3)"),
    ]


def test_python_tag_is_rejected() -> None:
    text = "name: !!python/object/apply:os.system ['echo pwned']\nstages: []\n"
    problem = only(text)
    assert at(problem) == (1, 7)
    assert problem.message == "Python tag '!!python/object/apply:os.system' is not allowed"


@pytest.mark.parametrize("tag", ["!custom", "!!float", "!!binary", "!!timestamp", "!!set"])
def test_unknown_tags_are_rejected(tag: str) -> None:
    problem = only(f"name: {tag} x\nstages: []\n")
    assert at(problem) == (1, 7)
    assert "tag" in problem.message and tag in problem.message


def test_bad_explicit_int_is_rejected() -> None:
    problem = only("name: demo\nstages: []\nx: !!int 1.5\n")
    assert (at(problem), problem.message) == ((3, 4), "'1.5' is not a valid !!int value")


@pytest.mark.timeout(5)
def test_alias_bomb_is_rejected() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    text = "\n".join(lines) + "\n"
    problem = only(text)
    assert problem.message == (
        f"aliases expand to more than {MAX_ALIAS_NODES} nodes; "
        "refusing what looks like an alias bomb"
    )
    assert problem.line in range(4, 10)


def test_recursive_alias_is_rejected() -> None:
    problem = only("name: &a [x, *a]\nstages: []\n")
    assert at(problem) == (1, 14)
    assert problem.message == "recursive alias '*a' refers to a node that contains it"


def test_unknown_alias_is_rejected() -> None:
    problem = only("name: *nope\nstages: []\n")
    assert (at(problem), problem.message) == (
        (1, 7),
        "unknown alias '*nope' (no anchor '&nope' before it)",
    )


@pytest.mark.timeout(5)
def test_deep_nesting_is_rejected() -> None:
    problem = only("name: x\nstages: " + "[" * 5000 + "]" * 5000 + "\n")
    # our own limit, or newer PyYAML's ("exceeded maximum nesting depth"), whichever is first
    assert "nesting" in problem.message and "depth" in problem.message or "deeper" in problem.message
    assert problem.line == 2


@pytest.mark.timeout(5)
def test_deep_nesting_through_aliases_is_rejected() -> None:
    deep = "[" * 90 + "x" + "]" * 90
    problem = only(f"a: &a {deep}\nb: &b {'[' * 20}*a{']' * 20}\n")
    assert problem.message == "alias '*a' nests deeper than 100 levels"


def test_syntax_error_carries_line_and_column() -> None:
    text = "name: demo\nstages:\n  - name: [unclosed\n  - other\n"
    problem = only(text)
    assert problem.message.startswith("YAML syntax error:")
    assert problem.line >= 3


def test_tab_indentation_is_a_syntax_error() -> None:
    problem = only("name: demo\nstages:\n\t- x\n")
    assert problem.message.startswith("YAML syntax error:")
    assert at(problem) == (3, 1)


def test_control_character_is_reported_at_its_position() -> None:
    problem = only("name: démo\x01\nstages: []\n")
    assert at(problem) == (1, 11)
    assert problem.message.startswith("invalid character U+0001")


def test_several_documents_are_rejected() -> None:
    problem = only("name: a\n---\nname: b\n")
    assert at(problem) == (2, 1)
    assert "single YAML document" in problem.message


def test_non_utf8_file_is_reported_at_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "bakery.yaml"
    path.write_bytes(b"name: demo\nstages: [\xff]\n")
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    [problem] = info.value.problems
    assert (problem.path, at(problem)) == (str(path), (2, 10))
    assert "not valid UTF-8" in problem.message and "0xff" in problem.message


def test_too_large_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bakery.yaml"
    path.write_bytes(b"# padding\n" * (MAX_BYTES // 10 + 1))
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    [problem] = info.value.problems
    assert at(problem) == (1, 1) and "too large" in problem.message


def test_too_large_text_is_rejected() -> None:
    problem = only("#" * (MAX_BYTES + 1))
    assert at(problem) == (1, 1) and "too large" in problem.message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(PipelineError) as info:
        load_pipeline(path)
    assert str(info.value) == f"{path}:1:1: file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError) as info:
        load_pipeline(tmp_path)
    assert str(info.value) == f"{tmp_path}:1:1: is a directory, not a file"


def test_lone_surrogate_in_text() -> None:
    problem = only("name: a\ud800\nstages: []\n")
    assert at(problem) == (1, 8)


def test_merge_needs_a_mapping() -> None:
    problem = only("a: &a x\nb:\n  <<: *a\n")
    assert at(problem) == (3, 7)
    assert problem.message == "'<<' (merge) needs a mapping or a list of mappings"


def test_complex_keys_are_rejected() -> None:
    problem = only("? [a, b]\n: c\n")
    assert at(problem) == (1, 3)
    assert problem.message == "a mapping key must be a plain value, not a list or mapping"


def test_problem_count_is_capped_with_a_summary() -> None:
    text = "a: 1\n" * 500
    found = problems(text)
    assert len(found) == MAX_PROBLEMS
    assert found[-1].message == "too many problems; stopped reading here"
    text = "name: x\nstages: []\n" + "".join(f"k{i}: 1\n" for i in range(150))
    found = problems(text)
    assert len(found) == MAX_PROBLEMS + 1
    assert found[-1].message == "... and 51 more problems not shown"


def test_control_characters_in_messages_are_escaped() -> None:
    problem = only(EXAMPLE + '"bad\\nkey\\e[31m": 1\n')
    assert problem.message == "unknown key 'bad\\nkey\\x1b[31m' in the pipeline"
    assert "\n" not in str(problem)


def test_load_yaml_raises_yaml_error() -> None:
    with pytest.raises(YamlError) as info:
        load_yaml("a: 1\na: 2\n", "f.yaml")
    assert str(info.value) == "f.yaml:2:1: duplicate key 'a' (first at line 1)"


# --------------------------------------------------------------------------- shape


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty; a pipeline needs at least 'name' and 'stages'"),
        ("# only a comment\n", "the file is empty; a pipeline needs at least 'name' and 'stages'"),
        (
            "- a\n- b\n",
            "a pipeline definition must be a mapping with 'name' and 'stages', got a list",
        ),
        (
            "hello\n",
            "a pipeline definition must be a mapping with 'name' and 'stages', got string 'hello'",
        ),
    ],
)
def test_top_level_must_be_a_mapping(text: str, message: str) -> None:
    problem = only(text)
    assert (at(problem), problem.message) == ((1, 1), message)


def test_unknown_key_suggests_the_right_one() -> None:
    text = EXAMPLE.replace("run_order: 1", "run_ordr: 1")
    problem = only(text)
    assert at(problem) == pos(text, "run_ordr")
    assert problem.message == (
        "unknown key 'run_ordr' in action 'Compile' (did you mean 'run_order'?)"
    )


def test_unknown_top_level_key() -> None:
    text = EXAMPLE.replace("execution_mode:", "execution_mod:")
    problem = only(text)
    assert at(problem) == (2, 1)
    assert problem.message == (
        "unknown key 'execution_mod' in the pipeline (did you mean 'execution_mode'?)"
    )


def test_unknown_key_in_trigger_filter() -> None:
    text = EXAMPLE.replace("{includes: [main]", "{include: [main]")
    problem = only(text)
    assert at(problem) == pos(text, "include:")
    assert problem.message == (
        "unknown key 'include' in trigger.branches (did you mean 'includes'?)"
    )


def test_missing_key_points_at_the_mapping() -> None:
    text = EXAMPLE.replace("        category: build\n", "")
    problem = only(text)
    assert at(problem) == pos(text, "name: Compile")
    assert problem.message == "action 'Compile' is missing required key 'category'"


def test_missing_name_has_no_name_to_show() -> None:
    text = EXAMPLE.replace("{name: Publish, category", "{category")
    problem = only(text)
    assert at(problem) == pos(text, "{category: deploy")
    assert problem.message == "action is missing required key 'name'"


def test_wrong_enum_suggests_the_closest_value() -> None:
    text = EXAMPLE.replace("category: build", "category: biuld")
    problem = only(text)
    assert at(problem) == pos(text, "biuld")
    assert problem.message == (
        "category must be one of source, build, test, deploy, approval, invoke, "
        "got 'biuld' (did you mean 'build'?)"
    )


def test_wrong_type_names_the_type() -> None:
    text = EXAMPLE.replace("run_order: 1", "run_order: '1'")
    problem = only(text)
    assert at(problem) == pos(text, "'1'")
    assert problem.message == "run_order must be an integer, got string '1'"


def test_run_order_below_one() -> None:
    text = EXAMPLE.replace("run_order: 1", "run_order: 0")
    problem = only(text)
    assert at(problem) == pos(text, "0\n")
    assert problem.message == "run_order must be at least 1, got integer 0"


def test_huge_integer_is_a_problem_not_a_crash() -> None:
    text = EXAMPLE.replace("run_order: 1", "run_order: " + "9" * 5000)
    problem = only(text)
    assert at(problem) == pos(text, "9999")
    assert problem.message.startswith("run_order must ")


def test_bad_duration() -> None:
    text = EXAMPLE.replace("timeout: 10m", "timeout: 10x")
    problem = only(text)
    assert at(problem) == pos(text, "10x")
    assert problem.message == ("timeout: expected a duration such as 30s, 10m, 2h or 7d, got '10x'")


def test_bad_name_pattern() -> None:
    text = EXAMPLE.replace("outputs: [source]", "outputs: [my-source]")
    problem = only(text)
    assert at(problem) == pos(text, "my-source")
    assert problem.message.startswith("output artifact name 'my-source' is not valid: use")


def test_list_expected() -> None:
    text = EXAMPLE.replace("inputs: [dist]", "inputs: dist")
    problem = only(text)
    assert at(problem) == pos(text, "dist, run")
    assert problem.message == "inputs must be a list, got string 'dist'"


def test_env_value_of_wrong_type() -> None:
    text = EXAMPLE.replace('GREETING: "#{variables.GREETING}"', "GREETING: [a]")
    problem = only(text)
    assert at(problem) == pos(text, "[a]")
    assert problem.message == "env.GREETING must be a string, got a list"


def test_empty_actions_list() -> None:
    text = EXAMPLE.replace(
        "actions:\n      - {name: Gate, category: approval, "
        'message: "Ship #{SourceVariables.CommitId}?", timeout: 7d}',
        "actions: []",
    )
    problem = only(text)
    assert at(problem) == pos(text, "[]\n")
    assert problem.message == "actions of stage 'Release' must have at least 1 item, got 0"


def test_all_problems_are_reported_in_file_order() -> None:
    text = (
        EXAMPLE.replace("category: build", "category: biuld")
        .replace("execution_mode: superseded", "execution_mode: paralel")
        .replace("run: ./deploy.sh", "run: ./deploy.sh, colour: red")
    )
    found = problems(text)
    assert [at(p) for p in found] == [
        pos(text, "paralel"),
        pos(text, "biuld"),
        pos(text, "colour"),
    ]
    with pytest.raises(PipelineError) as info:
        load_pipeline_text(text, "p.yaml")
    assert str(info.value).splitlines() == [str(p) for p in found]
    assert all(line.startswith("p.yaml:") for line in str(info.value).splitlines())


def test_structural_rules_run_only_on_a_valid_shape() -> None:
    text = EXAMPLE.replace("inputs: [dist]", "inputs: [nope]").replace("timeout: 10m", "timeout: x")
    found = problems(text)
    assert [p.message.split(":")[0] for p in found] == ["timeout"]


def test_problem_str() -> None:
    assert str(Problem("a.yaml", 3, 7, "boom")) == "a.yaml:3:7: boom"


# --------------------------------------------------------------------------- marks


def test_marks_locate_values_keys_and_missing() -> None:
    text = "a:\n  b: [x, {c: 1}]\n  d: 2\n"
    _, marks = load_yaml(text, "f.yaml")
    assert marks.locate(("a", "b", 1, "c")) == (2, 14)
    assert marks.locate(("a", "b", 1, "c"), "key") == (2, 11)
    assert marks.locate(("a", "b", 1, "zz"), "missing") == (2, 10)
    assert marks.locate(("a", "d"), "key") == (3, 3)
    assert marks.locate(("a", "nope", 3)) == (2, 3)  # nearest known ancestor
    assert marks.locate(()) == (1, 1)


# --------------------------------------------------------------------------- hash and schema


def test_definition_hash_is_stable_across_formatting() -> None:
    reformatted = EXAMPLE.replace("timeout: 10m", "timeout: 600s  # ten minutes").replace(
        "outputs: [source]", "outputs: [{name: source}]"
    )
    first = definition_hash(load_pipeline_text(EXAMPLE))
    assert first == definition_hash(load_pipeline_text(EXAMPLE))
    assert first == definition_hash(load_pipeline_text(reformatted))
    assert len(first) == 64 and int(first, 16) >= 0


def test_definition_hash_changes_with_the_definition() -> None:
    changed = EXAMPLE.replace("run: ./deploy.sh", "run: ./deploy.sh --prod")
    assert definition_hash(load_pipeline_text(EXAMPLE)) != definition_hash(
        load_pipeline_text(changed)
    )


def test_json_schema() -> None:
    schema = pipeline_json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["title"] == "Bakery pipeline"
    assert {"name", "stages"} <= set(schema["properties"])
    assert "stages" in schema["required"]
    timeout = schema["$defs"]["Action"]["properties"]["timeout"]
    assert {"type": "null"} in timeout["anyOf"]
    json.dumps(schema)
