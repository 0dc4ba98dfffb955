"""Copy output artifacts out of a workspace without ever writing outside the run's directories."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from engine.model import OutputArtifact
from engine.output_paths import output_path_problem


class ArtifactError(Exception):
    """An output path that would reach outside the workspace."""


def _check_pattern(pattern: str) -> None:
    problem = output_path_problem(pattern)
    if problem is not None:
        raise ArtifactError(problem)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def collect(workspace: Path, artifact: OutputArtifact, dest: Path) -> tuple[int, int]:
    """Copy the files matching the artifact's globs (all files if none) to `dest`.

    Returns (files, bytes). Symlinks are refused when they point outside the workspace and
    copied as links otherwise.
    """
    patterns = artifact.paths or ["**/*"]
    for pattern in patterns:
        _check_pattern(pattern)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    files = size = 0
    seen: set[Path] = set()
    for path in _matches(workspace, patterns):
        rel = path.relative_to(workspace)
        if rel in seen or rel.parts[:1] == (".bakery",):
            continue
        seen.add(rel)
        target = dest / rel
        if path.is_symlink():
            if not _inside(path, workspace):
                raise ArtifactError(f"output {rel} is a symlink that points outside the workspace")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(path), target)
            continue
        if not _inside(path, workspace):
            raise ArtifactError(f"output {rel} resolves outside the workspace")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target, follow_symlinks=False)
        files += 1
        size += target.stat().st_size
    return files, size


def _matches(workspace: Path, patterns: list[str]) -> list[Path]:
    """Files (and links) matched by the globs; a matched directory stands for all it holds."""
    found: list[Path] = []
    for pattern in patterns:
        for path in sorted(workspace.glob(pattern)):
            if path.is_dir() and not path.is_symlink():
                found.extend(p for p in sorted(path.rglob("*")) if p.is_symlink() or not p.is_dir())
            else:
                found.append(path)
    return found


def prepare_workspace(first_input: Path | None, workspace: Path) -> None:
    """A fresh copy of the first input artifact, so actions never see each other's edits."""
    if workspace.exists():
        shutil.rmtree(workspace)
    if first_input is not None and first_input.is_dir():
        shutil.copytree(first_input, workspace, symlinks=True)
    else:
        workspace.mkdir(parents=True)
