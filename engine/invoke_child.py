"""The child process of an invoke action: import the function, call it, write its result.

Run as `python -m engine.invoke_child SPEC.json`. It imports nothing from Bakery beyond the
standard library so a user's function starts quickly and cannot reach the engine's state.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import json
import os
import resource
import sys
import traceback
from pathlib import Path
from typing import Any

MEMORY_LIMIT = 4 << 30


def _load(function: str, workspace: Path) -> Any:
    target, _, name = function.rpartition(":")
    if not target or not name:
        raise ValueError(f"function {function!r} must look like path/file.py:name or module:name")
    sys.path.insert(0, str(workspace))
    if target.endswith(".py"):
        path = (workspace / target).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"{target} is not in the action's input artifact")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise AttributeError(f"{target} has no function {name!r}")
    return fn


def _call(fn: Any, params: dict[str, str], context: dict[str, Any]) -> Any:
    try:
        positional = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        positional = []
    if len(positional) >= 2:
        return fn(params, context)
    if len(positional) == 1:
        return fn(params)
    return fn()


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: a spec or result may hold a secret in clear
    for the moment it takes the other process to read it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    result_file = Path(spec["result_file"])
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    def reply(obj: dict[str, Any]) -> None:
        write_private(result_file, json.dumps(obj))

    context = dict(spec.get("context") or {})
    context["inputs"] = spec.get("inputs") or {}
    context["workspace"] = spec["workspace"]
    try:
        fn = _load(spec["function"], Path(spec["workspace"]))
        value = _call(fn, spec.get("params") or {}, context)
    except SystemExit as exc:
        reply({"error": f"the function called sys.exit({exc.code!r})"})
        return 1
    except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything
        traceback.print_exc()
        reply({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    if value is None:
        value = {}
    if not isinstance(value, dict):
        reply({"error": f"the function returned {type(value).__name__}; expected a dict of strings"})
        return 1
    reply({"variables": {str(k): str(v) for k, v in value.items()}})
    return 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.exit(main(sys.argv))
