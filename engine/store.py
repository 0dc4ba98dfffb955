"""The embedded store: one SQLite file (WAL) holding pipelines, events, log lines and commands.

The append-only `events` table is the single source of truth. The `runs` table is a
projection of it (number, status, commit) written in the same transaction as the event that
changes it, so listing 10,000 executions needs no fold, and it can always be rebuilt.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from engine import events as ev
from engine.state import RunState, fold

SCHEMA_VERSION = 3
"""1: log chunks and their FTS index; 2: that index splits words at digits (CHUNK_TOKENIZE);
3: the history's order, (created_at, number), is indexed whole, also within a pipeline, a
status, a branch and the unfinished runs (schema 2's indexes stopped at created_at)."""
SCHEMA_2_RUN_INDEXES = (
    "runs_by_created",
    "runs_by_pipeline",
    "runs_by_status",
    "runs_by_branch",
    "runs_unfinished",
)
"""Replaced in schema 3 by the runs_newest indexes, which end with number."""
DB_NAME = "bakery.db"

CHUNK_TOKENIZE = "unicode61 remove_diacritics 2 separators '0123456789'"
"""The chunk index's tokenizer: ASCII digits are separators, so numbers (`seq`, ids, times)
add no terms to the index (each new FTS5 term costs ~2 us). Search finds numbers by scanning
and matches every candidate line again with LINE_TOKENIZE (see engine/search_plan.py)."""
LINE_TOKENIZE = "unicode61 remove_diacritics 2"
"""What a search means by a word: a match is checked line by line with this tokenizer."""
FTS_CURSOR_KEY = "fts_chunk_cursor"
"""meta key: the highest log chunk id indexed in log_chunks_fts (filled by engine/search.py)."""

STREAMS = ("stdout", "stderr", "system")
_STREAM_CODE = {name: i for i, name in enumerate(STREAMS)}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pipelines (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    path TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT,
    ts REAL NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, seq);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    number INTEGER NOT NULL,
    status TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    trigger_type TEXT,
    commit_id TEXT,
    branch TEXT,
    subject TEXT,
    UNIQUE (pipeline, number)
);
-- newest first is ORDER BY created_at DESC, number DESC: read straight off the runs_newest
-- indexes, with no sort of equal times (schema 3)
CREATE INDEX IF NOT EXISTS runs_newest ON runs (created_at, number);
CREATE TABLE IF NOT EXISTS log_sources (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    action TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    UNIQUE (run_id, stage, action, attempt)
);
-- Log lines are stored in chunks: one row per batch of consecutive lines of one action
-- attempt read together (one stream, one read time), text = the lines joined by newlines.
-- A chunk of one line holds its text verbatim (even a newline), and lines with `raw` bytes
-- (invalid UTF-8, NUL) are always chunks of one line. A line's id is
-- chunk id * 65536 + its index in the chunk (see line_id).
CREATE TABLE IF NOT EXISTS log_chunks (
    id INTEGER PRIMARY KEY,
    source INTEGER NOT NULL,
    first_line INTEGER NOT NULL,
    last_line INTEGER NOT NULL,
    ts REAL NOT NULL,
    stream INTEGER NOT NULL,
    text TEXT NOT NULL,
    raw BLOB
);
CREATE INDEX IF NOT EXISTS log_chunks_by_source ON log_chunks (source, first_line);
CREATE INDEX IF NOT EXISTS log_chunks_by_time ON log_chunks (source, ts, last_line);
-- `logs`: the chunks as one row per line, for ad-hoc SQL and tests only (it splits every
-- chunk, so it is slow on big stores: Bakery itself never reads it)
CREATE VIEW IF NOT EXISTS logs (id, source, line_no, ts, stream, text, raw) AS
WITH RECURSIVE split (chunk, source, line_no, idx, ts, stream, raw, text, rest) AS (
    SELECT id, source, first_line, 0, ts, stream, raw,
        CASE WHEN last_line > first_line AND instr(text, char(10))
            THEN substr(text, 1, instr(text, char(10)) - 1) ELSE text END,
        CASE WHEN last_line > first_line AND instr(text, char(10))
            THEN substr(text, instr(text, char(10)) + 1) END
    FROM log_chunks
    UNION ALL
    SELECT chunk, source, line_no + 1, idx + 1, ts, stream, raw,
        CASE WHEN instr(rest, char(10)) THEN substr(rest, 1, instr(rest, char(10)) - 1) ELSE rest END,
        CASE WHEN instr(rest, char(10)) THEN substr(rest, instr(rest, char(10)) + 1) END
    FROM split WHERE rest IS NOT NULL
)
SELECT chunk * 65536 + idx, source, line_no, ts, stream, text, raw FROM split;
-- history, replay, compare, search, prune (engine/search.py, engine/prune.py) -----------
CREATE INDEX IF NOT EXISTS runs_newest_of_pipeline ON runs (pipeline, created_at, number);
CREATE INDEX IF NOT EXISTS runs_newest_of_status ON runs (status, created_at, number);
CREATE INDEX IF NOT EXISTS runs_newest_of_branch ON runs (branch, created_at, number);
CREATE INDEX IF NOT EXISTS runs_by_commit ON runs (commit_id);
CREATE INDEX IF NOT EXISTS runs_by_number ON runs (number);
CREATE INDEX IF NOT EXISTS runs_newest_unfinished ON runs (created_at, number)
    WHERE finished_at IS NULL;
CREATE VIRTUAL TABLE IF NOT EXISTS log_chunks_fts USING fts5(
    text, content='log_chunks', content_rowid='id', tokenize="{CHUNK_TOKENIZE}"
);
-- log_chunks_fts is filled lazily by engine/search.py from meta 'fts_chunk_cursor', never by
-- triggers
-- (end of history/search block) ---------------------------------------------------------
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY,
    run_id TEXT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    taken_at REAL,
    result TEXT
);
CREATE INDEX IF NOT EXISTS commands_untaken ON commands (taken_at, id);
""".replace("{CHUNK_TOKENIZE}", CHUNK_TOKENIZE)


class StoreError(Exception):
    """A store problem worth telling the user about (not a bug)."""


class RunSummary(NamedTuple):
    """One line of the history: a tuple, since 10,000 of them are built for every listing
    (a frozen dataclass took four times as long)."""

    id: str
    pipeline: str
    number: int
    status: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    trigger_type: str | None
    commit_id: str | None
    branch: str | None
    subject: str | None

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return self.finished_at - (self.started_at or self.created_at)


class Command(NamedTuple):
    id: int
    run_id: str | None
    kind: str
    payload: dict[str, Any]
    created_at: float


class StoredLine(NamedTuple):
    id: int
    stage: str
    action: str
    attempt: int
    line_no: int
    ts: float
    stream: str
    text: str
    raw: bytes | None


CHUNK_LINES = 65536
"""Most lines in one stored chunk (one read of a 64 KiB pipe never yields more)."""


def line_id(chunk_id: int, index: int) -> int:
    """A stored line's id: its chunk's id * CHUNK_LINES + its 0-based index in the chunk."""
    return chunk_id * CHUNK_LINES + index


def lines_to_chunks(lines: Iterable[ev.LogLine]) -> list[ev.LogChunk]:
    """Group lines into chunks: consecutive lines of one attempt with the same read time and
    stream and consecutive numbers. A line with `raw` bytes or a "\n" in its text gets a
    chunk of its own."""
    chunks: list[ev.LogChunk] = []
    key: tuple[Any, ...] | None = None
    texts: list[str] = []
    first = 0

    def close() -> None:
        if key is not None and texts:
            run_id, stage, action, attempt, ts, stream = key
            chunks.append(
                ev.LogChunk(
                    run_id, stage, action, attempt, first, len(texts), ts, stream, "\n".join(texts)
                )
            )

    for ln in lines:
        this = (ln.run_id, ln.stage, ln.action, ln.attempt, ln.ts, ln.stream)
        single = ln.raw is not None or "\n" in ln.text
        if (
            single
            or this != key
            or ln.line_no != first + len(texts)
            or len(texts) >= CHUNK_LINES
        ):
            close()
            key, texts, first = None, [], ln.line_no
            if single:
                chunks.append(
                    ev.LogChunk(
                        ln.run_id, ln.stage, ln.action, ln.attempt, ln.line_no, 1, ln.ts,
                        ln.stream, ln.text, ln.raw,
                    )
                )
                continue
            key = this
        texts.append(ln.text)
    close()
    return chunks


def _split_chunk(chunk: ev.LogChunk) -> list[ev.LogChunk]:
    """A chunk of more than CHUNK_LINES lines as several chunks."""
    texts = ev.chunk_texts(chunk)
    return [
        chunk._replace(
            first_line=chunk.first_line + i,
            count=len(texts[i : i + CHUNK_LINES]),
            text="\n".join(texts[i : i + CHUNK_LINES]),
        )
        for i in range(0, len(texts), CHUNK_LINES)
    ]


def _chunk_row(source: int, c: ev.LogChunk) -> tuple[Any, ...]:
    return (
        source,
        c.first_line,
        c.first_line + c.count - 1,
        c.ts,
        _STREAM_CODE.get(c.stream, 0),
        c.text,
        c.raw,
    )


class Store:
    """Thread-safe access to one Bakery database. Every write is one short transaction."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._sources: dict[tuple[str, str, str, int], int] = {}
        self.conn = self._connect()
        if not readonly:
            try:
                self._migrate()
            except BaseException:
                self.conn.close()  # a refused or damaged file keeps no handle (nor -wal/-shm)
                raise
        # Reads go through their own connection: in WAL mode they never wait for a writer,
        # so the engine's loop is not blocked while a batch of log lines is being written.
        self._reader = self._connect()
        self._read_lock = threading.Lock()

    # -- opening -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            if not self.readonly:
                # journal_mode = WAL is set by _migrate once the schema version is known to be
                # ours: it rewrites the file header, and a newer Bakery's file stays unchanged
                conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = OFF")
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self) -> None:
        with self._lock:
            has_meta = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
            ).fetchone()
            version = 0
            if has_meta:
                row = self.conn.execute(
                    "SELECT value FROM meta WHERE key='schema_version'"
                ).fetchone()
                version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer Bakery (schema {version}, this one "
                    f"knows {SCHEMA_VERSION}); it was left unchanged. Upgrade Bakery to use it."
                )
            self.conn.execute("PRAGMA journal_mode = WAL")  # persistent: the reader gets it too
            if version == SCHEMA_VERSION and self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'log_chunks'"
            ).fetchone():
                return  # (a file from before log chunks gets the tables it lacks)
            with self.transaction():
                reindex = self._drop_stale_index()
                for index in SCHEMA_2_RUN_INDEXES:
                    self.conn.execute(f"DROP INDEX IF EXISTS {index}")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                if reindex:
                    self.conn.execute("DELETE FROM meta WHERE key = ?", (FTS_CURSOR_KEY,))
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )

    def _drop_stale_index(self) -> bool:
        """Drop a chunk index made with another tokenizer (schema 1); True when dropped.

        Its cursor is then reset, so the next search (or the background indexer) indexes
        every stored chunk again; the chunks themselves are not touched.
        """
        row = self.conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'log_chunks_fts'"
        ).fetchone()
        if row is None or CHUNK_TOKENIZE in str(row[0]):
            return False
        self.conn.execute("DROP TABLE log_chunks_fts")
        return True

    def check(self) -> None:
        """Touch every table so a damaged file fails now rather than mid-run."""
        with self._lock:
            for table in ("meta", "pipelines", "events", "runs", "log_sources", "log_chunks", "commands"):
                self.conn.execute(f"SELECT * FROM {table} ORDER BY rowid DESC LIMIT 1").fetchall()
            row = self.conn.execute("PRAGMA quick_check(1)").fetchone() if self._small() else None
        if row is not None and row[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {row[0]}")

    def _small(self) -> bool:
        try:
            return self.path.stat().st_size < 64 * 2**20
        except OSError:
            return True

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._reader.close()
            self.conn.close()

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._read_lock:
            return self._reader.execute(sql, args).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                # A full disk makes SQLite roll back by itself; a failed COMMIT may leave the
                # transaction open. End it either way and keep the original error.
                if self.conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                raise

    def data_version(self) -> int:
        """Changes when another connection (another bakery process) commits."""
        with self._lock:
            return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def inbox_marks(self) -> tuple[int, int]:
        """(last pipeline-level event, last untaken command): cheap, never waits for writers."""
        row = self._read(
            "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id IS NULL),"
            " (SELECT COALESCE(MAX(id), 0) FROM commands WHERE taken_at IS NULL)"
        )[0]
        return int(row[0]), int(row[1])

    # -- events --------------------------------------------------------------------------
    def append(self, event: ev.Event) -> ev.Event:
        """Persist one event (and its projection) and return it with its sequence number."""
        with self.transaction() as conn:
            return self._append(conn, event)

    def _append(self, conn: sqlite3.Connection, event: ev.Event) -> ev.Event:
        cur = conn.execute(
            "INSERT INTO events (run_id, ts, type, data) VALUES (?, ?, ?, ?)",
            (
                event.run_id,
                event.ts,
                event.type,
                json.dumps(event.data, separators=(",", ":"), ensure_ascii=False),
            ),
        )
        stored = ev.Event(event.type, event.run_id, event.ts, event.data, int(cur.lastrowid or 0))
        self._project(conn, stored)
        return stored

    def _project(self, conn: sqlite3.Connection, event: ev.Event) -> None:
        d = event.data
        if event.type == ev.RUN_CREATED:
            commit = d.get("commit") or {}
            message = str(commit.get("message") or "")
            conn.execute(
                "INSERT INTO runs (id, pipeline, number, status, created_at, trigger_type,"
                " commit_id, branch, subject) VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?)",
                (
                    event.run_id,
                    d["pipeline"],
                    d["number"],
                    event.ts,
                    (d.get("trigger") or {}).get("type"),
                    commit.get("id"),
                    commit.get("branch"),
                    message.splitlines()[0] if message else "",
                ),
            )
        elif event.type == ev.RUN_STATUS:
            status = d["status"]
            if status in ev.RUN_TERMINAL:
                conn.execute(
                    "UPDATE runs SET status=?, finished_at=? WHERE id=?",
                    (status, event.ts, event.run_id),
                )
            else:
                conn.execute(
                    "UPDATE runs SET status=?, finished_at=NULL,"
                    " started_at=COALESCE(started_at, ?) WHERE id=?",
                    (status, event.ts if status == ev.IN_PROGRESS else None, event.run_id),
                )

    def next_number(self, pipeline: str) -> int:
        with self._lock:
            row = self.conn.execute(
                "SELECT COALESCE(MAX(number), 0) FROM runs WHERE pipeline=?", (pipeline,)
            ).fetchone()
            return int(row[0]) + 1

    def create_run(self, event: ev.Event) -> ev.Event:
        """Append a `run.created` event with the next execution number for its pipeline."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(number), 0) FROM runs WHERE pipeline=?",
                (event.data["pipeline"],),
            ).fetchone()
            data = dict(event.data, number=int(row[0]) + 1)
            return self._append(conn, ev.Event(event.type, event.run_id, event.ts, data))

    def events(
        self,
        run_id: str | None = None,
        *,
        after_seq: int = 0,
        until_ts: float | None = None,
        pipeline_level: bool = False,
    ) -> list[ev.Event]:
        """Events of one execution (or, with pipeline_level, those with no execution)."""
        sql = "SELECT seq, run_id, ts, type, data FROM events WHERE seq > ?"
        args: list[Any] = [after_seq]
        if pipeline_level:
            sql += " AND run_id IS NULL"
        elif run_id is not None:
            sql += " AND run_id = ?"
            args.append(run_id)
        if until_ts is not None:
            sql += " AND ts <= ?"
            args.append(until_ts)
        sql += " ORDER BY seq"
        rows = self._read(sql, args)
        return [ev.Event(t, r, ts, json.loads(data), seq) for seq, r, ts, t, data in rows]

    def load_run(self, run_id: str) -> RunState | None:
        return fold(self.events(run_id))

    # -- runs ----------------------------------------------------------------------------
    def runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        branch: str | None = None,
        limit: int | None = None,
        unfinished: bool = False,
    ) -> list[RunSummary]:
        """Newest first."""
        rows = self.runs_select(
            "id, pipeline, number, status, created_at, started_at, finished_at,"
            " trigger_type, commit_id, branch, subject",
            pipeline=pipeline,
            status=status,
            branch=branch,
            limit=limit,
            unfinished=unfinished,
        )
        return list(map(RunSummary._make, rows))

    def runs_select(
        self,
        columns: str,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        branch: str | None = None,
        limit: int | None = None,
        unfinished: bool = False,
    ) -> list[Any]:
        """The rows `runs()` lists (same filters, same order), as the SQL expressions
        `columns` over the `runs` table: lets SQLite format what a listing prints."""
        sql = f"SELECT {columns} FROM runs WHERE 1=1"
        args: list[Any] = []
        if pipeline:
            sql += " AND pipeline = ?"
            args.append(pipeline)
        if status:
            sql += " AND status = ?"
            args.append(status)
        if branch:
            sql += " AND branch = ?"
            args.append(branch)
        if unfinished:
            sql += " AND finished_at IS NULL"
        sql += " ORDER BY created_at DESC, number DESC"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        return self._read(sql, args)

    def json_quote(self, text: str) -> str | None:
        """SQLite's `json_quote(text)`, or None when this SQLite has no JSON functions."""
        try:
            rows = self._read("SELECT json_quote(?)", (text,))
        except sqlite3.OperationalError:
            return None
        return str(rows[0][0])

    def resolve_run(self, ref: str, pipeline: str | None = None) -> str:
        """A run id from a number ("3", "#3"), a full id or a unique id prefix."""
        ref = ref.strip().lstrip("#")
        with self._lock:
            if ref.isdigit():
                sql = "SELECT id FROM runs WHERE number = ?"
                args: list[Any] = [int(ref)]
                if pipeline:
                    sql += " AND pipeline = ?"
                    args.append(pipeline)
                rows = self.conn.execute(sql + " ORDER BY created_at DESC", args).fetchall()
                if rows:
                    return str(rows[0][0])
            rows = self.conn.execute(
                "SELECT id FROM runs WHERE id LIKE ? || '%' LIMIT 2", (ref,)
            ).fetchall()
        if len(rows) == 1:
            return str(rows[0][0])
        if len(rows) > 1:
            raise StoreError(f"execution id {ref!r} is ambiguous; give more characters")
        raise StoreError(f"no execution {ref!r} in {self.path}")

    def newer_run_entered(self, pipeline: str, number: int, stage: str) -> bool:
        """Whether an execution newer than `number` has entered `stage` (retry forbids it)."""
        with self._lock:
            row = self.conn.execute(
                "SELECT 1 FROM events e JOIN runs r ON r.id = e.run_id"
                " WHERE r.pipeline = ? AND r.number > ? AND e.type = ?"
                " AND json_extract(e.data, '$.stage') = ? LIMIT 1",
                (pipeline, number, ev.STAGE_STATUS, stage),
            ).fetchone()
        return row is not None

    # -- pipelines -----------------------------------------------------------------------
    def register_pipeline(
        self, name: str, digest: str, definition: dict[str, Any], path: str
    ) -> int:
        """The version for this definition: the latest if unchanged, else a new one."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT version, hash FROM pipelines WHERE name=? ORDER BY version DESC LIMIT 1",
                (name,),
            ).fetchone()
            if row and row[1] == digest:
                return int(row[0])
            version = (int(row[0]) if row else 0) + 1
            conn.execute(
                "INSERT INTO pipelines (name, version, hash, path, definition, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, version, digest, path, json.dumps(definition), time.time()),
            )
            self._append(
                conn,
                ev.Event(
                    ev.PIPELINE_VERSION,
                    None,
                    time.time(),
                    {"pipeline": name, "version": version, "hash": digest, "path": path},
                ),
            )
            return version

    def pipeline_definition(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        sql = "SELECT definition FROM pipelines WHERE name=?"
        args: list[Any] = [name]
        if version is not None:
            sql += " AND version=?"
            args.append(version)
        with self._lock:
            row = self.conn.execute(sql + " ORDER BY version DESC LIMIT 1", args).fetchone()
        return json.loads(row[0]) if row else None

    # -- logs ----------------------------------------------------------------------------
    def _source_id(self, conn: sqlite3.Connection, key: tuple[str, str, str, int]) -> int:
        cached = self._sources.get(key)
        if cached is not None:
            return cached
        conn.execute(
            "INSERT OR IGNORE INTO log_sources (run_id, stage, action, attempt) VALUES (?,?,?,?)",
            key,
        )
        row = conn.execute(
            "SELECT id FROM log_sources WHERE run_id=? AND stage=? AND action=? AND attempt=?",
            key,
        ).fetchone()
        self._sources[key] = int(row[0])
        return int(row[0])

    def append_logs(self, lines: Sequence[ev.LogLine]) -> None:
        """Store a batch of lines in one transaction (grouped into chunks: see lines_to_chunks)."""
        if lines:
            self.append_chunks(lines_to_chunks(lines))

    def append_chunks(self, chunks: Sequence[ev.LogChunk]) -> None:
        """Store chunks of lines in one transaction: one row per chunk."""
        if not chunks:
            return
        with self.transaction() as conn:
            rows = []
            source_id = self._source_id
            code = _STREAM_CODE.get
            for c in chunks:
                if c.count > CHUNK_LINES:
                    for part in _split_chunk(c):
                        rows.append(_chunk_row(source_id(conn, part[:4]), part))
                    continue
                rows.append(
                    (
                        source_id(conn, (c.run_id, c.stage, c.action, c.attempt)),
                        c.first_line,
                        c.first_line + c.count - 1,
                        c.ts,
                        code(c.stream, 0),
                        c.text,
                        c.raw,
                    )
                )
            conn.executemany(
                "INSERT INTO log_chunks (source, first_line, last_line, ts, stream, text, raw)"
                " VALUES (?,?,?,?,?,?,?)",
                rows,
            )

    def last_line_no(self, run_id: str, stage: str, action: str, attempt: int) -> int:
        """The highest line number stored for one action attempt (0 when none)."""
        row = self._read(
            "SELECT c.last_line FROM log_chunks c JOIN log_sources s ON s.id = c.source"
            " WHERE s.run_id = ? AND s.stage = ? AND s.action = ? AND s.attempt = ?"
            " ORDER BY c.first_line DESC LIMIT 1",
            (run_id, stage, action, attempt),
        )
        return int(row[0][0]) if row else 0

    def logs(
        self,
        run_id: str,
        stage: str | None = None,
        action: str | None = None,
        *,
        attempt: int | None = None,
        after_id: int = 0,
        until_ts: float | None = None,
        limit: int | None = None,
    ) -> list[StoredLine]:
        """Log lines of an execution, in the order they were stored.

        `StoredLine.id` grows in that order (see line_id), so the last line's id given back
        as `after_id` continues where a previous call stopped (`bakery logs --follow`).
        """
        sql = (
            "SELECT c.id, s.stage, s.action, s.attempt, c.first_line, c.last_line, c.ts,"
            " c.stream, c.text, c.raw FROM log_chunks c JOIN log_sources s ON s.id = c.source"
            " WHERE s.run_id = ? AND c.id >= ?"
        )
        first_chunk, skip = divmod(max(0, after_id), CHUNK_LINES)
        args: list[Any] = [run_id, first_chunk]
        if stage is not None:
            sql += " AND s.stage = ?"
            args.append(stage)
        if action is not None:
            sql += " AND s.action = ?"
            args.append(action)
        if attempt is not None:
            sql += " AND s.attempt = ?"
            args.append(attempt)
        if until_ts is not None:
            sql += " AND c.ts <= ?"
            args.append(until_ts)
        # one query: a chunk holds at least one line, so limit + 1 chunks (the first may be
        # used up already) always hold `limit` lines
        sql += " ORDER BY c.id LIMIT ?"
        args.append(-1 if limit is None else limit + 1)
        out: list[StoredLine] = []
        remaining = limit
        for cid, st, ac, at, first, last, ts, sc, text, raw in self._read(sql, args):
            texts = [text] if last == first else text.split("\n")
            begin = skip + 1 if cid == first_chunk else 0
            stop = len(texts) if remaining is None else min(len(texts), begin + remaining)
            if begin >= stop:
                if remaining is not None and remaining <= 0:
                    break
                continue
            stream = STREAMS[sc] if sc < len(STREAMS) else "stdout"
            base = cid * CHUNK_LINES
            out.extend(
                [
                    StoredLine(base + i, st, ac, at, first + i, ts, stream, texts[i], raw)
                    for i in range(begin, stop)
                ]
            )
            if remaining is not None:
                remaining -= stop - begin
        return out

    # -- commands (the inbox other bakery processes write to) ----------------------------
    def post_command(self, run_id: str | None, kind: str, payload: dict[str, Any]) -> int:
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO commands (run_id, kind, payload, created_at) VALUES (?,?,?,?)",
                (run_id, kind, json.dumps(payload), time.time()),
            )
            return int(cur.lastrowid or 0)

    def take_commands(self, run_ids: Iterable[str]) -> list[Command]:
        """Claim the commands not yet taken that are addressed to these executions."""
        ids = list(run_ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT id, run_id, kind, payload, created_at FROM commands"
                f" WHERE taken_at IS NULL AND run_id IN ({marks}) ORDER BY id",
                ids,
            ).fetchall()
            conn.executemany(
                "UPDATE commands SET taken_at=? WHERE id=?",
                [(time.time(), row[0]) for row in rows],
            )
        return [Command(i, r, k, json.loads(p), c) for i, r, k, p, c in rows]

    def finish_command(self, command_id: int, result: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE commands SET result=? WHERE id=?", (result, command_id))

    def command_result(self, command_id: int) -> tuple[bool, str | None]:
        """(taken, result) of a posted command."""
        with self._lock:
            row = self.conn.execute(
                "SELECT taken_at, result FROM commands WHERE id=?", (command_id,)
            ).fetchone()
        if row is None:
            return False, None
        return row[0] is not None, row[1]


def default_state_dir(repo: str | Path) -> Path:
    """`$BAKERY_HOME`, else `<git dir>/bakery`: never inside the working tree."""
    env = os.environ.get("BAKERY_HOME")
    if env:
        return Path(env).expanduser()
    repo = Path(repo)
    git = repo / ".git"
    if git.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = git.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            target = Path(text.split(":", 1)[1].strip())
            git = target if target.is_absolute() else (repo / target)
    return git / "bakery"



def open_store(state_dir: str | Path) -> tuple[Store, str | None]:
    """Open the store in `state_dir`; a damaged database is moved aside, never overwritten.

    Returns the store and, when something was moved aside, a notice for the user. A database
    written by a newer Bakery raises StoreError and is left exactly as it was.
    """
    path = Path(state_dir) / DB_NAME
    store: Store | None = None
    try:
        store = Store(path)
        store.check()
        return store, None
    except sqlite3.DatabaseError as exc:
        if store is not None:
            store.close()
        if isinstance(exc, sqlite3.OperationalError):
            # full disk, locked by another process, no permission: the file is not damaged
            # and must not be moved aside
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"{DB_NAME}.damaged-{stamp}")
        for n in range(2, 1000):  # never overwrite an earlier damaged copy
            if not any(Path(str(aside) + x).exists() for x in ("", "-wal", "-shm")):
                break
            aside = path.with_name(f"{DB_NAME}.damaged-{stamp}-{n}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(path) + suffix)
            if src.exists():
                src.rename(Path(str(aside) + suffix))
        notice = (
            f"the store {path} could not be read ({exc}); it was moved to {aside} "
            "and a new, empty store was started"
        )
        return Store(path), notice
