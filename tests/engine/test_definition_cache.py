"""The cache of validated definitions (engine.definition_cache) that `bakery run` uses.

A hit must give exactly what checking the file gives, skip the checking (and its imports),
and never answer for other bytes; a damaged entry is a miss and gets rewritten; invalid
files are never cached. Tests get their own cache through BAKERY_CONFIG_DIR (conftest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import definition_cache, definition_check
from engine.loader import PipelineError, definition_hash, load_pipeline
from tests.engine._definition_samples import MINIMAL, PINNED, RICH, fields_set_tree

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def rich(tmp_path: Path) -> Path:
    path = tmp_path / "rich" / "bakery.yaml"
    path.parent.mkdir()
    path.write_text(RICH)
    return path


def entry_of(path: Path) -> Path:
    entry = definition_cache.entry_path(path.read_bytes())
    assert entry is not None
    return entry[0]


def refuse_checking(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(text: str, path: str) -> Any:
        raise AssertionError("the definition was checked again")

    monkeypatch.setattr(definition_check, "check_text", fail)


def test_cache_dir_follows_bakery_config_dir_then_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert definition_cache.cache_dir() == Path(os.environ["BAKERY_CONFIG_DIR"]) / "cache"
    monkeypatch.delenv("BAKERY_CONFIG_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert definition_cache.cache_dir() == tmp_path / "xdg" / "bakery"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert definition_cache.cache_dir() == tmp_path / "home" / ".cache" / "bakery"


def test_a_hit_equals_a_miss_and_skips_checking(
    rich: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = load_pipeline(rich)
    assert not entry_of(rich).exists()  # only cache=True uses the cache
    missed = load_pipeline(rich, cache=True)
    assert entry_of(rich).exists()
    refuse_checking(monkeypatch)
    hit = load_pipeline(rich, cache=True)
    assert hit is not missed
    for pipeline in (missed, hit):
        assert pipeline == fresh
        assert definition_hash(pipeline) == definition_hash(fresh) == PINNED["rich"][1]
        assert fields_set_tree(pipeline) == fields_set_tree(fresh)
        assert pipeline.model_dump() == fresh.model_dump()  # enums and floats, not strings
    with pytest.raises(AssertionError, match="checked again"):
        load_pipeline(rich)  # without the cache it does check: the stub above is effective


def test_a_changed_file_is_checked_again(rich: Path) -> None:
    load_pipeline(rich, cache=True)
    rich.write_text(RICH.replace("category: test", "category: tset"))
    with pytest.raises(PipelineError) as cached:
        load_pipeline(rich, cache=True)
    with pytest.raises(PipelineError) as fresh:
        load_pipeline(rich)
    assert str(cached.value) == str(fresh.value)
    line = next(i for i, text in enumerate(RICH.splitlines(), 1) if "category: test" in text)
    assert str(cached.value).startswith(f"{rich}:{line}:19: category must be one of")


def test_invalid_files_are_never_cached(rich: Path) -> None:
    rich.write_text(RICH.replace("inputs: [source, dist]", "inputs: [source, dits]"))
    for _ in range(2):
        with pytest.raises(PipelineError, match=r"bakery\.yaml:\d+:\d+: input artifact 'dits'"):
            load_pipeline(rich, cache=True)
    assert not entry_of(rich).exists()
    folder = entry_of(rich).parent
    assert not folder.exists() or not any(folder.iterdir())


def _truncate(doc: dict[str, Any], raw: bytes, other: bytes) -> bytes:
    return raw[: len(raw) // 2]


def _garbage(doc: dict[str, Any], raw: bytes, other: bytes) -> bytes:
    return b"\x00\xff not json at all"


def _empty(doc: dict[str, Any], raw: bytes, other: bytes) -> bytes:
    return b""


def _not_a_mapping(doc: dict[str, Any], raw: bytes, other: bytes) -> bytes:
    return json.dumps([doc]).encode()


def _other_files_entry(doc: dict[str, Any], raw: bytes, other: bytes) -> bytes:
    return other


def _other_format(doc: dict[str, Any], raw: bytes, other: bytes) -> bytes:
    return json.dumps({**doc, "format": definition_cache.FORMAT + 1}).encode()


def _no_hash(doc: dict[str, Any], raw: bytes, other: bytes) -> bytes:
    return json.dumps({k: v for k, v in doc.items() if k != "hash"}).encode()


def _tampered_definition(doc: dict[str, Any], raw: bytes, other: bytes) -> bytes:
    doc["definition"]["stages"][1]["actions"][0]["run"] = "rm -rf /"
    return json.dumps(doc).encode()


def _wrong_types(doc: dict[str, Any], raw: bytes, other: bytes) -> bytes:
    doc["definition"]["stages"][1]["actions"][0]["timeout"] = "90"
    return json.dumps(doc).encode()


def _unknown_field(doc: dict[str, Any], raw: bytes, other: bytes) -> bytes:
    doc["definition"]["stages"][1]["actions"][0]["shell"] = "zsh"
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "damage",
    [
        _truncate, _garbage, _empty, _not_a_mapping, _other_files_entry, _other_format,
        _no_hash, _tampered_definition, _wrong_types, _unknown_field,
    ],
)  # fmt: skip
def test_a_bad_entry_is_a_miss_and_is_rewritten(
    rich: Path, tmp_path: Path, damage: Callable[[dict[str, Any], bytes, bytes], bytes]
) -> None:
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text(MINIMAL)
    load_pipeline(minimal, cache=True)
    fresh = load_pipeline(rich, cache=True)
    entry = entry_of(rich)
    raw = entry.read_bytes()
    entry.write_bytes(damage(json.loads(raw), raw, entry_of(minimal).read_bytes()))
    assert definition_cache.lookup(rich.read_bytes()) is None
    again = load_pipeline(rich, cache=True)
    assert again == fresh and definition_hash(again) == PINNED["rich"][1]
    assert entry.read_bytes() == raw  # rewritten whole
    assert definition_cache.lookup(rich.read_bytes()) == fresh


def test_concurrent_writers_never_show_readers_half_an_entry(rich: Path) -> None:
    data = rich.read_bytes()
    expected = load_pipeline(rich)
    seen: list[Any] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        try:
            for _ in range(30):
                definition_cache.remember(data, expected)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def read() -> None:
        try:
            while not stop.is_set():
                seen.append(definition_cache.lookup(data))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    writers = [threading.Thread(target=write) for _ in range(4)]
    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    hits = [p for p in seen if p is not None]
    assert hits and all(p == expected for p in hits)
    assert sorted(p.name for p in entry_of(rich).parent.iterdir()) == [entry_of(rich).name]


def test_least_recently_used_entries_are_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(definition_cache, "MAX_ENTRIES", 3)
    files = []
    for i in range(5):
        path = tmp_path / f"p{i}.yaml"
        path.write_text(MINIMAL.replace("name: minimal", f"name: minimal{i}"))
        files.append(path)
    load_pipeline(files[0], cache=True)
    folder = entry_of(files[0]).parent
    stale = folder / ".left-by-a-dead-writer.tmp"
    stale.write_text("{")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    for age, path in enumerate(files[1:4], 1):
        load_pipeline(path, cache=True)
        os.utime(entry_of(path), (time.time() - 100 + age, time.time() - 100 + age))
    os.utime(entry_of(files[0]), (time.time() - 200, time.time() - 200))
    load_pipeline(files[0], cache=True)  # a hit: now the most recently used
    load_pipeline(files[4], cache=True)  # a miss: writes, then prunes
    kept = {p.name for p in folder.iterdir()}
    assert kept == {entry_of(p).name for p in (files[0], files[3], files[4])}


def test_no_usable_cache_directory_only_costs_the_cache(
    rich: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("BAKERY_CONFIG_DIR", str(blocker))
    for _ in range(2):
        assert definition_hash(load_pipeline(rich, cache=True)) == PINNED["rich"][1]
    assert blocker.read_text() == ""


_PROBE = """
import json, sys
from engine.loader import load_pipeline
pipeline = load_pipeline(sys.argv[1], cache=True)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core", "yaml")
               or m in ("engine.schema", "engine.validation", "engine.yamlsafe",
                        "engine.definition_check"))
engine = sorted(m for m in sys.modules if m == "engine" or m.startswith("engine."))
print(json.dumps({"name": pipeline.name, "heavy": heavy, "engine": engine}))
"""


def _probe(path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(proc.stdout)


def test_a_hit_imports_neither_pydantic_nor_yaml(rich: Path) -> None:
    miss, hit = _probe(rich), _probe(rich)
    assert miss["name"] == hit["name"] == "pinned pipeline"
    assert "pydantic" in miss["heavy"] and "yaml" in miss["heavy"]
    assert hit["heavy"] == []


def test_the_key_covers_every_module_that_decides_a_definition(rich: Path) -> None:
    """A module added to the checking path must be added to the key, or editing it would
    leave stale entries in use."""
    assert definition_cache._code_digest() is not None
    checked = _probe(rich)["engine"]
    assert "engine.definition_check" in checked
    files = {name.removeprefix("engine.") + ".py" for name in checked if name != "engine"}
    assert files <= set(definition_cache._CODE)
    assert (ROOT / "engine" / "__init__.py").read_text().strip() == ""


_CLI = """
import sys
from engine.cli import main
code = main(sys.argv[1:])
sys.stderr.write("\\nPYDANTIC-LOADED=%s\\n" % ("pydantic" in sys.modules))
sys.exit(code)
"""


def test_bakery_run_uses_the_cache_and_still_reports_errors(
    make_repo: Callable[..., Any],
) -> None:
    repo = make_repo(MINIMAL)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _CLI, "run", "--plain"],
            cwd=repo.path,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )

    first, second = run(), run()
    for proc in (first, second):
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "[Build/Hello] | hello" in proc.stdout
    assert "PYDANTIC-LOADED=True" in first.stderr
    assert "PYDANTIC-LOADED=False" in second.stderr
    assert "#1 minimal v1 " in first.stdout and "#2 minimal v1 " in second.stdout  # same hash

    repo.write("bakery.yaml", MINIMAL.replace("run: echo hello", "rn: echo hello"))
    broken = run()
    assert broken.returncode == 2
    assert "bakery.yaml:6:" in broken.stderr and "unknown key 'rn'" in broken.stderr
