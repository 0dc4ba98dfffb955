"""Delete old executions: their events, projection rows, log lines, index rows and run dirs.

An unfinished execution is never removed (its status is re-checked inside the deleting
transaction, so one that a retry just restarted is left alone). Deletion runs a few dozen
executions per transaction so a running engine waits at most one short transaction.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.replay import query
from engine.store import RunSummary, Store

CHUNK = 50
_TERMINAL = tuple(sorted(ev.RUN_TERMINAL))


class PruneError(Exception):
    """Prune was asked nothing (or something impossible); the message is for the user."""


@dataclass(slots=True)
class PruneReport:
    runs: list[RunSummary] = field(default_factory=list)  # removed (or, dry run, to remove)
    events: int = 0
    lines: int = 0
    dirs: int = 0
    dry_run: bool = False
    vacuumed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "executions": [
                {"id": r.id, "pipeline": r.pipeline, "number": r.number} for r in self.runs
            ],
            "events": self.events,
            "log_lines": self.lines,
            "run_dirs": self.dirs,
            "vacuumed": self.vacuumed,
        }


def select(
    store: Store,
    *,
    keep: int | None = None,
    older_than_days: float | None = None,
    pipeline: str | None = None,
    now: float | None = None,
) -> list[RunSummary]:
    """Finished executions to remove: beyond the newest `keep` of their pipeline AND
    created more than `older_than_days` ago (each condition only when given)."""
    if keep is None and older_than_days is None:
        raise PruneError("say what to remove: --keep N and/or --older-than DAYS")
    if keep is not None and keep < 0:
        raise PruneError("--keep takes a number >= 0")
    cutoff = None if older_than_days is None else (now or time.time()) - older_than_days * 86400
    chosen: list[RunSummary] = []
    pipelines = (
        [pipeline]
        if pipeline
        else sorted({r[0] for r in query(store, "SELECT DISTINCT pipeline FROM runs")})
    )
    for name in pipelines:
        for index, run in enumerate(store.runs(pipeline=name)):  # newest first
            if keep is not None and index < keep:
                continue
            if cutoff is not None and run.created_at >= cutoff:
                continue
            if run.finished_at is None or run.status not in ev.RUN_TERMINAL:
                continue
            chosen.append(run)
    return sorted(chosen, key=lambda r: (r.pipeline, r.number))


def _delete_chunk(store: Store, ids: Sequence[str]) -> tuple[list[str], int, int]:
    """Delete these executions (those still finished); returns (deleted ids, events, lines)."""
    marks = ",".join("?" * len(ids))
    with store.transaction() as conn:
        done = [
            r[0]
            for r in conn.execute(
                f"SELECT id FROM runs WHERE id IN ({marks}) AND finished_at IS NOT NULL"
                f" AND status IN ({','.join('?' * len(_TERMINAL))})",
                [*ids, *_TERMINAL],
            ).fetchall()
        ]
        if not done:
            return [], 0, 0
        marks = ",".join("?" * len(done))
        sources = [
            r[0]
            for r in conn.execute(
                f"SELECT id FROM log_sources WHERE run_id IN ({marks})", done
            ).fetchall()
        ]
        lines = 0
        if sources:
            smarks = ",".join("?" * len(sources))
            has_fts = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'log_chunks_fts'"
            ).fetchone()
            if has_fts:
                from engine.search import CURSOR_KEY

                row = conn.execute("SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,)).fetchone()
                cursor = int(row[0]) if row else 0
                # external content: the index needs the old text to forget a row
                conn.execute(
                    "INSERT INTO log_chunks_fts (log_chunks_fts, rowid, text)"
                    " SELECT 'delete', id, text"
                    f" FROM log_chunks WHERE source IN ({smarks}) AND id <= ?",
                    [*sources, cursor],
                )
            lines = conn.execute(
                "SELECT COALESCE(SUM(last_line - first_line + 1), 0) FROM log_chunks"
                f" WHERE source IN ({smarks})",
                sources,
            ).fetchone()[0]
            conn.execute(f"DELETE FROM log_chunks WHERE source IN ({smarks})", sources)
            conn.execute(f"DELETE FROM log_sources WHERE id IN ({smarks})", sources)
        events = conn.execute(f"DELETE FROM events WHERE run_id IN ({marks})", done).rowcount
        conn.execute(f"DELETE FROM commands WHERE run_id IN ({marks})", done)
        conn.execute(f"DELETE FROM runs WHERE id IN ({marks})", done)
        _clamp_cursor(conn)
    return done, max(0, events), max(0, lines)


def _clamp_cursor(conn: Any) -> None:
    """Row ids of `log_chunks` are reused after the newest rows go: keep the index cursor at
    or below the highest remaining id so lines written later are still indexed."""
    from engine.search import CURSOR_KEY

    row = conn.execute("SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,)).fetchone()
    if row is None:
        return
    top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM log_chunks").fetchone()[0]
    if int(row[0]) > int(top):
        conn.execute("UPDATE meta SET value = ? WHERE key = ?", (str(top), CURSOR_KEY))


def prune(
    store: Store,
    *,
    keep: int | None = None,
    older_than_days: float | None = None,
    pipeline: str | None = None,
    state_dir: str | Path | None = None,
    dry_run: bool = False,
    vacuum: bool = False,
    now: float | None = None,
) -> PruneReport:
    """Remove what `select` picks; run directories go after their rows are gone."""
    chosen = select(store, keep=keep, older_than_days=older_than_days, pipeline=pipeline, now=now)
    report = PruneReport(dry_run=dry_run)
    if dry_run:
        report.runs = chosen
        return report
    by_id = {r.id: r for r in chosen}
    ids = list(by_id)
    for i in range(0, len(ids), CHUNK):
        done, events, lines = _delete_chunk(store, ids[i : i + CHUNK])
        report.runs.extend(by_id[d] for d in done)
        report.events += events
        report.lines += lines
        if state_dir is not None:
            for run_id in done:
                path = Path(state_dir) / "runs" / run_id
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                    report.dirs += 1
    report.runs.sort(key=lambda r: (r.pipeline, r.number))
    if vacuum and report.runs:
        with store._lock:
            store.conn.execute("VACUUM")
        report.vacuumed = True
    return report
