"""The `--plain` printer prints a chunk exactly as it would print its lines one by one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine import events as ev
from engine.printer import _chunk_text, _printable_lines, clock
from engine.sanitize import terminal_safe

LINE = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=30)


@given(st.text(st.characters(codec="utf-8"), max_size=60))
def test_the_fast_check_agrees_with_isprintable(text: str) -> None:
    assert _printable_lines(text) == text.replace("\n", " ").isprintable()


@given(st.lists(LINE, min_size=2, max_size=6), st.booleans())
def test_a_chunk_prints_as_its_lines_would(lines: list[str], keep: bool) -> None:
    chunk = ev.LogChunk("r", "S", "A", 1, 1, len(lines), 1_700_000_000.5, "stdout", "\n".join(lines))
    one_by_one = "".join(
        f"{clock(chunk.ts)} [S/A] | {terminal_safe(line, keep_colour=keep)}\n" for line in lines
    )
    assert _chunk_text(chunk, "[S/A]", {}, keep) == one_by_one
