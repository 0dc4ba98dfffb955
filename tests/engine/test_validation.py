"""Structural rules (engine.validation), each asserted at its exact line:column."""

from __future__ import annotations

import textwrap

import pytest

from engine.loader import PipelineError, Problem, load_pipeline_text
from engine.model import Action
from engine.validation import CATEGORY_KEYS, VAR_REF, validate
from engine.yamlsafe import load_yaml

BASE = textwrap.dedent(
    """\
    name: demo
    variables:
      - {name: GREETING, default: hi}
    secrets:
      - {name: TOKEN, env: TOKEN_ENV}
    stages:
      - name: Source
        actions:
          - {name: Checkout, category: source, namespace: Src, outputs: [src]}
      - name: Build
        actions:
          - {name: Compile, category: build, inputs: [src], run: make, outputs: [bin]}
    """
)


def with_stage(extra: str, base: str = BASE) -> str:
    """BASE plus one more stage, given as YAML lines indented under `stages:`."""
    return base + textwrap.indent(textwrap.dedent(extra), "  ")


def pos(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
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


def only(text: str) -> tuple[tuple[int, int], str]:
    found = problems(text)
    assert len(found) == 1, "\n".join(map(str, found))
    return (found[0].line, found[0].col), found[0].message


def test_base_is_valid() -> None:
    load_pipeline_text(BASE)


def test_validate_directly_returns_no_problems_for_valid_input() -> None:
    data, marks = load_yaml(BASE, "p.yaml")
    pipeline = load_pipeline_text(BASE)
    assert data["name"] == "demo"
    assert validate(pipeline, marks, "p.yaml") == []


def test_every_action_field_belongs_to_some_category() -> None:
    covered = set().union(*CATEGORY_KEYS.values())
    assert covered == set(Action.model_fields)


# --------------------------------------------------------------------------- stages


def test_at_least_two_stages() -> None:
    text = BASE.split("  - name: Build")[0]
    assert only(text) == (
        pos(text, "- name: Source"),
        "a pipeline needs at least two stages (a source stage and one more), got 1",
    )


def test_stage_names_unique() -> None:
    text = with_stage(
        """\
        - name: Build
          actions:
            - {name: Other, category: test, run: pytest}
        """
    )
    assert only(text) == (
        pos(text, "Build", 2),
        f"duplicate stage name 'Build' (first at line {pos(text, 'Build')[0]})",
    )


def test_action_names_unique_in_a_stage() -> None:
    text = with_stage(
        """\
        - name: Test
          actions:
            - {name: Unit, category: test, run: pytest}
            - {name: Unit, category: test, run: pytest -k slow}
        """
    )
    line = pos(text, "Unit")[0]
    assert only(text) == (
        pos(text, "Unit", 2),
        f"duplicate action name 'Unit' in stage 'Test' (first at line {line})",
    )


def test_same_action_name_in_two_stages_is_fine() -> None:
    load_pipeline_text(
        with_stage(
            """\
            - name: Test
              actions:
                - {name: Compile, category: test, run: pytest}
            """
        )
    )


# --------------------------------------------------------------------------- placement


def test_first_stage_holds_only_source_actions() -> None:
    text = BASE.replace(
        "outputs: [src]}\n", "outputs: [src]}\n      - {name: Lint, category: test, run: x}\n"
    )
    assert only(text) == (
        pos(text, "test, run"),
        "the first stage may only hold source actions; action 'Lint' is test",
    )


def test_first_stage_needs_a_source_action() -> None:
    text = BASE.replace(
        "category: source, namespace: Src, outputs: [src]", "category: build, run: x"
    )
    found = problems(text)
    messages = {(p.line, p.col): p.message for p in found}
    assert messages[pos(text, "- {name: Checkout")] == (
        "the first stage 'Source' must hold at least one source action"
    )
    assert messages[pos(text, "build, run: x")] == (
        "the first stage may only hold source actions; action 'Checkout' is build"
    )


def test_no_source_action_outside_the_first_stage() -> None:
    text = with_stage(
        """\
        - name: Later
          actions:
            - {name: Fetch, category: source}
        """
    )
    assert only(text) == (
        pos(text, "source}"),
        "source action 'Fetch' must be in the first stage, not in stage 'Later'",
    )


def test_approval_not_in_the_first_stage() -> None:
    text = BASE.replace(
        "outputs: [src]}\n", "outputs: [src]}\n      - {name: Gate, category: approval}\n"
    )
    assert only(text) == (
        pos(text, "approval}"),
        "approval action 'Gate' is not allowed in the first stage",
    )


def test_at_most_fifty_actions_per_run_order_group() -> None:
    actions = "".join(f"    - {{name: T{i}, category: test, run: x}}\n" for i in range(51))
    text = with_stage("- name: Test\n  actions:\n" + actions)
    assert only(text) == (
        pos(text, "{name: T50"),
        "stage 'Test' has 51 actions with run_order 1; at most 50 may run in parallel",
    )


def test_fifty_per_group_in_several_groups_is_fine() -> None:
    actions = "".join(
        f"    - {{name: T{i}, category: test, run: x, run_order: {1 + i // 50}}}\n"
        for i in range(100)
    )
    load_pipeline_text(with_stage("- name: Test\n  actions:\n" + actions))


# --------------------------------------------------------------------------- category keys


def test_shell_action_needs_run() -> None:
    text = BASE.replace(", run: make", "")
    assert only(text) == (
        pos(text, "{name: Compile"),
        "build action 'Compile' is missing required key 'run'",
    )


def test_shell_run_must_not_be_blank() -> None:
    text = BASE.replace("run: make", "run: '  '")
    assert only(text) == (pos(text, "'  '"), "run of action 'Compile' must not be empty")


def test_invoke_needs_function() -> None:
    text = with_stage(
        """\
        - name: Notify
          actions:
            - {name: Ping, category: invoke}
        """
    )
    assert only(text) == (
        pos(text, "{name: Ping"),
        "invoke action 'Ping' is missing required key 'function'",
    )


@pytest.mark.parametrize("function", ["ci/notify.py:main", "notify:main", "a.b_c.d:run_1"])
def test_invoke_function_forms(function: str) -> None:
    load_pipeline_text(
        with_stage(
            f"""\
            - name: Notify
              actions:
                - {{name: Ping, category: invoke, function: "{function}"}}
            """
        )
    )


@pytest.mark.parametrize("function", ["notify", "ci/notify.py", "ci/notify.py:", "a b:c", ":f"])
def test_invoke_function_must_name_file_or_module_and_function(function: str) -> None:
    text = with_stage(
        f"""\
        - name: Notify
          actions:
            - {{name: Ping, category: invoke, function: "{function}"}}
        """
    )
    assert only(text) == (
        pos(text, f'"{function}"'),
        "function must look like 'path/to/file.py:func' or 'package.module:func', "
        f"got {function!r}",
    )


@pytest.mark.parametrize("function", ["/etc/x.py:f", "../x.py:f"])
def test_invoke_function_file_stays_in_the_repository(function: str) -> None:
    text = with_stage(
        f"""\
        - name: Notify
          actions:
            - {{name: Ping, category: invoke, function: "{function}"}}
        """
    )
    file_part = function.split(":")[0]
    assert only(text) == (
        pos(text, f'"{function}"'),
        f"function file must be inside the repository, got {file_part!r}",
    )


def test_run_on_an_approval_is_an_error_at_the_key() -> None:
    text = with_stage(
        """\
        - name: Release
          actions:
            - {name: Gate, category: approval, run: ./ship.sh}
        """
    )
    assert only(text) == (
        pos(text, "run: ./ship.sh"),
        "'run' is not allowed in approval action 'Gate'; "
        "it belongs to build, test and deploy actions",
    )


def test_function_on_a_build_is_an_error_at_the_key() -> None:
    text = BASE.replace("run: make", "run: make, function: x.py:f")
    assert only(text) == (
        pos(text, "function:"),
        "'function' is not allowed in build action 'Compile'; it belongs to invoke actions",
    )


def test_approval_takes_its_own_keys() -> None:
    load_pipeline_text(
        with_stage(
            """\
            - name: Release
              actions:
                - name: Gate
                  category: approval
                  message: "Ship #{Src.CommitId}?"
                  link: https://example.com/review
                  approvers: [alice, bob]
                  prevent_self_approval: true
                  timeout: 2h
            """
        )
    )


def test_source_action_takes_no_inputs() -> None:
    text = BASE.replace("namespace: Src, outputs: [src]", "inputs: [bin], outputs: [src]")
    found = problems(text)
    assert (found[0].line, found[0].col) == pos(text, "inputs: [bin]")
    assert found[0].message == (
        "source action 'Checkout' takes no inputs: a source action only produces artifacts"
    )


def test_source_action_may_name_a_branch_and_no_outputs() -> None:
    text = BASE.replace("namespace: Src, outputs: [src]", "branch: release/1.x").replace(
        "inputs: [src], ", ""
    )
    load_pipeline_text(text)


@pytest.mark.parametrize("branch", ["'has space'", "'a..b'", "'-x'", "'x.lock'", "''"])
def test_source_branch_must_be_a_valid_branch_name(branch: str) -> None:
    text = BASE.replace("namespace: Src,", f"namespace: Src, branch: {branch},")
    ((line, col), message) = only(text)
    assert (line, col) == pos(text, branch)
    assert message.endswith("of action 'Checkout' is not a valid branch name")


# --------------------------------------------------------------------------- artifacts


def test_output_names_unique_across_the_pipeline() -> None:
    text = with_stage(
        """\
        - name: Test
          actions:
            - {name: Unit, category: test, run: x, outputs: [bin]}
        """
    )
    assert only(text) == (
        pos(text, "bin", 2),
        f"duplicate output artifact 'bin' (first declared by action 'Compile' "
        f"at line {pos(text, 'bin')[0]})",
    )


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../secrets/**", "climbs out of the workspace with '..'"),
        ("dist/../../x", "climbs out of the workspace with '..'"),
        ("/etc/passwd", "is absolute; paths are relative to the workspace"),
        ("~/.ssh/id_rsa", "is absolute; paths are relative to the workspace"),
    ],
)
def test_output_paths_stay_inside_the_workspace(path: str, why: str) -> None:
    text = with_stage(
        f"""\
        - name: Test
          actions:
            - name: Unit
              category: test
              run: x
              outputs: [{{name: report, paths: ["reports/**", "{path}"]}}]
        """
    )
    assert only(text) == (pos(text, f'"{path}"'), f"output path {path!r} {why}")


def test_input_must_be_produced_somewhere() -> None:
    text = BASE.replace("inputs: [src]", "inputs: [scr]")
    assert only(text) == (
        pos(text, "scr"),
        "input artifact 'scr' of action 'Compile' is not an output of any action "
        "(did you mean 'src'?)",
    )


def test_input_produced_in_a_later_stage() -> None:
    text = with_stage(
        """\
        - name: Package
          actions:
            - {name: Zip, category: build, run: zip, outputs: [zipped]}
        """,
        BASE.replace("inputs: [src]", "inputs: [src, zipped]"),
    )
    assert only(text) == (
        pos(text, "zipped"),
        "input artifact 'zipped' of action 'Compile' is produced by action 'Zip' in stage "
        "'Package', which does not run before it (stage 'Package' comes after stage 'Build')",
    )


def test_input_from_a_parallel_action_in_the_same_stage() -> None:
    text = BASE.replace(
        "outputs: [bin]}\n",
        "outputs: [bin]}\n      - {name: Pack, category: build, inputs: [bin], run: x}\n",
    )
    assert only(text) == (
        pos(text, "bin", 2),
        "input artifact 'bin' of action 'Pack' is produced by action 'Compile' in stage "
        "'Build', which does not run before it (both have run_order 1, so they run in "
        "parallel)",
    )


def test_input_from_a_higher_run_order_in_the_same_stage() -> None:
    text = BASE.replace("run: make, outputs: [bin]}", "run: make, run_order: 3, outputs: [bin]}")
    text = text.replace(
        "outputs: [bin]}\n",
        "outputs: [bin]}\n      - {name: Pack, category: build, inputs: [bin], run: x, run_order: 2}\n",
    )
    assert only(text) == (
        pos(text, "bin", 2),
        "input artifact 'bin' of action 'Pack' is produced by action 'Compile' in stage "
        "'Build', which does not run before it (its run_order 3 is higher than 2)",
    )


def test_input_from_a_lower_run_order_in_the_same_stage_is_fine() -> None:
    text = BASE.replace(
        "outputs: [bin]}\n",
        "outputs: [bin]}\n      - {name: Pack, category: build, inputs: [bin], run: x, run_order: 2}\n",
    )
    load_pipeline_text(text)


def test_input_of_its_own_output() -> None:
    text = BASE.replace("inputs: [src]", "inputs: [src, bin]")
    assert only(text) == (
        pos(text, "bin"),
        "input artifact 'bin' of action 'Compile' is produced by action 'Compile' in stage "
        "'Build', which does not run before it (it is the same action)",
    )


def test_input_listed_twice() -> None:
    text = BASE.replace("inputs: [src]", "inputs: [src, src]")
    assert only(text) == (
        pos(text, "src", 3),
        "input artifact 'src' is listed twice in action 'Compile'",
    )


def test_approval_has_no_artifacts() -> None:
    text = with_stage(
        """\
        - name: Release
          actions:
            - {name: Gate, category: approval, outputs: [ok]}
        """
    )
    assert only(text) == (
        pos(text, "outputs: [ok]"),
        "'outputs' is not allowed in approval action 'Gate'; "
        "it belongs to source, build, test, deploy and invoke actions",
    )


# --------------------------------------------------------------------------- namespaces


def test_namespaces_unique() -> None:
    text = BASE.replace("run: make,", "run: make, namespace: Src,")
    assert only(text) == (
        pos(text, "Src", 2),
        f"duplicate namespace 'Src' (first used by action 'Checkout' at line {pos(text, 'Src')[0]})",
    )


@pytest.mark.parametrize("namespace", ["variables", "secrets", "codepipeline", "Variables"])
def test_reserved_namespaces(namespace: str) -> None:
    text = BASE.replace("run: make,", f"run: make, namespace: {namespace},")
    assert only(text) == (
        pos(text, f"{namespace},"),
        f"namespace '{namespace}' is reserved; choose another name",
    )


# --------------------------------------------------------------------------- references


def run_text(run: str) -> str:
    """BASE with the Compile action running `run` (single-quoted YAML)."""
    return BASE.replace("run: make", f"run: '{run}'")


@pytest.mark.parametrize(
    "run",
    [
        "echo #{variables.GREETING}",
        "echo #{Src.CommitId} #{Src.BranchName}",
        "echo #{codepipeline.PipelineExecutionId} #{codepipeline.ExecutionNumber}",
        "echo #{codepipeline.PipelineName} #{codepipeline.PipelineVersion}",
        "echo ${HOME} # a comment {not a reference}",
    ],
)
def test_valid_references(run: str) -> None:
    load_pipeline_text(run_text(run))


@pytest.mark.parametrize(
    ("run", "message"),
    [
        (
            "echo #{variables.GREETNG}",
            "#{variables.GREETNG}: unknown pipeline variable 'GREETNG' (did you mean 'GREETING'?)",
        ),
        (
            "echo #{codepipeline.RunId}",
            "#{codepipeline.RunId}: unknown codepipeline variable 'RunId'",
        ),
        ("echo #{Scr.CommitId}", "#{Scr.CommitId}: unknown namespace 'Scr' (did you mean 'Src'?)"),
        (
            "echo #{secrets.TOKEN}",
            "#{secrets.TOKEN}: secrets may only be used in env values; in run it would be "
            "visible in the command line and logs",
        ),
        (
            "echo #{secrets.TOKN}",
            "#{secrets.TOKN}: unknown secret 'TOKN' (did you mean 'TOKEN'?)",
        ),
        (
            "echo #{GREETING}",
            "malformed variable reference '#{GREETING}' in action 'Compile'; "
            "write #{namespace.key}",
        ),
        (
            "echo #{a.b.c}",
            "malformed variable reference '#{a.b.c}' in action 'Compile'; write #{namespace.key}",
        ),
        (
            "echo #{variables.GREETING",
            "malformed variable reference '#{variables.GREETING' in action 'Compile'; "
            "write #{namespace.key}",
        ),
    ],
)
def test_bad_references_in_run(run: str, message: str) -> None:
    text = run_text(run)
    assert only(text) == (pos(text, f"'{run}'"), message)


def test_secret_in_env_value_is_fine() -> None:
    load_pipeline_text(BASE.replace("run: make", 'run: make, env: {T: "#{secrets.TOKEN}"}'))


def test_secret_in_params_is_an_error() -> None:
    text = with_stage(
        """\
        - name: Notify
          actions:
            - {name: Ping, category: invoke, function: n:f, params: {t: "#{secrets.TOKEN}"}}
        """
    )
    assert only(text) == (
        pos(text, '"#{secrets.TOKEN}"'),
        "#{secrets.TOKEN}: secrets may only be used in env values; in params it would be "
        "visible in the command line and logs",
    )


def test_reference_in_approval_message_and_link() -> None:
    text = with_stage(
        """\
        - name: Release
          actions:
            - name: Gate
              category: approval
              message: "Ship #{Nope.x}?"
              link: "https://ci/#{variables.NOPE}"
        """
    )
    found = problems(text)
    assert [((p.line, p.col), p.message) for p in found] == [
        (pos(text, '"Ship'), "#{Nope.x}: unknown namespace 'Nope'"),
        (pos(text, '"https'), "#{variables.NOPE}: unknown pipeline variable 'NOPE'"),
    ]


def test_namespace_of_a_later_action() -> None:
    text = BASE.replace("run: make,", "run: make, namespace: Build,").replace(
        "namespace: Src, outputs: [src]",
        "namespace: Src, outputs: [src]",
    )
    text = with_stage(
        """\
        - name: Test
          actions:
            - {name: Unit, category: test, run: x, namespace: TestVars}
        """,
        text.replace("run: make", "run: 'make #{TestVars.Result}'"),
    )
    assert only(text) == (
        pos(text, "'make"),
        "#{TestVars.Result}: namespace 'TestVars' belongs to action 'Unit' in stage 'Test', "
        "which does not run before action 'Compile' (stage 'Test' comes after stage 'Build')",
    )


def test_namespace_of_a_parallel_action() -> None:
    text = BASE.replace("run: make,", "run: make, namespace: Build,").replace(
        "outputs: [bin]}\n",
        "outputs: [bin]}\n      - {name: Pack, category: build, run: 'x #{Build.Out}'}\n",
    )
    assert only(text) == (
        pos(text, "'x #{Build.Out}'"),
        "#{Build.Out}: namespace 'Build' belongs to action 'Compile' in stage 'Build', which "
        "does not run before action 'Pack' (both have run_order 1, so they run in parallel)",
    )


def test_namespace_of_a_lower_run_order_is_fine() -> None:
    text = BASE.replace("run: make,", "run: make, namespace: Build,").replace(
        "outputs: [bin]}\n",
        "outputs: [bin]}\n      - {name: Pack, category: build, run: 'x #{Build.Out}', run_order: 2}\n",
    )
    load_pipeline_text(text)


def test_own_namespace() -> None:
    text = BASE.replace("run: make,", "run: 'make #{Build.X}', namespace: Build,")
    assert only(text) == (
        pos(text, "'make #{Build.X}'"),
        "#{Build.X}: action 'Compile' cannot use its own namespace 'Build'",
    )


def test_all_reference_problems_of_one_text_are_reported() -> None:
    text = run_text("#{variables.X} #{Nope.y} #{bad}")
    assert len(problems(text)) == 3


def test_var_ref_pattern() -> None:
    found = VAR_REF.findall("a #{Src.CommitId} b #{variables.X_1} #{bad} #{a.b.c}")
    assert found == [("Src", "CommitId"), ("variables", "X_1")]


# --------------------------------------------------------------------------- declarations


def test_secret_env_must_be_an_env_name() -> None:
    text = BASE.replace("env: TOKEN_ENV", "env: TOKEN-ENV")
    assert only(text) == (
        pos(text, "TOKEN-ENV"),
        "env 'TOKEN-ENV' of secret 'TOKEN' is not a valid environment variable name "
        "(letters, digits and '_', not starting with a digit)",
    )


def test_action_env_names_must_be_env_names() -> None:
    text = BASE.replace("run: make", "run: make, env: {1X: a}")
    assert only(text) == (
        pos(text, "1X"),
        "env name '1X' of action 'Compile' is not a valid environment variable name "
        "(letters, digits and '_', not starting with a digit)",
    )


def test_variables_and_secrets_unique() -> None:
    text = BASE.replace(
        "  - {name: GREETING, default: hi}\n",
        "  - {name: GREETING, default: hi}\n  - {name: GREETING}\n",
    ).replace(
        "  - {name: TOKEN, env: TOKEN_ENV}\n",
        "  - {name: TOKEN, env: TOKEN_ENV}\n  - {name: TOKEN, env: OTHER}\n",
    )
    found = problems(text)
    assert [((p.line, p.col), p.message) for p in found] == [
        (pos(text, "GREETING", 2), "duplicate variable 'GREETING' (first at line 3)"),
        (pos(text, "TOKEN,", 2), "duplicate secret 'TOKEN' (first at line 6)"),
    ]


def test_trigger_globs_must_not_be_empty() -> None:
    text = BASE.replace(
        "stages:\n",
        "trigger:\n  branches: {includes: [main, ''], excludes: ['  ']}\nstages:\n",
        1,
    )
    found = problems(text)
    assert [((p.line, p.col), p.message) for p in found] == [
        (pos(text, "''"), "trigger.branches.includes[1]: a glob must not be empty"),
        (pos(text, "'  '"), "trigger.branches.excludes[0]: a glob must not be empty"),
    ]


# --------------------------------------------------------------------------- ordering


def test_problems_come_sorted_by_position() -> None:
    text = (
        BASE.replace("env: TOKEN_ENV", "env: 9X")
        .replace("inputs: [src]", "inputs: [nope]")
        .replace("run: make", "run: 'x #{y}'")
    )
    found = problems(text)
    assert [(p.line, p.col) for p in found] == sorted((p.line, p.col) for p in found)
    assert len(found) == 3
