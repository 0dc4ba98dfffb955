"""Definitions shared by the definition tests, with their hashes pinned."""

from __future__ import annotations

import textwrap
from typing import Any

import pydantic

from engine import model

RICH = textwrap.dedent(
    """\
    # Every kind of field, shorthand and default, so the canonical form is pinned.
    name: pinned pipeline
    execution_mode: parallel
    trigger:
      branches: {includes: [main, "release/*"], excludes: [wip]}
      file_paths: {excludes: ["docs/**"]}
    variables:
      - {name: CHANNEL, default: "#bakery", description: "annonce café ☕"}
      - {name: EMPTY}
    secrets:
      - {name: token, env: BAKERY_TOKEN}
    stages:
      - name: Source
        actions:
          - {name: Checkout, category: source, namespace: SourceVariables, outputs: [source], branch: main}
      - name: Build
        actions:
          - name: Compile
            category: build
            inputs: [source]
            timeout: 90
            env: {PORT: 8080, TOKEN: "#{secrets.token}", FLAG: "yes"}
            run: echo "#{SourceVariables.ShortCommitId}"
            outputs: [{name: dist, paths: ["dist/*.tar.gz", out]}, logs]
          - name: Unit Tests
            category: test
            run_order: 2
            inputs: [source, dist]
            timeout: 1h30m
            run: "true"
      - name: Release
        actions:
          - name: Gate
            category: approval
            message: "Ship #{variables.CHANNEL}?"
            link: https://example.com
            approvers: [ada, bob]
            prevent_self_approval: true
            timeout: 7d
          - name: Notify
            category: invoke
            run_order: 3
            inputs: [source]
            function: ci/notify.py:main
            params: {channel: "#{variables.CHANNEL}", count: 3}
            timeout: 2.5m
          - {name: Ship, category: deploy, run: "echo ship", run_order: 4, timeout: "45s"}
    """
)

MINIMAL = textwrap.dedent(
    """\
    name: minimal
    stages:
      - name: Source
        actions: [{name: Checkout, category: source, outputs: [source]}]
      - name: Build
        actions: [{name: Hello, category: build, inputs: [source], run: echo hello}]
    """
)

# Computed by the loader while `Pipeline` was still the pydantic model, before the runtime
# classes existed. They must never change.
PINNED = {
    "rich": (RICH, "94e920118e2be470857c8c1c32353241724a968ca06dc3f1dd242bc8bd2d7d32"),
    "minimal": (MINIMAL, "65aa1256cd4b1dfca5bb3c7e8a5a8aa96ff3b8b8f9c3111efb7b60bbd918a7aa"),
}


def fields_set_tree(obj: Any) -> Any:
    """Every object's fields set, nested the way the objects are."""
    if isinstance(obj, list):
        return [fields_set_tree(item) for item in obj]
    if isinstance(obj, model._Definition | pydantic.BaseModel):
        tree: dict[str, Any] = {"": sorted(obj.model_fields_set)}
        for name in type(obj).model_fields:
            value = getattr(obj, name)
            if isinstance(value, list | model._Definition | pydantic.BaseModel):
                tree[name] = fields_set_tree(value)
        return tree
    return None
