"""Search for numbers and words with digits: the chunk index splits words at digits, yet hits
are whole words of the line, exactly as if every line were indexed with digits as letters."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from engine import events as ev
from engine.search import SearchResult, fts_query, search
from engine.search_plan import plan
from engine.store import LINE_TOKENIZE, Store

pytestmark = pytest.mark.timeout(120)

STAGES = [{"name": "S", "actions": [{"name": "A", "category": "build"}]}]

LINES = [
    "GET /items/7 404 in 12ms",  # 1
    "GET /items/8 200 in 404ms",  # 2
    "404",  # 3
    "14045 requests",  # 4
    "abc404 and 404abc",  # 5
    "error 42 at start",  # 6
    "error: 42",  # 7
    "42 error",  # 8
    "error 4242",  # 9
    "release v1.2.3 done",  # 10
    "version 1.2.3",  # 11
    "1.2.3.4",  # 12
    "ABC123 upper",  # 13
    "abc1234 longer",  # 14
    "abc 123 apart",  # 15
    "plain words only",  # 16
    "HTTP/1.1 404 Not Found",  # 17
    "id=0x1f3a done",  # 18
    "build7x finished",  # 19
]


def add_run(store: Store, run_id: str, number: int, ts: float, lines: list[str]) -> None:
    store.append(
        ev.Event(
            ev.RUN_CREATED,
            run_id,
            ts,
            {
                "number": number,
                "pipeline": "p",
                "stages": STAGES,
                "commit": {
                    "id": f"commit{number}",
                    "branch": "main",
                    "message": f"change {number}",
                },
            },
        )
    )
    # several lines to a chunk (one read of a pipe), as the engine stores them
    for first in range(0, len(lines), 5):
        part = lines[first : first + 5]
        store.append_chunks(
            [
                ev.LogChunk(
                    run_id, "S", "A", 1, first + 1, len(part), ts + first, "stdout", "\n".join(part)
                )
            ]
        )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "bakery.db")
    add_run(store, "old", 1, 100.0, LINES)
    add_run(store, "new", 2, 200.0, LINES[::-1])
    return store


def lines_of(result: SearchResult, run_id: str = "old") -> list[int]:
    return sorted(h.line_no for h in result.hits if h.run_id == run_id)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("404", [1, 3, 17]),  # a whole word: not 404ms, 14045, abc404 or 404abc
        ("1.2.3", [11, 12]),  # the words 1 2 3 in a row (v1.2.3 is v1, 2, 3: no)
        ("error 42", [6, 7]),  # the phrase: not "42 error" nor "error 4242"
        ("abc123", [13]),  # case-insensitive, whole word: not abc1234 nor "abc 123"
        ("v1.2", [10]),
        ("42", [6, 7, 8]),
        ("1.1 404", [17]),
        ("0x1f3a", [18]),
        ("items 7 404", [1]),
    ],
)
def test_numbers_are_whole_words(store: Store, text: str, expected: list[int]) -> None:
    result = search(store, text, limit=1000)
    assert lines_of(result) == expected
    assert result.total == 2 * len(expected) and result.executions == 2 and not result.capped
    hit = result.hits[0]  # newest first: the second execution, lines written in reverse
    assert (hit.run_id, hit.number, hit.stage, hit.action) == ("new", 2, "S", "A")
    assert hit.text == LINES[::-1][hit.line_no - 1]
    assert hit.spans
    seen = result.first_seen
    assert seen is not None and (seen.run_id, seen.commit_id, seen.line_no) == (
        "old",
        "commit1",
        expected[0],
    )


def test_number_spans_mark_the_number(store: Store) -> None:
    [hit] = search(store, "404", run_id="old").hits[-1:]  # oldest shown: line 1
    assert hit.line_no == 1 and [hit.text[a:b] for a, b in hit.spans] == ["404"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("error OR 404", [1, 3, 6, 7, 8, 9, 17]),
        ("404 OR plain", [1, 3, 16, 17]),
        ("abc NOT 123", []),
        ("words OR apart NOT 123", [16]),
        ("error NOT 42", [9]),
        ("42*", [6, 7, 8, 9]),
        ("abc12*", [13, 14]),
        ("NEAR(error 42, 0)", [6, 7, 8]),
        ("404 AND (GET OR HTTP)", [1, 17]),
        ('"1.2" + 3', [11, 12]),
        ("^404", [3]),
        ("text:42 OR text:plain", [6, 7, 8, 16]),
        ('abc12 + "."*', [13, 14]),  # a `*` on a string with no word is on the word before
        ("build* + finished", [19]),  # build7x is two words for the chunk index
        ("build7 + finished", []),
    ],
)
def test_raw_queries_with_numbers(store: Store, query: str, expected: list[int]) -> None:
    assert lines_of(search(store, query, raw=True, limit=1000)) == expected


def test_a_number_among_a_million_is_found_by_scanning_not_indexing(tmp_path: Path) -> None:
    store = Store(tmp_path / "bakery.db")
    numbers = [str(i) for i in range(1, 20_001)]
    add_run(store, "seq", 1, 100.0, [])
    for first in range(0, len(numbers), 4000):
        part = numbers[first : first + 4000]
        store.append_chunks(
            [
                ev.LogChunk(
                    "seq", "S", "A", 1, first + 1, len(part), 100.0, "stdout", "\n".join(part)
                )
            ]
        )
    result = search(store, "1234")
    assert [(h.line_no, h.text) for h in result.hits] == [(1234, "1234")]
    assert search(store, "20000").hits[0].line_no == 20_000
    assert search(store, "1").total == 1
    # the numbers gave the chunk index no terms at all (each one would cost ~2 us to index)
    with store.transaction() as conn:
        conn.execute("CREATE VIRTUAL TABLE temp.v USING fts5vocab(main, log_chunks_fts, row)")
        assert conn.execute("SELECT COUNT(*) FROM temp.v").fetchone()[0] == 0


def test_plan_leaves_numbers_to_the_scan() -> None:
    assert plan('"404"').chunk_match is None
    assert plan('"error 42"').chunk_match == '"error 42"'  # the index ignores the 42 ...
    digits = plan('"error 42"').digits  # ... the line must hold it, as a word
    assert digits is not None and getattr(digits, "run", None) == "42"
    assert plan("error OR 404").chunk_match is None  # either side may match: scan
    assert plan("error AND 404").chunk_match == '"error"'
    assert plan("a* + b").chunk_match == '("a" * AND "b")'  # a1x b: two words at digits


# -- every query answers as a per-line index would --------------------------------------------

ALPHABET = "ab12 .-x0É_"


class Reference:
    """What a search means: the lines that match, each indexed alone with LINE_TOKENIZE."""

    def __init__(self, rows: list[tuple[str, int, str]]) -> None:
        self.rows = rows
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute(f'CREATE VIRTUAL TABLE m USING fts5(text, tokenize="{LINE_TOKENIZE}")')
        self.conn.executemany(
            "INSERT INTO m (rowid, text) VALUES (?, ?)", [(i, r[2]) for i, r in enumerate(rows)]
        )

    def lines(self, match: str) -> list[tuple[str, int]] | None:
        try:
            found = self.conn.execute("SELECT rowid FROM m WHERE m MATCH ?", (match,)).fetchall()
        except sqlite3.OperationalError:
            return None
        return sorted((self.rows[i][0], self.rows[i][1]) for (i,) in found)


def test_random_queries_match_a_per_line_index(tmp_path: Path) -> None:
    rng = random.Random(1)
    store = Store(tmp_path / "bakery.db")
    rows: list[tuple[str, int, str]] = []
    for n, run_id in enumerate(("r1", "r2"), 1):
        add_run(store, run_id, n, 100.0 * n, [])
        line_no = 1
        for chunk in range(30):
            texts = [
                "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 12)))
                for _ in range(rng.choice([1, 2, 5, 20]))
            ]
            store.append_chunks(
                [
                    ev.LogChunk(
                        run_id,
                        "S",
                        "A",
                        1,
                        line_no,
                        len(texts),
                        100.0 * n + chunk,
                        "stdout",
                        "\n".join(texts),
                    )
                ]
            )
            rows += [(run_id, line_no + i, t) for i, t in enumerate(texts)]
            line_no += len(texts)

    def word() -> str:
        if rng.random() < 0.4:
            return '"' + "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 5))) + '"'
        return "".join(rng.choice("ab12x0") for _ in range(rng.randint(1, 3)))

    ref = Reference(rows)
    checked = 0
    for i in range(450):
        if i % 3 == 0:
            text, raw = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 6))), False
        else:
            words = [word() + ("*" if rng.random() < 0.3 else "") for _ in range(rng.randint(1, 3))]
            text, raw = words[0], True
            for w in words[1:]:
                text += rng.choice([" ", " OR ", " AND ", " NOT ", " + "]) + w
            if rng.random() < 0.15:
                text = f"NEAR({' '.join(words)}, {rng.randint(0, 2)})"
        expected = ref.lines(fts_query(text, raw=raw))
        if expected is None or not any(c.isalnum() for c in text):
            continue
        result = search(store, text, raw=raw, limit=10_000)
        assert sorted((h.run_id, h.line_no) for h in result.hits) == expected, text
        assert result.total == len(expected) and not result.capped
        checked += 1
    assert checked > 250
