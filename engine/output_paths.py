"""The rule for an output artifact's paths: relative to the workspace, never climbing out.

Checked twice on purpose: when the pipeline is validated (so the mistake is reported as
`bakery.yaml:LINE:COL` before anything runs) and again when files are collected (the last
line of defence, whatever produced the definition).
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath


def output_path_problem(pattern: str) -> str | None:
    """Why `pattern` may not name output files, or None when it may."""
    if os.path.isabs(pattern) or pattern.startswith("~"):
        return f"output path {pattern!r} is absolute; paths are relative to the workspace"
    if ".." in PurePosixPath(pattern).parts:
        return f"output path {pattern!r} climbs out of the workspace with '..'"
    return None
