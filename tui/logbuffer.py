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
from itertools import accumulate

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


class _Chunk:
    """CHUNK sealed lines: one string, the read times and the streams.

    Line offsets are found on first use (drawing or searching this chunk), not when the
    chunk is sealed: a flood seals chunks the reader may never look at.
    """

    __slots__ = ("blob", "ts", "streams", "plain", "_starts", "_plain_starts")

    def __init__(
        self, blob: str, ts: array, streams: bytes, plain: str | None = None,
        starts: array | None = None,
    ) -> None:
        self.blob = blob
        self.ts = ts
        self.streams = streams
        self.plain = plain  # the blob without colour codes, when it had any (for search)
        self._starts = starts
        self._plain_starts: array | None = None

    @property
    def starts(self) -> array:
        """Offset of each line in blob, plus a final len(blob)+1 sentinel."""
        if self._starts is None:
            self._starts = _offsets(self.blob.split("\n"))
        return self._starts

    def searchable(self) -> tuple[str, array]:
        if self.plain is not None:
            if self._plain_starts is None:
                self._plain_starts = _offsets(self.plain.split("\n"))
            return self.plain, self._plain_starts
        return self.blob, self.starts

    def line(self, j: int) -> str:
        starts = self.starts
        return self.blob[starts[j] : starts[j + 1] - 1]

    def __len__(self) -> int:
        return len(self.streams)


def _offsets(lines: list[str]) -> array:
    """Offset of each line in "\\n".join(lines), plus the len(blob)+1 sentinel (C loops)."""
    return array("q", accumulate(map((1).__add__, map(len, lines)), initial=0))


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

    def append_text(self, first_line: int, count: int, ts: float, stream: str, text: str) -> int:
        """Add `count` lines read together (`text`: the lines joined by "\\n"; one line is
        taken verbatim). This is the live path: no Python work per line, only C-level
        splits, joins and array fills, so a flood costs the board a few ns a line.

        `first_line` numbers the first line (0: unnumbered); lines already seen are skipped.
        """
        if count <= 0:
            return 0
        if count == 1:
            parts = [text.replace("\n", " ") if "\n" in text else text]
        else:
            parts = text.split("\n")
        if self.loading:
            self.pending.extend(
                (first_line + i if first_line else 0, ts, stream, t) for i, t in enumerate(parts)
            )
            return 0
        n = len(parts)
        chars = len(text) - (n - 1)  # the joined text's length, newlines taken out
        if first_line:
            last = self.last_line_no
            if first_line <= last:
                skip = last - first_line + 1
                if skip >= n:
                    return 0
                parts = parts[skip:]
                n -= skip
                first_line += skip
                chars = -1
            self.last_line_no = first_line + n - 1
        widest = max(map(len, parts))
        if widest > MAX_LINE:
            parts = [t[:MAX_LINE] + " …" if len(t) > MAX_LINE else t for t in parts]
            widest = MAX_LINE + 2
            chars = -1
        if widest > self.width:
            if "\x1b" in text:
                widest = max(len(strip_ansi(t)) if "\x1b" in t else len(t) for t in parts)
            self.width = max(self.width, widest)
        self.chars += chars if chars >= 0 else sum(map(len, parts))
        self.tail.extend(parts)
        self.tail_ts.extend(array("d", (ts,)) * n)
        self.tail_streams.extend(bytes((STREAM_CODES.get(stream, 0),)) * n)
        if len(self.tail) >= CHUNK:
            self._seal_full()
        self._enforce_cap()
        return n

    @staticmethod
    def _chunk(lines: list[str], ts: array, streams: bytes) -> _Chunk:
        blob = "\n".join(lines)
        chunk = _Chunk(blob, ts, streams)
        if "\x1b" in blob:
            chunk.plain = "\n".join([strip_ansi(t) if "\x1b" in t else t for t in lines])
        return chunk

    def _seal(self) -> None:
        self.chunks.append(self._chunk(self.tail, self.tail_ts, bytes(self.tail_streams)))
        self.tail = []
        self.tail_ts = array("d")
        self.tail_streams = bytearray()

    def _seal_full(self) -> None:
        """Seal every full CHUNK of the tail (after a bulk append)."""
        tail, tail_ts, streams = self.tail, self.tail_ts, self.tail_streams
        k = 0
        while len(tail) - k >= CHUNK:
            end = k + CHUNK
            self.chunks.append(self._chunk(tail[k:end], tail_ts[k:end], bytes(streams[k:end])))
            k = end
        if k:
            del tail[:k]
            del tail_ts[:k]
            del streams[:k]

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
