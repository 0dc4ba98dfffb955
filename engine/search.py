"""Full-text search over every stored log line (SQLite FTS5).

The index (`log_chunks_fts`, an external-content FTS5 table over `log_chunks`) is filled
lazily from a cursor kept in `meta`, in short batches, when someone searches and after an
execution finishes - never by a trigger on insert, so a noisy action's writes cost no more.
It indexes chunks (the lines of one read, joined by "\n") with a tokenizer that splits words
at digits, so numbers cost the index nothing; it only finds *candidate* chunks (see
engine/search_plan.py: a query made of numbers scans the chunk text instead). A candidate
chunk is then looked into line by line, so every hit, count and "first seen" is about one
line, as if lines were indexed one by one with digits as word characters: `highlight()`
marks where the query's words are, the marked lines (or, for numbers, the lines holding
them) are matched again, alone, with the full query in a small in-memory FTS5 table.

User text is searched as one phrase (case-insensitive, whole words) unless `raw` is asked
for, in which case it is an FTS5 query (`error AND NOT warning`, `"exit code" 1`, `modu*`,
`NEAR(a b, 5)`); a bad raw query is reported, not raised as an SQLite error.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.replay import query
from engine.state import iso
from engine.store import (
    CHUNK_TOKENIZE,
    FTS_CURSOR_KEY,
    LINE_TOKENIZE,
    STREAMS,
    Store,
    line_id,
)

if TYPE_CHECKING:
    from engine.search_plan import Plan

CURSOR_KEY = FTS_CURSOR_KEY
BATCH = 64  # chunks (of up to 64 KiB) per indexing transaction
COUNT_CAP = 10_000
SCAN_CAP = 5_000
"""Chunks holding a matching line looked into to count the lines (past it the count is a
lower bound)."""
EXAMINE_CAP = 100_000
"""Candidate chunks looked into at most, matching or not (a search for a number scans the
chunks that hold its digits; past it the count is a lower bound)."""
_HL_START, _HL_END = "\x01", "\x02"

FTS_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS log_chunks_fts USING fts5(text, content='log_chunks',"
    f" content_rowid='id', tokenize=\"{CHUNK_TOKENIZE}\")"
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
    if query(store, "SELECT 1 FROM sqlite_master WHERE name = 'log_chunks_fts'"):
        return
    with store.transaction() as conn:
        conn.execute(FTS_DDL)


def indexed_up_to(store: Store) -> int:
    rows = query(store, "SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,))
    return int(rows[0][0]) if rows else 0


def pending_lines(store: Store) -> int:
    """How many stored lines wait to be indexed."""
    rows = query(
        store,
        "SELECT COALESCE(SUM(last_line - first_line + 1), 0) FROM log_chunks WHERE id > ?",
        (indexed_up_to(store),),
    )
    return int(rows[0][0])


def index_pending(
    store: Store, *, batch: int = BATCH, pause: float = 0.0, max_batches: int | None = None
) -> int:
    """Index the chunks stored since the last call, a short transaction per batch.

    The cursor (a chunk id) is read inside the write transaction, so two indexers (a search
    and a finished execution at once) never index a chunk twice. Returns the lines indexed.
    """
    ensure_index(store)
    done = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        with store.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,)).fetchone()
            cursor = int(row[0]) if row else 0
            upto, lines = conn.execute(
                "SELECT MAX(id), SUM(last_line - first_line + 1) FROM"
                " (SELECT id, first_line, last_line FROM log_chunks WHERE id > ?"
                " ORDER BY id LIMIT ?)",
                (cursor, batch),
            ).fetchone()
            if upto is None:
                break
            conn.execute(
                "INSERT INTO log_chunks_fts (rowid, text) SELECT id, text FROM log_chunks"
                " WHERE id > ? AND id <= ? ORDER BY id",
                (cursor, upto),
            )
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (CURSOR_KEY, str(upto))
            )
        done += int(lines or 0)
        batches += 1
        if pause:
            time.sleep(pause)  # let a running execution's writer in between batches
    return done


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


def _marked_lines(marked: str) -> list[int]:
    """Indexes of the lines of a highlighted chunk that a marked span touches."""
    out = []
    inside = False
    for i, line in enumerate(marked.split("\n")):
        if inside or _HL_START in line:
            out.append(i)
        start, end = line.rfind(_HL_START), line.rfind(_HL_END)
        if start != end:  # a span may go on over the newline (a phrase across two lines)
            inside = start > end
    return out


class _LineMatcher:
    """Which lines of a chunk match: by FTS5 (`match`, whose `plan` says which lines may)
    or by substring (`needle`)."""

    def __init__(self, match: str | None = None, needle: str | None = None) -> None:
        self.match = match
        self.needle = needle.lower() if needle is not None else None
        self.plan: Plan | None = None  # which lines may match (see engine/search_plan.py)
        self._mem: sqlite3.Connection | None = None

    def check(self) -> None:
        """Raise sqlite3.OperationalError now when the query is not valid FTS5."""
        if self.match is not None:
            self._conn().execute("SELECT 1 FROM m WHERE m MATCH ?", (self.match,)).fetchall()

    def _conn(self) -> sqlite3.Connection:
        if self._mem is None:
            self._mem = sqlite3.connect(":memory:", isolation_level=None)
            self._mem.execute(
                f'CREATE VIRTUAL TABLE m USING fts5(text, tokenize="{LINE_TOKENIZE}")'
            )
        return self._mem

    def close(self) -> None:
        if self._mem is not None:
            self._mem.close()
            self._mem = None

    def lines(
        self, text: str, count: int, marked: str | None
    ) -> list[tuple[int, str, tuple[tuple[int, int], ...]]]:
        """(index in the chunk, text, spans) of each matching line, in order."""
        if self.needle is not None:
            texts = [text] if count == 1 else text.split("\n")
            out = []
            n = len(self.needle)
            for i, line in enumerate(texts):
                at = line.lower().find(self.needle)
                if at >= 0:
                    out.append((i, line, ((at, at + n),)))
            return out
        plan = self.plan
        if plan is None:
            candidates = list(enumerate([text] if count == 1 else text.split("\n")))
        elif count > 1 and marked is not None and _HL_START not in text and _HL_END not in text:
            texts = text.split("\n")
            candidates = [
                (i, texts[i]) for i in _marked_lines(marked) if plan.holds_digits(texts[i])
            ]
        else:
            candidates = plan.lines_holding_digits(text, count == 1)
        if not candidates:
            return []
        conn = self._conn()
        conn.execute("DELETE FROM m")
        conn.executemany("INSERT INTO m (rowid, text) VALUES (?, ?)", candidates)
        found = dict(
            conn.execute(
                "SELECT rowid, highlight(m, 0, char(1), char(2)) FROM m WHERE m MATCH ?",
                (self.match,),
            ).fetchall()
        )
        return [(i, line, _spans(found[i], line)) for i, line in candidates if i in found]


_CHUNK_COLUMNS = (
    "c.id, s.run_id, r.pipeline, r.number, s.stage, s.action, s.attempt, c.first_line,"
    " c.last_line, c.ts, c.stream, c.text, r.commit_id, r.branch, r.subject"
)
_JOINS = " JOIN log_sources s ON s.id = c.source JOIN runs r ON r.id = s.run_id"
_PAGE = 16


def _filters(pipeline: str | None, run_id: str | None) -> tuple[str, list[Any]]:
    sql, args = "", []
    if pipeline:
        sql += " AND r.pipeline = ?"
        args.append(pipeline)
    if run_id:
        sql += " AND s.run_id = ?"
        args.append(run_id)
    return sql, args


def _hit(row: tuple[Any, ...], index: int, text: str, spans: tuple[tuple[int, int], ...]) -> Hit:
    cid, rid, pipe, num, stage, action, attempt, first, _last, ts, sc = row[:11]
    return Hit(
        line_id(int(cid), index),
        str(rid),
        str(pipe),
        int(num),
        str(stage),
        str(action),
        int(attempt),
        int(first) + index,
        float(ts),
        STREAMS[sc] if sc < len(STREAMS) else "stdout",
        text,
        spans,
    )


def _first_seen(row: tuple[Any, ...], index: int) -> FirstSeen:
    _cid, rid, pipe, num, stage, action, _attempt, first, _last, ts = row[:10]
    commit, branch, subject = row[12:15]
    return FirstSeen(
        str(rid),
        str(pipe),
        int(num),
        float(ts),
        str(stage),
        str(action),
        int(first) + index,
        commit,
        branch,
        subject,
    )


def _chunks(
    store: Store, select: str, args: list[Any], *, newest_first: bool
) -> Iterator[tuple[Any, ...]]:
    """Rows of `select` (which ends in a WHERE clause) a page at a time, by chunk id."""
    cursor: int | None = None
    order = "DESC" if newest_first else "ASC"
    while True:
        bound = ""
        page_args = list(args)
        if cursor is not None:
            bound = " AND c.id < ?" if newest_first else " AND c.id > ?"
            page_args.append(cursor)
        rows = query(store, f"{select}{bound} ORDER BY c.id {order} LIMIT ?", [*page_args, _PAGE])
        yield from rows
        if len(rows) < _PAGE:
            return
        cursor = rows[-1][0]


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
    where, args = _filters(pipeline, run_id)
    if not raw and not _has_words(text):
        # text without a word (`-->`, `:::`) cannot be an FTS phrase: look for it in the text
        needle = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        matcher = _LineMatcher(needle=text)
        result = SearchResult(text, "")
        select = (
            f"SELECT {_CHUNK_COLUMNS}, NULL FROM log_chunks c{_JOINS}"
            f" WHERE c.text LIKE '%' || ? || '%' ESCAPE '\\'{where}"
        )
        select_args = [needle, *args]
        if "\n" in text:
            return result  # a line never holds one
    else:
        match = fts_query(text, raw=raw, prefix=prefix)
        matcher = _LineMatcher(match=match)
        if raw:
            try:
                matcher.check()
            except sqlite3.OperationalError as exc:
                matcher.close()
                raise SearchError(
                    f"not a valid FTS5 query ({exc}); leave out --raw to search the text as written"
                ) from None
        from engine.search_plan import plan  # (not on `bakery run`'s start-up path)

        matcher.plan = the_plan = plan(match)
        result = SearchResult(text, match)
        digits, digits_args = the_plan.where()
        if the_plan.chunk_match is None:  # numbers only: scan the chunks holding the digits
            select = (
                f"SELECT {_CHUNK_COLUMNS}, NULL FROM log_chunks c{_JOINS} WHERE {digits}{where}"
            )
            select_args = [*digits_args, *args]
        else:
            # a run of digits every matching line holds finds the candidate lines faster
            # (one regex over the chunk) than highlight(), which marks every word of the query
            marks = (
                "NULL"
                if the_plan.needs_digits
                else "highlight(log_chunks_fts, 0, char(1), char(2))"
            )
            select = (
                f"SELECT {_CHUNK_COLUMNS}, {marks}"
                f" FROM log_chunks_fts f JOIN log_chunks c ON c.id = f.rowid{_JOINS}"
                f" WHERE log_chunks_fts MATCH ? AND {digits}{where}"
            )
            select_args = [the_plan.chunk_match, *digits_args, *args]
    try:
        _collect(store, result, matcher, select, select_args, limit)
    except sqlite3.OperationalError as exc:
        if raw:
            raise SearchError(
                f"not a valid FTS5 query ({exc}); leave out --raw to search the text as written"
            ) from None
        raise
    finally:
        matcher.close()
    return result


def _collect(
    store: Store,
    result: SearchResult,
    matcher: _LineMatcher,
    select: str,
    args: list[Any],
    limit: int,
) -> None:
    """Fill hits (newest first), the count and first_seen from the matching chunks."""
    total = 0
    runs: set[str] = set()
    oldest: tuple[tuple[Any, ...], int] | None = None
    complete = True
    matching = 0
    for examined, row in enumerate(_chunks(store, select, args, newest_first=True), 1):
        found = matcher.lines(row[11], int(row[8]) - int(row[7]) + 1, row[-1])
        if found:
            matching += 1
            oldest = (row, found[0][0])
        for i, line, spans in reversed(found):
            if len(result.hits) < limit:
                result.hits.append(_hit(row, i, line, spans))
            total += 1
            if total <= COUNT_CAP + 1:
                runs.add(str(row[1]))
        if total > COUNT_CAP or matching >= SCAN_CAP or examined >= EXAMINE_CAP:
            complete = False
            break
    result.total = min(total, COUNT_CAP)
    result.capped = not complete
    result.executions = len(runs)
    if complete:
        result.first_seen = _first_seen(*oldest) if oldest else None
        return
    for n, row in enumerate(_chunks(store, select, args, newest_first=False)):
        found = matcher.lines(row[11], int(row[8]) - int(row[7]) + 1, row[-1])
        if found:
            result.first_seen = _first_seen(row, found[0][0])
            return
        if n >= EXAMINE_CAP:
            return
