"""LineSplitter: terminators, chunk boundaries, length cap and bounded memory."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.lines import LineSplitter


def split_all(chunks: list[bytes], max_line: int = 16384) -> list[bytes]:
    splitter = LineSplitter(max_line)
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    out.extend(splitter.flush())
    return out


def reference(data: bytes) -> list[bytes]:
    """The obvious definition: split on CRLF, CR or LF; a last unterminated line counts."""
    parts = re.split(rb"\r\n|\r|\n", data)
    if parts and parts[-1] == b"":
        parts.pop()
    return parts


def test_lf_crlf_and_lone_cr_all_end_lines() -> None:
    assert split_all([b"a\nb\r\nc\rd\n"]) == [b"a", b"b", b"c", b"d"]


def test_progress_bar_becomes_lines() -> None:
    assert split_all([b"10%\r20%\r100%\n"]) == [b"10%", b"20%", b"100%"]


def test_crlf_split_across_chunks_is_one_terminator() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"abc\r") == [b"abc"]
    assert splitter.feed(b"\ndef\n") == [b"def"]
    assert splitter.flush() == []


def test_crlf_split_with_lone_newline_chunk() -> None:
    assert split_all([b"abc\r", b"\n", b"\n"]) == [b"abc", b""]
    assert split_all([b"abc\r", b"\r", b"\n"]) == [b"abc", b""]
    assert split_all([b"abc\r", b"", b"\nx"]) == [b"abc", b"x"]


def test_empty_lines_are_kept() -> None:
    assert split_all([b"\n\n", b"a\n\r\n"]) == [b"", b"", b"a", b""]


def test_unterminated_remainder_comes_at_flush() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"par") == []
    assert splitter.feed(b"tial") == []
    assert splitter.flush() == [b"partial"]
    assert splitter.flush() == []


def test_long_complete_line_is_emitted_in_pieces() -> None:
    assert split_all([b"x" * 25 + b"\nshort\n"], max_line=10) == [
        b"x" * 10,
        b"x" * 10,
        b"x" * 5,
        b"short",
    ]


def test_line_of_exactly_max_line_is_one_piece() -> None:
    assert split_all([b"y" * 10, b"\n"], max_line=10) == [b"y" * 10]
    assert split_all([b"y" * 20, b"\n"], max_line=10) == [b"y" * 10, b"y" * 10]


def test_long_unterminated_line_is_emitted_as_it_arrives() -> None:
    splitter = LineSplitter(max_line=10)
    assert splitter.feed(b"z" * 15) == [b"z" * 10]
    assert splitter.feed(b"z" * 15) == [b"z" * 10]  # 10 kept: a newline may still follow
    assert splitter.feed(b"z" * 5) == [b"z" * 10]
    assert splitter.flush() == [b"z" * 5]


def test_pieces_do_not_split_utf8_characters() -> None:
    text = "é" * 20  # 2 bytes each
    pieces = split_all([text.encode() + b"\n"], max_line=9)
    assert all(len(p) <= 9 for p in pieces)
    assert "".join(p.decode("utf-8") for p in pieces) == text  # every piece decodes on its own


def test_invalid_bytes_are_still_cut_at_the_limit() -> None:
    pieces = split_all([b"\x80" * 30], max_line=8)
    assert [len(p) for p in pieces] == [8, 8, 8, 6]


def test_hundred_megabytes_without_newline_keeps_a_bounded_buffer() -> None:
    """A 100 MB line fed in 64 KiB chunks never holds more than max_line + a chunk."""
    splitter = LineSplitter(max_line=16384)
    chunk = b"x" * 65536
    total = 0
    for _ in range(100_000_000 // len(chunk)):
        for piece in splitter.feed(chunk):
            assert len(piece) == 16384
            total += len(piece)
        assert len(splitter._rest) <= 16384
    total += sum(map(len, splitter.flush()))
    assert total == (100_000_000 // len(chunk)) * len(chunk)


def test_max_line_must_be_sane() -> None:
    with pytest.raises(ValueError):
        LineSplitter(max_line=1)


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(
        st.sampled_from([b"a", b"b", b"\r", b"\n", b"\r\n", b"\xc3\xa9", b"\x00"]), max_size=60
    ).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_any_chunking_matches_the_reference(data: bytes, cuts: list[int]) -> None:
    bounds = sorted({c for c in cuts if c <= len(data)} | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert split_all(chunks) == reference(data)


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=300),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=8),
    max_line=st.integers(min_value=4, max_value=40),
)
def test_chunking_never_changes_the_result_even_with_a_small_cap(
    data: bytes, cuts: list[int], max_line: int
) -> None:
    bounds = sorted({c for c in cuts if c <= len(data)} | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    lines = split_all(chunks, max_line)
    assert lines == split_all([data], max_line)
    assert all(len(line) <= max_line for line in lines)
    assert b"".join(lines) == re.sub(rb"[\r\n]", b"", data)
