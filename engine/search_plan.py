"""How a search finds its candidate chunks in the chunk index, whose tokenizer splits at digits.

The chunk index (`log_chunks_fts`) treats ASCII digits as separators, so a flood of numbers
(`seq`, ids, timestamps) adds no terms to it (a new FTS5 term costs ~2 us to index). Search
results are still about whole words of the original text: every candidate line is matched
again with the full query and the line tokenizer (digits are word characters there). What
this module gives is a *superset* of the chunks and lines that can match:

- `chunk_match`: the query for the chunk index, with what it cannot answer left out (NOT
  clauses, `^`, column filters, NEAR distances, and phrases made of numbers only), or None
  when nothing is left (`404`, `1.2.3`, `error OR 42`): then the chunk text is scanned.
- `digits`: the runs of digits a matching line must hold as written (a number folds to
  itself), kept in an AND/OR tree like the query's: checked with `instr` on the chunk text in
  SQL and with a regex per line, which also knows whether a word character may stand beside
  the run (`404` is not found in `14045` nor in `abc404`).

Known gap: the line tokenizer drops combining diacritics inside a word, so "4", U+0301
(combining acute), "04" is the word `404` without holding "404": a search for 404 misses it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.store import CHUNK_TOKENIZE, LINE_TOKENIZE

# -- conditions on the digits of a line --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Digits:
    """A run of ASCII digits a matching line holds, and the regex that finds it in a line."""

    run: str
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Cond, ...]


Cond = Digits | AllOf | AnyOf | None
"""None: no condition (every line may match)."""


def all_of(*conds: Cond) -> Cond:
    parts: list[Cond] = []
    for c in conds:
        if c is None:
            continue
        parts.extend(c.parts if isinstance(c, AllOf) else (c,))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(tuple(dict.fromkeys(parts)))


def any_of(*conds: Cond) -> Cond:
    parts: list[Cond] = []
    for c in conds:
        if c is None:
            return None  # one side may match anything: so may the whole
        parts.extend(c.parts if isinstance(c, AnyOf) else (c,))
    return parts[0] if len(parts) == 1 else AnyOf(tuple(dict.fromkeys(parts)))


def cond_sql(cond: Cond, column: str = "c.text") -> tuple[str, list[str]]:
    """An SQL expression true for every chunk that can hold a line meeting `cond`."""
    if cond is None:
        return "1", []
    if isinstance(cond, Digits):
        return f"instr({column}, ?) > 0", [cond.run]
    joiner = " AND " if isinstance(cond, AllOf) else " OR "
    parts = [cond_sql(p, column) for p in cond.parts]
    return "(" + joiner.join(s for s, _ in parts) + ")", [a for _, args in parts for a in args]


def cond_test(cond: Cond, line: str) -> bool:
    if cond is None:
        return True
    if isinstance(cond, Digits):
        return cond.pattern.search(line) is not None
    if isinstance(cond, AllOf):
        return all(cond_test(p, line) for p in cond.parts)
    return any(cond_test(p, line) for p in cond.parts)


def required(cond: Cond) -> Digits | None:
    """A run every line meeting `cond` holds (the longest one), if there is one."""
    if isinstance(cond, Digits):
        return cond
    if isinstance(cond, AllOf):
        runs = [p for p in cond.parts if isinstance(p, Digits)]
        if runs:
            return max(runs, key=lambda d: len(d.run))
    return None


_ASCII_WORD = "0-9A-Za-z"


def _run_pattern(text: str, start: int, end: int, open_end: bool) -> re.Pattern[str]:
    """The regex for the digits text[start:end] of a query string, as a line holds them.

    Beside an ASCII separator (or the string's edge) the line's run must not touch a word
    character; beside an ASCII letter it must not touch another digit; beside anything else
    (a non-ASCII character may be a letter, a separator or a dropped diacritic) nothing is
    asked. `open_end`: the run ends a prefix query (`404*`), so anything may follow it.
    """
    run = text[start:end]
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    left = right = ""
    # the left check looks back from after the run, so the regex starts with the run itself
    # (a literal start lets `re` skip to its occurrences: ~20x faster over a chunk)
    if before.isascii():
        left = f"(?<![{'0-9' if before.isalpha() else _ASCII_WORD}]{run})"
    if not open_end and after.isascii():
        right = f"(?![{'0-9' if after.isalpha() else _ASCII_WORD}])"
    return re.compile(run + left + right)


_DIGIT_RUN = re.compile(r"[0-9]+")
_ASCII_WORD_CHAR = re.compile(f"[{_ASCII_WORD}]")


def string_digits(text: str, star: bool) -> Cond:
    """What one query string (a bareword or a quoted string) asks of a line's digits."""
    conds = []
    for m in _DIGIT_RUN.finditer(text):
        # the `*` is on the string's last word: the run is open-ended when no ASCII word
        # character follows it (a non-ASCII one may or may not be a letter: open too)
        open_end = star and not _ASCII_WORD_CHAR.search(text, m.end())
        conds.append(Digits(m.group(), _run_pattern(text, m.start(), m.end(), open_end)))
    return all_of(*conds)


# -- the FTS5 query syntax ---------------------------------------------------------------------


class QuerySyntax(ValueError):
    """A query this parser does not understand (SQLite has accepted it: plan for a scan)."""


_SPACE = " \t\n\r"  # FTS5's whitespace (a no-break space is part of a bareword)
_LEX = re.compile(
    r'[ \t\n\r]*(?:"((?:[^"]|"")*)"|([(){}:,+*^-])|([0-9A-Za-z_\x1a\x80-\U0010ffff]+))'
)
_KEYWORDS = frozenset({"AND", "OR", "NOT"})

Token = tuple[str, str]  # ("s", string) | ("k", keyword) | ("p", punctuation)


def _lex(query: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    end = len(query.rstrip(_SPACE))
    while pos < end:
        m = _LEX.match(query, pos)
        if m is None:
            raise QuerySyntax(f"cannot read the query at {query[pos : pos + 10]!r}")
        quoted, punct, bare = m.groups()
        if quoted is not None:
            tokens.append(("s", quoted.replace('""', '"')))
        elif punct is not None:
            tokens.append(("p", punct))
        elif bare in _KEYWORDS:
            tokens.append(("k", bare))
        else:
            tokens.append(("s", bare))
        pos = m.end()
    return tokens


@dataclass(frozen=True, slots=True)
class Phrase:
    terms: tuple[tuple[str, bool], ...]  # (string, followed by `*`)


@dataclass(frozen=True, slots=True)
class Near:
    phrases: tuple[Phrase, ...]


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # "and", "or", "not"
    left: Node
    right: Node


Node = Phrase | Near | Binary


class _Parser:
    """FTS5's grammar (SQLite 3.40): OR < AND < NOT < implicit AND (a run of phrases).

    Column filters are read and dropped (one column), so is `^` (it is about a line's start,
    and chunks join lines), and a NEAR group keeps its phrases but not its distance (splitting
    words at digits changes distances).
    """

    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def parse(self) -> Node:
        node = self._or()
        if self.i != len(self.tokens):
            raise QuerySyntax("unexpected text after the query")
        return node

    def _peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.tokens[j] if j < len(self.tokens) else None

    def _take(self, expected: Token | None = None, kind: str | None = None) -> Token:
        tok = self._peek()
        if (
            tok is None
            or (expected is not None and tok != expected)
            or (kind is not None and tok[0] != kind)
        ):
            raise QuerySyntax(f"expected {expected or kind}, got {tok}")
        self.i += 1
        return tok

    def _binary(self, keyword: str, operand: Callable[[], Node]) -> Node:
        node = operand()
        while self._peek() == ("k", keyword):
            self.i += 1
            node = Binary(keyword.lower(), node, operand())
        return node

    def _or(self) -> Node:
        return self._binary("OR", self._and)

    def _and(self) -> Node:
        return self._binary("AND", self._not)

    def _not(self) -> Node:
        return self._binary("NOT", self._primary)

    def _colset_ahead(self) -> bool:
        tok = self._peek()
        return tok in (("p", "-"), ("p", "{")) or (
            tok is not None and tok[0] == "s" and self._peek(1) == ("p", ":")
        )

    def _colset(self) -> None:
        if self._peek() == ("p", "-"):
            self.i += 1
        if self._peek() == ("p", "{"):
            self.i += 1
            while self._peek() != ("p", "}"):
                self._take(kind="s")
            self.i += 1
        else:
            self._take(kind="s")
        self._take(("p", ":"))

    def _primary(self) -> Node:
        if self._peek() == ("p", "("):
            self.i += 1
            node = self._or()
            self._take(("p", ")"))
            return node
        if self._colset_ahead():
            self._colset()
            if self._peek() == ("p", "("):
                self.i += 1
                node = self._or()
                self._take(("p", ")"))
                return node
        node = self._nearset()
        while True:  # implicit AND: phrases one after another
            tok = self._peek()
            if tok is None or not (tok[0] == "s" or tok in (("p", "^"), ("p", "-"), ("p", "{"))):
                return node
            if self._colset_ahead():
                self._colset()
            node = Binary("and", node, self._nearset())

    def _nearset(self) -> Phrase | Near:
        if self._peek() == ("p", "^"):
            self.i += 1
            return self._phrase()
        tok = self._peek()
        if tok is not None and tok[0] == "s" and self._peek(1) == ("p", "("):
            self.i += 2  # NEAR (
            phrases = [self._phrase()]
            while self._peek() not in (("p", ","), ("p", ")")):
                phrases.append(self._phrase())
            if self._peek() == ("p", ","):
                self.i += 1
                self._take(kind="s")
            self._take(("p", ")"))
            return Near(tuple(phrases))
        return self._phrase()

    def _phrase(self) -> Phrase:
        terms = [self._term()]
        while self._peek() == ("p", "+"):
            self.i += 1
            terms.append(self._term())
        return Phrase(tuple(terms))

    def _term(self) -> tuple[str, bool]:
        text = self._take(kind="s")[1]
        star = self._peek() == ("p", "*")
        if star:
            self.i += 1
        return text, star


def parse(query: str) -> Node:
    """The syntax tree of an FTS5 query (raises QuerySyntax when it cannot be read)."""
    return _Parser(_lex(query)).parse()


# -- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """How to find the chunks and lines that may match a query (see the module doc)."""

    chunk_match: str | None
    digits: Cond

    def where(self) -> tuple[str, list[str]]:
        """SQL over `c.text` (and its arguments) true for every chunk that may match."""
        return cond_sql(self.digits)

    def holds_digits(self, line: str) -> bool:
        return cond_test(self.digits, line)

    @property
    def needs_digits(self) -> bool:
        """Whether every matching line holds a certain run of digits."""
        return required(self.digits) is not None

    def lines_holding_digits(self, text: str, single: bool) -> list[tuple[int, str]]:
        """(index, text) of the lines of a chunk that meet `digits`; `single`: the chunk is
        one line (which may hold a newline). With a run every such line holds, one regex over
        the chunk finds them, and the chunk is not split."""
        if single:
            return [(0, text)] if cond_test(self.digits, text) else []
        need = required(self.digits)
        if need is None:
            lines = enumerate(text.split("\n"))
            return [(i, line) for i, line in lines if cond_test(self.digits, line)]
        out: list[tuple[int, str]] = []
        index = at = 0
        end = -1
        for m in need.pattern.finditer(text):
            if m.start() < end:
                continue  # a line already looked at
            index += text.count("\n", at, m.start())
            at = m.start()
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            if end < 0:
                end = len(text)
            line = text[start:end]
            if cond_test(self.digits, line):
                out.append((index, line))
        return out


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


class _Planner:
    """Asks the two tokenizers (in a scratch in-memory database) what a query string holds."""

    def __init__(self) -> None:
        self._probe: sqlite3.Connection | None = None
        self._known: dict[tuple[str, str], bool] = {}

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()

    def _conn(self) -> sqlite3.Connection:
        if self._probe is None:
            self._probe = sqlite3.connect(":memory:", isolation_level=None)
            for table, tokenize in (("c", CHUNK_TOKENIZE), ("l", LINE_TOKENIZE)):
                self._probe.execute(
                    f'CREATE VIRTUAL TABLE {table} USING fts5(text, tokenize="{tokenize}")'
                )
        return self._probe

    def _has_words(self, table: str, text: str) -> bool:
        if (table, text) not in self._known:
            conn = self._conn()
            conn.execute(f"DELETE FROM {table}")
            conn.execute(f"INSERT INTO {table} (rowid, text) VALUES (1, ?)", (text,))
            # a phrase without a token matches no row; any other matches its own text
            row = conn.execute(
                f"SELECT 1 FROM {table} WHERE {table} MATCH ?", (_quote(text),)
            ).fetchone()
            self._known[table, text] = row is not None
        return self._known[table, text]

    def indexed(self, text: str) -> bool:
        """Whether the chunk index's tokenizer finds a word in `text` (not only digits)."""
        return self._has_words("c", text)

    def valid(self, match: str) -> bool:
        try:
            self._conn().execute("SELECT 1 FROM c WHERE c MATCH ?", (match,)).fetchall()
        except sqlite3.OperationalError:
            return False
        return True

    def normal(self, node: Node) -> Node:
        """The tree with every phrase's strings holding a word for the line tokenizer.

        FTS5 puts a `*` on the phrase's last word so far: on a string with no word
        (`a + "."*`) it makes the word before it a prefix. So such a string is dropped and
        its `*` moved to the string before it.
        """
        if isinstance(node, Phrase):
            return self._normal_phrase(node)
        if isinstance(node, Near):
            return Near(tuple(self._normal_phrase(p) for p in node.phrases))
        return Binary(node.op, self.normal(node.left), self.normal(node.right))

    def _normal_phrase(self, node: Phrase) -> Phrase:
        terms: list[tuple[str, bool]] = []
        for text, star in node.terms:
            if self._has_words("l", text):
                terms.append((text, star))
            elif star and terms:
                terms[-1] = (terms[-1][0], True)
        return Phrase(tuple(terms))

    def fts(self, node: Node) -> str | None:
        if isinstance(node, Phrase):
            # A prefix term inside a phrase (`a* + b`) may match a word that digits split in
            # two (`a1x b`): the phrase is cut after it, and its parts are ANDed.
            groups: list[list[tuple[str, bool]]] = [[]]
            for term in node.terms:
                groups[-1].append(term)
                if term[1]:
                    groups.append([])
            phrases = [
                " + ".join(_quote(t) + (" *" if star else "") for t, star in indexed)
                for indexed in ([t for t in g if self.indexed(t[0])] for g in groups)
                if indexed
            ]
            if not phrases:
                return None
            return phrases[0] if len(phrases) == 1 else "(" + " AND ".join(phrases) + ")"
        if isinstance(node, Near):
            parts = [p for p in (self.fts(n) for n in node.phrases) if p is not None]
            return "(" + " AND ".join(parts) + ")" if parts else None
        if node.op == "not":
            return self.fts(node.left)
        left, right = self.fts(node.left), self.fts(node.right)
        if node.op == "or":
            return None if left is None or right is None else f"({left} OR {right})"
        if left is None or right is None:
            return left or right
        return f"({left} AND {right})"


def _digits(node: Node) -> Cond:
    if isinstance(node, Phrase):
        return all_of(*(string_digits(t, star) for t, star in node.terms))
    if isinstance(node, Near):
        return all_of(*(_digits(n) for n in node.phrases))
    if node.op == "not":
        return _digits(node.left)
    left, right = _digits(node.left), _digits(node.right)
    return any_of(left, right) if node.op == "or" else all_of(left, right)


def plan(match: str) -> Plan:
    """The candidate plan for an FTS5 query that SQLite has accepted.

    A query this parser cannot read gets the plan that scans every line (slow, never wrong).
    """
    try:
        tree = parse(match)
    except QuerySyntax:
        return Plan(None, None)
    planner = _Planner()
    try:
        tree = planner.normal(tree)
        chunk_match = planner.fts(tree)
        if chunk_match is not None and not planner.valid(chunk_match):
            chunk_match = None  # (never seen: a scan is slower, never wrong)
        return Plan(chunk_match, _digits(tree))
    finally:
        planner.close()
