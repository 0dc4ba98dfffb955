"""A compact, append-only store of one action's log lines.

Millions of lines must not cost millions of Python objects: full chunks of lines are sealed
into one string (lines joined by "\\n") plus an array of offsets, so a line costs its
characters and a few bytes. Search runs a compiled regex over whole chunks (C speed), then
maps the hit back to a line. When the buffer grows past its cap, the oldest chunks are dropped
(`dropped` counts them so line numbers stay honest; `bakery logs` still has everything).
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from engine.sanitize import strip_ansi

CHUNK = 2048
MAX_LINES = 2_000_000
MAX_CHARS = 160_000_000
MAX_LINE = 8192  # longer lines are cut when shown; the store keeps them whole

STREAM_CODES = {"stdout": 0, "stderr": 1, "system": 2}
STREAM_NAMES = {v: k for k, v in STREAM_CODES.items()}

ERROR_PATTERN = re.compile(
    r"\b(error|errors|failed|failure|fatal|traceback|exception|panic)\b", re.IGNORECASE
)


@dataclass(slots=True)
class _Chunk:
    blob: str
    starts: array  # offset of each line in blob, plus a final len(blob)+1 sentinel
    ts: array
    streams: bytes
    plain: str | None = None  # the blob without colour codes, when it had any (for search)
    plain_starts: array | None = None

    def searchable(self) -> tuple[str, array]:
        if self.plain is not None and self.plain_starts is not None:
            return self.plain, self.plain_starts
        return self.blob, self.starts

    def line(self, j: int) -> str:
        return self.blob[self.starts[j] : self.starts[j + 1] - 1]

    def __len__(self) -> int:
        return len(self.starts) - 1


@dataclass(slots=True)
class LogBuffer:
    """Lines of one (execution, stage, action, attempt)."""

    max_lines: int = MAX_LINES
    max_chars: int = MAX_CHARS
    chunks: list[_Chunk] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    tail_ts: array = field(default_factory=lambda: array("d"))
    tail_streams: bytearray = field(default_factory=bytearray)
    dropped: int = 0  # lines dropped from the head to respect the cap
    chars: int = 0
    width: int = 0  # widest line seen (characters, escapes excluded when cheap)
    last_line_no: int = 0
    loading: bool = False
    pending: list[tuple[int, float, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.chunks) * CHUNK + len(self.tail)

    # -- writing --------------------------------------------------------------------------
    def append(self, lines: Iterable[tuple[int, float, str, str]]) -> int:
        """Add (line_no, ts, stream, text) lines; returns how many were added.

        While a history load is in flight, lines wait in `pending` so the order stays right.
        Lines already seen (line_no <= last_line_no) are skipped.
        """
        if self.loading:
            self.pending.extend(lines)
            return 0
        added = 0
        tail, tail_ts, tail_streams = self.tail, self.tail_ts, self.tail_streams
        width = self.width
        last = self.last_line_no
        for line_no, ts, stream, text in lines:
            if line_no and line_no <= last:
                continue
            if line_no:
                last = line_no
            if "\n" in text:
                text = text.replace("\n", " ")
            if len(text) > MAX_LINE:
                text = text[:MAX_LINE] + " …"
            tail.append(text)
            tail_ts.append(ts)
            tail_streams.append(STREAM_CODES.get(stream, 0))
            n = len(text)
            self.chars += n
            if n > width:
                width = max(width, len(strip_ansi(text)) if "\x1b" in text else n)
            added += 1
            if len(tail) >= CHUNK:
                self._seal()
                tail, tail_ts, tail_streams = self.tail, self.tail_ts, self.tail_streams
        self.width = width
        self.last_line_no = last
        if added:
            self._enforce_cap()
        return added

    @staticmethod
    def _offsets(lines: list[str]) -> array:
        starts = array("q")
        pos = 0
        for text in lines:
            starts.append(pos)
            pos += len(text) + 1
        starts.append(pos)
        return starts

    def _seal(self) -> None:
        blob = "\n".join(self.tail)
        chunk = _Chunk(blob, self._offsets(self.tail), self.tail_ts, bytes(self.tail_streams))
        if "\x1b" in blob:
            plain = [strip_ansi(t) if "\x1b" in t else t for t in self.tail]
            chunk.plain, chunk.plain_starts = "\n".join(plain), self._offsets(plain)
        self.chunks.append(chunk)
        self.tail = []
        self.tail_ts = array("d")
        self.tail_streams = bytearray()

    def _enforce_cap(self) -> None:
        while self.chunks and (len(self) > self.max_lines or self.chars > self.max_chars):
            gone = self.chunks.pop(0)
            self.dropped += len(gone)
            self.chars -= len(gone.blob)

    def begin_load(self) -> None:
        self.loading = True

    def finish_load(self, lines: Iterable[tuple[int, float, str, str]]) -> None:
        """End a history load: stored lines first, then live ones that arrived meanwhile."""
        self.loading = False
        self.append(lines)
        pending, self.pending = self.pending, []
        self.append(pending)

    # -- reading --------------------------------------------------------------------------
    def _locate(self, i: int) -> tuple[_Chunk | None, int]:
        c, j = divmod(i, CHUNK)
        if c < len(self.chunks):
            return self.chunks[c], j
        return None, i - len(self.chunks) * CHUNK

    def line(self, i: int) -> str:
        chunk, j = self._locate(i)
        return chunk.line(j) if chunk is not None else self.tail[j]

    def ts(self, i: int) -> float:
        chunk, j = self._locate(i)
        return chunk.ts[j] if chunk is not None else self.tail_ts[j]

    def stream(self, i: int) -> str:
        chunk, j = self._locate(i)
        code = chunk.streams[j] if chunk is not None else self.tail_streams[j]
        return STREAM_NAMES.get(code, "stdout")

    def plain(self, i: int) -> str:
        text = self.line(i)
        return strip_ansi(text) if "\x1b" in text else text

    def lines(self, start: int = 0, end: int | None = None) -> Iterator[str]:
        end = len(self) if end is None else min(end, len(self))
        for i in range(max(0, start), end):
            yield self.line(i)

    # -- searching ------------------------------------------------------------------------
    def find(self, pattern: re.Pattern[str], start: int, *, backwards: bool = False) -> int | None:
        """The first line at/after `start` (or at/before, backwards) whose text matches."""
        total = len(self)
        if total == 0:
            return None
        if not pattern.flags & re.MULTILINE:  # chunks hold many lines: ^ and $ mean a line's
            pattern = re.compile(pattern.pattern, pattern.flags | re.MULTILINE)
        if backwards:
            for i in self._scan_backwards(pattern, min(start, total - 1)):
                return i
            return None
        for i in self._scan_forwards(pattern, max(0, start)):
            return i
        return None

    def _hit(self, pattern: re.Pattern[str], i: int) -> bool:
        return pattern.search(self.plain(i)) is not None

    def _scan_forwards(self, pattern: re.Pattern[str], start: int) -> Iterator[int]:
        c0, j0 = divmod(start, CHUNK)
        for c in range(c0, len(self.chunks)):
            blob, starts = self.chunks[c].searchable()
            pos = starts[j0] if c == c0 else 0
            while True:
                m = pattern.search(blob, pos)
                if m is None:
                    break
                j = bisect_right(starts, m.start()) - 1
                yield c * CHUNK + j
                pos = starts[j + 1]
        base = len(self.chunks) * CHUNK
        for k in range(max(0, start - base), len(self.tail)):
            if self._hit(pattern, base + k):
                yield base + k

    def _scan_backwards(self, pattern: re.Pattern[str], start: int) -> Iterator[int]:
        base = len(self.chunks) * CHUNK
        for i in range(start, base - 1, -1):
            if i < base:
                break
            if self._hit(pattern, i):
                yield i
        c0 = min(start, base - 1) // CHUNK if base else -1
        for c in range(c0, -1, -1):
            chunk = self.chunks[c]
            blob, starts = chunk.searchable()
            end_j = min(len(chunk) - 1, start - c * CHUNK)
            limit = starts[end_j + 1] - 1
            hits: list[int] = []
            pos = 0
            while True:
                m = pattern.search(blob, pos, limit)
                if m is None:
                    break
                j = bisect_right(starts, m.start()) - 1
                hits.append(j)
                pos = starts[j + 1]
            for j in reversed(hits):
                yield c * CHUNK + j

    def first_error(self) -> int | None:
        """The first line with an error word (error, failed, traceback...), for "jump to error"."""
        for i in self._scan_forwards(ERROR_PATTERN, 0):
            return i
        return None
