"""Load a `bakery.yaml` into a validated `Pipeline`, or explain every problem in it.

Every problem is a `Problem` printed as `PATH:LINE:COL: message`, so editors and terminals
can jump to it. Nothing the user writes may end in a traceback: YAML errors, schema errors
(pydantic) and structural errors (`engine.validation`) all become Problems.

This module stays cheap to import: the checking itself (`engine.definition_check`: PyYAML,
pydantic, the rules) is imported only when a text has to be checked, which `bakery run`
skips when the file's definition is in the cache (`engine.definition_cache`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from engine.model import Pipeline
from engine.problems import MAX_BYTES, PipelineError, Problem

__all__ = [
    "PipelineError",
    "Problem",
    "definition_hash",
    "load_pipeline",
    "load_pipeline_text",
    "pipeline_json_schema",
]


def load_pipeline(path: str | Path, *, cache: bool = False) -> Pipeline:
    """Read and validate a definition file.

    With `cache`, a file whose exact bytes were validated before by this same code is not
    checked again: its definition comes from the cache, and a newly validated one is added.
    Invalid files are never cached, so their problems are always reported afresh.
    """
    shown = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise PipelineError([Problem(shown, 1, 1, "file not found")]) from None
    except IsADirectoryError:
        raise PipelineError([Problem(shown, 1, 1, "is a directory, not a file")]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PipelineError([Problem(shown, 1, 1, f"cannot read file: {reason}")]) from None
    if cache:
        from engine import definition_cache

        cached = definition_cache.lookup(data)
        if cached is not None:
            return cached
    from engine.yamlsafe import YamlError, decode_yaml_bytes

    try:
        text = decode_yaml_bytes(data, shown)
    except YamlError as exc:
        raise PipelineError(exc.problems) from None
    pipeline = load_pipeline_text(text, shown)
    if cache:
        definition_cache.remember(data, pipeline)
    return pipeline


def load_pipeline_text(text: str, path: str = "<string>") -> Pipeline:
    """Validate a definition given as text; `path` is only used in messages."""
    from engine.definition_check import check_text

    return check_text(text, path)


def pipeline_json_schema() -> dict[str, Any]:
    """JSON Schema for editors (yaml-language-server), matching what the loader accepts."""
    from engine.schema import json_schema

    return json_schema()


def definition_hash(pipeline: Pipeline) -> str:
    """sha256 of the canonical JSON form: equal definitions hash equally, whatever the
    key order, comments or shorthands of the YAML they came from."""
    canonical = json.dumps(
        pipeline.model_dump(mode="json"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
