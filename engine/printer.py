"""The line-per-event output of headless runs (`bakery run --plain`, `bakery logs`)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from engine import events as ev
from engine.sanitize import terminal_safe

if TYPE_CHECKING:  # the recorder pulls in asyncio: `history` and `show` need neither
    from engine.recorder import Published

_COLOURS = {
    ev.SUCCEEDED: "32",
    ev.FAILED: "31",
    ev.IN_PROGRESS: "36",
    ev.STOPPED: "33",
    ev.STOPPING: "33",
    ev.ABANDONED: "33",
    ev.SUPERSEDED: "90",
    ev.APPROVED: "32",
    ev.REJECTED: "31",
}


_clock_cache: dict[int, str] = {}


def clock(ts: float) -> str:
    """HH:MM:SS, cached per second: a flood prints thousands of lines a second."""
    second = int(ts)
    text = _clock_cache.get(second)
    if text is None:
        if len(_clock_cache) > 4096:
            _clock_cache.clear()
        text = _clock_cache[second] = time.strftime("%H:%M:%S", time.localtime(ts))
    return text


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


_PRINTABLE_ASCII = bytes(range(0x20, 0x7F)) + b"\n"


def _printable_lines(text: str) -> bool:
    """No control character but line breaks. ASCII text (nearly every log) is checked on its
    bytes, six times faster than `str.isprintable`, which looks every character up."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _PRINTABLE_ASCII)
    return text.replace("\n", " ").isprintable()


def _chunk_text(chunk: ev.LogChunk, prefix: str, markers: dict[str, str], keep: bool) -> str:
    """A chunk's lines as printed: the same as line by line, in a few C-level calls."""
    head = f"{clock(chunk.ts)} {prefix} {markers.get(chunk.stream, '|')} "
    if chunk.count == 1:
        return f"{head}{terminal_safe(chunk.text, keep_colour=keep)}\n"
    text = chunk.text
    if "\x1b" in text:  # an escape sequence must not reach across lines
        body = "\n".join(terminal_safe(x, keep_colour=keep) for x in text.split("\n"))
    elif _printable_lines(text):  # the common case
        body = text
    else:  # control characters are replaced one by one: per chunk is the same as per line
        body = terminal_safe(text)
    return head + body.replace("\n", "\n" + head) + "\n"


class LinePrinter:
    """Prints events and log lines of the executions it is given, one line each."""

    def __init__(self, out: TextIO | None = None, *, colour: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.colour = self.out.isatty() if colour is None else colour
        self._lock = threading.Lock()
        self.numbers: dict[str, int] = {}
        self.started: dict[tuple[str, str, str], float] = {}

    def _paint(self, text: str, status: str | None) -> str:
        code = _COLOURS.get(status or "")
        if not self.colour or not code:
            return text
        return f"\x1b[{code}m{text}\x1b[0m"

    def _write(self, ts: float, text: str) -> None:
        with self._lock:
            self.out.write(f"{clock(ts)} {text}\n")
            self.out.flush()

    def __call__(self, item: Published) -> None:
        if isinstance(item, ev.LogBatch):
            prefix = f"[{item.stage}/{item.action}]"
            markers = {"stderr": "!", "system": "·"}
            keep = self.colour
            if item.chunks:
                out = [_chunk_text(c, prefix, markers, keep) for c in item.chunks]
            else:
                out = [
                    f"{clock(line.ts)} {prefix} {markers.get(line.stream, '|')} "
                    f"{terminal_safe(line.text, keep_colour=keep)}\n"
                    for line in item.lines
                ]
            with self._lock:
                self.out.write("".join(out))
                self.out.flush()
            return
        self.event(item)

    def event(self, e: ev.Event) -> None:
        d = e.data
        if e.type == ev.RUN_CREATED:
            self.numbers[str(e.run_id)] = int(d["number"])
            commit = d.get("commit") or {}
            subject = terminal_safe(str(commit.get("message", "")).splitlines()[0] if commit.get("message") else "")
            self._write(
                e.ts,
                f"#{d['number']} {d['pipeline']} v{d.get('pipeline_version')} on "
                f"{terminal_safe(str(commit.get('branch') or 'detached'))} "
                f"{str(commit.get('id', ''))[:8]} {subject!r}",
            )
        elif e.type == ev.RUN_STATUS:
            n = self.numbers.get(str(e.run_id), "?")
            err = d.get("error")
            detail = f" — {err['type']}: {err['message']}" if err else ""
            self._write(e.ts, self._paint(f"#{n} execution {d['status']}", d["status"]) + detail)
        elif e.type == ev.STAGE_STATUS:
            self._write(e.ts, self._paint(f"[{d['stage']}] stage {d['status']}", d["status"]))
        elif e.type == ev.STAGE_WAITING:
            self._write(e.ts, f"[{d['stage']}] waiting: {d.get('reason', '')}")
        elif e.type == ev.ACTION_STATUS:
            key = (str(e.run_id), d["stage"], d["action"])
            if d["status"] == ev.IN_PROGRESS:
                self.started[key] = e.ts
                self._write(e.ts, self._paint(f"[{d['stage']}/{d['action']}] {d['status']}", d["status"]))
                return
            took = human_duration(e.ts - self.started.pop(key, e.ts))
            err = d.get("error")
            detail = f" — {err['type']}: {terminal_safe(err['message'])}" if err else ""
            outs = d.get("output_variables") or {}
            extra = f" {{{', '.join(sorted(outs))}}}" if outs and d["status"] == ev.SUCCEEDED else ""
            self._write(
                e.ts,
                self._paint(f"[{d['stage']}/{d['action']}] {d['status']}", d["status"])
                + f" ({took}){extra}{detail}",
            )
        elif e.type == ev.APPROVAL_REQUESTED:
            n = self.numbers.get(str(e.run_id), "?")
            message = terminal_safe(d.get("message") or "")
            link = f" <{terminal_safe(d['link'])}>" if d.get("link") else ""
            self._write(
                e.ts,
                f"[{d['stage']}/{d['action']}] approval needed: {message}{link}\n"
                f"         answer with: bakery approve {n} {d['stage']}/{d['action']}"
                f"   or: bakery reject {n} {d['stage']}/{d['action']}",
            )
        elif e.type == ev.APPROVAL_DECIDED:
            comment = f": {terminal_safe(d['comment'])}" if d.get("comment") else ""
            self._write(
                e.ts,
                self._paint(f"[{d['stage']}/{d['action']}] {d['result']}", d["result"])
                + f" by {terminal_safe(str(d.get('by')))}{comment}",
            )
        elif e.type == ev.STOP_REQUESTED:
            comment = f": {terminal_safe(d['comment'])}" if d.get("comment") else ""
            self._write(e.ts, f"stop requested ({d.get('mode')}) by {d.get('by')}{comment}")
        elif e.type == ev.TRANSITION_CHANGED:
            state = "enabled" if d.get("enabled") else "disabled"
            self._write(e.ts, f"[{d['stage']}] inbound transition {state} {d.get('reason') or ''}")
