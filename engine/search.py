"""Full-text search over every stored log line (SQLite FTS5).

The index (`logs_fts`, an external-content FTS5 table over `logs`) is filled lazily from a
cursor kept in `meta`, in short batches, when someone searches and after an execution
finishes - never by a trigger on insert, so a noisy action's writes cost no more than before.

User text is searched as one phrase (case-insensitive, whole words) unless `raw` is asked
for, in which case it is an FTS5 query (`error AND NOT warning`, `"exit code" 1`, `modu*`,
`NEAR(a b, 5)`); a bad raw query is reported, not raised as an SQLite error.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.replay import query
from engine.state import iso
from engine.store import STREAMS, Store

CURSOR_KEY = "fts_cursor"
BATCH = 2000
COUNT_CAP = 10_000
_HL_START, _HL_END = "\x01", "\x02"

FTS_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(text, content='logs',"
    " content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
)


class SearchError(Exception):
    """A search that cannot run (bad --raw syntax...); the message is for the user."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One matching log line and where it was written."""

    line_id: int
    run_id: str
    pipeline: str
    number: int
    stage: str
    action: str
    attempt: int
    line_no: int
    ts: float
    stream: str
    text: str
    spans: tuple[tuple[int, int], ...] = ()  # matched [start, end) character ranges of text

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "number": self.number,
            "stage": self.stage,
            "action": self.action,
            "attempt": self.attempt,
            "line_no": self.line_no,
            "time": iso(self.ts),
            "stream": self.stream,
            "text": self.text,
            "spans": [list(s) for s in self.spans],
        }


@dataclass(frozen=True, slots=True)
class FirstSeen:
    """The oldest stored line that matches: which execution and commit brought the text in."""

    run_id: str
    pipeline: str
    number: int
    ts: float
    stage: str
    action: str
    line_no: int
    commit_id: str | None
    branch: str | None
    subject: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "number": self.number,
            "time": iso(self.ts),
            "stage": self.stage,
            "action": self.action,
            "line_no": self.line_no,
            "commit": {"id": self.commit_id, "branch": self.branch, "subject": self.subject},
        }


@dataclass(slots=True)
class SearchResult:
    text: str
    match: str  # the FTS5 expression used ("" for a plain substring scan)
    hits: list[Hit] = field(default_factory=list)  # newest first
    total: int = 0  # matching lines, counted up to COUNT_CAP
    executions: int = 0  # distinct executions among those
    capped: bool = False
    first_seen: FirstSeen | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "match": self.match,
            "total": self.total,
            "total_is_lower_bound": self.capped,
            "executions": self.executions,
            "first_seen": self.first_seen.to_json() if self.first_seen else None,
            "hits": [h.to_json() for h in self.hits],
        }


# -- indexing --------------------------------------------------------------------------------
def ensure_index(store: Store) -> None:
    """Create the FTS table in a store made before it existed (idempotent, cheap)."""
    if query(store, "SELECT 1 FROM sqlite_master WHERE name = 'logs_fts'"):
        return
    with store.transaction() as conn:
        conn.execute(FTS_DDL)


def indexed_up_to(store: Store) -> int:
    rows = query(store, "SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,))
    return int(rows[0][0]) if rows else 0


def pending_lines(store: Store) -> int:
    """About how many stored lines wait to be indexed (cheap: two index look-ups)."""
    top = query(store, "SELECT COALESCE(MAX(id), 0) FROM logs")[0][0]
    return max(0, int(top) - indexed_up_to(store))


def index_pending(
    store: Store, *, batch: int = BATCH, pause: float = 0.0, max_batches: int | None = None
) -> int:
    """Index the lines stored since the last call, a short transaction per batch.

    The cursor is read inside the write transaction, so two indexers (a search and a
    finished execution at once) never index a line twice. Returns the lines indexed.
    """
    ensure_index(store)
    done = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        with store.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,)).fetchone()
            cursor = int(row[0]) if row else 0
            upto, count = conn.execute(
                "SELECT MAX(id), COUNT(*) FROM"
                " (SELECT id FROM logs WHERE id > ? ORDER BY id LIMIT ?)",
                (cursor, batch),
            ).fetchone()
            if not count:
                break
            conn.execute(
                "INSERT INTO logs_fts (rowid, text) SELECT id, text FROM logs"
                " WHERE id > ? AND id <= ? ORDER BY id",
                (cursor, upto),
            )
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (CURSOR_KEY, str(upto))
            )
        done += int(count)
        batches += 1
        if pause:
            time.sleep(pause)  # let a running execution's writer in between batches
    return done


class BackgroundIndexer:
    """Recorder subscriber: when an execution finishes, index its lines on a thread.

    The thread has its own connection, so the engine's store is never held by it; each
    batch is one short write transaction with a pause after it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False

    def __call__(self, item: object) -> None:
        if (
            isinstance(item, ev.Event)
            and item.type == ev.RUN_STATUS
            and item.data.get("status") in ev.RUN_TERMINAL
        ):
            self.kick()

    def kick(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._again = True
                return
            self._again = False
            self._thread = threading.Thread(target=self._work, name="bakery-fts", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            try:
                store = Store(self.path)
                try:
                    index_pending(store, pause=0.005)
                finally:
                    store.close()
            except (sqlite3.Error, OSError):
                pass  # the next search indexes what is left
            with self._lock:
                if not self._again:
                    return
                self._again = False

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


def attach_indexer(recorder: Any) -> BackgroundIndexer | None:
    """Index finished executions in the background (stores on disk only)."""
    path = Path(recorder.store.path)
    if str(path) == ":memory:":
        return None
    indexer = BackgroundIndexer(path)
    recorder.subscribe(indexer)
    return indexer


# -- searching -------------------------------------------------------------------------------
def fts_query(text: str, *, raw: bool = False, prefix: bool = False) -> str:
    """The FTS5 expression for user text: a quoted phrase unless `raw`.

    `prefix` lets the phrase's last word match as a prefix (search as you type).
    """
    if raw:
        return text
    phrase = '"' + text.replace('"', '""') + '"'
    return phrase + " *" if prefix else phrase


def _has_words(text: str) -> bool:
    return re.search(r"[^\W_]", text) is not None


def _spans(marked: str | None, text: str) -> tuple[tuple[int, int], ...]:
    if not marked or _HL_START in text or _HL_END in text:
        return ()
    spans: list[tuple[int, int]] = []
    pos = 0
    start = 0
    for ch in marked:
        if ch == _HL_START:
            start = pos
        elif ch == _HL_END:
            spans.append((start, pos))
        else:
            pos += 1
    return tuple(spans)


_HIT_COLUMNS = (
    "l.id, s.run_id, r.pipeline, r.number, s.stage, s.action, s.attempt, l.line_no, l.ts,"
    " l.stream, l.text"
)
_JOINS = " JOIN log_sources s ON s.id = l.source JOIN runs r ON r.id = s.run_id"


def _filters(pipeline: str | None, run_id: str | None) -> tuple[str, list[Any]]:
    sql, args = "", []
    if pipeline:
        sql += " AND r.pipeline = ?"
        args.append(pipeline)
    if run_id:
        sql += " AND s.run_id = ?"
        args.append(run_id)
    return sql, args


def _hit(
    row: tuple[Any, ...], marked: str | None, spans: tuple[tuple[int, int], ...] | None = None
) -> Hit:
    i, rid, pipe, num, stage, action, attempt, line_no, ts, sc, text = row
    return Hit(
        int(i),
        str(rid),
        str(pipe),
        int(num),
        str(stage),
        str(action),
        int(attempt),
        int(line_no),
        float(ts),
        STREAMS[sc] if sc < len(STREAMS) else "stdout",
        str(text),
        _spans(marked, str(text)) if spans is None else spans,
    )


_FIRST_COLUMNS = (
    "s.run_id, r.pipeline, r.number, l.ts, s.stage, s.action, l.line_no,"
    " r.commit_id, r.branch, r.subject"
)


def _first_seen(row: tuple[Any, ...]) -> FirstSeen:
    rid, pipe, num, ts, stage, action, line_no, commit, branch, subject = row
    return FirstSeen(
        str(rid),
        str(pipe),
        int(num),
        float(ts),
        str(stage),
        str(action),
        int(line_no),
        commit,
        branch,
        subject,
    )


def search(
    store: Store,
    text: str,
    *,
    limit: int = 50,
    raw: bool = False,
    prefix: bool = False,
    pipeline: str | None = None,
    run_id: str | None = None,
    index: bool = True,
) -> SearchResult:
    """Matching log lines, newest first, with a count and where the text was first seen.

    Lines stored since the last index run are indexed first (unless `index` is False, or
    the store is read-only: then what is indexed is searched).
    """
    if not text.strip():
        raise SearchError("give some text to search for")
    if index:
        try:
            index_pending(store)
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc) and "read-only" not in str(exc):
                raise
    if not raw and not _has_words(text):
        return _scan(store, text, limit=limit, pipeline=pipeline, run_id=run_id)
    match = fts_query(text, raw=raw, prefix=prefix)
    where, args = _filters(pipeline, run_id)
    base = f" FROM logs_fts f JOIN logs l ON l.id = f.rowid{_JOINS} WHERE logs_fts MATCH ?{where}"
    try:
        rows = query(
            store,
            f"SELECT {_HIT_COLUMNS}, highlight(logs_fts, 0, char(1), char(2)){base}"
            " ORDER BY f.rowid DESC LIMIT ?",
            [match, *args, max(0, limit)],
        )
        total, executions = query(
            store,
            "SELECT COUNT(*), COUNT(DISTINCT s.run_id) FROM (SELECT rowid AS id FROM logs_fts"
            " WHERE logs_fts MATCH ? ORDER BY rowid DESC LIMIT ?) m"
            f" JOIN logs l ON l.id = m.id{_JOINS} WHERE 1=1{where}",
            [match, COUNT_CAP + 1, *args],
        )[0]
        first = query(
            store, f"SELECT {_FIRST_COLUMNS}{base} ORDER BY f.rowid ASC LIMIT 1", [match, *args]
        )
    except sqlite3.OperationalError as exc:
        if raw:
            raise SearchError(
                f"not a valid FTS5 query ({exc}); leave out --raw to search the text as written"
            ) from None
        raise
    result = SearchResult(text, match, [_hit(r[:-1], r[-1]) for r in rows])
    result.total = min(int(total), COUNT_CAP)
    result.capped = int(total) > COUNT_CAP
    result.executions = int(executions)
    result.first_seen = _first_seen(first[0]) if first else None
    return result


def _scan(
    store: Store, text: str, *, limit: int, pipeline: str | None, run_id: str | None
) -> SearchResult:
    """Text without a word (`-->`, `:::`) cannot be an FTS phrase: look for it line by line."""
    where, args = _filters(pipeline, run_id)
    needle = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    cond = f" FROM logs l{_JOINS} WHERE l.text LIKE '%' || ? || '%' ESCAPE '\\'{where}"
    rows = query(
        store, f"SELECT {_HIT_COLUMNS}{cond} ORDER BY l.id DESC LIMIT ?", [needle, *args, limit]
    )
    result = SearchResult(text, "")
    lowered = text.lower()
    for row in rows:
        at = str(row[-1]).lower().find(lowered)
        result.hits.append(_hit(row, None, ((at, at + len(text)),) if at >= 0 else ()))
    total, executions = query(
        store,
        f"SELECT COUNT(*), COUNT(DISTINCT run_id) FROM (SELECT s.run_id AS run_id{cond} LIMIT ?)",
        [needle, *args, COUNT_CAP + 1],
    )[0]
    result.total = min(int(total), COUNT_CAP)
    result.capped = int(total) > COUNT_CAP
    result.executions = int(executions)
    first = query(
        store, f"SELECT {_FIRST_COLUMNS}{cond} ORDER BY l.id ASC LIMIT 1", [needle, *args]
    )
    result.first_seen = _first_seen(first[0]) if first else None
    return result
