"""Guarantees 5 and 6: damaged, foreign-version and full stores never cost data or hang a run.

The damaged files are real SQLite files broken the ways disks and people break them; the
full disk is a real small tmpfs when we may mount one, and SQLite's own page limit always.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import events as ev
from engine.store import SCHEMA_VERSION, Store, StoreError, open_store
from tests.reliability._support import (
    action_of,
    alive,
    bakery,
    carrying,
    db_path,
    engine_for,
    integrity,
    pids_in,
    run_to_end,
    runs,
    sql,
    state_dir,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)

CHATTY = """
name: chatty
stages:
  - name: Source
    actions:
      - {name: Checkout, category: source}
  - name: Build
    actions:
      - {name: Talk, category: build, run: "for i in $(seq 1 3000); do echo hello line $i; done"}
"""


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- 5. damaged, newer, older ------------------------------------------------------------------


def _truncate(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def _scribble(db: Path) -> None:
    """Overwrite a run of pages in the middle: the b-trees point at garbage."""
    data = bytearray(db.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 3 * 4096] = b"\xa5" * (3 * 4096)
    db.write_bytes(bytes(data))


def _garbage(db: Path) -> None:
    db.write_bytes(os.urandom(db.stat().st_size))


@pytest.mark.parametrize("damage", [_truncate, _scribble, _garbage], ids=lambda f: f.__name__[1:])
def test_damaged_store_is_moved_aside_kept_and_a_fresh_one_started(
    damage: Callable[[Path], None], make_repo: Callable[..., Any]
) -> None:
    repo = make_repo(CHATTY)
    assert bakery("run", "--plain", cwd=repo.path).returncode == 0
    db = db_path(repo.path)
    with sql(db) as conn:  # the last connection to close checkpoints: one file to damage
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not Path(f"{db}-wal").exists()
    damage(db)
    damaged = sha(db)

    looked = bakery("history", cwd=repo.path)  # a reading command never repairs or moves
    assert "Traceback" not in looked.stderr
    if looked.returncode != 0:  # the pages it reads are damaged: it says so
        assert "the store could not be used" in looked.stderr
    assert sha(db) == damaged

    again = bakery("run", "--plain", cwd=repo.path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "could not be read" in again.stderr and "moved to" in again.stderr
    (aside,) = state_dir(repo.path).glob("bakery.db.damaged-*[0-9]")
    assert str(aside) in again.stderr
    assert sha(aside) == damaged  # kept byte for byte
    assert integrity(db) == "ok"
    assert [(n, s) for _, n, s in runs(db)] == [(1, ev.SUCCEEDED)]

    damage(db)  # damaged again in the same second: the first copy is not overwritten
    third = bakery("run", "--plain", cwd=repo.path)
    assert third.returncode == 0, third.stderr
    copies = sorted(state_dir(repo.path).glob("bakery.db.damaged-*"))
    assert aside in copies and sha(aside) == damaged
    assert len([c for c in copies if not str(c).endswith(("-wal", "-shm"))]) == 2


def _set_version(db: Path, version: str | None) -> None:
    with sql(db) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")  # as an older or newer Bakery may leave it
        if version is None:
            conn.execute("DELETE FROM meta WHERE key = 'schema_version'")
        else:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
        conn.commit()


def test_store_from_a_newer_bakery_is_refused_and_left_unchanged(
    make_repo: Callable[..., Any],
) -> None:
    repo = make_repo(CHATTY)
    assert bakery("run", "--plain", cwd=repo.path).returncode == 0
    db = db_path(repo.path)
    newer = SCHEMA_VERSION + 1
    _set_version(db, str(newer))
    before = sha(db)
    files = sorted(p.name for p in state_dir(repo.path).iterdir())
    for args in (["run", "--plain"], ["history"], ["show", "1"]):
        proc = bakery(*args, cwd=repo.path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"written by a newer Bakery (schema {newer}" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert sha(db) == before  # not even the journal mode was switched
    assert sorted(p.name for p in state_dir(repo.path).iterdir()) == files


def test_store_from_an_older_bakery_is_migrated_with_its_history(
    make_repo: Callable[..., Any],
) -> None:
    """Schema 0 (before `schema_version` existed and before the search tables and the newer
    indexes): opened, migrated in place, its executions and logs still there and searchable."""
    repo = make_repo(CHATTY)
    assert bakery("run", "--plain", cwd=repo.path).returncode == 0
    db = db_path(repo.path)
    with sql(db) as conn:
        current = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%fts5%'"
        ).fetchall():
            conn.execute(f"DROP TABLE {name}")
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'runs_by_%'"
        ).fetchall():
            conn.execute(f"DROP INDEX {name}")
        conn.execute("DELETE FROM meta")
        conn.commit()
        dropped = current - {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert dropped, "nothing to migrate"
    _set_version(db, None)

    history = bakery("history", "--json", cwd=repo.path)
    assert history.returncode == 0, history.stderr
    assert '"status": "Succeeded"' in history.stdout
    with sql(db) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert version == (str(SCHEMA_VERSION),)
    assert dropped <= tables  # every table and index of the current schema is back
    found = bakery("search", "hello line 2999", cwd=repo.path)
    assert found.returncode == 0 and "Build/Talk" in found.stdout, found.stdout + found.stderr
    second = bakery("run", "--plain", cwd=repo.path)
    assert second.returncode == 0
    assert [(n, s) for _, n, s in runs(db)] == [(1, ev.SUCCEEDED), (2, ev.SUCCEEDED)]
    assert integrity(db) == "ok"


# -- 6. a full disk ----------------------------------------------------------------------------

FLOODER = """
name: full
variables:
  - {{name: FLOOD, default: "0"}}
stages:
  - name: Source
    actions:
      - {{name: Checkout, category: source}}
  - name: Build
    actions:
      - name: Flood
        category: build
        run: |
          echo $$ >> {tmp}/pids
          if [ "#{{variables.FLOOD}}" = 1 ]; then yes "filler filler filler filler filler"; fi
          echo done
      - name: Bystander
        category: build
        run: |
          sleep 300 &
          echo $! >> {tmp}/pids
          if [ "#{{variables.FLOOD}}" = 1 ]; then wait; fi
"""


async def test_store_that_refuses_writes_fails_the_run_clearly_and_recovers(
    make_repo: Callable[..., Any], tmp_path: Path
) -> None:
    """SQLite's page limit stands in for a full disk (it raises the same SQLITE_FULL): the
    running actions are stopped and fail with a clear error, nothing hangs, the store stays
    readable, and the next execution works once there is room again."""
    repo = make_repo(FLOODER.format(tmp=tmp_path))
    engine, pipeline, version = await engine_for(repo.path)
    try:
        pages = engine.store.conn.execute("PRAGMA page_count").fetchone()[0]
        engine.store.conn.execute(f"PRAGMA max_page_count = {pages + 40}")  # ~160 KiB of room
        ex = await engine.start_execution(pipeline, version=version, variables={"FLOOD": "1"})
        state = await asyncio.wait_for(engine.wait(ex.run_id), 60)
    finally:
        await engine.close()
    assert state.status == ev.FAILED
    assert state.error["type"] == "InternalError"
    assert "database or disk is full" in state.error["message"]
    for name in ("Flood", "Bystander"):
        action = state.action("Build", name)
        assert action.status == ev.FAILED, (name, action)
        assert (
            "the store could not be written (database or disk is full)" in action.error["message"]
        )
    pids = pids_in(tmp_path / "pids")
    wait_for(lambda: not any(alive(p) for p in pids), timeout=10, what="children stopped")
    assert carrying("BAKERY_RUN_ID", ex.run_id) == []

    assert integrity(db_path(repo.path)) == "ok"
    reader = Store(db_path(repo.path), readonly=True)
    stored = reader.load_run(ex.run_id)
    reader.close()
    assert stored is not None and stored.status == ev.FAILED  # the small final events fit

    _, again = await run_to_end(repo.path)  # a new connection: no page limit any more
    assert again.status == ev.SUCCEEDED, again.to_json()


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
    )
    return proc.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB filesystem (tmpfs), or a skip when this machine does not let us mount."""
    where = tmp_path / "disk"
    if not _mount_tmpfs(where, "8m"):
        pytest.skip(
            "cannot mount a tmpfs here (needs root); the page-limit test covers SQLITE_FULL"
        )
    try:
        yield where
    finally:
        with contextlib.suppress(OSError):
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def test_full_disk_during_a_run_fails_clearly_and_the_next_run_works(
    make_repo: Callable[..., Any], tmp_path: Path, small_disk: Path
) -> None:
    """The store and run directories on an 8 MiB disk that a ballast file nearly fills."""
    repo = make_repo(FLOODER.format(tmp=tmp_path))
    store_dir = small_disk / "state"
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (6 * 2**20))

    full = bakery(
        "run", "--plain", "--state-dir", str(store_dir), "--var", "FLOOD=1", cwd=repo.path
    )
    assert full.returncode == 1, full.stdout[-3000:] + full.stderr
    out = full.stdout + full.stderr
    assert "Traceback" not in out
    assert "#1 execution Failed" in out and "database or disk is full" in out
    pids = pids_in(tmp_path / "pids")
    wait_for(lambda: not any(alive(p) for p in pids), timeout=10, what="children stopped")
    db = store_dir / "bakery.db"
    assert integrity(db) == "ok"

    ballast.unlink()  # space is back
    ok = bakery("run", "--plain", "--state-dir", str(store_dir), cwd=repo.path)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr
    statuses = {n: s for _, n, s in runs(db)}
    assert statuses == {1: ev.FAILED, 2: ev.SUCCEEDED}
    first = show_from(repo.path, store_dir, 1)
    assert action_of(first, "Build", "Flood")["status"] == ev.FAILED


def show_from(repo_path: Path, store_dir: Path, number: int) -> dict[str, Any]:
    proc = bakery("show", str(number), "--json", "--state-dir", str(store_dir), cwd=repo_path)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_a_locked_or_full_store_is_reported_not_moved_aside(
    make_repo: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """'database is locked' or 'disk is full' at start is not damage: the file stays put."""
    repo = make_repo(CHATTY)
    assert bakery("run", "--plain", cwd=repo.path).returncode == 0
    db = db_path(repo.path)

    def busy(self: Store) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(Store, "check", busy)
    with pytest.raises(StoreError, match="cannot open the store .*database is locked"):
        open_store(db.parent)
    assert not list(state_dir(repo.path).glob("bakery.db.damaged-*"))
    assert [(n, st) for _, n, st in runs(db)] == [(1, ev.SUCCEEDED)]  # still in place, intact
