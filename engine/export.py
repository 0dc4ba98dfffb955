"""Export an execution to JSON lines, and load such a file back for replay.

An export is what someone needs to replay a run without the repository: a header line
(format, version, the execution's identity and pipeline definition), then its events and log
lines interleaved in time order. Secrets were masked before they reached the store, so the
file holds nothing the store did not.
"""

from __future__ import annotations

import base64
import heapq
import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, TextIO

from engine import events as ev
from engine.replay import query
from engine.state import iso
from engine.store import STREAMS, Store, StoredLine, line_id

FORMAT = "bakery.run-export"
VERSION = 1
BATCH = 5000
CHUNKS = 64  # stored chunks read per query
_LOG_PREFIX = '{"kind":"log"'


class ExportError(Exception):
    """A file that is not a Bakery export (or a newer one); the message says where."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_dumps = _ENCODER.encode  # one encoder: json.dumps with options builds one per call


def _line_record(line: StoredLine) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "kind": "log",
        "stage": line.stage,
        "action": line.action,
        "attempt": line.attempt,
        "line_no": line.line_no,
        "ts": line.ts,
        "stream": line.stream,
        "text": line.text,
    }
    if line.raw is not None:
        rec["raw"] = base64.b64encode(line.raw).decode("ascii")
    return rec


def _stream_lines(store: Store, run_id: str) -> Iterator[StoredLine]:
    """Every line of the execution by time, a batch per source at a time (never all at once).

    Each action attempt is read along its (source, line_no) index and the sources are merged
    by time, so a run with a million lines costs a million index steps, not a scan per batch.
    """
    sources = query(
        store,
        "SELECT id, stage, action, attempt FROM log_sources WHERE run_id = ? ORDER BY id",
        (run_id,),
    )
    streams = [_source_lines(store, *row) for row in sources]
    return heapq.merge(*streams, key=lambda line: (line.ts, line.id))


def _source_lines(
    store: Store, source: int, stage: str, action: str, attempt: int
) -> Iterator[StoredLine]:
    first_line, last_id = 0, 0
    while True:
        rows = query(
            store,
            "SELECT id, first_line, last_line, ts, stream, text, raw FROM log_chunks"
            " WHERE source = ? AND (first_line, id) > (?, ?) ORDER BY first_line, id LIMIT ?",
            (source, first_line, last_id, CHUNKS),
        )
        for cid, first, last, ts, sc, text, raw in rows:
            stream = STREAMS[sc] if sc < len(STREAMS) else "stdout"
            texts = [text] if last == first else text.split("\n")
            base = line_id(cid, 0)
            for i, line in enumerate(texts):
                yield StoredLine(base + i, stage, action, attempt, first + i, ts, stream, line, raw)
        if len(rows) < CHUNKS:
            return
        last_id, first_line = rows[-1][0], rows[-1][1]


def iter_export(store: Store, run_id: str) -> Iterator[str]:
    """The export's lines (without newlines): header, then events and log lines by time."""
    events = store.events(run_id)
    if not events or events[0].type != ev.RUN_CREATED:
        raise ExportError(f"execution {run_id} has no recorded start; nothing to export")
    created = events[0].data
    header = {
        "format": FORMAT,
        "version": VERSION,
        "event_schema": ev.SCHEMA_VERSION,
        "run": {
            "id": run_id,
            "pipeline": created.get("pipeline"),
            "number": created.get("number"),
            "created_at": iso(events[0].ts),
        },
        "definition": store.pipeline_definition(
            str(created.get("pipeline")), created.get("pipeline_version")
        ),
        "events": len(events),
    }
    yield _dumps(header)
    # Ties: lines first, since the recorder writes the lines read before an event first.
    keyed_events = ((e.ts, 1, e.seq, {"kind": "event", **e.to_json()}) for e in events)
    keyed_lines = ((ln.ts, 0, ln.id, ln) for ln in _stream_lines(store, run_id))
    for _ts, kind, _n, item in heapq.merge(keyed_events, keyed_lines, key=lambda k: k[:3]):
        yield _dumps(item if kind == 1 else _line_record(item))


def write_export(store: Store, run_id: str, out: TextIO) -> int:
    """Write the export to `out`; returns the number of records after the header."""
    count = -1
    for count, line in enumerate(iter_export(store, run_id)):  # noqa: B007
        out.write(line + "\n")
    return count


def _fail(path: str | Path, n: int, message: str) -> ExportError:
    return ExportError(f"{path}:{n}: {message}")


def read_export(
    path: str | Path,
) -> tuple[dict[str, Any], list[ev.Event], Generator[ev.LogLine, None, None]]:
    """Header, events and (lazily, on a second read) log lines of an export file."""
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
        try:
            header = json.loads(first)
        except json.JSONDecodeError as exc:
            raise _fail(
                path, 1, f"not a Bakery export (the first line is not JSON: {exc.msg})"
            ) from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise _fail(path, 1, f"not a Bakery export (expected format {FORMAT!r})")
        if int(header.get("version") or 0) > VERSION:
            raise _fail(
                path,
                1,
                f"written by a newer Bakery (export version {header.get('version')}, "
                f"this one reads {VERSION})",
            )
        run_id = str((header.get("run") or {}).get("id") or "")
        if not run_id:
            raise _fail(path, 1, "the header names no execution")
        offset = handle.tell()
        events: list[ev.Event] = []
        for n, text in enumerate(handle, start=2):
            if text.startswith(_LOG_PREFIX) or not text.strip():
                continue  # log lines are read (and checked) on the second pass
            rec = _record(path, n, text)
            if rec["kind"] == "event":
                try:
                    event = ev.Event.from_json(rec)
                except (KeyError, TypeError, ValueError) as exc:
                    raise _fail(path, n, f"bad event record ({exc})") from None
                events.append(ev.Event(event.type, run_id, event.ts, event.data, event.seq))
    events.sort(key=lambda e: e.seq)
    return header, events, _iter_lines(path, offset, run_id)


def _record(path: str | Path, n: int, text: str) -> dict[str, Any]:
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, n, f"not JSON ({exc.msg})") from None
    if not isinstance(rec, dict) or rec.get("kind") not in ("event", "log"):
        raise _fail(path, n, "expected an object with kind 'event' or 'log'")
    return rec


def _iter_lines(path: str | Path, offset: int, run_id: str) -> Generator[ev.LogLine, None, None]:
    with open(path, encoding="utf-8") as handle:
        handle.seek(offset)
        for n, text in enumerate(handle, start=2):
            if not text.strip():
                continue
            rec = _record(path, n, text)
            if rec["kind"] != "log":
                continue
            try:
                raw = base64.b64decode(rec["raw"]) if rec.get("raw") is not None else None
                yield ev.LogLine(
                    run_id,
                    str(rec["stage"]),
                    str(rec["action"]),
                    int(rec["attempt"]),
                    int(rec["line_no"]),
                    float(rec["ts"]),
                    str(rec.get("stream") or "stdout"),
                    str(rec["text"]),
                    raw,
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise _fail(path, n, f"bad log record ({exc})") from None


def load_export(path: str | Path, store: Store) -> str:
    """Copy an export into `store` (normally an empty, private one); returns the run id.

    Events keep their order (their original sequence numbers decide it) but get the
    store's own numbers; log lines keep their line numbers and times.
    """
    header, events, lines = read_export(path)
    if not events or events[0].type != ev.RUN_CREATED:
        raise ExportError(f"{path}: the file holds no run.created event; nothing to replay")
    run_id = str(events[0].run_id)
    if _has_run(store, run_id):
        raise ExportError(f"execution {run_id} is already in {store.path}")
    for event in events:
        store.append(ev.Event(event.type, event.run_id, event.ts, event.data))
    batch: list[ev.LogLine] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= BATCH:
            store.append_logs(batch)
            batch = []
    store.append_logs(batch)
    return run_id


def _has_run(store: Store, run_id: str) -> bool:
    return bool(query(store, "SELECT 1 FROM runs WHERE id = ?", (run_id,)))
