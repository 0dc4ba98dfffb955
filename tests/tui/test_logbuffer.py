"""The compact log buffer: many lines, search across chunks, caps, history loads."""

from __future__ import annotations

import re

from tui.logbuffer import CHUNK, LogBuffer


def fill(buffer: LogBuffer, n: int, start: int = 1) -> None:
    buffer.append((start + i, float(i), "stdout", f"line {start + i - 1}") for i in range(n))


def test_million_lines_are_compact_and_searchable() -> None:
    buffer = LogBuffer()
    fill(buffer, 600_000)
    assert len(buffer) == 600_000
    assert buffer.line(0) == "line 0" and buffer.line(599_999) == "line 599999"
    assert buffer.line(CHUNK) == f"line {CHUNK}"
    assert len(buffer.chunks) == 600_000 // CHUNK
    pattern = re.compile(re.escape("line 577777"), re.I)
    assert buffer.find(pattern, 0) == 577_777
    assert buffer.find(pattern, 590_000) is None
    assert buffer.find(pattern, 599_999, backwards=True) == 577_777
    assert buffer.find(re.compile("line 12$"), 0) == 12


def test_backwards_search_within_a_chunk_and_tail() -> None:
    buffer = LogBuffer()
    fill(buffer, CHUNK + 10)
    hits = []
    i = len(buffer) - 1
    while (found := buffer.find(re.compile(r"^line 10\d$"), i, backwards=True)) is not None:
        hits.append(found)
        i = found - 1
        if i < 0:
            break
    assert hits == list(range(109, 99, -1))


def test_colour_codes_never_hide_a_match_in_sealed_chunks() -> None:
    buffer = LogBuffer()
    buffer.append((i + 1, 0.0, "stdout", f"\x1b[1mbold\x1b[0m {i}") for i in range(CHUNK + 5))
    assert buffer.chunks and buffer.find(re.compile("bold 7$"), 0) == 7
    assert buffer.find(re.compile("1m"), 0) is None
    assert buffer.find(re.compile("bold 7$"), CHUNK - 1, backwards=True) == 7


def test_cap_drops_oldest_chunks() -> None:
    buffer = LogBuffer(max_lines=CHUNK * 3)
    fill(buffer, CHUNK * 5)
    assert len(buffer) <= CHUNK * 3 + CHUNK
    assert buffer.dropped >= CHUNK * 2
    assert buffer.line(len(buffer) - 1) == f"line {CHUNK * 5 - 1}"


def test_ansi_is_ignored_by_search_and_errors_are_found() -> None:
    buffer = LogBuffer()
    buffer.append([(1, 0.0, "stdout", "\x1b[31mred\x1b[0m text"), (2, 0.0, "stderr", "Traceback (most recent call last):")])
    assert buffer.find(re.compile("31m"), 0) is None
    assert buffer.find(re.compile("red text"), 0) == 0
    assert buffer.first_error() == 1


def test_history_load_keeps_order_and_skips_duplicates() -> None:
    buffer = LogBuffer()
    buffer.begin_load()
    buffer.append([(5, 0.0, "stdout", "live 5"), (6, 0.0, "stdout", "live 6")])
    assert len(buffer) == 0
    buffer.finish_load([(i, 0.0, "stdout", f"stored {i}") for i in range(1, 6)])
    assert list(buffer.lines()) == ["stored 1", "stored 2", "stored 3", "stored 4", "stored 5", "live 6"]
