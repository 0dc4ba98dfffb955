"""A cache of validated definitions, so that `bakery run` does not check an unchanged file.

Checking a definition imports PyYAML and pydantic and builds the schema models, which was
most of Bakery's start-up. The same bytes checked by the same code always give the same
definition, so once a file is valid its definition (`model_dump(mode="json",
exclude_unset=True)`) is kept in `<cache dir>/definitions/<key>.json`, where the key is a
sha256 of the file's bytes, of the sources of every module that reads, checks or rebuilds a
definition (an editable install changes them without changing Bakery's version), of where
and when pydantic, pydantic-core and PyYAML were installed, and of Python's version.

An entry is used only if it parses, has this format and the expected key, and rebuilds into
a definition whose `definition_hash` is the one recorded when it was validated. Anything else
(truncated, corrupt, left by other code) counts as a miss: the file is checked again and the
entry rewritten. Invalid files are never cached. Entries are written to a temporary file and
renamed into place, so a concurrent run reads a whole entry or none. The cache only saves
time: no error of its own ever fails a load.

The cache directory is `$BAKERY_CONFIG_DIR/cache` when that is set (tests set it, to keep
every per-user file of Bakery in one place), else `$XDG_CACHE_HOME/bakery`, else
`~/.cache/bakery`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from engine.loader import definition_hash
from engine.model import Pipeline

__all__ = ["FORMAT", "MAX_ENTRIES", "cache_dir", "entry_path", "lookup", "remember"]

FORMAT = 1
"""Bumped when the layout of an entry changes."""

MAX_ENTRIES = 64
"""Entries kept; the least recently used go first."""

_CODE = (
    "definition_cache.py",
    "definition_check.py",
    "loader.py",
    "model.py",
    "output_paths.py",
    "problems.py",
    "schema.py",
    "validation.py",
    "yamlsafe.py",
)
"""Bakery's modules whose code decides what a file's definition is."""

_LIBRARIES = ("pydantic", "pydantic_core", "yaml")

_STALE_TMP_SECONDS = 600.0
"""A temporary file this old was left by a writer that died; pruning removes it."""

_code_key: bytes | None = None


def cache_dir() -> Path | None:
    """Bakery's per-user cache directory (None when there is no home to put it in)."""
    env = os.environ.get("BAKERY_CONFIG_DIR")
    if env:
        return Path(env).expanduser() / "cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "bakery"
    try:
        return Path.home() / ".cache" / "bakery"
    except RuntimeError:  # no home directory to be found
        return None


def _code_digest() -> bytes | None:
    """What a definition depends on besides the file; None if it cannot be known (sources
    not shipped, a library not found), and then nothing is cached."""
    global _code_key
    if _code_key is None:
        digest = hashlib.sha256(f"bakery-definition/{FORMAT}\0{sys.version}\0".encode())
        here = Path(__file__).parent
        try:
            for name in _CODE:
                source = (here / name).read_bytes()
                digest.update(f"{name}\0{len(source)}\0".encode() + source)
            for library in _LIBRARIES:
                spec = importlib.util.find_spec(library)
                if spec is None or not spec.origin:
                    return None
                info = os.stat(spec.origin)
                digest.update(f"{spec.origin}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
        except (OSError, ImportError, ValueError):
            return None
        _code_key = digest.digest()
    return _code_key


def entry_path(data: bytes) -> tuple[Path, str] | None:
    """Where the definition of a file with these bytes is cached, and its key."""
    folder = cache_dir()
    code = _code_digest()
    if folder is None or code is None:
        return None
    key = hashlib.sha256(code + data).hexdigest()
    return folder / "definitions" / f"{key}.json", key


def lookup(data: bytes) -> Pipeline | None:
    """The cached definition of a file with these bytes, or None (a miss)."""
    entry = entry_path(data)
    if entry is None:
        return None
    path, key = entry
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        doc = json.loads(raw)
        if not (isinstance(doc, dict) and doc.get("format") == FORMAT and doc.get("key") == key):
            return None
        pipeline = Pipeline.from_dump(doc["definition"])
        if definition_hash(pipeline) != doc.get("hash"):
            return None
    except Exception:  # noqa: BLE001 - whatever is wrong with an entry, it is only a miss
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: pruned last
    return pipeline


def remember(data: bytes, pipeline: Pipeline) -> None:
    """Cache the definition of a file with these bytes; `pipeline` must be what checking
    exactly these bytes gave."""
    entry = entry_path(data)
    if entry is None:
        return
    path, key = entry
    try:
        doc = {
            "format": FORMAT,
            "key": key,
            "hash": definition_hash(pipeline),
            "definition": pipeline.model_dump(mode="json", exclude_unset=True),
        }
        text = json.dumps(doc, separators=(",", ":"))
        if Pipeline.from_dump(json.loads(text)["definition"]) != pipeline:
            return  # would not come back the same: not worth a wrong answer later
    except (ValueError, TypeError, RecursionError):
        return
    folder = path.parent
    tmp = folder / f".{key}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        with open(tmp, "x", encoding="ascii") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return
    _prune(folder)


def _prune(folder: Path) -> None:
    """Keep the MAX_ENTRIES most recently used entries, and drop dead writers' leftovers."""
    entries: list[tuple[float, str]] = []
    now = time.time()
    try:
        with os.scandir(folder) as listing:
            for item in listing:
                with contextlib.suppress(OSError):
                    mtime = item.stat().st_mtime
                    if item.name.endswith(".json"):
                        entries.append((mtime, item.path))
                    elif item.name.endswith(".tmp") and now - mtime > _STALE_TMP_SECONDS:
                        os.unlink(item.path)
    except OSError:
        return
    entries.sort(reverse=True)
    for _, stale in entries[MAX_ENTRIES:]:
        with contextlib.suppress(OSError):
            os.unlink(stale)
